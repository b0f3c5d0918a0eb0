"""Run `hw.t3_device.T3Device` on Verilator: a harness with `SimpleMemory` and a testbench memory port.

Two cocotb tests run on it (`sim.blocks.t3_device.tb`): ``t3_device_cosim``, the mirrored ring of
`sim.studies.t3.cosim` (`run_device_rtl`), and ``t3_device_replay``, an open-loop stimulus of the execution
API (`replay_device_rtl`).
"""

from __future__ import annotations

from pathlib import Path

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.memory import MemoryParams, mem_port_signature
from hw.t3_device import T3Device, T3DeviceParams
from hw.verilog import generate
from sim.rtl.gateware import MemPortMux, SimpleMemory
from sim.rtl.runner import build, run_cocotb

TOP = "t3_device_harness"
TB = "sim.blocks.t3_device.tb"


class T3DeviceHarness(wiring.Component):
    """`T3Device` in front of `SimpleMemory`; ``tb_sel`` gives the memory to the testbench's ``tb`` port."""

    def __init__(self, params: T3DeviceParams, mem: MemoryParams) -> None:
        self.params, self.mem_params = params, mem
        self._dev = T3Device(params)
        members = dict(self._dev.signature.members)
        del members["mem"], members["occupancy"]
        members.update({"tb": In(mem_port_signature(mem.addr_bits)), "tb_sel": In(1),
                        "mem_occupancy": Out(range(mem.queue_depth + 1))})
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.dev = dev = self._dev
        m.submodules.memory = memory = SimpleMemory(self.mem_params)
        m.submodules.mux = mux = MemPortMux(self.mem_params.addr_bits)
        for name, member in self.signature.members.items():
            if name in ("tb", "tb_sel", "mem_occupancy"):
                continue
            if member.is_port:
                if member.flow == wiring.In:
                    m.d.comb += getattr(dev, name).eq(getattr(self, name))
                else:
                    m.d.comb += getattr(self, name).eq(getattr(dev, name))
            elif member.flow == wiring.In:
                wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(dev, name))
            else:
                wiring.connect(m, getattr(dev, name), wiring.flipped(getattr(self, name)))
        wiring.connect(m, dev.mem, mux.block)
        wiring.connect(m, wiring.flipped(self.tb), mux.tb)
        wiring.connect(m, mux.mem, memory.port)
        m.d.comb += [dev.occupancy.eq(memory.occupancy), mux.sel.eq(self.tb_sel),
                     self.mem_occupancy.eq(memory.occupancy)]
        return m


def _build(params: T3DeviceParams, mem: MemoryParams, waves: bool) -> Path:
    return build(TOP, {f"{TOP}.v": generate(TOP, T3DeviceHarness(params, mem))}, waves=waves)


def run_device_rtl(params: T3DeviceParams, mem: MemoryParams, job: dict, work: Path, waves: bool = False) -> dict:
    """Build (cached) and run the co-simulation testbench with ``job`` (see `sim.studies.t3.cosim`)."""
    return run_cocotb(_build(params, mem, waves), TOP, TB, "t3_device_cosim", test_dir=work, job=job, waves=waves)


def replay_device_rtl(params: T3DeviceParams, mem: MemoryParams, job: dict, work: Path, waves: bool = False) -> dict:
    """Build (cached) and replay an open-loop ``job`` (see `sim.blocks.t3_device` and ``t3_device_replay``)."""
    return run_cocotb(_build(params, mem, waves), TOP, TB, "t3_device_replay", test_dir=work, job=job, waves=waves)
