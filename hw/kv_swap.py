"""KV-cache swap DMA controller (FastSwitch-style swaps of KV blocks between device and host memory).

A swap request is a sequence of *runs* (contiguous block ranges); the controller queues whole requests, merges
runs that are adjacent in both source and destination, and moves the blocks as bursts of up to
``max_burst_blocks`` blocks, reading one memory and writing the other.

Ports (valid/ready streams, payloads packed LSB first):

``run`` (in)      ``tag, direction, src_block, dst_block, count, last`` — one run of a request. A request's runs
                  arrive back to back (no interleaving of requests); its tag and direction are those of its
                  first run (later runs' ``tag``/``direction`` are ignored). ``last`` closes the request.
``abort`` (in)    ``tag`` — drop a queued request (see Aborts).
``status`` (out)  ``tag, error`` (`SwapError`) — exactly one per request.
``dev``           `hw.memory.mem_port_signature` (``dev_addr_bits``): device memory, word address
                  ``block * block_words + i``.
``host``          `host_port_signature` (``host_addr_bits``, burst width): the host link, same word addressing.
                  Its ``cmd`` payload has an extra ``burst`` field: on the first command of each burst it holds
                  the burst's length in words, on every other command 0, so a link model can charge a per-burst
                  overhead. Swap-out bursts are host writes, swap-in bursts host reads.
``idle`` (out)    nothing queued, in service, in flight or pending.
``abort_err``     (out) sticky: an abort matched no queued request. ``bad_aborts`` (out, 8 bits, saturating) counts
                  such aborts. Both clear only on reset.

Queues and order. Each direction has ``queue_depth`` request slots and a run FIFO of ``run_depth`` runs. A request
takes a slot at its first run; ``run`` backpressures when the direction has no free slot or no run-FIFO room
(no ``QUEUE_FULL`` for that). A request becomes runnable when its last run has been accepted. The engine serves
one request at a time, swap-ins (``SwapDir.IN``) before swap-outs whenever both are runnable, each direction
in arrival order. It starts a request of the other direction than the reads in flight only after those have
all been written (so the two memories never see crossing traffic).

Errors (`SwapError`), checked per run as it is accepted; a request reports the first error among its runs,
at once when its last run is accepted (one cycle later on ``status`` at the earliest), and moves no data:
``ZERO_COUNT`` (a run of 0 blocks), ``OUT_OF_RANGE`` (source or destination block + count past its pool:
``dev_blocks`` for device, ``host_blocks`` for host), ``QUEUE_FULL`` (a request of more than ``run_depth``
runs: the runs beyond are accepted and dropped, since such a request could never be queued whole).

Aborts. An abort whose tag matches a runnable, not yet started request (IN queue first, lowest slot first;
tags are expected to be unique among requests in the controller) marks it dead and reports ``ABORTED`` for it;
its runs are discarded when it reaches the engine (one per cycle). An abort that matches nothing — unknown
tag, a request still being received, one already started (or starting in the abort's cycle), or already
finished — completes nothing and sets ``abort_err`` / increments ``bad_aborts``.

Timing. Engine, per cycle: start a request (one cycle), load a run (one cycle), merge an adjacent run (one
cycle each, while the segment is shorter than a burst), start a burst (one cycle), then issue one read per
cycle while the read port is ready and fewer than ``outstanding`` reads are in flight. A read's word is written
to the other side in the cycle its response is offered. A request's ``OK`` status enters the status FIFO in
the cycle its last write is accepted (that write waits for status-FIFO room) and is offered one cycle later.
Status-FIFO pushes: completion first, then the ingest error, then the abort, one per cycle.
"""

from __future__ import annotations

import dataclasses
import enum

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, ceil_log2

from hw.memory import WORD_BITS, mem_port_signature
from hw.params import BlockParams, param


class SwapDir(enum.IntEnum):
    OUT = 0  # device memory -> host
    IN = 1   # host -> device memory


class SwapError(enum.IntEnum):
    OK = 0
    ABORTED = 1
    ZERO_COUNT = 2
    OUT_OF_RANGE = 3
    QUEUE_FULL = 4


BAD_ABORT_BITS = 8


def host_cmd_layout(addr_bits: int, burst_bits: int) -> data.StructLayout:
    """A host-link command: a memory command plus ``burst`` (words in the burst on its first command, else 0)."""
    return data.StructLayout({"addr": addr_bits, "write": 1, "data": WORD_BITS, "burst": burst_bits})


def host_port_signature(addr_bits: int, burst_bits: int) -> wiring.Signature:
    """The host-link port seen from the requester (flip it for the link side); responses as `mem_port_signature`."""
    return wiring.Signature({
        "cmd": Out(stream.Signature(host_cmd_layout(addr_bits, burst_bits))),
        "rsp": In(stream.Signature(WORD_BITS)),
    })


@dataclasses.dataclass(frozen=True, kw_only=True)
class KvSwapParams(BlockParams):
    """Parameters shared by the swap controller RTL, its model and testbenches.

    ``block_words`` (a power of two) 32-bit words per KV block; ``dev_blocks``/``host_blocks`` the pool sizes in
    blocks (block numbers at or past them are out of range); ``block_bits``/``count_bits`` the run-record field
    widths; ``queue_depth`` request slots and ``run_depth`` runs per direction; ``outstanding`` reads in flight.
    """

    block_words: int = param(16, 1, 4096)
    max_burst_blocks: int = param(8, 1, 256)
    dev_blocks: int = param(1024, 1, 1 << 24)
    host_blocks: int = param(4096, 1, 1 << 24)
    block_bits: int = param(16, 1, 24)
    count_bits: int = param(8, 1, 16)
    dev_addr_bits: int = param(24, 1, 48)
    host_addr_bits: int = param(28, 1, 48)
    queue_depth: int = param(4, 1, 64)
    run_depth: int = param(16, 2, 1024)
    outstanding: int = param(16, 2, 1024)
    tag_bits: int = param(8, 1, 16)
    status_depth: int = param(4, 2, 256)

    def _check(self) -> None:
        self._require(self.block_words & (self.block_words - 1) == 0, "block_words", "a power of two")
        self._require(self.dev_blocks <= 1 << self.block_bits, "dev_blocks", "at most 2**block_bits")
        self._require(self.host_blocks <= 1 << self.block_bits, "host_blocks", "at most 2**block_bits")
        self._require(self.dev_blocks * self.block_words <= 1 << self.dev_addr_bits, "dev_addr_bits",
                      "wide enough for dev_blocks * block_words words")
        self._require(self.host_blocks * self.block_words <= 1 << self.host_addr_bits, "host_addr_bits",
                      "wide enough for host_blocks * block_words words")

    @property
    def burst_words(self) -> int:
        return self.max_burst_blocks * self.block_words

    @property
    def burst_bits(self) -> int:
        return bits_for(self.burst_words)

    @property
    def word_shift(self) -> int:
        return ceil_log2(self.block_words)

    @property
    def addr_bits(self) -> int:
        return max(self.dev_addr_bits, self.host_addr_bits)

    def run_layout(self) -> data.StructLayout:
        return data.StructLayout({"tag": self.tag_bits, "direction": 1, "src_block": self.block_bits,
                                  "dst_block": self.block_bits, "count": self.count_bits, "last": 1})

    def abort_layout(self) -> data.StructLayout:
        return data.StructLayout({"tag": self.tag_bits})

    def status_layout(self) -> data.StructLayout:
        return data.StructLayout({"tag": self.tag_bits, "error": 3})

    def stored_run_layout(self) -> data.StructLayout:
        return data.StructLayout({"src": self.block_bits, "dst": self.block_bits, "count": self.count_bits,
                                  "last": 1})

    def header_layout(self) -> data.StructLayout:
        return data.StructLayout({"dst": self.addr_bits, "burst": self.burst_bits, "last": 1,
                                  "tag": self.tag_bits, "dir": 1})

    def host_cmd_layout(self) -> data.StructLayout:
        return host_cmd_layout(self.host_addr_bits, self.burst_bits)


class KvSwapController(wiring.Component):
    """The KV swap DMA controller (see the module docstring for the contract)."""

    def __init__(self, params: KvSwapParams | None = None) -> None:
        self.params = p = params or KvSwapParams()
        super().__init__({
            "run": In(stream.Signature(p.run_layout())),
            "abort": In(stream.Signature(p.abort_layout())),
            "status": Out(stream.Signature(p.status_layout())),
            "dev": Out(mem_port_signature(p.dev_addr_bits)),
            "host": Out(host_port_signature(p.host_addr_bits, p.burst_bits)),
            "idle": Out(1),
            "abort_err": Out(1),
            "bad_aborts": Out(BAD_ABORT_BITS),
        })

    def elaborate(self, platform) -> Module:  # noqa: C901 - one flat datapath reads best here
        p = self.params
        m = Module()
        qd = p.queue_depth
        srl = p.stored_run_layout()
        m.submodules.hdrs = hdrs = SyncFIFO(width=p.header_layout().size, depth=p.outstanding)
        m.submodules.statuses = statuses = SyncFIFO(width=p.status_layout().size, depth=p.status_depth)
        fifos = []
        for d in SwapDir:
            fifo = SyncFIFO(width=srl.size, depth=p.run_depth)
            m.submodules[f"runs_{d.name.lower()}"] = fifo
            fifos.append(fifo)

        # --- request tables: one circular buffer of slots per direction (registers) -----------------------
        def slot_sig(d: int, s: int, name: str, shape) -> Signal:
            return Signal(shape, name=f"{SwapDir(d).name.lower()}{s}_{name}")

        used = [[slot_sig(d, s, "used", 1) for s in range(qd)] for d in range(2)]
        complete = [[slot_sig(d, s, "complete", 1) for s in range(qd)] for d in range(2)]
        dead = [[slot_sig(d, s, "dead", 1) for s in range(qd)] for d in range(2)]
        tags = [[slot_sig(d, s, "tag", p.tag_bits) for s in range(qd)] for d in range(2)]
        nruns = [[slot_sig(d, s, "nruns", range(p.run_depth + 1)) for s in range(qd)] for d in range(2)]
        head = [Signal(range(qd), name=f"head_{d.name.lower()}") for d in SwapDir]
        tail = [Signal(range(qd), name=f"tail_{d.name.lower()}") for d in SwapDir]
        count = [Signal(range(qd + 1), name=f"count_{d.name.lower()}") for d in SwapDir]

        def wrap_inc(x: Signal) -> object:
            return Mux(x == qd - 1, 0, x + 1)

        # Head entry of each direction.
        h_complete = [Signal(name=f"hcomplete_{d}") for d in range(2)]
        h_dead = [Signal(name=f"hdead_{d}") for d in range(2)]
        h_tag = [Signal(p.tag_bits, name=f"htag_{d}") for d in range(2)]
        h_nruns = [Signal(range(p.run_depth + 1), name=f"hnruns_{d}") for d in range(2)]
        for d in range(2):
            for s in range(qd):
                with m.If(head[d] == s):
                    m.d.comb += [h_complete[d].eq(complete[d][s]), h_dead[d].eq(dead[d][s]),
                                 h_tag[d].eq(tags[d][s]), h_nruns[d].eq(nruns[d][s])]

        create = [Signal(name=f"create_{d}") for d in range(2)]
        free = [Signal(name=f"free_{d}") for d in range(2)]
        for d in range(2):
            m.d.sync += count[d].eq(count[d] + create[d] - free[d])
            with m.If(create[d]):
                m.d.sync += tail[d].eq(wrap_inc(tail[d]))
            with m.If(free[d]):
                m.d.sync += head[d].eq(wrap_inc(head[d]))
                for s in range(qd):
                    with m.If(head[d] == s):
                        m.d.sync += used[d][s].eq(0)

        # --- engine ------------------------------------------------------------------------------------------
        active = Signal()
        e_dir = Signal()
        e_dead = Signal()
        e_tag = Signal(p.tag_bits)
        e_runs = Signal(range(p.run_depth + 1))
        seg_src = Signal(p.block_bits + 1)
        seg_dst = Signal(p.block_bits + 1)
        seg_left = Signal(range(p.max_burst_blocks + (1 << p.count_bits)))
        seg_last = Signal()
        b_left = Signal(range(p.burst_words + 1))
        b_len = Signal(p.burst_bits)
        b_src = Signal(p.addr_bits)
        b_dst = Signal(p.addr_bits)
        b_first = Signal()
        b_final = Signal()
        last_dir = Signal()

        runnable = [Signal(name=f"runnable_{d}") for d in range(2)]
        for d in range(2):
            m.d.comb += runnable[d].eq((count[d] != 0) & h_complete[d])
        pick = Signal()
        m.d.comb += pick.eq(Mux(runnable[SwapDir.IN], SwapDir.IN, SwapDir.OUT))
        start = Signal()
        m.d.comb += start.eq(~active & (runnable[0] | runnable[1]) & (~hdrs.r_rdy | (pick == last_dir)))
        with m.If(start):
            m.d.sync += [
                active.eq(1), e_dir.eq(pick), last_dir.eq(pick),
                e_dead.eq(Mux(pick, h_dead[1], h_dead[0])),
                e_tag.eq(Mux(pick, h_tag[1], h_tag[0])),
                e_runs.eq(Mux(pick, h_nruns[1], h_nruns[0])),
                seg_left.eq(0), seg_last.eq(0), b_left.eq(0),
            ]

        head_run = data.View(srl, Mux(e_dir, fifos[1].r_data, fifos[0].r_data))
        run_rdy = Mux(e_dir, fifos[1].r_rdy, fifos[0].r_rdy)
        pop = Signal()
        for d in range(2):
            m.d.comb += fifos[d].r_en.eq(pop & (e_dir == d))
        finish = Signal()
        for d in range(2):
            m.d.comb += free[d].eq(finish & (e_dir == d))
        with m.If(finish):
            m.d.sync += active.eq(0)

        rd_valid = Signal()
        rd_ready = Signal()
        rd_burst = Signal(p.burst_bits)
        hdr = Signal(p.header_layout())
        m.d.comb += [
            hdr.dst.eq(b_dst), hdr.burst.eq(rd_burst), hdr.last.eq(b_final & (b_left == 1)),
            hdr.tag.eq(e_tag), hdr.dir.eq(e_dir), hdrs.w_data.eq(hdr.as_value()),
            rd_burst.eq(Mux(b_first, b_len, 0)),
        ]
        issue = rd_valid & rd_ready
        m.d.comb += hdrs.w_en.eq(issue)

        mb = p.max_burst_blocks
        adjacent = (head_run.src == seg_src + seg_left) & (head_run.dst == seg_dst + seg_left)
        with m.If(active & e_dead):
            m.d.comb += pop.eq(run_rdy)
            with m.If(run_rdy):
                m.d.sync += e_runs.eq(e_runs - 1)
                m.d.comb += finish.eq(e_runs == 1)
        with m.Elif(active):
            with m.If(b_left != 0):
                m.d.comb += rd_valid.eq(hdrs.w_rdy)
                with m.If(issue):
                    m.d.sync += [b_src.eq(b_src + 1), b_dst.eq(b_dst + 1), b_left.eq(b_left - 1), b_first.eq(0)]
                    m.d.comb += finish.eq(hdr.last)
            with m.Elif(seg_left == 0):
                m.d.comb += pop.eq(run_rdy)
                with m.If(run_rdy):
                    m.d.sync += [seg_src.eq(head_run.src), seg_dst.eq(head_run.dst), seg_left.eq(head_run.count),
                                 seg_last.eq(head_run.last)]
            with m.Elif((seg_left < mb) & ~seg_last & run_rdy & adjacent):
                m.d.comb += pop.eq(1)
                m.d.sync += [seg_left.eq(seg_left + head_run.count), seg_last.eq(head_run.last)]
            with m.Else():
                n = Signal(range(mb + 1))
                m.d.comb += n.eq(Mux(seg_left > mb, mb, seg_left))
                m.d.sync += [
                    b_left.eq(n << p.word_shift), b_len.eq(n << p.word_shift),
                    b_src.eq(seg_src << p.word_shift), b_dst.eq(seg_dst << p.word_shift),
                    b_first.eq(1), b_final.eq(seg_last & (seg_left <= mb)),
                    seg_src.eq(seg_src + n), seg_dst.eq(seg_dst + n), seg_left.eq(seg_left - n),
                ]

        # --- write side: responses in order, written to the other memory ------------------------------------
        h = data.View(p.header_layout(), hdrs.r_data)
        st_ok = ~h.last | statuses.w_rdy
        rsp_valid = Mux(h.dir, self.host.rsp.valid, self.dev.rsp.valid)
        rsp_data = Mux(h.dir, self.host.rsp.payload, self.dev.rsp.payload)
        wr_valid = Signal()
        wr_ready = Signal()
        m.d.comb += [
            wr_valid.eq(hdrs.r_rdy & rsp_valid & st_ok),
            wr_ready.eq(Mux(h.dir, self.dev.cmd.ready, self.host.cmd.ready)),
            self.dev.rsp.ready.eq((h.dir == SwapDir.OUT) & hdrs.r_rdy & st_ok & self.host.cmd.ready),
            self.host.rsp.ready.eq((h.dir == SwapDir.IN) & hdrs.r_rdy & st_ok & self.dev.cmd.ready),
        ]
        go = wr_valid & wr_ready
        m.d.comb += hdrs.r_en.eq(go)

        # --- port drive: a port is written (header direction) or read (engine direction), never both --------
        dev_wr = wr_valid & (h.dir == SwapDir.IN)
        host_wr = wr_valid & (h.dir == SwapDir.OUT)
        dev_rd = rd_valid & (e_dir == SwapDir.OUT)
        host_rd = rd_valid & (e_dir == SwapDir.IN)
        m.d.comb += [
            self.dev.cmd.valid.eq(dev_wr | dev_rd),
            self.host.cmd.valid.eq(host_wr | host_rd),
            rd_ready.eq(Mux(e_dir, self.host.cmd.ready & ~host_wr, self.dev.cmd.ready & ~dev_wr)),
        ]
        with m.If(dev_wr):
            m.d.comb += [self.dev.cmd.payload.addr.eq(h.dst), self.dev.cmd.payload.write.eq(1),
                         self.dev.cmd.payload.data.eq(rsp_data)]
        with m.Else():
            m.d.comb += self.dev.cmd.payload.addr.eq(b_src)
        with m.If(host_wr):
            m.d.comb += [self.host.cmd.payload.addr.eq(h.dst), self.host.cmd.payload.write.eq(1),
                         self.host.cmd.payload.data.eq(rsp_data), self.host.cmd.payload.burst.eq(h.burst)]
        with m.Else():
            m.d.comb += [self.host.cmd.payload.addr.eq(b_src), self.host.cmd.payload.burst.eq(rd_burst)]

        # --- ingest -------------------------------------------------------------------------------------------
        r = self.run.payload
        in_req = Signal()
        cur_dir = Signal()
        cur_slot = Signal(range(qd))
        cur_tag = Signal(p.tag_bits)
        cur_err = Signal(3)
        cur_nruns = Signal(range(p.run_depth + 1))
        err_pending = Signal()
        err_status = Signal(p.status_layout())

        d_in = Signal()
        m.d.comb += d_in.eq(Mux(in_req, cur_dir, r.direction))
        slot = Signal(range(qd))
        m.d.comb += slot.eq(Mux(in_req, cur_slot, Mux(d_in, tail[1], tail[0])))
        store = Signal()
        m.d.comb += store.eq(~in_req | (cur_nruns < p.run_depth))
        room = Mux(d_in, fifos[1].w_rdy, fifos[0].w_rdy)
        slot_free = Mux(d_in, count[1] < qd, count[0] < qd)
        m.d.comb += self.run.ready.eq(~err_pending & (in_req | slot_free) & (~store | room))
        take = self.run.valid & self.run.ready

        wide = max(p.block_bits, p.count_bits) + 1
        src_end = Signal(wide)
        dst_end = Signal(wide)
        m.d.comb += [src_end.eq(r.src_block + r.count), dst_end.eq(r.dst_block + r.count)]
        src_pool = Mux(d_in == SwapDir.OUT, p.dev_blocks, p.host_blocks)
        dst_pool = Mux(d_in == SwapDir.OUT, p.host_blocks, p.dev_blocks)
        err = Signal(3)
        with m.If(r.count == 0):
            m.d.comb += err.eq(SwapError.ZERO_COUNT)
        with m.Elif((src_end > src_pool) | (dst_end > dst_pool)):
            m.d.comb += err.eq(SwapError.OUT_OF_RANGE)
        with m.Elif(~store):
            m.d.comb += err.eq(SwapError.QUEUE_FULL)
        first_err = Signal(3)
        m.d.comb += first_err.eq(Mux(in_req & (cur_err != SwapError.OK), cur_err, err))
        nr_new = Signal(range(p.run_depth + 1))
        m.d.comb += nr_new.eq(Mux(in_req, cur_nruns, 0) + store)
        req_tag = Mux(in_req, cur_tag, r.tag)

        stored = Signal(srl)
        m.d.comb += [stored.src.eq(r.src_block), stored.dst.eq(r.dst_block), stored.count.eq(r.count),
                     stored.last.eq(r.last)]
        for d in range(2):
            m.d.comb += [fifos[d].w_data.eq(stored.as_value()), fifos[d].w_en.eq(take & store & (d_in == d)),
                         create[d].eq(take & ~in_req & (d_in == d))]
        with m.If(take):
            with m.If(~in_req):
                m.d.sync += [cur_dir.eq(d_in), cur_slot.eq(slot), cur_tag.eq(r.tag)]
            for d in range(2):
                for s in range(qd):
                    with m.If((d_in == d) & (slot == s)):
                        m.d.sync += nruns[d][s].eq(nr_new)
                        with m.If(~in_req):
                            m.d.sync += [used[d][s].eq(1), complete[d][s].eq(0), dead[d][s].eq(0),
                                         tags[d][s].eq(r.tag)]
                        with m.If(r.last):
                            m.d.sync += [complete[d][s].eq(1), dead[d][s].eq(first_err != SwapError.OK)]
            with m.If(r.last):
                m.d.sync += in_req.eq(0)
                with m.If(first_err != SwapError.OK):
                    m.d.sync += [err_pending.eq(1), err_status.tag.eq(req_tag), err_status.error.eq(first_err)]
            with m.Else():
                m.d.sync += [in_req.eq(1), cur_err.eq(first_err), cur_nruns.eq(nr_new)]

        # --- aborts -----------------------------------------------------------------------------------------
        abort_pending = Signal()
        abort_tag = Signal(p.tag_bits)
        abort_err = Signal()
        bad_aborts = Signal(BAD_ABORT_BITS)
        m.d.comb += self.abort.ready.eq(~abort_pending)
        a_take = self.abort.valid & ~abort_pending
        hits = []
        for d in (SwapDir.IN, SwapDir.OUT):
            for s in range(qd):
                owned = (head[d] == s) & ((active & (e_dir == d)) | (start & (pick == d)))
                hit = Signal(name=f"abort_hit_{d.name.lower()}{s}")
                m.d.comb += hit.eq(used[d][s] & complete[d][s] & ~dead[d][s] & ~owned
                                   & (tags[d][s] == self.abort.payload.tag))
                hits.append((d, s, hit))
        with m.If(a_take):
            with m.If(~Cat(*(h_[2] for h_ in hits)).any()):
                m.d.sync += abort_err.eq(1)
                with m.If(bad_aborts != (1 << BAD_ABORT_BITS) - 1):
                    m.d.sync += bad_aborts.eq(bad_aborts + 1)
            with m.Else():
                m.d.sync += [abort_pending.eq(1), abort_tag.eq(self.abort.payload.tag)]
                # the first hit wins: IN before OUT, lower slot first
                for i, (d, s, hit) in enumerate(hits):
                    with (m.If(hit) if i == 0 else m.Elif(hit)):
                        m.d.sync += dead[d][s].eq(1)
        m.d.comb += [self.abort_err.eq(abort_err), self.bad_aborts.eq(bad_aborts)]

        # --- statuses ---------------------------------------------------------------------------------------
        done_status = Signal(p.status_layout())
        ab_status = Signal(p.status_layout())
        m.d.comb += [done_status.tag.eq(h.tag), done_status.error.eq(SwapError.OK),
                     ab_status.tag.eq(abort_tag), ab_status.error.eq(SwapError.ABORTED)]
        push_done = go & h.last
        push_err = err_pending & ~push_done & statuses.w_rdy
        push_abort = abort_pending & ~push_done & ~push_err & statuses.w_rdy
        m.d.comb += [
            statuses.w_en.eq(push_done | push_err | push_abort),
            statuses.w_data.eq(Mux(push_done, done_status.as_value(),
                                   Mux(push_err, err_status.as_value(), ab_status.as_value()))),
        ]
        with m.If(push_err):
            m.d.sync += err_pending.eq(0)
        with m.If(push_abort):
            m.d.sync += abort_pending.eq(0)
        m.d.comb += [
            self.status.valid.eq(statuses.r_rdy),
            self.status.payload.eq(statuses.r_data),
            statuses.r_en.eq(self.status.ready),
            self.idle.eq(~in_req & (count[0] == 0) & (count[1] == 0) & ~active & ~hdrs.r_rdy & ~statuses.r_rdy
                         & ~err_pending & ~abort_pending),
        ]
        return m
