"""cocotb testbench for the KV swap controller (`sim.blocks.kv_swap.rtl.KvSwapHarness`).

Preloads both memories through the testbench ports, replays the swap trace (runs with their idles, aborts,
seeded backpressure on ``status``) with `sim.blocks.kv_swap.rtl.ReplayDriver`, recording every status and every
accepted device/host command with its cycle, then reads both pools back. Inputs are driven after the falling
edge and handshakes read after ``ReadOnly`` (``run.ready`` depends on the run offered). The job may cut the replay
(``max_cycles``) and the read-back (``readback_words``, device and host) shorter. With ``reset_after`` the
first replay is cut by a reset in the middle of the transfers and the replay is run again from a clean state:
the recorded result is the second run.
"""

from __future__ import annotations

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from hw.kv_swap import KvSwapParams
from hw.memory import MemoryParams, mem_cmd_layout
from hw.pack import pack
from sim.blocks.kv_swap.model import Run
from sim.blocks.kv_swap.rtl import ReplayDriver
from sim.core.stimulus import ReadyPattern
from sim.rtl.tb_common import CLOCK_NS, read_job, reset, write_result

PORTS = ("tb_dev", "tb_host")


async def _preload(dut, mems: list[MemoryParams], words: list[list[list[int]]]) -> None:
    dut.tb_sel.value = 1
    for port, mem, pre in zip(PORTS, mems, words, strict=True):
        lay = mem_cmd_layout(mem.addr_bits)
        valid, payload, ready = (getattr(dut, f"{port}__cmd__{n}") for n in ("valid", "payload", "ready"))
        for addr, word in pre:
            await FallingEdge(dut.clk)
            payload.value = pack(lay, addr=addr, write=1, data=word)
            valid.value = 1
            while not int(ready.value):
                await FallingEdge(dut.clk)
        await FallingEdge(dut.clk)
        valid.value = 0
    for port, mem in zip(PORTS, mems, strict=True):
        while int(getattr(dut, f"{port.removeprefix('tb_')}_occupancy").value):
            await FallingEdge(dut.clk)
        for _ in range(mem.interval + mem.latency + 2):
            await FallingEdge(dut.clk)
    dut.tb_sel.value = 0


async def _read_back(dut, port: str, mem: MemoryParams, words: int) -> list[int]:
    """Read words ``0 .. words-1`` back, pipelined (commands while accepted, responses as they come)."""
    lay = mem_cmd_layout(mem.addr_bits)
    valid, payload, ready = (getattr(dut, f"{port}__cmd__{n}") for n in ("valid", "payload", "ready"))
    rsp_valid, rsp_data = getattr(dut, f"{port}__rsp__valid"), getattr(dut, f"{port}__rsp__payload")
    getattr(dut, f"{port}__rsp__ready").value = 1
    out: list[int] = []
    addr = 0
    while len(out) < words:
        await FallingEdge(dut.clk)
        valid.value = int(addr < words)
        payload.value = pack(lay, addr=min(addr, words - 1), write=0, data=0)
        await ReadOnly()
        if addr < words and int(ready.value):
            addr += 1
        if int(rsp_valid.value):
            out.append(int(rsp_data.value))
    await FallingEdge(dut.clk)
    valid.value = 0
    getattr(dut, f"{port}__rsp__ready").value = 0
    return out


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
    # still before the rising edge of cycle k: withdraw the inputs so nothing is taken twice
    for name, value in drv.idle_inputs().items():
        getattr(dut, name).value = value
    return k


@cocotb.test()
async def kv_swap_replay(dut) -> None:
    job = read_job()
    p = KvSwapParams(**job["params"])
    mems = [MemoryParams(**job["dev_mem"]), MemoryParams(**job["host_mem"])]
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns", impl="gpi").start())
    for name in ("run__valid", "abort__valid", "status__ready", "tb_dev__cmd__valid", "tb_host__cmd__valid",
                 "tb_dev__rsp__ready", "tb_host__rsp__ready", "tb_sel"):
        getattr(dut, name).value = 0
    await reset(dut)
    await _preload(dut, mems, [job["dev_preload"], job["host_preload"]])
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
    dut.tb_sel.value = 1
    n_dev, n_host = job.get("readback_words", (p.dev_blocks * p.block_words, p.host_blocks * p.block_words))
    dev_words = await _read_back(dut, "tb_dev", mems[0], n_dev)
    host_words = await _read_back(dut, "tb_host", mems[1], n_host)
    out = drv.out
    write_result(job, {"statuses": out.statuses, "dev_cmds": out.dev_cmds, "host_cmds": out.host_cmds,
                       "cycles": cycles, "bad_aborts": bad_aborts, "abort_err": abort_err,
                       "dev_mem": dev_words, "host_mem": host_words})
    assert cycles < limit - 1, "the controller did not go idle"
