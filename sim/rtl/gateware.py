"""Test-only gateware: the stand-ins testbenches and co-simulations put around a block. Not deliverables.

* `SimpleMemory`: a queued fixed-latency memory behind `hw.memory.mem_port_signature` (model:
  `sim.blocks.memory.model.SimpleMemoryModel`), standing in for a DRAM controller and its DRAM.
* `MemPortMux`: lets the testbench own a memory port (preload, read back) while a block is idle.
* `HostLink` / `HostLinkMemory`: a host link with a per-burst overhead in front of a `SimpleMemory` (model:
  `sim.blocks.kv_swap.model.HostLinkModel`), the KV swap controller's host side.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.kv_swap import host_port_signature
from hw.memory import WORD_BITS, MemoryParams, mem_cmd_layout, mem_port_signature


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


class SimpleMemory(wiring.Component):
    """A queued, fixed-latency memory behind a `mem_port_signature` port (see the module docstring)."""

    def __init__(self, params: MemoryParams | None = None) -> None:
        self.params = p = params or MemoryParams()
        super().__init__({
            "port": In(mem_port_signature(p.addr_bits)),
            "occupancy": Out(range(p.queue_depth + 1)),
        })

    def elaborate(self, platform) -> Module:
        p = self.params
        m = Module()
        cmd_layout = mem_cmd_layout(p.addr_bits)
        m.submodules.queue = queue = SyncFIFO(width=cmd_layout.size, depth=p.queue_depth)
        m.submodules.rsp_fifo = rsp_fifo = SyncFIFO(width=WORD_BITS, depth=p.rsp_depth)
        m.submodules.store = store = Memory(shape=WORD_BITS, depth=1 << p.size_log2, init=[])
        wr = store.write_port()
        rd = store.read_port()

        m.d.comb += [
            queue.w_data.eq(self.port.cmd.payload.as_value()),
            queue.w_en.eq(self.port.cmd.valid),
            self.port.cmd.ready.eq(queue.w_rdy),
            self.occupancy.eq(queue.level),
            self.port.rsp.valid.eq(rsp_fifo.r_rdy),
            self.port.rsp.payload.eq(rsp_fifo.r_data),
            rsp_fifo.r_en.eq(self.port.rsp.ready),
        ]

        head = data.View(cmd_layout, queue.r_data)
        # Reads in flight between service and the response FIFO: stage 0 is the SRAM's registered read.
        pipe_valid = Signal(p.latency)
        pipe_data = [Signal(WORD_BITS, name=f"pipe_data{i}") for i in range(p.latency)]
        in_flight = Signal(range(p.latency + 1))
        m.d.comb += in_flight.eq(sum(pipe_valid[i] for i in range(p.latency)))

        wait = Signal(range(p.interval + 1))
        with m.If(wait != 0):
            m.d.sync += wait.eq(wait - 1)
        room = (rsp_fifo.level + in_flight) < p.rsp_depth
        serve = Signal()
        m.d.comb += serve.eq(queue.r_rdy & (wait == 0) & room)
        m.d.comb += [
            queue.r_en.eq(serve),
            rd.addr.eq(head.addr[:p.size_log2]),
            wr.addr.eq(head.addr[:p.size_log2]),
            wr.data.eq(head.data),
            wr.en.eq(serve & head.write),
        ]
        if p.interval > 1:
            with m.If(serve):
                m.d.sync += wait.eq(p.interval - 1)

        m.d.sync += pipe_valid[0].eq(serve & ~head.write)
        m.d.comb += pipe_data[0].eq(rd.data)
        for i in range(1, p.latency):
            m.d.sync += [pipe_valid[i].eq(pipe_valid[i - 1]), pipe_data[i].eq(pipe_data[i - 1])]
        m.d.comb += [
            rsp_fifo.w_en.eq(pipe_valid[p.latency - 1]),
            rsp_fifo.w_data.eq(pipe_data[p.latency - 1]),
        ]
        return m


class HostLink(wiring.Component):
    """Per-burst overhead gate between a host-link port and a plain memory port (see the module docstring)."""

    def __init__(self, addr_bits: int, burst_bits: int, overhead_cycles: int) -> None:
        self.overhead = overhead_cycles
        super().__init__({
            "host": In(host_port_signature(addr_bits, burst_bits)),
            "mem": Out(mem_port_signature(addr_bits)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        cmd = self.host.cmd
        blocked = Signal()
        if self.overhead:
            charged = Signal()
            waited = Signal(range(self.overhead))
            m.d.comb += blocked.eq((cmd.payload.burst != 0) & ~charged)
            with m.If(cmd.valid & blocked):
                with m.If(waited == self.overhead - 1):
                    m.d.sync += [charged.eq(1), waited.eq(0)]
                with m.Else():
                    m.d.sync += waited.eq(waited + 1)
            with m.If(cmd.valid & cmd.ready):
                m.d.sync += charged.eq(0)
        m.d.comb += [
            self.mem.cmd.valid.eq(cmd.valid & ~blocked),
            self.mem.cmd.payload.addr.eq(cmd.payload.addr),
            self.mem.cmd.payload.write.eq(cmd.payload.write),
            self.mem.cmd.payload.data.eq(cmd.payload.data),
            cmd.ready.eq(self.mem.cmd.ready & ~blocked),
            self.host.rsp.valid.eq(self.mem.rsp.valid),
            self.host.rsp.payload.eq(self.mem.rsp.payload),
            self.mem.rsp.ready.eq(self.host.rsp.ready),
        ]
        return m


class HostLinkMemory(wiring.Component):
    """`HostLink` in front of a `SimpleMemory`: the host side of a swap, as one synthesizable stand-in."""

    def __init__(self, mem: MemoryParams, burst_bits: int, overhead_cycles: int) -> None:
        self.mem_params, self.burst_bits, self.overhead = mem, burst_bits, overhead_cycles
        super().__init__({"host": In(host_port_signature(mem.addr_bits, burst_bits))})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.link = link = HostLink(self.mem_params.addr_bits, self.burst_bits, self.overhead)
        m.submodules.memory = memory = SimpleMemory(self.mem_params)
        wiring.connect(m, wiring.flipped(self.host), link.host)
        wiring.connect(m, link.mem, memory.port)
        return m
