"""Cycle model of `hw.t3_device.T3Device` in front of `hw.memory.SimpleMemory`, stepped one cycle at a time.

The device is a composition, and so is its model. What is a block's own model and what is written here:

* tracker: `sim.blocks.tracker.model.TrackerModel` itself (count saturation, overflow and unprogrammed
  counters, re-arm, the trigger FIFO), unchanged, in its own `EventLoop` that the device runs up to each cycle.
  The reducer's commit-FIFO head is the tracker's one pending request (``submit`` once, at the cycle it
  appears); the tracker takes it when its ``req.ready`` is high, exactly as ``commit.ready = req.ready`` in the
  RTL, and the device pops the commit FIFO when the tracker's request count moves. The trigger consumer's
  ``ready`` is the DMA's ``trigger.ready``, read before the DMA steps.
* DMA engine: `sim.blocks.dma.model.DmaModel` (stepped). Its memory command and response readiness are
  decided inside ``DmaModel.cycle``; the arbiters need them before that call, so `_dma_offer` and
  `_dma_rsp_ready` read them from the DMA's registers (the same rules, evaluated a step earlier).
* both arbiters: `sim.blocks.arbiter.model.ArbiterModel` (the round-robin merge of the reducer's and the
  DMA's traffic, then MCA against compute); memory: `sim.blocks.memory.model.SimpleMemoryModel`.
* reducer: `ReducerStep` here. The reducer's block model (`sim.blocks.reducer.model.ReducerModel`) is
  closed-form: it solves each packet's handshake cycles assuming it alone owns a `SimpleMemory`. In the device
  its commands go through two arbiters that decide cycle by cycle whether they are taken, so that model cannot
  be composed; its registers are stepped here instead. The arithmetic is the reducer's own rule
  (`sim.blocks.reducer.reference.reduce_words`, bit-exact to `hw.reducer`); the ordering rules (in-order
  queue, address hazard, writes before reads, commit FIFO room) are checked against ``ReducerModel`` by
  ``tests/blocks/t3_device/test_t3_device_model.py`` on the reducer's own conditions (every accept, write and
  commit cycle equal, every word equal to `apply_packets`).

Data values are modelled: reducer writes carry the reduced word, the DMA reads it from the memory model, so the
model's link packets, compute responses and final memory are the device's, not only their cycles.

Each cycle is evaluated in the RTL's combinational order: the input merge picks a packet; the reducer's and the
DMA's command offers follow from their state; the merge arbiter picks one; the MCA arbiter grants it or the
compute command against the memory; responses flow back the same way; the tracker ticks (request in, trigger
out); then the reducer, the DMA and the memory update.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from hw.arbiter import ArbiterMode, Requester
from hw.reducer import ReduceOp, ReducerParams
from hw.t3_device import BYTES_PER_WORD, T3DeviceParams
from hw.tracker import RequestKind
from sim.blocks.arbiter.model import ArbiterModel
from sim.blocks.dma.model import Descriptor, DmaModel, DmaRun
from sim.blocks.memory.model import SimpleMemoryModel
from sim.blocks.reducer.reference import reduce_words
from sim.blocks.tracker.model import TrackerModel, program_tracker
from sim.core.events import EventLoop

REDUCER, DMA = Requester.COMPUTE, Requester.COMM  # the merge arbiter's two requesters

Command = tuple[int, int, int]  # addr, write, data
Packet = tuple[int, int, int, int]  # addr, op, data, tag


class _Port:
    """A memory port as seen below an arbiter: readiness and responses decided by the level above."""

    def __init__(self) -> None:
        self.ready = False
        self.word: int | None = None
        self.occ = 0

    def cmd_ready(self) -> bool:
        return self.ready

    def push_cmd(self, addr: int, write: int, data: int) -> None:
        pass  # the level above has already passed the command on

    def occupancy(self) -> int:
        return self.occ

    def rsp_valid(self) -> bool:
        return self.word is not None

    def rsp_data(self) -> int:
        return self.word if self.word is not None else 0

    def pop_rsp(self) -> None:
        self.word = None


def reduce_word(op: int, old: int, new: int) -> int:
    """The word the reducer writes back (the reducer's reference arithmetic, one word)."""
    return int(reduce_words(op, np.uint32(old), np.uint32(new)))


@dataclass
class _Slot:
    addr: int
    op: int
    data: int
    tag: int
    word: int | None = None  # the read word, once it has arrived (ADD_* only)


class ReducerStep:
    """The reducer's registers (`hw.reducer`), stepped: in-flight queue, write-back register, commit FIFO.

    Per cycle the caller asks `offer` (the command on ``mem.cmd`` given the packet on ``pkt``), routes it, then
    calls `cycle` with the grant, the read word on ``mem.rsp`` (``rsp.ready`` is always high) and
    ``commit.ready``.
    """

    def __init__(self, params: ReducerParams) -> None:
        self.inflight, self.commit_depth = params.inflight, params.commit_depth
        self.slots: deque[_Slot] = deque()
        self.wb: tuple[int, int, int] | None = None  # (addr, data, tag)
        self.commits: deque[tuple[int, int]] = deque()  # (tag, addr)
        self.applied = 0

    def _wants_write(self) -> bool:
        return self.wb is not None and len(self.commits) < self.commit_depth

    def _hazard(self, addr: int) -> bool:
        return (self.wb is not None and self.wb[0] == addr) or any(s.addr == addr for s in self.slots)

    def offer(self, pkt: Packet | None) -> Command | None:
        """The command on ``mem.cmd`` this cycle (writes first), given the packet on ``pkt``."""
        if self._wants_write():
            return self.wb[0], 1, self.wb[1]
        if pkt is not None and pkt[1] != ReduceOp.STORE and len(self.slots) < self.inflight \
                and not self._hazard(pkt[0]):
            return pkt[0], 0, 0
        return None

    def cycle(self, pkt: Packet | None, granted: bool, word: int | None, commit_ready: bool) -> bool:
        """Advance one clock; returns whether ``pkt`` was accepted."""
        wants_write = self._wants_write()
        write_fire = wants_write and granted
        wb_free = self.wb is None or write_fire
        accepted = False
        if pkt is not None and len(self.slots) < self.inflight:
            if pkt[1] == ReduceOp.STORE:
                accepted = True
            else:
                accepted = not self._hazard(pkt[0]) and not wants_write and granted
        # a read word goes to the oldest ADD still waiting for one (reads return in slot order)
        target = next((s for s in self.slots if s.op != ReduceOp.STORE and s.word is None), None) \
            if word is not None else None
        head = self.slots[0] if self.slots else None
        head_word = None
        if head is not None:
            head_word = head.word if head.word is not None else (word if target is head else None)
        pop = head is not None and wb_free and (head.op == ReduceOp.STORE or head_word is not None)
        if commit_ready and self.commits:
            self.commits.popleft()
        if write_fire:
            self.commits.append((self.wb[2], self.wb[0]))
            self.applied += 1
        if pop:
            self.slots.popleft()
            self.wb = (head.addr, reduce_word(head.op, head_word or 0, head.data), head.tag)
        elif write_fire:
            self.wb = None
        if target is not None and not (pop and target is head):
            target.word = word
        if accepted:
            self.slots.append(_Slot(*pkt))
        return accepted

    def commit_head(self) -> tuple[int, int] | None:
        """``(tag, addr)`` offered on ``commit`` this cycle."""
        return self.commits[0] if self.commits else None

    def idle(self) -> bool:
        return not self.slots and self.wb is None and not self.commits


def _packet(pkt: Sequence[int] | None) -> Packet | None:
    """``(addr, op, data, tag)`` from ``(addr, op, tag, data)`` or the data-less ``(addr, op, tag)``."""
    if pkt is None:
        return None
    if len(pkt) == 3:
        return int(pkt[0]), int(pkt[1]), 0, int(pkt[2])
    return int(pkt[0]), int(pkt[1]), int(pkt[3]), int(pkt[2])


class T3DeviceModel:
    """The whole device; the caller offers inputs and steps it one cycle at a time.

    ``program``: the tracker's entries as ``(entry, threshold, desc, enable, rearm)`` rows (tuples or a
    ``tracker_program`` table). ``descriptors``: the DMA's table. ``mem`` holds the memory's contents.
    """

    def __init__(self, params: T3DeviceParams, mem: SimpleMemoryModel, *, num_devices: int, arb_mode: int,
                 arb_threshold: int, arb_starvation: int,
                 program: Iterable[tuple[int, int, int, int, int]] | np.ndarray,
                 descriptors: dict[int, Descriptor]) -> None:
        self.p, self.mem = params, mem
        self.reducer = ReducerStep(params.reducer)
        self.loop = EventLoop()
        self._trigger: int | None = None
        self.tracker = TrackerModel(self.loop, params.tracker, ready=self._trigger_ready,
                                    on_trigger=self._on_trigger)
        if isinstance(program, np.ndarray):
            program_tracker(self.tracker, program)
        else:
            for entry, thr, desc, en, rearm in program:
                self.tracker.program(int(entry), int(thr), int(desc), enable=bool(en), rearm=bool(rearm))
        self._req_pending = False  # the reducer's commit head has been submitted to the tracker
        self.dma = DmaModel(params.dma, num_devices)
        for i, d in descriptors.items():
            self.dma.program(i, d)
        self.merge = ArbiterModel(params.arbiter, ArbiterMode.ROUND_ROBIN, 0, 0)
        self.mca = ArbiterModel(params.arbiter, ArbiterMode(arb_mode), arb_threshold, arb_starvation)
        self.last_link = False
        self.run = DmaRun()
        self.compute_words: list[tuple[int, int]] = []  # (cycle, data) of each compute read response
        self._dma_port = _Port()

    # --- the tracker's consumer -------------------------------------------------------------------------
    def _trigger_ready(self, t: int) -> bool:
        return self.dma.trigger_ready()

    def _on_trigger(self, t: int, desc: int, entry: int) -> None:
        self._trigger = desc

    # --- the DMA's memory port, before it steps ---------------------------------------------------------
    def _dma_offer(self) -> Command | None:
        d = self.dma
        active = [c is not None for c in d.channels]
        if not any(active) or len(d.headers) >= d.p.outstanding:
            return None
        n = d.p.channels
        cur = d.turn
        if not active[cur]:
            cur = next(((d.turn + k) % n for k in range(1, n) if active[(d.turn + k) % n]), cur)
        return d.channels[cur]["src"], 0, 0

    def _dma_rsp_ready(self, link_ready: bool) -> bool:
        d = self.dma
        if not d.headers:
            return False
        last = d.headers[0][5]
        return link_ready and (not last or len(d.statuses) < d.p.status_depth)

    def cycle(self, t: int, compute: Command | None, produce: Sequence[int] | None,
              link_in: Sequence[int] | None, link_ready: bool, status_ready: bool = True,
              compute_rsp_ready: bool = True) -> tuple[bool, bool, bool, bool]:
        """One clock. ``compute`` is ``(addr, write, data)``; the packets are ``(addr, op, tag[, data])``.

        Returns (compute granted, produce accepted, link_in accepted, compute read word delivered).
        """
        produce, link_in = _packet(produce), _packet(link_in)
        both = produce is not None and link_in is not None
        pick_link = (not self.last_link) if both else link_in is not None
        pkt = link_in if pick_link else produce

        red_offer = self.reducer.offer(pkt)
        dma_offer = self._dma_offer()
        merge_offers = [red_offer, dma_offer]
        merge_sel = self.merge.select(merge_offers, 0)
        comm_offer = merge_offers[merge_sel] if merge_sel is not None else None
        comm_rsp_ready = bool(self.merge.owners) and (
            self.merge.owners[0] == REDUCER or self._dma_rsp_ready(link_ready))
        granted, delivered = self.mca.cycle(self.mem, [compute, comm_offer], [compute_rsp_ready, comm_rsp_ready])

        port = _Port()
        port.ready = granted == Requester.COMM
        if delivered is not None and delivered[0] == Requester.COMM:
            port.word = delivered[1]
        dma_rsp_ready = self._dma_rsp_ready(link_ready)
        m_granted, m_delivered = self.merge.cycle(port, merge_offers, [True, dma_rsp_ready])

        # The tracker: the commit head is its request; it ticks up to this cycle (trigger out, request in).
        head = self.reducer.commit_head()
        if head is not None and not self._req_pending:
            self.tracker.submit(t, head[0], BYTES_PER_WORD, head[1], RequestKind.UPDATE)
            self._req_pending = True
        requests = self.tracker.stats.requests
        self._trigger = None
        self.loop.run(until=t)
        commit_ready = self.tracker.stats.requests != requests
        if commit_ready:
            self._req_pending = False

        red_word = m_delivered[1] if m_delivered is not None and m_delivered[0] == REDUCER else None
        accepted = self.reducer.cycle(pkt, m_granted == REDUCER, red_word, commit_ready)

        dport = self._dma_port
        dport.ready = m_granted == DMA
        dport.word = m_delivered[1] if m_delivered is not None and m_delivered[0] == DMA else None
        self.dma.cycle(t, dport, self._trigger, link_ready, status_ready, self.run)
        self.mem.step()

        if accepted and both:
            self.last_link = pick_link
        compute_word = delivered is not None and delivered[0] == Requester.COMPUTE
        if compute_word:
            self.compute_words.append((t, delivered[1]))
        return (granted == Requester.COMPUTE, accepted and not pick_link, accepted and pick_link, compute_word)

    def idle(self) -> bool:
        return self.reducer.idle() and self.tracker.idle and self.dma.idle()
