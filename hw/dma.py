"""T3's DMA engine: descriptors programmed by software, started by tracker triggers.

Software programs a descriptor table over ``cfg``; a trigger (the descriptor index, from the tracker) starts
one. The engine reads the source words from its memory port, in bursts of up to ``burst`` words per channel
turn, and emits one link packet per word (destination device, destination word address, reduce op, data,
destination tracker tag). When a descriptor's last packet has left, a status word reports its index, tag and
error code ``DmaError.OK``; a descriptor that cannot run reports its error code at once and moves no data.

Ports (valid/ready streams, payloads packed LSB first):

``cfg`` (in)       ``index, src_addr, dst_device, dst_addr, length, op, tag, valid`` — one descriptor.
                   Addresses and length are in bytes; words are 4 bytes.
``trigger`` (in)   ``desc`` — start descriptor ``desc``.
``mem``            `hw.memory.mem_port_signature`: word reads of the source.
``link`` (out)     ``dst_device, addr, op, data, tag`` — ``addr`` is a word address, ``op`` a
                   `hw.reducer.ReduceOp`-compatible code (0 store, 1 int32 add, 2 fp32 add, 3 bf16 add).
``status`` (out)   ``desc, tag, error`` — one per started descriptor.
``num_devices``    (in) devices in the system: a destination at or above it is ``BAD_DEVICE``.
``idle`` (out)     no descriptor active, no read outstanding, no status pending.

Descriptor ops: ``STORE`` and the three ``ADD_*`` ops move data; ``NOTIFY`` moves nothing and reports ``OK``
(T3's last ring stage: the reduced chunk is ready for its consumer).

Error codes (`DmaError`): ``UNPROGRAMMED`` (trigger for a descriptor never programmed or programmed with
``valid = 0``), ``BAD_OP`` (op code above ``NOTIFY``), ``ZERO_LENGTH``, ``BAD_DEVICE``, ``MISALIGNED`` (a
source or destination address or the length not a multiple of 4). Checks happen in that order and the first
failing one is reported; a ``NOTIFY`` descriptor is only checked for ``valid``. After reset the table's contents
are kept but every channel and queue is empty.

Channels: up to ``channels`` descriptors run at once. A trigger is taken when a channel is free; channels
take turns issuing reads (round robin, up to ``burst`` reads per turn). Reads in flight are bounded by
``outstanding`` (the in-order FIFO that pairs each returning word with its packet header).

Timing: a trigger accepted in cycle *t* reads the table in *t+1* and, if valid, the channel issues its first read
in *t+2*. A word's packet is offered on ``link`` in the cycle its read response is offered on ``mem.rsp``.
"""

from __future__ import annotations

import dataclasses
import enum

from amaranth import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hw.memory import WORD_BITS, mem_port_signature
from hw.params import BlockParams, param
from hw.reducer import ReduceOp

# Descriptor ops: the reducer's packet ops (a data-moving descriptor's packets carry its op), then NOTIFY.
DmaOp = enum.IntEnum("DmaOp", [(op.name, op.value) for op in ReduceOp] + [("NOTIFY", len(ReduceOp))])


class DmaError(enum.IntEnum):
    OK = 0
    UNPROGRAMMED = 1
    ZERO_LENGTH = 2
    BAD_DEVICE = 3
    MISALIGNED = 4
    BAD_OP = 5


@dataclasses.dataclass(frozen=True, kw_only=True)
class DmaParams(BlockParams):
    """Parameters shared by the DMA RTL, its model and testbenches.

    ``addr_bits`` is the width of a word address (byte addresses are two bits wider); ``length_bits`` the
    width of a byte length; ``device_bits`` the width of a device number; ``descriptors`` a power of two.
    """

    addr_bits: int = param(24, 4, 48)
    descriptors: int = param(256, 2, 65536)
    device_bits: int = param(4, 1, 16)
    length_bits: int = param(24, 3, 32)
    tag_bits: int = param(8, 1, 32)
    channels: int = param(2, 1, 16)
    burst: int = param(8, 1, 256)
    outstanding: int = param(16, 2, 1024)
    status_depth: int = param(4, 2, 1024)

    def _check(self) -> None:
        self._require(self.descriptors & (self.descriptors - 1) == 0, "descriptors", "a power of two")

    @property
    def desc_bits(self) -> int:
        return ceil_log2(self.descriptors)

    @property
    def byte_addr_bits(self) -> int:
        return self.addr_bits + 2

    def descriptor_layout(self) -> data.StructLayout:
        return data.StructLayout({
            "src_addr": self.byte_addr_bits,
            "dst_device": self.device_bits,
            "dst_addr": self.byte_addr_bits,
            "length": self.length_bits,
            "op": 3,
            "tag": self.tag_bits,
            "valid": 1,
        })

    def cfg_layout(self) -> data.StructLayout:
        fields = {"index": self.desc_bits}
        fields.update({name: fld.shape for name, fld in self.descriptor_layout()})
        return data.StructLayout(fields)

    def link_layout(self) -> data.StructLayout:
        return data.StructLayout({"dst_device": self.device_bits, "addr": self.addr_bits, "op": 2,
                                  "data": WORD_BITS, "tag": self.tag_bits})

    def status_layout(self) -> data.StructLayout:
        return data.StructLayout({"desc": self.desc_bits, "tag": self.tag_bits, "error": 3})

    def header_layout(self) -> data.StructLayout:
        return data.StructLayout({"dst_device": self.device_bits, "addr": self.addr_bits, "op": 2,
                                  "tag": self.tag_bits, "desc": self.desc_bits, "last": 1})


class DmaEngine(wiring.Component):
    """T3's DMA engine (see the module docstring for the contract)."""

    def __init__(self, params: DmaParams | None = None) -> None:
        self.params = p = params or DmaParams()
        super().__init__({
            "cfg": In(stream.Signature(p.cfg_layout())),
            "trigger": In(stream.Signature(data.StructLayout({"desc": p.desc_bits}))),
            "mem": Out(mem_port_signature(p.addr_bits)),
            "link": Out(stream.Signature(p.link_layout())),
            "status": Out(stream.Signature(p.status_layout())),
            "num_devices": In(p.device_bits + 1),
            "idle": Out(1),
        })

    def elaborate(self, platform) -> Module:
        p = self.params
        m = Module()
        dl = p.descriptor_layout()

        m.submodules.table = table = Memory(shape=dl, depth=p.descriptors, init=[])
        wr = table.write_port()
        rd = table.read_port()
        m.submodules.headers = headers = SyncFIFO(width=p.header_layout().size, depth=p.outstanding)
        m.submodules.statuses = statuses = SyncFIFO(width=p.status_layout().size, depth=p.status_depth)

        # --- descriptor programming -------------------------------------------------------------------
        cfg = self.cfg.payload
        m.d.comb += [self.cfg.ready.eq(1), wr.addr.eq(cfg.index), wr.en.eq(self.cfg.valid)]
        for name, _ in dl:
            m.d.comb += getattr(wr.data, name).eq(getattr(cfg, name))

        # --- channels ---------------------------------------------------------------------------------
        n = p.channels
        ch_active = Signal(n)
        ch_src = [Signal(p.addr_bits, name=f"ch{i}_src") for i in range(n)]
        ch_dst = [Signal(p.addr_bits, name=f"ch{i}_dst") for i in range(n)]
        ch_left = [Signal(p.length_bits, name=f"ch{i}_left") for i in range(n)]  # words still to read
        ch_dev = [Signal(p.device_bits, name=f"ch{i}_dev") for i in range(n)]
        ch_op = [Signal(2, name=f"ch{i}_op") for i in range(n)]
        ch_tag = [Signal(p.tag_bits, name=f"ch{i}_tag") for i in range(n)]
        ch_desc = [Signal(p.desc_bits, name=f"ch{i}_desc") for i in range(n)]

        free = Signal(range(n + 1))  # index of the lowest free channel, n when none
        m.d.comb += free.eq(n)
        for i in reversed(range(n)):
            with m.If(~ch_active[i]):
                m.d.comb += free.eq(i)

        # --- dispatch: trigger -> table read -> validate -> channel or error status --------------------
        d_valid = Signal()      # a descriptor read is arriving this cycle
        d_index = Signal(p.desc_bits)
        err_pending = Signal()  # an error/notify status waiting for the status FIFO
        err_status = Signal(p.status_layout())
        can_take = (free != n) & ~d_valid & ~err_pending
        m.d.comb += [
            self.trigger.ready.eq(can_take),
            rd.addr.eq(self.trigger.payload.desc),
        ]
        take = self.trigger.valid & self.trigger.ready
        m.d.sync += d_valid.eq(take)
        with m.If(take):
            m.d.sync += d_index.eq(self.trigger.payload.desc)

        desc = rd.data
        error = Signal(3)
        misaligned = (desc.src_addr[:2] != 0) | (desc.dst_addr[:2] != 0) | (desc.length[:2] != 0)
        with m.If(~desc.valid):
            m.d.comb += error.eq(DmaError.UNPROGRAMMED)
        with m.Elif(desc.op == DmaOp.NOTIFY):
            m.d.comb += error.eq(DmaError.OK)
        with m.Elif(desc.op > DmaOp.NOTIFY):
            m.d.comb += error.eq(DmaError.BAD_OP)
        with m.Elif(desc.length == 0):
            m.d.comb += error.eq(DmaError.ZERO_LENGTH)
        with m.Elif(desc.dst_device >= self.num_devices):
            m.d.comb += error.eq(DmaError.BAD_DEVICE)
        with m.Elif(misaligned):
            m.d.comb += error.eq(DmaError.MISALIGNED)

        with m.If(d_valid):
            with m.If((error != DmaError.OK) | (desc.op == DmaOp.NOTIFY)):
                m.d.sync += [
                    err_pending.eq(1),
                    err_status.desc.eq(d_index),
                    err_status.tag.eq(desc.tag),
                    err_status.error.eq(error),
                ]
            with m.Else():
                for i in range(n):
                    with m.If(free == i):
                        m.d.sync += [
                            ch_active[i].eq(1),
                            ch_src[i].eq(desc.src_addr[2:]),
                            ch_dst[i].eq(desc.dst_addr[2:]),
                            ch_left[i].eq(desc.length[2:]),
                            ch_dev[i].eq(desc.dst_device),
                            ch_op[i].eq(desc.op[:2]),
                            ch_tag[i].eq(desc.tag),
                            ch_desc[i].eq(d_index),
                        ]

        # --- read issue: round robin over channels, up to `burst` reads per turn -------------------------
        turn = Signal(range(n))
        in_burst = Signal(range(p.burst + 1))
        cur = Signal(range(n))
        wanting = Signal(n)
        m.d.comb += wanting.eq(ch_active)
        # Pick `turn` if it still wants; otherwise the next wanting channel after it.
        m.d.comb += cur.eq(turn)
        with m.If(~wanting.bit_select(turn, 1)):
            for k in reversed(range(1, n)):
                idx = Signal(range(n), name=f"rr_idx{k}")
                m.d.comb += idx.eq(Mux(turn + k >= n, turn + k - n, turn + k))
                with m.If(wanting.bit_select(idx, 1)):
                    m.d.comb += cur.eq(idx)
        any_want = wanting.any()

        hdr = Signal(p.header_layout())
        sel_src = Signal(p.addr_bits)
        sel_left = Signal(p.length_bits)
        for i in range(n):
            with m.If(cur == i):
                m.d.comb += [
                    sel_src.eq(ch_src[i]),
                    sel_left.eq(ch_left[i]),
                    hdr.dst_device.eq(ch_dev[i]),
                    hdr.addr.eq(ch_dst[i]),
                    hdr.op.eq(ch_op[i]),
                    hdr.tag.eq(ch_tag[i]),
                    hdr.desc.eq(ch_desc[i]),
                ]
        m.d.comb += [
            hdr.last.eq(sel_left == 1),
            self.mem.cmd.valid.eq(any_want & headers.w_rdy),
            self.mem.cmd.payload.addr.eq(sel_src),
            self.mem.cmd.payload.write.eq(0),
            self.mem.cmd.payload.data.eq(0),
            headers.w_data.eq(hdr.as_value()),
        ]
        issue = self.mem.cmd.valid & self.mem.cmd.ready
        m.d.comb += headers.w_en.eq(issue)
        with m.If(issue):
            for i in range(n):
                with m.If(cur == i):
                    m.d.sync += [ch_src[i].eq(ch_src[i] + 1), ch_dst[i].eq(ch_dst[i] + 1),
                                 ch_left[i].eq(ch_left[i] - 1)]
                    with m.If(ch_left[i] == 1):
                        m.d.sync += ch_active[i].eq(0)
            last_of_turn = (in_burst == p.burst - 1) | (sel_left == 1)
            with m.If(last_of_turn):
                m.d.sync += [in_burst.eq(0), turn.eq(Mux(cur == n - 1, 0, cur + 1))]
            with m.Else():
                m.d.sync += [in_burst.eq(in_burst + 1), turn.eq(cur)]

        # --- responses -> link packets; completions -> status --------------------------------------------
        head = data.View(p.header_layout(), headers.r_data)
        link = self.link.payload
        need_status = head.last
        out_ok = ~need_status | statuses.w_rdy
        m.d.comb += [
            self.link.valid.eq(self.mem.rsp.valid & headers.r_rdy & out_ok),
            link.dst_device.eq(head.dst_device),
            link.addr.eq(head.addr),
            link.op.eq(head.op),
            link.tag.eq(head.tag),
            link.data.eq(self.mem.rsp.payload),
            self.mem.rsp.ready.eq(self.link.ready & headers.r_rdy & out_ok),
        ]
        sent = self.link.valid & self.link.ready
        m.d.comb += headers.r_en.eq(sent)

        done_status = Signal(p.status_layout())
        m.d.comb += [done_status.desc.eq(head.desc), done_status.tag.eq(head.tag),
                     done_status.error.eq(DmaError.OK)]
        push_done = sent & head.last
        push_err = err_pending & ~push_done & statuses.w_rdy
        m.d.comb += [
            statuses.w_en.eq(push_done | push_err),
            statuses.w_data.eq(Mux(push_done, done_status.as_value(), err_status.as_value())),
        ]
        with m.If(push_err):
            m.d.sync += err_pending.eq(0)
        m.d.comb += [
            self.status.valid.eq(statuses.r_rdy),
            self.status.payload.eq(statuses.r_data),
            statuses.r_en.eq(self.status.ready),
            self.idle.eq(~ch_active.any() & ~d_valid & ~err_pending & ~headers.r_rdy & ~statuses.r_rdy),
        ]
        return m
