"""The word-wide memory port every T3 block uses, and a simple memory behind it for testbenches.

Port contract (`mem_port_signature`, from the requester's side):

``cmd`` (out)
    ``addr`` (word address), ``write`` (1 = write ``data``, 0 = read), ``data`` (32 bits).
``rsp`` (in)
    One 32-bit word per read, in the order the reads were accepted. Writes have no response.

Commands are executed in acceptance order, so a read accepted after a write to the same address returns the
written data. Words are 32 bits: one int32/fp32 element or two bf16 elements (low half first).

`SimpleMemory` stands in for a DRAM controller and its DRAM in testbenches and co-simulation (it is
synthesizable, but it is a model, not a deliverable block): a command queue of ``queue_depth`` whose level is
the ``occupancy`` output (what T3's memory arbiter watches), one command served every ``interval`` cycles, and
reads answered ``latency + 1`` cycles after service through a response FIFO of ``rsp_depth`` words; a command
is served only while the response FIFO is sure to have room for it.
"""

from __future__ import annotations

import dataclasses

from amaranth import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.params import BlockParams, param

WORD_BITS = 32


def mem_cmd_layout(addr_bits: int) -> data.StructLayout:
    return data.StructLayout({"addr": addr_bits, "write": 1, "data": WORD_BITS})


def mem_port_signature(addr_bits: int) -> wiring.Signature:
    """The memory port seen from a requester (flip it for the memory side)."""
    return wiring.Signature({
        "cmd": Out(stream.Signature(mem_cmd_layout(addr_bits))),
        "rsp": In(stream.Signature(WORD_BITS)),
    })


@dataclasses.dataclass(frozen=True, kw_only=True)
class MemoryParams(BlockParams):
    """Parameters of `SimpleMemory`; ``size_log2`` words are backed by storage (addresses wrap)."""

    addr_bits: int = param(24, 1, 64)
    size_log2: int = param(14, 1, 30)
    latency: int = param(8, 1, 1024)
    queue_depth: int = param(16, 2, 4096)
    interval: int = param(1, 1, 1024)
    rsp_depth: int = param(16, 2, 4096)

    def _check(self) -> None:
        self._require(self.size_log2 <= self.addr_bits, "size_log2", f"at most addr_bits ({self.addr_bits})")


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
