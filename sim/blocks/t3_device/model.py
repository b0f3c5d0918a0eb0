"""Cycle model of `hw.t3_device.T3Device` in front of `hw.memory.SimpleMemory`, stepped one cycle at a time.

The device is a composition, and so is its model: one clock of the device (`dev_cycle`) calls the blocks' own
rules, each written once as a function over a state vector (`numba.extending.register_jitable`):

* tracker: `sim.blocks.tracker.model` (``head_due``, ``tick``: count saturation, overflow and unprogrammed
  counters, re-arm, the trigger FIFO). The reducer's commit-FIFO head is the tracker's request
  (``commit.ready = req.ready``: the head leaves when ``tick`` accepts it); the trigger consumer's ``ready`` is
  the DMA's ``trigger.ready``, read before the DMA steps.
* DMA engine: `sim.blocks.dma.model` (``dma_cmd_offer`` and ``dma_rsp_ready``, the port's readiness the arbiters
  need before the engine steps, then ``dma_step``).
* both arbiters: `sim.blocks.arbiter.model` (``arb_select``, ``arb_owner_head``, ``arb_step``: the round-robin
  merge of the reducer's and the DMA's traffic, then MCA against compute); memory: `sim.blocks.memory.model`.
* reducer: the ``red_*`` rules here (`ReducerStep` runs them alone). The reducer's block model
  (`sim.blocks.reducer.model.ReducerModel`) is closed-form: it solves each packet's handshake cycles assuming it
  alone owns a `SimpleMemory`. In the device its commands go through two arbiters that decide cycle by cycle
  whether they are taken, so that model cannot be composed; its registers are stepped here instead. The
  arithmetic is the reducer's own rule (`sim.blocks.reducer.reference`, the compiled scalar ``_reduce_word``,
  bit-exact to `hw.reducer`); the ordering rules (in-order queue, address hazard, writes before reads, commit
  FIFO room) are checked against ``ReducerModel`` by ``tests/blocks/t3_device/test_t3_device_model.py`` on the
  reducer's own conditions (every accept, write and commit cycle equal, every word equal to `apply_packets`).

One source of truth, two ways to run it:

* `run_device_fast` (the block's ``model`` runner) runs `dev_cycle` compiled, with the memory's rules, in one
  jitted loop over the whole stimulus (`device_kernel`), the output backpressure of
  `sim.core.stimulus.ReadyPattern` evaluated inside (`sim.core.fast.ready_nb`).
* `T3DeviceModel`, the class the T3 co-simulation steps cycle by cycle (`sim.studies.t3.cosim`), runs the same
  `dev_cycle` uncompiled on Python lists in front of a `SimpleMemoryModel` (a jitted call per cycle from Python
  costs more than the interpreted rules). ``tests/blocks/t3_device/test_t3_device_fast.py`` runs both ways on the
  same stimuli.

Data values are modelled: reducer writes carry the reduced word, the DMA reads it from the memory, so the model's
link packets, compute responses and final memory are the device's, not only their cycles.

Each cycle is evaluated in the RTL's combinational order: the input merge picks a packet; the reducer's and the
DMA's command offers follow from their state; the merge arbiter picks one; the MCA arbiter grants it or the
compute command against the memory; responses flow back the same way; the tracker ticks (request in, trigger
out); then the reducer, the DMA and the memory update.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numba
import numpy as np
from numba.extending import register_jitable

from hw.arbiter import ArbiterMode, Requester
from hw.reducer import ReduceOp, ReducerParams
from hw.t3_device import BYTES_PER_WORD, T3DeviceParams
from sim.blocks.arbiter.model import ArbiterModel, arb_owner_head, arb_select, arb_state, arb_step
from sim.blocks.dma.model import (
    C_SRC,
    C_W,
    D_O_PADDR,
    D_O_PDEV,
    D_O_POP,
    D_O_PTAG,
    D_O_SDESC,
    D_O_SERR,
    D_O_STAG,
    H_W,
    PACKET,
    STATUS,
    T_W,
    Descriptor,
    DmaRun,
    dma_cmd_offer,
    dma_idle,
    dma_program,
    dma_rsp_ready,
    dma_state,
    dma_step,
    dma_trigger_ready,
)
from sim.blocks.memory.model import (
    M_PN,
    M_QN,
    SimpleMemoryModel,
    mem_cmd_ready,
    mem_pop,
    mem_push,
    mem_rsp_data,
    mem_rsp_valid,
    mem_state,
    mem_step,
)
from sim.blocks.reducer.reference import _reduce_word
from sim.blocks.tracker import model as _tracker
from sim.blocks.tracker.model import ACCEPTED, POPPED, S1_EMPTY, S_LEVEL, S_OUT_DESC, S_S1, TrackerStats, new_state
from sim.core.fast import ready_nb

REDUCER, DMA = int(Requester.COMPUTE), int(Requester.COMM)  # the merge arbiter's two requesters
_COMPUTE, _COMM = int(Requester.COMPUTE), int(Requester.COMM)
_STORE = int(ReduceOp.STORE)

# The tracker's rules (jitable: `dev_cycle` calls them compiled inside a kernel, as plain Python in the class).
trk_head_due = _tracker.head_due
trk_tick = _tracker.tick
trk_program_entry = _tracker.program_entry

Command = tuple[int, int, int]  # addr, write, data
Packet = tuple[int, int, int, int]  # addr, op, data, tag


# The reducer's registers -------------------------------------------------------------------------------------
# State vector: the in-flight queue ring (head, count), the write-back register, the commit FIFO ring, the count
# of writes issued (``applied``) and the parameters. ``slots``: ``SL_W`` ints per queue entry; ``commits``: 2 per
# commit entry (tag, addr).
R_HEAD, R_N, R_WB, R_WB_ADDR, R_WB_DATA, R_WB_TAG, R_CHEAD, R_CN, R_APPLIED, R_INFLIGHT, R_CDEPTH = range(11)
R_N_STATE = 11
SL_ADDR, SL_OP, SL_DATA, SL_TAG, SL_HAS, SL_WORD = range(6)  # SL_HAS: the read word has arrived (ADD_* only)
SL_W = 6


def red_state(params: ReducerParams) -> list[int]:
    """A reset state vector (a list; ``np.array(..., np.int64)`` of it for a kernel)."""
    rs = [0] * R_N_STATE
    rs[R_INFLIGHT], rs[R_CDEPTH] = params.inflight, params.commit_depth
    return rs


@register_jitable
def red_wants_write(rs):
    """The write-back register holds a word and the commit FIFO has room: its write is offered (writes first)."""
    return rs[R_WB] != 0 and rs[R_CN] < rs[R_CDEPTH]


@register_jitable
def red_hazard(rs, slots, addr):
    """An earlier packet to ``addr`` is not yet written (in the queue or the write-back register)."""
    if rs[R_WB] and rs[R_WB_ADDR] == addr:
        return True
    depth = rs[R_INFLIGHT]
    for k in range(rs[R_N]):
        s = rs[R_HEAD] + k
        if s >= depth:
            s -= depth
        if slots[SL_W * s + SL_ADDR] == addr:
            return True
    return False


@register_jitable
def red_offer(rs, slots, pkt_valid, addr, op):
    """The command on ``mem.cmd`` this cycle, given the packet on ``pkt``: (valid, addr, write, data)."""
    if red_wants_write(rs):
        return True, rs[R_WB_ADDR], 1, rs[R_WB_DATA]
    if pkt_valid and op != _STORE and rs[R_N] < rs[R_INFLIGHT] and not red_hazard(rs, slots, addr):
        return True, addr, 0, 0
    return False, 0, 0, 0


@register_jitable
def red_cycle(rs, slots, commits, pkt_valid, addr, op, data, tag, granted, word_valid, word, commit_ready):
    """One clock: the command offered was ``granted``; a read ``word`` is on ``mem.rsp`` if ``word_valid``
    (``rsp.ready`` is always high); ``commit.ready``. Returns whether the packet was accepted."""
    depth = rs[R_INFLIGHT]
    n = rs[R_N]
    head = rs[R_HEAD]
    wants_write = red_wants_write(rs)
    write_fire = wants_write and granted
    wb_free = rs[R_WB] == 0 or write_fire
    accepted = False
    if pkt_valid and n < depth:
        if op == _STORE:
            accepted = True
        else:
            accepted = not red_hazard(rs, slots, addr) and not wants_write and granted
    # a read word goes to the oldest ADD still waiting for one (reads return in slot order)
    target = -1
    if word_valid:
        for k in range(n):
            s = head + k
            if s >= depth:
                s -= depth
            if slots[SL_W * s + SL_OP] != _STORE and not slots[SL_W * s + SL_HAS]:
                target = s
                break
    pop = False
    h = SL_W * head
    head_word = 0
    if n > 0:
        has = slots[h + SL_HAS] != 0 or target == head
        if slots[h + SL_HAS]:
            head_word = slots[h + SL_WORD]
        elif target == head:
            head_word = word
        pop = wb_free and (slots[h + SL_OP] == _STORE or has)
    cdepth = rs[R_CDEPTH]
    if commit_ready and rs[R_CN] > 0:
        c = rs[R_CHEAD] + 1
        rs[R_CHEAD] = 0 if c == cdepth else c
        rs[R_CN] -= 1
    if write_fire:
        c = rs[R_CHEAD] + rs[R_CN]
        if c >= cdepth:
            c -= cdepth
        commits[2 * c] = rs[R_WB_TAG]
        commits[2 * c + 1] = rs[R_WB_ADDR]
        rs[R_CN] += 1
        rs[R_APPLIED] += 1
    if pop:
        rs[R_WB] = 1
        rs[R_WB_ADDR] = slots[h + SL_ADDR]
        rs[R_WB_DATA] = _reduce_word(slots[h + SL_OP], head_word, slots[h + SL_DATA])
        rs[R_WB_TAG] = slots[h + SL_TAG]
        nh = head + 1
        rs[R_HEAD] = 0 if nh == depth else nh
        rs[R_N] -= 1
    elif write_fire:
        rs[R_WB] = 0
    if target >= 0 and not (pop and target == head):
        slots[SL_W * target + SL_HAS] = 1
        slots[SL_W * target + SL_WORD] = word
    if accepted:
        s = rs[R_HEAD] + rs[R_N]
        if s >= depth:
            s -= depth
        r = SL_W * s
        slots[r + SL_ADDR], slots[r + SL_OP], slots[r + SL_DATA], slots[r + SL_TAG] = addr, op, data, tag
        slots[r + SL_HAS] = 0
        slots[r + SL_WORD] = 0
        rs[R_N] += 1
    return accepted


@register_jitable
def red_idle(rs):
    return rs[R_N] == 0 and rs[R_WB] == 0 and rs[R_CN] == 0


class ReducerStep:
    """The reducer's registers (`hw.reducer`), stepped: the ``red_*`` rules on Python lists.

    Per cycle the caller asks `offer` (the command on ``mem.cmd`` given the packet on ``pkt``), routes it, then
    calls `cycle` with the grant, the read word on ``mem.rsp`` (``rsp.ready`` is always high) and
    ``commit.ready``.
    """

    def __init__(self, params: ReducerParams) -> None:
        self.rs = red_state(params)
        self.slots = [0] * (SL_W * params.inflight)
        self.commits = [0] * (2 * params.commit_depth)

    @property
    def applied(self) -> int:
        return self.rs[R_APPLIED]

    def offer(self, pkt: Packet | None) -> Command | None:
        """The command on ``mem.cmd`` this cycle (writes first), given the packet ``(addr, op, data, tag)``."""
        valid, addr, write, data = red_offer(self.rs, self.slots, pkt is not None,
                                             pkt[0] if pkt is not None else 0, pkt[1] if pkt is not None else 0)
        return (addr, write, data) if valid else None

    def cycle(self, pkt: Packet | None, granted: bool, word: int | None, commit_ready: bool) -> bool:
        """Advance one clock; returns whether ``pkt`` was accepted."""
        a, o, d, t = pkt if pkt is not None else (0, 0, 0, 0)
        return red_cycle(self.rs, self.slots, self.commits, pkt is not None, a, o, d, t, granted, word is not None,
                         word if word is not None else 0, commit_ready)

    def commit_head(self) -> tuple[int, int] | None:
        """``(tag, addr)`` offered on ``commit`` this cycle."""
        rs = self.rs
        if rs[R_CN] == 0:
            return None
        return self.commits[2 * rs[R_CHEAD]], self.commits[2 * rs[R_CHEAD] + 1]

    def idle(self) -> bool:
        return red_idle(self.rs)


# The device --------------------------------------------------------------------------------------------------
# Device state vector: the input merge's register, the field masks, and this cycle's outputs (the memory command
# and response handshakes the caller makes, the compute read word).
V_LAST_LINK, V_AMASK, V_TMASK, V_PUSH_ADDR, V_PUSH_WRITE, V_PUSH_DATA = range(6)
V_N = 6
# Flags `dev_cycle` returns.
DEV_C, DEV_P, DEV_L, DEV_CRSP, DEV_STATUS, DEV_PACKET, DEV_PUSH, DEV_POP = (1 << i for i in range(8))


@register_jitable
def dev_cycle(t, dv, tst, tfifo, threshold, count, desc, enable, rearm, dst, dtable, dch, dhdr, dsts, a0, o0, a1, o1,
              rs, slots, commits, c_valid, c_addr, c_write, c_data, p_valid, p_addr, p_op, p_data, p_tag, l_valid,
              l_addr, l_op, l_data, l_tag, link_ready, status_ready, compute_rsp_ready, m_cmd_ready, m_occupancy,
              m_rsp_valid, m_rsp_word):
    """One clock of the device. State: ``dv`` (device), ``tst``/``tfifo``/table (tracker), ``dst``/``dtable``/
    ``dch``/``dhdr``/``dsts`` (DMA), ``a0``/``o0`` (merge arbiter), ``a1``/``o1`` (MCA arbiter), ``rs``/``slots``/
    ``commits`` (reducer). Inputs: the compute command, the produce and link packets (``*_valid`` and fields), the
    readies, and the memory's ``cmd.ready``, ``occupancy``, ``rsp.valid`` and the word on ``rsp``.

    Returns `DEV_*` flags: inputs taken (``C``/``P``/``L``), a compute read word delivered (``CRSP``: the word is
    ``m_rsp_word``), a DMA status or packet out (``dst``'s ``D_O_*``; a packet's word is ``m_rsp_word``), the
    memory command accepted (``PUSH``: ``dv``'s ``V_PUSH_*``) and the response taken (``POP``)."""
    # The input merge: round robin between produce and link_in when both are valid.
    both = p_valid and l_valid
    pick_link = (dv[V_LAST_LINK] == 0) if both else l_valid
    pkt_valid = p_valid or l_valid
    if pick_link:
        pa, po, pd, pt = l_addr, l_op, l_data, l_tag
    else:
        pa, po, pd, pt = p_addr, p_op, p_data, p_tag
    pa &= dv[V_AMASK]  # the packet's fields at their widths
    po &= 3
    pt &= dv[V_TMASK]

    # Command offers, the merge's choice, MCA against compute.
    r_valid, r_addr, r_write, r_data = red_offer(rs, slots, pkt_valid, pa, po)
    dc = dma_cmd_offer(dst, dch)
    d_valid = dc >= 0
    d_addr = dch[C_W * dc + C_SRC] if d_valid else 0
    msel = arb_select(a0, r_valid, r_write, d_valid, 0, 0)
    m_valid = msel >= 0
    m_addr, m_write, m_data = (r_addr, r_write, r_data) if msel == REDUCER else (d_addr, 0, 0)
    dma_rr = dma_rsp_ready(dst, dhdr, link_ready)
    owner = arb_owner_head(a0, o0)
    comm_rsp_ready = owner >= 0 and (owner == REDUCER or dma_rr)
    granted, delivered = arb_step(a1, o1, c_valid, c_write, m_valid, m_write, m_occupancy, m_cmd_ready, m_rsp_valid,
                                  compute_rsp_ready, comm_rsp_ready)
    flags = 0
    if granted == _COMPUTE:
        dv[V_PUSH_ADDR], dv[V_PUSH_WRITE], dv[V_PUSH_DATA] = c_addr, c_write, c_data
        flags |= DEV_PUSH | DEV_C
    elif granted == _COMM:
        dv[V_PUSH_ADDR], dv[V_PUSH_WRITE], dv[V_PUSH_DATA] = m_addr, m_write, m_data
        flags |= DEV_PUSH
    if delivered >= 0:
        flags |= DEV_POP
        if delivered == _COMPUTE:
            flags |= DEV_CRSP
    m_granted, m_delivered = arb_step(a0, o0, r_valid, r_write, d_valid, 0, 0, granted == _COMM, delivered == _COMM,
                                      True, dma_rr)

    # The tracker: the commit head is its request; the trigger consumer is the DMA.
    pop = trk_head_due(t, tst, tfifo) and dma_trigger_ready(dst, dch)
    req = rs[R_CN] > 0
    tag = commits[2 * rs[R_CHEAD]] if req else 0
    tflags = trk_tick(t, tst, tfifo, threshold, count, desc, enable, rearm, pop, req, tag, BYTES_PER_WORD)
    trigger = tst[S_OUT_DESC] if tflags & POPPED else -1

    accepted = red_cycle(rs, slots, commits, pkt_valid, pa, po, pd, pt, m_granted == REDUCER,
                         m_delivered == REDUCER, m_rsp_word, (tflags & ACCEPTED) != 0)
    dflags = dma_step(dst, dtable, dch, dhdr, dsts, trigger, link_ready, status_ready, m_delivered == DMA,
                      m_granted == DMA)
    if dflags & STATUS:
        flags |= DEV_STATUS
    if dflags & PACKET:
        flags |= DEV_PACKET
    if accepted:
        if both:
            dv[V_LAST_LINK] = 1 if pick_link else 0
        flags |= DEV_L if pick_link else DEV_P
    return flags


@register_jitable
def dev_idle(tst, dst, dch, rs):
    return red_idle(rs) and tst[S_S1] == S1_EMPTY and tst[S_LEVEL] == 0 and dma_idle(dst, dch)


class _State:
    """Every register of a device as lists (the layout `dev_cycle` takes), programmed."""

    def __init__(self, p: T3DeviceParams, *, num_devices: int, arb_mode: int, arb_threshold: int,
                 arb_starvation: int, program: Iterable[tuple[int, int, int, int, int]] | np.ndarray,
                 descriptors: dict[int, Descriptor]) -> None:
        ArbiterModel(p.arbiter, ArbiterMode(arb_mode), arb_threshold, arb_starvation)  # the arbiter's own checks
        n = p.tracker.entries
        self.dv = [0] * V_N
        self.dv[V_AMASK], self.dv[V_TMASK] = (1 << p.addr_bits) - 1, (1 << p.tracker.tag_bits) - 1
        self.tst = new_state(p.tracker)
        self.tfifo = [0] * (3 * p.tracker.fifo_depth)
        self.tables = [[0] * n for _ in range(5)]  # threshold, count, desc, enable, rearm
        rows = program.tolist() if isinstance(program, np.ndarray) else program
        for entry, thr, d, en, re in rows:
            if not 0 <= entry < n:
                raise ValueError(f"entry {entry} out of range 0..{n - 1}")
            trk_program_entry(self.tst, *self.tables, int(entry), int(thr), int(d), bool(en), bool(re))
        self.dst = dma_state(p.dma, num_devices)
        self.dtable = [0] * (T_W * p.dma.descriptors)
        for i, d in descriptors.items():
            if not 0 <= i < p.dma.descriptors:
                raise ValueError(f"descriptor index {i} out of range 0..{p.dma.descriptors - 1}")
            dma_program(self.dst, self.dtable, i, d.src_addr, d.dst_device, d.dst_addr, d.length, d.op, d.tag,
                        d.valid)
        self.dch = [0] * (C_W * p.dma.channels)
        self.dhdr = [0] * (H_W * p.dma.outstanding)
        self.dsts = [0] * (3 * p.dma.status_depth)
        self.a0 = arb_state(p.arbiter, ArbiterMode.ROUND_ROBIN, 0, 0)
        self.o0 = [0] * p.arbiter.max_reads
        self.a1 = arb_state(p.arbiter, ArbiterMode(arb_mode), arb_threshold, arb_starvation)
        self.o1 = [0] * p.arbiter.max_reads
        self.rs = red_state(p.reducer)
        self.slots = [0] * (SL_W * p.reducer.inflight)
        self.commits = [0] * (2 * p.reducer.commit_depth)

    def arrays(self) -> tuple[list, ...]:
        """The state in `dev_cycle`'s argument order."""
        return (self.dv, self.tst, self.tfifo, *self.tables, self.dst, self.dtable, self.dch, self.dhdr, self.dsts,
                self.a0, self.o0, self.a1, self.o1, self.rs, self.slots, self.commits)


def _packet(pkt: Sequence[int] | None) -> Packet | None:
    """``(addr, op, data, tag)`` from ``(addr, op, tag, data)`` or the data-less ``(addr, op, tag)``."""
    if pkt is None:
        return None
    if len(pkt) == 3:
        return int(pkt[0]), int(pkt[1]), 0, int(pkt[2])
    return int(pkt[0]), int(pkt[1]), int(pkt[3]), int(pkt[2])


_NO_PACKET = (0, 0, 0, 0)


class T3DeviceModel:
    """The whole device; the caller offers inputs and steps it one cycle at a time (`dev_cycle` interpreted).

    ``program``: the tracker's entries as ``(entry, threshold, desc, enable, rearm)`` rows (tuples or a
    ``tracker_program`` table). ``descriptors``: the DMA's table. ``mem`` holds the memory's contents.
    """

    def __init__(self, params: T3DeviceParams, mem: SimpleMemoryModel, *, num_devices: int, arb_mode: int,
                 arb_threshold: int, arb_starvation: int,
                 program: Iterable[tuple[int, int, int, int, int]] | np.ndarray,
                 descriptors: dict[int, Descriptor]) -> None:
        self.p, self.mem = params, mem
        self._s = _State(params, num_devices=num_devices, arb_mode=arb_mode, arb_threshold=arb_threshold,
                         arb_starvation=arb_starvation, program=program, descriptors=descriptors)
        self._args = self._s.arrays()
        self.tracker_stats = TrackerStats(self._s.tst)
        self.run = DmaRun()
        self.compute_words: list[tuple[int, int]] = []  # (cycle, data) of each compute read response

    def cycle(self, t: int, compute: Command | None, produce: Sequence[int] | None,
              link_in: Sequence[int] | None, link_ready: bool, status_ready: bool = True,
              compute_rsp_ready: bool = True) -> tuple[bool, bool, bool, bool]:
        """One clock. ``compute`` is ``(addr, write, data)``; the packets are ``(addr, op, tag[, data])``.

        Returns (compute granted, produce accepted, link_in accepted, compute read word delivered).
        """
        prod, link = _packet(produce), _packet(link_in)
        ca, cw, cd = compute if compute is not None else _NO_PACKET[:3]
        mem = self.mem
        rv = mem.rsp_valid()
        word = mem.rsp_data() if rv else 0
        flags = dev_cycle(t, *self._args, compute is not None, ca, cw, cd, prod is not None,
                          *(prod or _NO_PACKET), link is not None, *(link or _NO_PACKET), link_ready,
                          status_ready, compute_rsp_ready, mem.cmd_ready(), mem.occupancy(), rv, word)
        if flags & DEV_PUSH:
            dv = self._s.dv
            mem.push_cmd(dv[V_PUSH_ADDR], dv[V_PUSH_WRITE], dv[V_PUSH_DATA])
        if flags & DEV_POP:
            mem.pop_rsp()
        if flags & (DEV_STATUS | DEV_PACKET):
            dst = self._s.dst
            if flags & DEV_STATUS:
                self.run.statuses.append((t, dst[D_O_SDESC], dst[D_O_STAG], dst[D_O_SERR]))
            if flags & DEV_PACKET:
                self.run.packets.append((t, dst[D_O_PDEV], dst[D_O_PADDR], dst[D_O_POP], word, dst[D_O_PTAG]))
        if flags & DEV_CRSP:
            self.compute_words.append((t, word))
        mem.step()
        return bool(flags & DEV_C), bool(flags & DEV_P), bool(flags & DEV_L), bool(flags & DEV_CRSP)

    def idle(self) -> bool:
        s = self._s
        return dev_idle(s.tst, s.dst, s.dch, s.rs)


# The compiled run ---------------------------------------------------------------------------------------------

@numba.njit(cache=True, _nrt=False)
def device_kernel(dv, tst, tfifo, threshold, count, desc, enable, rearm, dst, dtable, dch, dhdr, dsts, a0, o0, a1,
                  o1, rs, slots, commits, ms, q, pipe, rsp, words, ccyc, caddr, cwrite, cdata, pcyc, paddr, pop, pdata,
                  ptag, lcyc, laddr, lop, ldata, ltag, n_reads, seeds, thrs, max_cycles, pk, so, cr):
    """The stimulus (compute, produce, link_in columns, each with one padding row at the end; rows offered from
    their cycle until taken, in order) to the end: packets into ``pk`` rows (cycle, device, addr, op, data, tag),
    statuses into ``so`` (cycle, desc, tag, error), compute read words into ``cr`` (cycle, data).
    ``seeds``/``thrs``: the link, status and compute-response readies. Returns (packets, statuses, compute words,
    cycles); cycles -1 if the device did not finish within ``max_cycles``, -2 if ``pk`` or ``so`` is too small.
    The memory's queue and pipe drain after the run."""
    nc, np_, nl = len(ccyc) - 1, len(pcyc) - 1, len(lcyc) - 1  # without the padding rows
    ci = pi = li = 0
    npk = nso = ncr = 0
    k = 0
    while not (ci == nc and pi == np_ and li == nl and ncr == n_reads and dev_idle(tst, dst, dch, rs)):
        if k > max_cycles:
            return npk, nso, ncr, -1
        cv = ci < nc and ccyc[ci] <= k
        pv = pi < np_ and pcyc[pi] <= k
        lv = li < nl and lcyc[li] <= k
        lr = thrs[0] == 0 or ready_nb(k, seeds[0], thrs[0])
        sr = thrs[1] == 0 or ready_nb(k, seeds[1], thrs[1])
        crr = thrs[2] == 0 or ready_nb(k, seeds[2], thrs[2])
        rv = mem_rsp_valid(ms)
        word = mem_rsp_data(ms, rsp) if rv else 0
        flags = dev_cycle(
            k, dv, tst, tfifo, threshold, count, desc, enable, rearm, dst, dtable, dch, dhdr, dsts, a0, o0, a1, o1,
            rs, slots, commits, cv, caddr[ci], cwrite[ci], cdata[ci], pv, paddr[pi], pop[pi], pdata[pi], ptag[pi],
            lv, laddr[li], lop[li], ldata[li], ltag[li], lr, sr, crr, mem_cmd_ready(ms), ms[M_QN], rv, word)
        if flags & DEV_PUSH:
            mem_push(ms, dv[V_PUSH_ADDR], dv[V_PUSH_WRITE], dv[V_PUSH_DATA])
        if flags & DEV_POP:
            mem_pop(ms)
        if flags & DEV_STATUS:
            if nso == len(so):
                return npk, nso, ncr, -2
            so[nso, 0], so[nso, 1], so[nso, 2], so[nso, 3] = k, dst[D_O_SDESC], dst[D_O_STAG], dst[D_O_SERR]
            nso += 1
        if flags & DEV_PACKET:
            if npk == len(pk):
                return npk, nso, ncr, -2
            pk[npk, 0], pk[npk, 1], pk[npk, 2], pk[npk, 3] = k, dst[D_O_PDEV], dst[D_O_PADDR], dst[D_O_POP]
            pk[npk, 4], pk[npk, 5] = word, dst[D_O_PTAG]
            npk += 1
        if flags & DEV_CRSP:
            cr[ncr, 0], cr[ncr, 1] = k, word
            ncr += 1
        ci += (flags & DEV_C) != 0
        pi += (flags & DEV_P) != 0
        li += (flags & DEV_L) != 0
        mem_step(ms, q, pipe, rsp, words)
        k += 1
    while ms[M_QN] > 0 or ms[M_PN] > 0:  # writes still queued reach memory before anyone reads it back
        mem_step(ms, q, pipe, rsp, words)
    return npk, nso, ncr, k


MAX_FAST_MEMORY_LOG2 = 26  # the kernel keeps the memory as an array of 2**size_log2 words


def _i64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64)


def _padded(a: np.ndarray) -> np.ndarray:
    """An int64 column with a zero row after the last (what the kernel reads when no row is offered)."""
    out = np.zeros(len(a) + 1, np.int64)
    out[:-1] = a
    return out


def run_device_fast(p: T3DeviceParams, mem_params, *, num_devices: int, arb_mode: int, arb_threshold: int,
                    arb_starvation: int, program: np.ndarray, descriptors: dict[int, Descriptor],
                    preload: np.ndarray, compute: np.ndarray, produce: np.ndarray, link_in: np.ndarray,
                    readies: Sequence, readback: np.ndarray, max_cycles: int) -> tuple[dict[str, np.ndarray], int]:
    """The device's run compiled (`device_kernel`): ``preload`` a ``mem_words`` table, ``compute`` a ``t3_compute``
    table, ``produce``/``link_in`` ``t3_packets`` tables; ``readies`` the `ReadyPattern` of link_out, status and the
    compute responses; ``readback`` the word addresses of the ``memory`` result. Returns int64 result columns
    (``link_out`` (n, 6), ``statuses`` (n, 4), ``compute_rsp`` (n, 2), ``memory`` (n, 2), ``tracker`` (1, 5)) and
    the run's cycles."""
    if mem_params.size_log2 > MAX_FAST_MEMORY_LOG2:
        raise ValueError(f"the device kernel keeps at most 2**{MAX_FAST_MEMORY_LOG2} words")
    s = _State(p, num_devices=num_devices, arb_mode=arb_mode, arb_threshold=arb_threshold,
               arb_starvation=arb_starvation, program=program, descriptors=descriptors)
    state = [np.array(a, np.int64) for a in s.arrays()]
    mask = (1 << mem_params.size_log2) - 1
    words = np.zeros(1 << mem_params.size_log2, np.int64)
    words[_i64(preload["addr"]) & mask] = _i64(preload["data"])
    cols = [_padded(compute[k]) for k in ("cycle", "addr", "write", "data")]
    for t in (produce, link_in):
        cols += [_padded(t[k]) for k in ("cycle", "addr", "op", "data", "tag")]
    n_reads = int(np.count_nonzero(compute["write"] == 0))
    seeds = np.array([r.seed for r in readies], np.int64)
    thrs = np.array([r.threshold for r in readies], np.int64)
    n_pkts = len(produce) + len(link_in)
    so = np.zeros((n_pkts + 1, 4), np.int64)  # at most one trigger (one status) per committed packet
    cap = 4 * n_pkts + 1024
    while True:
        ms = np.array(mem_state(mem_params), np.int64)
        run_state = [a.copy() for a in state]
        run_words = words.copy()
        pk = np.zeros((cap, 6), np.int64)
        cr = np.zeros((n_reads, 2), np.int64)
        npk, nso, ncr, cycles = device_kernel(
            *run_state, ms, np.zeros(3 * mem_params.queue_depth, np.int64),
            np.zeros(2 * mem_params.rsp_depth, np.int64), np.zeros(mem_params.rsp_depth, np.int64), run_words, *cols,
            n_reads, seeds, thrs, max_cycles, pk, so, cr)
        if cycles != -2:
            break
        cap *= 4  # more link packets than guessed: run again with room for them
    if cycles < 0:
        raise RuntimeError(f"the device model did not finish within {max_cycles} cycles")
    tst = run_state[1]
    st = TrackerStats(tst.tolist())
    errors = int(st.unprogrammed > 0) | (int(st.overflow > 0) << 1)
    return {
        "link_out": pk[:npk], "statuses": so[:nso], "compute_rsp": cr[:ncr],
        "memory": np.stack([readback, run_words[readback & mask]], axis=1),
        "tracker": np.array([[errors, st.unprogrammed, st.overflow, st.triggers, st.requests]], np.int64),
    }, int(cycles)
