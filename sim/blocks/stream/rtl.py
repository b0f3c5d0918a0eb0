"""Run the STREAM unit RTL on Verilator: a harness with `SimpleMemory`, and its cocotb testbench glue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.memory import MemoryParams, mem_port_signature
from hw.stream import StreamParams, StreamUnit
from hw.verilog import generate
from sim.rtl.gateware import MemPortMux, SimpleMemory
from sim.rtl.runner import build, run_cocotb

TOP = "stream_harness"
TB = "sim.blocks.stream.tb"


class StreamHarness(wiring.Component):
    """`StreamUnit` + `SimpleMemory`, with a testbench memory port selected by ``tb_sel``."""

    def __init__(self, params: StreamParams, mem: MemoryParams) -> None:
        if mem.addr_bits != params.addr_bits:
            raise ValueError(f"memory addr_bits ({mem.addr_bits}) must equal the unit's ({params.addr_bits})")
        self.params, self.mem_params = params, mem
        self._unit = StreamUnit(params)
        sig = self._unit.signature.members
        super().__init__({
            "prog": sig["prog"],
            "status": sig["status"],
            "idle": sig["idle"],
            "tb": In(mem_port_signature(mem.addr_bits)),
            "tb_sel": In(1),
            "occupancy": Out(range(mem.queue_depth + 1)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.unit = unit = self._unit
        m.submodules.memory = memory = SimpleMemory(self.mem_params)
        m.submodules.mux = mux = MemPortMux(self.mem_params.addr_bits)
        wiring.connect(m, unit.mem, mux.block)
        wiring.connect(m, wiring.flipped(self.tb), mux.tb)
        wiring.connect(m, mux.mem, memory.port)
        wiring.connect(m, wiring.flipped(self.prog), unit.prog)
        wiring.connect(m, unit.status, wiring.flipped(self.status))
        m.d.comb += [self.idle.eq(unit.idle), mux.sel.eq(self.tb_sel), self.occupancy.eq(memory.occupancy)]
        return m


def run_stream_rtl(p: StreamParams, mem: MemoryParams, programs: np.ndarray, image: np.ndarray, work: Path, *,
                   status_seed: int = 0, status_bp: float = 0.0, reset_at: int | None = None,
                   waves: bool = False) -> dict:
    """Preload ``image``, replay ``programs`` (`sim.blocks.stream.reference.PROGRAM_DTYPE`), read the image
    back. Result: ``status`` rows (cycle, tag, op, error), ``memory`` (the image's words after the run),
    ``cycles`` (`sim.blocks.stream`), and the testbench's scoreboard figures. With ``reset_at`` the first
    replay is cut by a reset at that cycle and the whole replay is run again from a fresh preload."""
    build_dir = build(TOP, {f"{TOP}.v": generate(TOP, StreamHarness(p, mem))}, waves=waves)
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "programs.npy", programs)
    np.save(work / "image.npy", np.asarray(image, dtype=np.uint32))
    job = {"params": p.as_dict(), "mem": mem.as_dict(), "programs": str(work / "programs.npy"),
           "image": str(work / "image.npy"), "status_seed": status_seed, "status_bp": status_bp,
           "reset_at": reset_at}
    res = run_cocotb(build_dir, TOP, TB, "stream_replay", test_dir=work, job=job, waves=waves)
    res["memory"] = np.load(work / "readback.npy")
    return res
