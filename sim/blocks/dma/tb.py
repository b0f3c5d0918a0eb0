"""cocotb testbench for the DMA engine (`sim.blocks.dma.rtl.DmaHarness`).

Preloads memory through the testbench port, programs the descriptors, replays triggers with random
backpressure on ``link`` and ``status`` and records every packet and status with its cycle. With
``reset_after`` the first replay is cut by a reset in the middle of the transfers and the replay is run again
from a clean state: the recorded result is the second run, which must be complete and correct.
"""

from __future__ import annotations

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from hw.dma import DmaParams
from hw.memory import MemoryParams, mem_cmd_layout
from hw.pack import pack, unpack
from sim.core.stimulus import ReadyPattern
from sim.rtl.tb_common import read_job, reset, write_result


async def _preload(dut, mem: MemoryParams, words: list[list[int]]) -> None:
    lay = mem_cmd_layout(mem.addr_bits)
    dut.tb_sel.value = 1
    dut.tb__rsp__ready.value = 1
    for addr, word in words:
        await FallingEdge(dut.clk)
        dut.tb__cmd__payload.value = pack(lay, addr=addr, write=1, data=word)
        dut.tb__cmd__valid.value = 1
        while not int(dut.tb__cmd__ready.value):
            await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.tb__cmd__valid.value = 0
    while int(dut.occupancy.value):
        await FallingEdge(dut.clk)
    for _ in range(mem.interval + mem.latency + 2):
        await FallingEdge(dut.clk)
    dut.tb_sel.value = 0


async def _replay(dut, p: DmaParams, triggers, link_ready, status_ready, max_cycles: int, stop_at: int | None):
    link_l, status_l = p.link_layout(), p.status_layout()
    packets, statuses = [], []
    i = 0
    for k in range(max_cycles):
        await FallingEdge(dut.clk)
        if stop_at is not None and k == stop_at:
            break
        if i == len(triggers) and int(dut.idle.value):
            break
        if i < len(triggers) and triggers[i][0] <= k:
            dut.trigger__payload.value = triggers[i][1]
            dut.trigger__valid.value = 1
            if int(dut.trigger__ready.value):
                i += 1
        else:
            dut.trigger__valid.value = 0
        lr, sr = link_ready(k), status_ready(k)
        dut.link__ready.value = int(lr)
        dut.status__ready.value = int(sr)
        if lr and int(dut.link__valid.value):
            f = unpack(link_l, int(dut.link__payload.value))
            packets.append([k, f["dst_device"], f["addr"], f["op"], f["data"], f["tag"]])
        if sr and int(dut.status__valid.value):
            f = unpack(status_l, int(dut.status__payload.value))
            statuses.append([k, f["desc"], f["tag"], f["error"]])
    dut.trigger__valid.value = 0
    dut.link__ready.value = 0
    dut.status__ready.value = 0
    return packets, statuses, k


@cocotb.test()
async def dma_replay(dut) -> None:
    job = read_job()
    p, mem = DmaParams(**job["dma"]), MemoryParams(**job["mem"])
    cocotb.start_soon(Clock(dut.clk, 2, unit="ns", impl="gpi").start())
    for name in ("cfg__valid", "trigger__valid", "link__ready", "status__ready", "tb__cmd__valid", "tb_sel"):
        getattr(dut, name).value = 0
    dut.num_devices.value = job["num_devices"]
    await reset(dut)
    await _preload(dut, mem, job["preload"])
    cfg_l = p.cfg_layout()
    for index, d in sorted(job["descriptors"].items(), key=lambda kv: int(kv[0])):
        await FallingEdge(dut.clk)
        dut.cfg__payload.value = pack(cfg_l, index=int(index), **d)
        dut.cfg__valid.value = 1
    await FallingEdge(dut.clk)
    dut.cfg__valid.value = 0

    link_ready = ReadyPattern(job["link_seed"], job["link_bp"])
    status_ready = ReadyPattern(job["status_seed"], job["status_bp"])
    triggers = [tuple(t) for t in job["triggers"]]
    limit = 200_000 + 64 * len(job["preload"])
    if job["reset_after"] is not None:
        await _replay(dut, p, triggers, link_ready, status_ready, limit, job["reset_after"])
        await reset(dut)
    packets, statuses, cycles = await _replay(dut, p, triggers, link_ready, status_ready, limit, None)
    result = {"packets": packets, "statuses": statuses, "cycles": cycles}
    write_result(job, result)
    assert cycles < limit - 1, "the DMA did not go idle"
