"""cocotb testbench for the DMA engine (`sim.blocks.dma.rtl.DmaHarness`).

Preloads memory through the testbench port, programs the descriptors, replays triggers (each offered from its
cycle) with seeded backpressure on ``link`` and ``status`` and records every packet and status with its cycle,
all with the shared drivers (`sim.rtl.drivers`). With ``reset_after`` the first replay is cut by a reset in the
middle of the transfers and the replay is run again from a clean state: the recorded result is the second run,
which must be complete and correct.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import FallingEdge

from hw.dma import DmaParams
from hw.memory import MemoryParams
from sim.core.stimulus import ReadyPattern
from sim.rtl.drivers import MemPortDriver, StreamSink, StreamSource, act, idle, offer
from sim.rtl.tb_common import clear, read_job, reset, start_clock, write_result


async def _replay(dut, p: DmaParams, triggers, link_ready, status_ready, max_cycles: int, stop_at: int | None):
    """Cycle 0 is the next falling edge. Ends at the first cycle (its number is returned) in which every trigger
    was taken and the engine is idle, at ``stop_at`` or after ``max_cycles``; its inputs are already idle."""
    trigger = StreamSource(dut, "trigger").extend(triggers)
    link = StreamSink(dut, "link", link_ready, p.link_layout())
    status = StreamSink(dut, "status", status_ready, p.status_layout())
    ports = (trigger, link, status)
    for k in range(max_cycles):
        await FallingEdge(dut.clk)
        if k == stop_at or (trigger.done and int(dut.idle.value)):
            break
        await act(k, ports)
    else:
        await FallingEdge(dut.clk)
    idle(*ports)
    return link.rows("dst_device", "addr", "op", "data", "tag"), status.rows("desc", "tag", "error"), k


@cocotb.test()
async def dma_replay(dut) -> None:
    job = read_job()
    p, mem = DmaParams(**job["dma"]), MemoryParams(**job["mem"])
    start_clock(dut)
    clear(dut, "cfg__valid", "trigger__valid", "link__ready", "status__ready", "tb__cmd__valid", "tb_sel")
    dut.num_devices.value = job["num_devices"]
    await reset(dut)
    await MemPortDriver(dut, "tb", mem.addr_bits).preload(job["preload"], settle=mem.interval + mem.latency + 2)
    descriptors = sorted(job["descriptors"].items(), key=lambda kv: int(kv[0]))
    cfg = StreamSource(dut, "cfg", p.cfg_layout()).extend((0, dict(d, index=int(i))) for i, d in descriptors)
    await offer(dut, cfg)

    link_ready = ReadyPattern(job["link_seed"], job["link_bp"])
    status_ready = ReadyPattern(job["status_seed"], job["status_bp"])
    triggers = [tuple(t) for t in job["triggers"]]
    # Generous: every trigger's words, each waiting out the memory and a backpressured link, after the last arrival.
    words = sum(job["descriptors"].get(str(d), {}).get("length", 0) // 4 + 1 for _, d in triggers)
    limit = 200_000 + (triggers[-1][0] if triggers else 0) + 64 * (words + mem.interval * words)
    if job["reset_after"] is not None:
        await _replay(dut, p, triggers, link_ready, status_ready, limit, job["reset_after"])
        await reset(dut)
    packets, statuses, cycles = await _replay(dut, p, triggers, link_ready, status_ready, limit, None)
    result = {"packets": packets, "statuses": statuses, "cycles": cycles}
    write_result(job, result)
    assert cycles < limit - 1, "the DMA did not go idle"
