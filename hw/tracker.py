"""T3 track-and-trigger unit.

The tracker sits beside a memory controller. Every write that enters the controller's queue carries the
tracking tag of the workgroup that produced it (or, for a remote update, the tag the sender's DMA descriptor
names). The tracker adds the request's byte count to that tag's table entry; when the entry reaches its
programmed threshold it emits the entry's pre-programmed DMA descriptor index on the ``trigger`` stream.

Counting bytes, not requests, is deliberate: local producer stores and incoming DMA updates to the same tile
arrive in different sizes (a coalesced wavefront store versus a link packet), and a threshold in bytes stays
correct for any mix.

Contract (all streams are valid/ready, Amaranth ``lib.stream``; payload fields are packed LSB first):

``cfg`` (in)
    Commands: ``PROGRAM`` writes entry ``index`` with (threshold, desc, enable, rearm) and clears its count;
    ``READ`` returns status register ``index`` on ``cfg_rsp``; ``CLEAR_ERRORS`` clears the sticky error flags
    and the error counters. A command is accepted only while the request pipeline is empty and no response is
    pending, so a command never races a request for the table.
``cfg_rsp`` (out)
    32-bit read data, one word per ``READ``.
``req`` (in)
    Tagged memory requests: ``tag`` (entry index), ``addr``, ``kind`` (``RequestKind``), ``size`` in bytes.
    One request per cycle at most; ``req.ready`` is low while a ``cfg`` command is waiting or while the trigger
    FIFO could not take the triggers already in flight, so backpressure never loses a trigger.
``trigger`` (out)
    ``desc`` (descriptor index) and ``entry`` (the entry that fired), through a ``fifo_depth`` FIFO.
``errors`` (out)
    Sticky error flags, bit ``ErrorBit.UNPROGRAMMED`` and bit ``ErrorBit.OVERFLOW``.
``idle`` (out)
    High when no request is in the pipeline and the trigger FIFO is empty.

Timing: a request accepted in cycle *t* updates its entry in cycle *t+1*; if it fires, the trigger is pushed in
cycle *t+1* and can leave the FIFO from cycle *t+2* on. Back-to-back requests to one entry are exact because the
table's read port is transparent to its write port. A request to a disabled entry is dropped and counted as an
``UNPROGRAMMED`` error. When ``count + size`` does not fit in ``count_bits`` the count saturates and an
``OVERFLOW`` error is counted (the entry then fires, since a threshold always fits in the counter). On firing,
an entry with ``rearm`` set restarts from zero and stays enabled; one without is disabled (cleared).

A synchronous reset clears the pipeline, the FIFO, the flags and the counters; the table keeps its contents
(counts included), so software reprograms the entries it needs after a reset.
"""

from __future__ import annotations

import dataclasses
import enum

from amaranth import Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hw.params import BlockParams, param


class CfgOp(enum.IntEnum):
    """Opcodes of the ``cfg`` port."""

    PROGRAM = 0
    READ = 1
    CLEAR_ERRORS = 2


class RequestKind(enum.IntEnum):
    """Kind of a tracked write: a plain store or an update (reduce-and-store near memory)."""

    STORE = 0
    UPDATE = 1


class ErrorBit(enum.IntEnum):
    """Bit positions of the sticky ``errors`` flags."""

    UNPROGRAMMED = 0
    OVERFLOW = 1


class StatusReg(enum.IntEnum):
    """Registers readable with ``CfgOp.READ``."""

    ERRORS = 0
    UNPROGRAMMED_COUNT = 1
    OVERFLOW_COUNT = 2
    TRIGGER_COUNT = 3
    REQUEST_COUNT = 4


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrackerParams(BlockParams):
    """Parameters shared by the RTL, the cycle model and the testbenches.

    Parameters
    ----------
    entries : number of table entries (a power of two, so every tag names an entry).
    count_bits : width of the byte counter and of the threshold.
    desc_bits : width of a DMA descriptor index.
    addr_bits, size_bits : widths of the request's address and size fields.
    fifo_depth : depth of the trigger FIFO (at least 2).
    """

    entries: int = param(256, 2, 1 << 16)
    count_bits: int = param(24, 1, 32)
    desc_bits: int = param(16, 1, 32)
    addr_bits: int = param(48, 1, 64)
    size_bits: int = param(16, 1, 32)
    fifo_depth: int = param(16, 2, 4096)

    def _check(self) -> None:
        self._require(self.entries & (self.entries - 1) == 0, "entries", "a power of two >= 2")

    @property
    def tag_bits(self) -> int:
        return ceil_log2(self.entries)

    # Layouts -------------------------------------------------------------------------------------------
    def request_layout(self) -> data.StructLayout:
        return data.StructLayout({
            "tag": self.tag_bits,
            "addr": self.addr_bits,
            "kind": 1,
            "size": self.size_bits,
        })

    def cfg_layout(self) -> data.StructLayout:
        return data.StructLayout({
            "op": 2,
            "index": max(self.tag_bits, 3),
            "threshold": self.count_bits,
            "desc": self.desc_bits,
            "enable": 1,
            "rearm": 1,
        })

    def trigger_layout(self) -> data.StructLayout:
        return data.StructLayout({"desc": self.desc_bits, "entry": self.tag_bits})

    def entry_layout(self) -> data.StructLayout:
        return data.StructLayout({
            "threshold": self.count_bits,
            "count": self.count_bits,
            "desc": self.desc_bits,
            "enable": 1,
            "rearm": 1,
        })


class TrackTrigger(wiring.Component):
    """T3's track-and-trigger unit (see the module docstring for the port contract)."""

    def __init__(self, params: TrackerParams | None = None) -> None:
        self.params = params or TrackerParams()
        p = self.params
        super().__init__({
            "cfg": In(stream.Signature(p.cfg_layout())),
            "cfg_rsp": Out(stream.Signature(32)),
            "req": In(stream.Signature(p.request_layout())),
            "trigger": Out(stream.Signature(p.trigger_layout())),
            "errors": Out(2),
            "idle": Out(1),
        })

    def elaborate(self, platform) -> Module:
        p = self.params
        m = Module()

        m.submodules.table = table = Memory(shape=p.entry_layout(), depth=p.entries, init=[])
        wr = table.write_port()
        rd = table.read_port(transparent_for=(wr,))

        trig_layout = p.trigger_layout()
        m.submodules.fifo = fifo = SyncFIFO(width=trig_layout.size, depth=p.fifo_depth)

        # Stage 1 registers: the request whose entry is being read this cycle.
        s1_valid = Signal()
        s1_size = Signal(p.size_bits)
        s1_tag = Signal(p.tag_bits)

        errors = Signal(2)
        n_unprog = Signal(32)
        n_ovf = Signal(32)
        n_trig = Signal(32)
        n_req = Signal(32)
        rsp_valid = Signal()
        rsp_data = Signal(32)

        m.d.comb += [
            self.errors.eq(errors),
            self.idle.eq(~s1_valid & (fifo.level == 0)),
            self.cfg_rsp.valid.eq(rsp_valid),
            self.cfg_rsp.payload.eq(rsp_data),
        ]
        with m.If(self.cfg_rsp.valid & self.cfg_rsp.ready):
            m.d.sync += rsp_valid.eq(0)

        # Input acceptance: cfg has priority; leave room in the FIFO for the request already in stage 1.
        m.d.comb += [
            self.req.ready.eq(~self.cfg.valid & ((fifo.level + s1_valid) < p.fifo_depth)),
            self.cfg.ready.eq(~s1_valid & ~rsp_valid),
        ]
        accept = self.req.valid & self.req.ready
        m.d.comb += rd.addr.eq(self.req.payload.tag)
        m.d.sync += s1_valid.eq(accept)
        with m.If(accept):
            m.d.sync += [s1_size.eq(self.req.payload.size), s1_tag.eq(self.req.payload.tag),
                         n_req.eq(n_req + 1)]

        # Stage 1: read-modify-write of the entry.
        entry = rd.data
        total = Signal(p.count_bits + 1)
        overflow = Signal()
        count_sat = Signal(p.count_bits)
        fire = Signal()
        max_count = Const((1 << p.count_bits) - 1, p.count_bits)
        m.d.comb += [
            total.eq(entry.count + s1_size),
            overflow.eq(total[p.count_bits]),
            count_sat.eq(Mux(overflow, max_count, total[:p.count_bits])),
            fire.eq(count_sat >= entry.threshold),
        ]
        new_entry = Signal(p.entry_layout())
        trig_word = Signal(trig_layout)
        m.d.comb += [
            trig_word.desc.eq(entry.desc),
            trig_word.entry.eq(s1_tag),
            fifo.w_data.eq(trig_word.as_value()),
        ]

        cfg = self.cfg.payload
        with m.If(s1_valid):
            with m.If(~entry.enable):
                m.d.sync += [errors[ErrorBit.UNPROGRAMMED].eq(1), n_unprog.eq(n_unprog + 1)]
            with m.Else():
                m.d.comb += [
                    new_entry.threshold.eq(entry.threshold),
                    new_entry.desc.eq(entry.desc),
                    new_entry.rearm.eq(entry.rearm),
                    new_entry.count.eq(Mux(fire, 0, count_sat)),
                    new_entry.enable.eq(~fire | entry.rearm),
                    wr.addr.eq(s1_tag),
                    wr.data.eq(new_entry),
                    wr.en.eq(1),
                    fifo.w_en.eq(fire),
                ]
                with m.If(fire):
                    m.d.sync += n_trig.eq(n_trig + 1)
                with m.If(overflow):
                    m.d.sync += [errors[ErrorBit.OVERFLOW].eq(1), n_ovf.eq(n_ovf + 1)]
        with m.Elif(self.cfg.valid & self.cfg.ready):
            with m.Switch(cfg.op):
                with m.Case(CfgOp.PROGRAM):
                    m.d.comb += [
                        new_entry.threshold.eq(cfg.threshold),
                        new_entry.count.eq(0),
                        new_entry.desc.eq(cfg.desc),
                        new_entry.enable.eq(cfg.enable),
                        new_entry.rearm.eq(cfg.rearm),
                        wr.addr.eq(cfg.index),
                        wr.data.eq(new_entry),
                        wr.en.eq(1),
                    ]
                with m.Case(CfgOp.READ):
                    m.d.sync += rsp_valid.eq(1)
                    with m.Switch(cfg.index):
                        with m.Case(StatusReg.ERRORS):
                            m.d.sync += rsp_data.eq(errors)
                        with m.Case(StatusReg.UNPROGRAMMED_COUNT):
                            m.d.sync += rsp_data.eq(n_unprog)
                        with m.Case(StatusReg.OVERFLOW_COUNT):
                            m.d.sync += rsp_data.eq(n_ovf)
                        with m.Case(StatusReg.TRIGGER_COUNT):
                            m.d.sync += rsp_data.eq(n_trig)
                        with m.Case(StatusReg.REQUEST_COUNT):
                            m.d.sync += rsp_data.eq(n_req)
                        with m.Default():
                            m.d.sync += rsp_data.eq(0)
                with m.Case(CfgOp.CLEAR_ERRORS):
                    m.d.sync += [errors.eq(0), n_unprog.eq(0), n_ovf.eq(0)]

        # Output: the FIFO head is the trigger stream.
        m.d.comb += [
            self.trigger.valid.eq(fifo.r_rdy),
            self.trigger.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.trigger.ready),
        ]
        return m
