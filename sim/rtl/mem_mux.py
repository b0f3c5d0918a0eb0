"""Testbench plumbing: let the testbench own a memory port (preload, read back) while a block is idle."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.memory import mem_port_signature


class MemPortMux(wiring.Component):
    """Connects ``block`` (``sel = 0``) or ``tb`` (``sel = 1``) to ``mem``. Switch only while both are idle."""

    def __init__(self, addr_bits: int) -> None:
        super().__init__({
            "block": In(mem_port_signature(addr_bits)),
            "tb": In(mem_port_signature(addr_bits)),
            "mem": Out(mem_port_signature(addr_bits)),
            "sel": In(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        for port, chosen in ((self.block, ~self.sel), (self.tb, self.sel)):
            with m.If(chosen):
                m.d.comb += [
                    self.mem.cmd.valid.eq(port.cmd.valid),
                    self.mem.cmd.payload.eq(port.cmd.payload),
                    port.cmd.ready.eq(self.mem.cmd.ready),
                    port.rsp.valid.eq(self.mem.rsp.valid),
                    port.rsp.payload.eq(self.mem.rsp.payload),
                    self.mem.rsp.ready.eq(port.rsp.ready),
                ]
        return m
