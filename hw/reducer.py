"""T3 near-memory reducer: tagged stores and updates applied next to memory with an atomic read-modify-write.

Every packet names a word address, an op, a 32-bit operand and a tracking tag. ``STORE`` writes the operand;
the ``ADD_*`` ops read the old word, add the operand and write the sum back, so no core reads data back to
reduce it. When a packet's (final) write command is accepted by the memory port, the packet is *committed*: its
``(tag, addr)`` is pushed to the ``commit`` FIFO. Memory executes commands in acceptance order, so a read
accepted after a commit is observed (e.g. the DMA read a tracker triggers) returns the updated word.

Port contract (valid/ready streams, Amaranth ``lib.stream``; payload fields packed LSB first):

``pkt`` (in)
    ``addr`` (word address), ``op`` (`ReduceOp`), ``data`` (32 bits), ``tag``. ``pkt.ready`` depends
    combinationally on ``pkt.payload`` (op and address match) and on ``mem.cmd.ready``, never on ``pkt.valid``.
``mem`` (out)
    `hw.memory.mem_port_signature`: ``cmd`` (``addr``, ``write``, ``data``) out, ``rsp`` (read words, in order)
    in. ``rsp.ready`` is always high: each word is kept in its packet's slot until the packet's turn, so the
    block never holds a shared memory's response path while it waits to issue a write (which could deadlock
    an in-order memory whose response buffer is full).
``commit`` (out)
    ``tag``, ``addr``: one entry per packet, in packet order, through a ``commit_depth`` FIFO. A write is issued
    only while that FIFO has room, so backpressure on ``commit`` stalls the block and never loses an entry.
``applied`` (out)
    Number of packets committed since reset (wraps at 2**32).
``idle`` (out)
    High when no packet is in flight and the commit FIFO is empty.

Operation: packets are accepted in order into an in-flight queue of ``inflight`` entries. An ``ADD_*`` packet
issues its read in the cycle it is accepted; a ``STORE`` needs no read. The queue head moves to a write-back
register when it is a ``STORE`` or when its read word has arrived (the sum is computed on the way in); the
write-back register issues the write when the commit FIFO has room. Writes have priority over reads on ``cmd``.
An ``ADD_*`` packet is not accepted while its address matches any packet in the queue or the write-back
register (its read would miss that write), so back-to-back updates of one word are exact; packets to other
words overlap, up to ``inflight`` at once. A ``STORE`` is never held back by an address match: writes leave in
packet order.

Timing, with a memory that accepts every command and answers a read accepted at *t* at *t + L + 2* (as
`hw.memory.SimpleMemory` with ``latency`` *L* and ``interval`` 1): a ``STORE`` accepted at *t* has its write
accepted at *t + 2* and its commit on ``commit`` from *t + 3*; an ``ADD_*`` accepted at *t* writes at *t + L + 3*
and commits from *t + L + 4* (10 cycles for *L* = 6).

Arithmetic (bit-exact; `sim.blocks.reducer.reference` is the reference):

* ``ADD_I32``: two's-complement add, wrapping modulo 2**32.
* ``ADD_F32``: IEEE-754 binary32 addition, round to nearest even. Subnormal inputs and results are exact (no
  flush to zero); overflow rounds to infinity; ``inf + inf = inf``; ``inf + (-inf)`` and any NaN input give
  NaN, and every NaN result is the canonical quiet NaN ``0x7FC00000`` (the input NaN's sign and payload are
  not propagated). An exact zero sum is ``+0`` (``x + (-x) = +0``) except ``(-0) + (-0) = -0``.
* ``ADD_BF16``: the same rules on two bfloat16 lanes (1 sign, 8 exponent, 7 fraction bits; lane 0 in bits
  15:0), each rounded once from the exact sum; canonical NaN ``0x7FC0``.

The adders are single-cycle combinational logic (three guard bits: guard, round, sticky), between the memory's
response and the write-back register.

A synchronous reset empties the queue, the write-back register and the commit FIFO and clears ``applied``;
reset the memory port together with the block (a read response arriving after the reset would otherwise be
taken for a new packet's).
"""

from __future__ import annotations

import dataclasses
import enum

from amaranth import Array, Cat, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hw.fp import fp_add
from hw.memory import mem_cmd_layout, mem_port_signature
from hw.params import BlockParams, param


class ReduceOp(enum.IntEnum):
    """Packet ops (the DMA engine's link packets carry the same codes, `hw.dma.DmaOp` extends them)."""

    STORE = 0
    ADD_I32 = 1
    ADD_F32 = 2
    ADD_BF16 = 3


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReducerParams(BlockParams):
    """Parameters shared by the RTL, the cycle model and the testbenches.

    Parameters
    ----------
    addr_bits : width of a word address.
    tag_bits : width of a tracking tag.
    inflight : packets held between acceptance and write-back (read-modify-writes outstanding at once).
    commit_depth : depth of the commit FIFO (at least 2).
    """

    addr_bits: int = param(24, 1, 48)
    tag_bits: int = param(8, 1, 16)
    inflight: int = param(4, 1, 16)
    commit_depth: int = param(8, 2, 4096)

    # Layouts -------------------------------------------------------------------------------------------
    def packet_layout(self) -> data.StructLayout:
        return data.StructLayout({"addr": self.addr_bits, "op": 2, "data": 32, "tag": self.tag_bits})

    def commit_layout(self) -> data.StructLayout:
        return data.StructLayout({"tag": self.tag_bits, "addr": self.addr_bits})


def reduce_word(m: Module, op: Value, old: Value, new: Value) -> Signal:
    """Combinational: the word ``op`` writes given the ``old`` memory word and the packet's ``new`` word."""
    i32 = Signal(32, name="sum_i32")
    m.d.comb += i32.eq(old + new)
    f32 = fp_add(m, old, new, 8, 23, "sum_f32")
    bf_lo = fp_add(m, old[:16], new[:16], 8, 7, "sum_bf16_lo")
    bf_hi = fp_add(m, old[16:], new[16:], 8, 7, "sum_bf16_hi")
    out = Signal(32, name="reduced")
    with m.Switch(op):
        with m.Case(ReduceOp.ADD_I32):
            m.d.comb += out.eq(i32)
        with m.Case(ReduceOp.ADD_F32):
            m.d.comb += out.eq(f32)
        with m.Case(ReduceOp.ADD_BF16):
            m.d.comb += out.eq(Cat(bf_lo, bf_hi))
        with m.Default():
            m.d.comb += out.eq(new)
    return out


class NearMemoryReducer(wiring.Component):
    """T3's near-memory reducer (see the module docstring for the port contract and the arithmetic)."""

    def __init__(self, params: ReducerParams | None = None) -> None:
        self.params = params or ReducerParams()
        p = self.params
        super().__init__({
            "pkt": In(stream.Signature(p.packet_layout())),
            "mem": Out(mem_port_signature(p.addr_bits)),
            "commit": Out(stream.Signature(p.commit_layout())),
            "applied": Out(32),
            "idle": Out(1),
        })

    def elaborate(self, platform) -> Module:
        p = self.params
        m = Module()
        k = p.inflight
        pkt_layout, commit_layout = p.packet_layout(), p.commit_layout()

        m.submodules.commit_fifo = fifo = SyncFIFO(width=commit_layout.size, depth=p.commit_depth)

        # In-flight queue: a ring of registers (searched in parallel for address matches).
        slots = [Signal(pkt_layout.size, name=f"slot{i}") for i in range(k)]
        slot_valid = Signal(k)
        head = Signal(range(k))
        tail = Signal(range(k))
        count = Signal(range(k + 1))

        # Write-back register: the next write to issue.
        wb_valid = Signal()
        wb_addr = Signal(p.addr_bits)
        wb_data = Signal(32)
        wb_tag = Signal(p.tag_bits)

        pkt = self.pkt.payload
        head_raw = Signal(pkt_layout.size)
        m.d.comb += head_raw.eq(Array(slots)[head])
        head_pkt = data.View(pkt_layout, head_raw)

        wants_write = Signal()
        write_fire = Signal()
        m.d.comb += [
            wants_write.eq(wb_valid & fifo.w_rdy),
            write_fire.eq(wants_write & self.mem.cmd.ready),
        ]
        wb_free = ~wb_valid | write_fire
        head_is_add = head_pkt.op != ReduceOp.STORE

        # Read words are taken as soon as they arrive, into the slot of the oldest ADD still waiting for one
        # (reads return in issue order, which is slot order). Holding a word on `rsp` instead, while the
        # write-back register waits for the memory, can deadlock a shared in-order memory: the memory stops
        # serving when its response buffer is full, and the write that would free the buffer is queued behind.
        slot_has = Signal(k)
        slot_word = [Signal(32, name=f"slot_word{i}") for i in range(k)]
        waiting = Signal(k)
        for i in range(k):
            m.d.comb += waiting[i].eq(slot_valid[i] & (data.View(pkt_layout, slots[i]).op != ReduceOp.STORE)
                                      & ~slot_has[i])
        target = Signal(range(k))  # first waiting slot at or after head, in ring order
        for j in reversed(range(k)):
            idx = Signal(range(k), name=f"rsp_idx{j}")
            m.d.comb += idx.eq(Mux(head + j >= k, head + j - k, head + j))
            with m.If(waiting.bit_select(idx, 1)):
                m.d.comb += target.eq(idx)
        rsp_take = self.mem.rsp.valid  # only our own reads return here
        head_word = Signal(32)
        head_has = Signal()
        m.d.comb += [
            head_has.eq(slot_has.bit_select(head, 1)),
            head_word.eq(Mux(head_has, Array(slot_word)[head], self.mem.rsp.payload)),
            self.mem.rsp.ready.eq(1),
        ]
        pop = Signal()
        m.d.comb += pop.eq((count != 0) & wb_free & (~head_is_add | head_has | (rsp_take & (target == head))))
        for i in range(k):
            with m.If(pop & (head == i)):
                m.d.sync += slot_has[i].eq(0)
            with m.Elif(rsp_take & (target == i)):
                m.d.sync += [slot_has[i].eq(1), slot_word[i].eq(self.mem.rsp.payload)]

        hazard = Signal()
        m.d.comb += hazard.eq(
            (wb_valid & (wb_addr == pkt.addr))
            | Cat(slot_valid[i] & (data.View(pkt_layout, slots[i]).addr == pkt.addr) for i in range(k)).any())
        room = count != k
        pkt_is_add = pkt.op != ReduceOp.STORE
        read_go = Signal()
        m.d.comb += [
            read_go.eq(self.pkt.valid & pkt_is_add & room & ~hazard & ~wants_write),
            self.pkt.ready.eq(room & (~pkt_is_add | (~hazard & ~wants_write & self.mem.cmd.ready))),
        ]
        accept = self.pkt.valid & self.pkt.ready

        cmd = data.View(mem_cmd_layout(p.addr_bits), self.mem.cmd.payload.as_value())
        m.d.comb += self.mem.cmd.valid.eq(wants_write | read_go)
        with m.If(wants_write):
            m.d.comb += [cmd.addr.eq(wb_addr), cmd.write.eq(1), cmd.data.eq(wb_data)]
        with m.Else():
            m.d.comb += [cmd.addr.eq(pkt.addr), cmd.write.eq(0)]

        def advance(ptr: Signal) -> Value:
            return Mux(ptr == k - 1, 0, ptr + 1)

        with m.If(accept):
            m.d.sync += tail.eq(advance(tail))
        m.d.sync += count.eq(count + accept - pop)
        for i in range(k):
            with m.If(accept & (tail == i)):
                m.d.sync += [slots[i].eq(pkt.as_value()), slot_valid[i].eq(1)]
            with m.Elif(pop & (head == i)):
                m.d.sync += slot_valid[i].eq(0)

        reduced = reduce_word(m, head_pkt.op, head_word, head_pkt.data)
        with m.If(pop):
            m.d.sync += [
                head.eq(advance(head)),
                wb_valid.eq(1),
                wb_addr.eq(head_pkt.addr),
                wb_tag.eq(head_pkt.tag),
                wb_data.eq(reduced),
            ]
        with m.Elif(write_fire):
            m.d.sync += wb_valid.eq(0)

        commit_out = data.View(commit_layout, fifo.w_data)
        m.d.comb += [
            fifo.w_en.eq(write_fire),
            commit_out.tag.eq(wb_tag),
            commit_out.addr.eq(wb_addr),
            self.commit.valid.eq(fifo.r_rdy),
            self.commit.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.commit.ready),
        ]
        with m.If(write_fire):
            m.d.sync += self.applied.eq(self.applied + 1)
        m.d.comb += self.idle.eq((count == 0) & ~wb_valid & ~fifo.r_rdy)
        return m
