"""Run the DMA engine RTL on Verilator: a harness with `SimpleMemory`, and its cocotb testbench glue."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.dma import DmaEngine, DmaParams
from hw.memory import MemoryParams, mem_port_signature
from hw.verilog import generate
from sim.blocks.dma.model import Descriptor
from sim.rtl.gateware import MemPortMux, SimpleMemory
from sim.rtl.runner import build, run_cocotb

TOP = "dma_harness"
TB = "sim.blocks.dma.tb"


class DmaHarness(wiring.Component):
    """`DmaEngine` + `SimpleMemory`, with a testbench memory port selected by ``tb_sel``."""

    def __init__(self, dma: DmaParams, mem: MemoryParams) -> None:
        self.dma_params, self.mem_params = dma, mem
        self._dma = DmaEngine(dma)
        sig = self._dma.signature.members
        super().__init__({
            "cfg": sig["cfg"],
            "trigger": sig["trigger"],
            "link": sig["link"],
            "status": sig["status"],
            "num_devices": sig["num_devices"],
            "idle": sig["idle"],
            "tb": In(mem_port_signature(mem.addr_bits)),
            "tb_sel": In(1),
            "occupancy": Out(range(mem.queue_depth + 1)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.dma = dma = self._dma
        m.submodules.memory = memory = SimpleMemory(self.mem_params)
        m.submodules.mux = mux = MemPortMux(self.mem_params.addr_bits)
        wiring.connect(m, dma.mem, mux.block)
        wiring.connect(m, wiring.flipped(self.tb), mux.tb)
        wiring.connect(m, mux.mem, memory.port)
        wiring.connect(m, wiring.flipped(self.cfg), dma.cfg)
        wiring.connect(m, wiring.flipped(self.trigger), dma.trigger)
        wiring.connect(m, dma.link, wiring.flipped(self.link))
        wiring.connect(m, dma.status, wiring.flipped(self.status))
        m.d.comb += [dma.num_devices.eq(self.num_devices), self.idle.eq(dma.idle), mux.sel.eq(self.tb_sel),
                     self.occupancy.eq(memory.occupancy)]
        return m


def run_dma_rtl(dma: DmaParams, mem: MemoryParams, num_devices: int, descriptors: dict[int, Descriptor],
                preload: dict[int, int], triggers: list[tuple[int, int]], work: Path, *, link_seed: int = 0,
                link_bp: float = 0.0, status_seed: int = 0, status_bp: float = 0.0,
                reset_after: int | None = None, waves: bool = False) -> dict:
    """Preload memory, program descriptors, replay triggers ``(cycle, desc)``; return packets and statuses.

    Result: ``packets`` (cycle, dst_device, addr, op, data, tag), ``statuses`` (cycle, desc, tag, error) and
    ``cycles`` (see `sim.blocks.dma`), cycles counted from the first replay cycle. ``waves`` dumps
    ``work/dump.vcd``.
    """
    build_dir = build(TOP, {f"{TOP}.v": generate(TOP, DmaHarness(dma, mem))}, waves=waves)
    job = {
        "dma": dma.as_dict(), "mem": mem.as_dict(), "num_devices": num_devices,
        "descriptors": {str(k): dataclasses.asdict(v) for k, v in descriptors.items()},
        "preload": [[a, d] for a, d in sorted(preload.items())], "triggers": triggers,
        "link_seed": link_seed, "link_bp": link_bp, "status_seed": status_seed, "status_bp": status_bp,
        "reset_after": reset_after,
    }
    return run_cocotb(build_dir, TOP, TB, "dma_replay", test_dir=work, job=job, waves=waves)
