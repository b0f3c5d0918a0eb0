"""STREAM unit: the four STREAM kernels (COPY, SCALE, ADD, TRIAD) on fp32 arrays, next to memory.

A kernel program names an op, the destination array ``a``, the source arrays ``b`` and ``c`` (byte addresses),
the element count ``n``, the scalar ``q`` (fp32 encoding) and a tag. The unit checks it, streams the sources
through its fp32 datapath and writes the destination, one element after another, then reports a status. It
is the near-memory arithmetic of STREAM: nothing crosses a link, and the memory port carries exactly the words
STREAM counts (2 per element for COPY and SCALE, 3 for ADD and TRIAD), so the port's limit is the unit's.

Ops (`StreamOp`): ``COPY`` a = b, ``SCALE`` a = q*b, ``ADD`` a = b + c, ``TRIAD`` a = b + q*c. Arithmetic is
IEEE binary32 with `hw.fp`'s rules (round to nearest even, subnormals exact, canonical NaN). ``TRIAD`` rounds
twice, the product and then the sum, as numpy's ``b + q * c`` in float32 does (no fused multiply-add), so every
element is bit-exact against numpy with NaNs made canonical.

Ports (valid/ready streams, Amaranth ``lib.stream``; payloads packed LSB first):

``prog`` (in)
    ``op`` (3 bits), ``a``, ``b``, ``c`` (byte addresses, ``addr_bits + 2`` bits), ``n`` (elements), ``q``
    (32 bits), ``tag``. Taken only while the unit is idle and its status FIFO has room (``ready`` is a
    register output, it never depends on ``valid`` or the payload).
``mem`` (out)
    `hw.memory.mem_port_signature`: word reads of ``b`` (and ``c``) and word writes of ``a``. ``rsp.ready`` is
    always high: the unit has room for every word it asked for.
``status`` (out)
    ``tag``, ``op``, ``error``: one per program, in program order, through a ``status_depth`` FIFO.
``idle`` (out)
    High when no program is being checked or run and the status FIFO is empty.

Errors (`StreamError`, numbered; checked in this order, the first failing one is reported, and the program
moves no data): ``BAD_OP`` (op above ``TRIAD``), ``ZERO_LENGTH`` (``n = 0``), ``MISALIGNED`` (an address the op
uses is not a multiple of 4), ``OUT_OF_RANGE`` (an array the op uses runs past the port's byte address space),
``OVERLAP`` (the destination's bytes overlap a source's; two sources may overlap). A bad program never hangs
the unit: its status is pushed two cycles after it was taken.

Per-cycle behaviour. A program taken in cycle *t* is checked in *t + 1*; if it fails, its status is in the
FIFO (and offered on ``status``) from *t + 2*; otherwise the unit runs it from *t + 2*:

* reads: one command a cycle while no write is waiting, elements in order (``b[i]``, then ``c[i]`` for
  ADD/TRIAD); a new element's first read only while fewer than ``inflight`` elements are outstanding (read
  but not yet taken into the datapath). Their words enter a response FIFO of ``2 * inflight`` words, from which
  they can be taken the cycle after they arrive;
* datapath: an element's words leave the FIFO one a cycle (for ADD/TRIAD, ``b[i]`` into a holding register,
  then ``c[i]``); with its last word the element moves into stage 1, which holds the product ``q * word`` (the
  multiplier sits between the FIFO and stage 1); stage 1 moves into the write register (the adder sits between
  them: ``b + c`` or ``b + q*c``) whenever the write register is free or writing in that cycle;
* writes: the write register offers its command whenever it holds an element, and has priority over reads.
  When the last element's write is accepted, the status ``OK`` is pushed; the unit is idle from the next cycle
  and the status is offered from then on.

With a memory that takes a command every cycle (``SimpleMemory`` with ``interval`` 1) and enough elements in
flight to cover its round trip, the port is busy every cycle once the first words are back: 2 cycles per
COPY/SCALE element and 3 per ADD/TRIAD element, plus a start-up and drain of about the memory's latency and a
dozen cycles (it varies by a few cycles with ``n``: where the writes fall among the reads shifts).

A synchronous reset empties the datapath, the FIFOs and the program; reset the memory with the unit (a
response arriving after the reset would be taken for the next program's).
"""

from __future__ import annotations

import dataclasses
import enum

from amaranth import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hw.fp import fp_add, fp_mul
from hw.memory import WORD_BITS, mem_cmd_layout, mem_port_signature
from hw.params import BlockParams, param

WORD_BYTES = WORD_BITS // 8


class StreamOp(enum.IntEnum):
    """The STREAM kernels; ``sources`` is how many arrays each reads."""

    COPY = 0   # a = b
    SCALE = 1  # a = q * b
    ADD = 2    # a = b + c
    TRIAD = 3  # a = b + q * c

    @property
    def sources(self) -> int:
        return 2 if self in (StreamOp.ADD, StreamOp.TRIAD) else 1

    @property
    def multiplies(self) -> bool:
        return self in (StreamOp.SCALE, StreamOp.TRIAD)


class StreamError(enum.IntEnum):
    OK = 0
    BAD_OP = 1
    ZERO_LENGTH = 2
    MISALIGNED = 3
    OUT_OF_RANGE = 4
    OVERLAP = 5


OP_BITS = 3  # room for the unknown ops that BAD_OP reports


@dataclasses.dataclass(frozen=True, kw_only=True)
class StreamParams(BlockParams):
    """Parameters shared by the RTL, the cycle model and the testbenches.

    Parameters
    ----------
    addr_bits : word-address width of the memory port (byte addresses have two more bits).
    length_bits : width of the element count ``n``.
    tag_bits : width of a program's tag.
    inflight : elements whose reads may be outstanding at once (covers the memory's latency).
    status_depth : depth of the status FIFO (at least 2).
    """

    addr_bits: int = param(24, 1, 46)
    length_bits: int = param(24, 1, 40)
    tag_bits: int = param(8, 1, 16)
    inflight: int = param(8, 1, 64)
    status_depth: int = param(4, 2, 256)

    @property
    def byte_addr_bits(self) -> int:
        return self.addr_bits + 2

    def max_array_elements(self, arrays: int) -> int:
        """The longest arrays a program can name when ``arrays`` of them share the address space."""
        return min((1 << self.addr_bits) // arrays, (1 << self.length_bits) - 1)

    def program_layout(self) -> data.StructLayout:
        ab = self.byte_addr_bits
        return data.StructLayout({"op": OP_BITS, "a": ab, "b": ab, "c": ab, "n": self.length_bits, "q": 32,
                                  "tag": self.tag_bits})

    def status_layout(self) -> data.StructLayout:
        return data.StructLayout({"tag": self.tag_bits, "op": OP_BITS, "error": 3})


class StreamUnit(wiring.Component):
    """The STREAM unit (see the module docstring for the port contract, the checks and the timing)."""

    def __init__(self, params: StreamParams | None = None) -> None:
        self.params = params or StreamParams()
        p = self.params
        super().__init__({
            "prog": In(stream.Signature(p.program_layout())),
            "mem": Out(mem_port_signature(p.addr_bits)),
            "status": Out(stream.Signature(p.status_layout())),
            "idle": Out(1),
        })

    def elaborate(self, platform) -> Module:
        p = self.params
        m = Module()
        k = p.inflight
        status_layout = p.status_layout()
        m.submodules.status_fifo = sfifo = SyncFIFO(width=status_layout.size, depth=p.status_depth)
        m.submodules.rsp_fifo = rfifo = SyncFIFO(width=WORD_BITS, depth=2 * k)

        prog = Signal(p.program_layout())
        op = prog.op
        two = (op == StreamOp.ADD) | (op == StreamOp.TRIAD)

        # The checks, on the taken program (combinational in the check cycle).
        span = Signal(p.length_bits + 2)
        m.d.comb += span.eq(prog.n << 2)
        limit = 1 << p.byte_addr_bits
        ends = {x: Signal(p.byte_addr_bits + p.length_bits + 3, name=f"end_{x}") for x in "abc"}
        for x, end in ends.items():
            m.d.comb += end.eq(getattr(prog, x) + span)

        def overlaps(x: str) -> object:
            return (prog.a < ends[x]) & (getattr(prog, x) < ends["a"])

        error = Signal(3)
        with m.If(op > StreamOp.TRIAD):
            m.d.comb += error.eq(StreamError.BAD_OP)
        with m.Elif(prog.n == 0):
            m.d.comb += error.eq(StreamError.ZERO_LENGTH)
        with m.Elif((prog.a[:2] != 0) | (prog.b[:2] != 0) | (two & (prog.c[:2] != 0))):
            m.d.comb += error.eq(StreamError.MISALIGNED)
        with m.Elif((ends["a"] > limit) | (ends["b"] > limit) | (two & (ends["c"] > limit))):
            m.d.comb += error.eq(StreamError.OUT_OF_RANGE)
        with m.Elif(overlaps("b") | (two & overlaps("c"))):
            m.d.comb += error.eq(StreamError.OVERLAP)

        # Run state: next read addresses, elements left to read / to write, the ADD/TRIAD read phase, and the
        # elements outstanding (first read issued, last word not yet taken from the response FIFO).
        rd_b, rd_c, wr_a = Signal(p.addr_bits), Signal(p.addr_bits), Signal(p.addr_bits)
        rd_left, wr_left = Signal(p.length_bits), Signal(p.length_bits)
        phase = Signal()  # ADD/TRIAD: 1 while c[i] is the next read
        outstanding = Signal(range(k + 1))
        hold_valid, hold = Signal(), Signal(WORD_BITS)  # b[i] of an ADD/TRIAD element waiting for c[i]
        s1_valid, s1_b, s1_y = Signal(), Signal(WORD_BITS), Signal(WORD_BITS)  # stage 1: b and (q*)word
        wb_valid, wb_data = Signal(), Signal(WORD_BITS)
        running = Signal()

        cmd = data.View(mem_cmd_layout(p.addr_bits), self.mem.cmd.payload.as_value())
        write_fire = wb_valid & self.mem.cmd.ready
        read_go = Signal()
        m.d.comb += read_go.eq(running & (rd_left != 0) & ~wb_valid & (phase | (outstanding != k)))
        read_fire = read_go & self.mem.cmd.ready
        m.d.comb += self.mem.cmd.valid.eq(wb_valid | read_go)
        with m.If(wb_valid):
            m.d.comb += [cmd.addr.eq(wr_a), cmd.write.eq(1), cmd.data.eq(wb_data)]
        with m.Else():
            m.d.comb += [cmd.addr.eq(Mux(phase, rd_c, rd_b)), cmd.write.eq(0)]

        # Datapath: response FIFO -> (hold) -> stage 1 (multiplier before it) -> write register (adder before).
        m.d.comb += [rfifo.w_en.eq(self.mem.rsp.valid), rfifo.w_data.eq(self.mem.rsp.payload),
                     self.mem.rsp.ready.eq(1)]
        word = rfifo.r_data
        product = fp_mul(m, prog.q, word, 8, 23, "product")
        total = fp_add(m, s1_b, s1_y, 8, 23, "total")
        s1_move = s1_valid & (~wb_valid | write_fire)
        s1_free = ~s1_valid | s1_move
        first_word = two & ~hold_valid  # the word at the FIFO's head is an ADD/TRIAD element's b[i]
        pop = Signal()
        m.d.comb += [pop.eq(rfifo.r_rdy & (first_word | s1_free)), rfifo.r_en.eq(pop)]
        element_done = pop & ~first_word

        with m.If(pop & first_word):
            m.d.sync += [hold_valid.eq(1), hold.eq(word)]
        with m.Elif(element_done):
            m.d.sync += hold_valid.eq(0)
        with m.If(element_done):
            m.d.sync += [s1_valid.eq(1), s1_b.eq(Mux(two, hold, word)),
                         s1_y.eq(Mux((op == StreamOp.SCALE) | (op == StreamOp.TRIAD), product, word))]
        with m.Elif(s1_move):
            m.d.sync += s1_valid.eq(0)
        with m.If(s1_move):
            m.d.sync += [wb_valid.eq(1), wb_data.eq(Mux(two, total, Mux(op == StreamOp.SCALE, s1_y, s1_b)))]
        with m.Elif(write_fire):
            m.d.sync += wb_valid.eq(0)

        first_read = read_fire & ~phase
        m.d.sync += outstanding.eq(outstanding + first_read - element_done)
        with m.If(read_fire):
            with m.If(phase):
                m.d.sync += [rd_c.eq(rd_c + 1), phase.eq(0), rd_left.eq(rd_left - 1)]
            with m.Elif(two):
                m.d.sync += [rd_b.eq(rd_b + 1), phase.eq(1)]
            with m.Else():
                m.d.sync += [rd_b.eq(rd_b + 1), rd_left.eq(rd_left - 1)]
        with m.If(write_fire):
            m.d.sync += [wr_a.eq(wr_a + 1), wr_left.eq(wr_left - 1)]

        status = data.View(status_layout, sfifo.w_data)
        m.d.comb += [status.tag.eq(prog.tag), status.op.eq(op),
                     self.status.valid.eq(sfifo.r_rdy), self.status.payload.eq(sfifo.r_data),
                     sfifo.r_en.eq(self.status.ready)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [self.prog.ready.eq(sfifo.w_rdy), self.idle.eq(~sfifo.r_rdy)]
                with m.If(self.prog.valid & sfifo.w_rdy):
                    m.d.sync += prog.eq(self.prog.payload)
                    m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(error != StreamError.OK):
                    m.d.comb += [sfifo.w_en.eq(1), status.error.eq(error)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [rd_b.eq(prog.b[2:]), rd_c.eq(prog.c[2:]), wr_a.eq(prog.a[2:]),
                                 rd_left.eq(prog.n), wr_left.eq(prog.n), phase.eq(0)]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += running.eq(1)
                with m.If(write_fire & (wr_left == 1)):
                    m.d.comb += [sfifo.w_en.eq(1), status.error.eq(StreamError.OK)]
                    m.next = "IDLE"
        return m
