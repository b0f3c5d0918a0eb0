"""cocotb testbench for the KV swap controller (`sim.blocks.kv_swap.rtl.KvSwapHarness`).

Preloads both memories through the testbench ports (`sim.rtl.drivers.MemPortDriver`), replays the swap trace
(runs with their idles, aborts, seeded backpressure on ``status``) with `sim.blocks.kv_swap.rtl.ReplayDriver`
(shared with the Amaranth-simulator cross-check), recording every status and every accepted device/host command
with its cycle, then reads both pools back. Inputs are driven after the falling edge and handshakes read after
``ReadOnly`` (``run.ready`` depends on the run offered). The job may cut the replay (``max_cycles``) and the
read-back (``readback_words``, device and host) shorter. With ``reset_after`` the first replay is cut by a reset
in the middle of the transfers and the replay is run again from a clean state: the recorded result is the second
run.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly

from hw.kv_swap import KvSwapParams
from hw.memory import MemoryParams
from sim.blocks.kv_swap.model import Run
from sim.blocks.kv_swap.rtl import ReplayDriver
from sim.core.stimulus import ReadyPattern
from sim.rtl.drivers import MemPortDriver
from sim.rtl.tb_common import clear, read_job, reset, start_clock, write_result


async def _replay(dut, drv: ReplayDriver, max_cycles: int, stop_at: int | None) -> int:
    k = 0
    for k in range(max_cycles):
        await FallingEdge(dut.clk)
        if stop_at is not None and k == stop_at:
            break
        if drv.done() and int(dut.idle.value):
            break
        for name, value in drv.drive(k).items():
            getattr(dut, name).value = value
        await ReadOnly()
        drv.observe(k, lambda n: int(getattr(dut, n).value))
    else:
        await FallingEdge(dut.clk)  # ran out of cycles: leave the read-only phase
    # still before the rising edge of cycle k: withdraw the inputs so nothing is taken twice
    for name, value in drv.idle_inputs().items():
        getattr(dut, name).value = value
    return k


@cocotb.test()
async def kv_swap_replay(dut) -> None:
    job = read_job()
    p = KvSwapParams(**job["params"])
    mems = [MemoryParams(**job["dev_mem"]), MemoryParams(**job["host_mem"])]
    start_clock(dut)
    clear(dut, "run__valid", "abort__valid", "status__ready", "tb_dev__cmd__valid", "tb_host__cmd__valid",
          "tb_dev__rsp__ready", "tb_host__rsp__ready", "tb_sel")
    await reset(dut)
    ports = [MemPortDriver(dut, f"tb_{side}", mem.addr_bits, occupancy=f"{side}_occupancy")
             for side, mem in zip(("dev", "host"), mems, strict=True)]
    ports[0].select()  # both memories share tb_sel
    for port, words in zip(ports, (job["dev_preload"], job["host_preload"]), strict=True):
        await port.write(words)
    for port, mem in zip(ports, mems, strict=True):
        await port.drain(settle=mem.interval + mem.latency + 2)
    ports[0].select(False)
    dut._log.info("preloaded")

    runs = [(c, Run(tag, d, s, ds, n, bool(last))) for c, tag, d, s, ds, n, last in job["runs"]]
    aborts = [(c, tag) for c, tag in job["aborts"]]
    limit = job.get("max_cycles", 200_000)

    def driver() -> ReplayDriver:
        return ReplayDriver(p, mems[0].addr_bits, runs, aborts, ReadyPattern(job["status_seed"], job["status_bp"]))

    if job["reset_after"] is not None:
        await _replay(dut, driver(), limit, job["reset_after"])
        await reset(dut)
        for _ in range(mems[1].latency + mems[1].interval + 4):  # memory pipelines of the cut replay drain
            await FallingEdge(dut.clk)
    drv = driver()
    cycles = await _replay(dut, drv, limit, None)
    dut._log.info(f"replayed in {cycles} cycles")
    bad_aborts = int(dut.bad_aborts.value)
    abort_err = int(dut.abort_err.value)
    ports[0].select()
    n_dev, n_host = job.get("readback_words", (p.dev_blocks * p.block_words, p.host_blocks * p.block_words))
    dev_words = await ports[0].read(range(n_dev))
    host_words = await ports[1].read(range(n_host))
    out = drv.out
    write_result(job, {"statuses": out.statuses, "dev_cmds": out.dev_cmds, "host_cmds": out.host_cmds,
                       "cycles": cycles, "bad_aborts": bad_aborts, "abort_err": abort_err,
                       "dev_mem": dev_words, "host_mem": host_words})
    assert cycles < limit - 1, "the controller did not go idle"
