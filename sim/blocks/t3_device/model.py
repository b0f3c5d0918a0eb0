"""Cycle model of `hw.t3_device.T3Device` in front of `hw.memory.SimpleMemory`, stepped one cycle at a time.

It composes the blocks' cycle models the way the RTL composes the blocks: the DMA engine
(`sim.blocks.dma.model.DmaModel`), both arbiters (`sim.blocks.arbiter.model.ArbiterModel`: the round-robin merge of the
reducer's and the DMA's traffic, then MCA against compute) and the memory (`SimpleMemoryModel`), plus
register-level models of the reducer and the tracker written here for cycle stepping (their own models,
`sim.blocks.reducer.model` and `sim.blocks.tracker.model`, are transaction-level and event-driven). Data values are not
modelled: the model answers *when*; the co-simulation's numpy reference answers *what*.

Each cycle is evaluated in the RTL's combinational order: the input merge picks a packet; the reducer's and the
DMA's command offers follow from their state; the merge arbiter picks one; the MCA arbiter grants it or the
compute command against the memory; responses flow back the same way; then every register updates.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from hw.arbiter import ArbiterMode, Requester
from hw.reducer import ReduceOp
from hw.t3_device import BYTES_PER_WORD, T3DeviceParams
from sim.blocks.arbiter.model import ArbiterModel
from sim.blocks.dma.model import Descriptor, DmaModel, DmaRun
from sim.blocks.memory.model import SimpleMemoryModel

REDUCER, DMA = Requester.COMPUTE, Requester.COMM  # the merge arbiter's two requesters


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


@dataclass
class _Slot:
    addr: int
    is_add: bool
    tag: int
    has_word: bool = False


class ReducerRegs:
    """The reducer's registers (`hw.reducer`): in-flight queue, write-back register, commit FIFO."""

    def __init__(self, inflight: int, commit_depth: int) -> None:
        self.inflight, self.commit_depth = inflight, commit_depth
        self.slots: deque[_Slot] = deque()
        self.wb: tuple[int, int] | None = None  # (addr, tag)
        self.commits: deque[int] = deque()  # tags
        self.applied = 0

    def offer(self, pkt: tuple[int, int, int] | None) -> tuple[tuple[int, int, int] | None, bool, bool]:
        """(command offer, wants_write, read_go) for this cycle, given the packet on ``pkt``."""
        wants_write = self.wb is not None and len(self.commits) < self.commit_depth
        if wants_write:
            return (self.wb[0], 1, 0), True, False
        if pkt is not None and pkt[1] != ReduceOp.STORE and len(self.slots) < self.inflight \
                and not self._hazard(pkt[0]):
            return (pkt[0], 0, 0), False, True
        return None, False, False

    def _hazard(self, addr: int) -> bool:
        return (self.wb is not None and self.wb[0] == addr) or any(s.addr == addr for s in self.slots)

    def cycle(self, pkt: tuple[int, int, int] | None, granted: bool, got_word: bool, commit_ready: bool) -> bool:
        """Advance one clock; returns whether ``pkt`` (addr, op, tag) was accepted."""
        wants_write = self.wb is not None and len(self.commits) < self.commit_depth
        write_fire = wants_write and granted
        wb_free = self.wb is None or write_fire
        accepted = False
        if pkt is not None and len(self.slots) < self.inflight:
            if pkt[1] == ReduceOp.STORE:
                accepted = True
            else:
                accepted = not self._hazard(pkt[0]) and not wants_write and granted
        target = next((s for s in self.slots if s.is_add and not s.has_word), None) if got_word else None
        head = self.slots[0] if self.slots else None
        pop = head is not None and wb_free and (not head.is_add or head.has_word or (target is head))
        commit_out = commit_ready and bool(self.commits)
        if commit_out:
            self.commits.popleft()
        if write_fire:
            self.commits.append(self.wb[1])
            self.applied += 1
        if pop:
            self.slots.popleft()
            self.wb = (head.addr, head.tag)
        elif write_fire:
            self.wb = None
        if target is not None and not (pop and target is head):
            target.has_word = True
        if accepted:
            self.slots.append(_Slot(pkt[0], pkt[1] != ReduceOp.STORE, pkt[2]))
        return accepted

    def commit_head(self) -> int | None:
        return self.commits[0] if self.commits else None

    def idle(self) -> bool:
        return not self.slots and self.wb is None and not self.commits


class TrackerRegs:
    """The tracker's request pipeline and trigger FIFO (`hw.tracker`), without the config port."""

    def __init__(self, fifo_depth: int, program: list[tuple[int, int, int, int, int]]) -> None:
        self.depth = fifo_depth
        self.threshold = {e: thr for e, thr, _, _, _ in program}
        self.desc = {e: d for e, _, d, _, _ in program}
        self.enable = {e: bool(en) for e, _, _, en, _ in program}
        self.rearm = {e: bool(r) for e, _, _, _, r in program}
        self.count: dict[int, int] = {}
        self.s1: int | None = None  # desc that fires, -1 for none
        self.fifo: deque[tuple[int, int]] = deque()  # (push cycle, desc)

    def req_ready(self) -> bool:
        return len(self.fifo) + (self.s1 is not None) < self.depth

    def trigger(self, t: int) -> int | None:
        return self.fifo[0][1] if self.fifo and self.fifo[0][0] < t else None

    def cycle(self, t: int, req_tag: int | None, trigger_taken: bool) -> None:
        if trigger_taken:
            self.fifo.popleft()
        if self.s1 is not None:
            if self.s1 >= 0:
                self.fifo.append((t, self.s1))
            self.s1 = None
        if req_tag is not None:
            fire = -1
            if self.enable.get(req_tag):
                c = self.count.get(req_tag, 0) + BYTES_PER_WORD
                if c >= self.threshold[req_tag]:
                    fire, c = self.desc[req_tag], 0
                    self.enable[req_tag] = self.rearm[req_tag]
                self.count[req_tag] = c
            self.s1 = fire

    def idle(self) -> bool:
        return self.s1 is None and not self.fifo


class T3DeviceModel:
    """The whole device; the caller offers inputs and steps it one cycle at a time."""

    def __init__(self, params: T3DeviceParams, mem: SimpleMemoryModel, *, num_devices: int, arb_mode: int,
                 arb_threshold: int, arb_starvation: int, program: list[tuple[int, int, int, int, int]],
                 descriptors: dict[int, Descriptor]) -> None:
        self.p, self.mem = params, mem
        self.reducer = ReducerRegs(params.reducer.inflight, params.reducer.commit_depth)
        self.tracker = TrackerRegs(params.tracker.fifo_depth, program)
        self.dma = DmaModel(params.dma, num_devices)
        for i, d in descriptors.items():
            self.dma.program(i, d)
        self.merge = ArbiterModel(params.arbiter, ArbiterMode.ROUND_ROBIN, 0, 0)
        self.mca = ArbiterModel(params.arbiter, ArbiterMode(arb_mode), arb_threshold, arb_starvation)
        self.last_link = False
        self.run = DmaRun()
        self._dma_port = _Port()

    def _dma_offer(self) -> tuple[int, int, int] | None:
        d = self.dma
        active = [c is not None for c in d.channels]
        if not any(active) or len(d.headers) >= d.p.outstanding:
            return None
        n = d.p.channels
        cur = d.turn
        if not active[cur]:
            cur = next(((d.turn + k) % n for k in range(1, n) if active[(d.turn + k) % n]), cur)
        return (d.channels[cur]["src"], 0, 0)

    def _dma_rsp_ready(self, link_ready: bool) -> bool:
        d = self.dma
        if not d.headers:
            return False
        last = d.headers[0][5]
        return link_ready and (not last or len(d.statuses) < d.p.status_depth)

    def cycle(self, t: int, compute: tuple[int, int, int] | None, produce: tuple[int, int, int] | None,
              link_in: tuple[int, int, int] | None, link_ready: bool, status_ready: bool = True,
              compute_rsp_ready: bool = True) -> tuple[bool, bool, bool, bool]:
        """One clock. Inputs are (addr, write, data) for ``compute`` and (addr, op, tag) for the packets.
        Returns (compute granted, produce accepted, link_in accepted, compute read word delivered)."""
        both = produce is not None and link_in is not None
        pick_link = (not self.last_link) if both else link_in is not None
        pkt = link_in if pick_link else produce

        red_offer, _, _ = self.reducer.offer(pkt)
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

        commit_ready = self.tracker.req_ready()
        commit_tag = self.reducer.commit_head() if commit_ready else None
        accepted = self.reducer.cycle(pkt, m_granted == REDUCER,
                                      m_delivered is not None and m_delivered[0] == REDUCER, commit_ready)
        trig = self.tracker.trigger(t)
        taken = trig is not None and self.dma.trigger_ready()
        self.tracker.cycle(t, commit_tag, taken)

        dport = self._dma_port
        dport.ready = m_granted == DMA
        dport.word = m_delivered[1] if m_delivered is not None and m_delivered[0] == DMA else None
        self.dma.cycle(t, dport, trig if taken else None, link_ready, status_ready, self.run)
        self.mem.step()

        if accepted and both:
            self.last_link = pick_link
        compute_word = delivered is not None and delivered[0] == Requester.COMPUTE
        return (granted == Requester.COMPUTE, accepted and not pick_link, accepted and pick_link, compute_word)

    def idle(self) -> bool:
        return self.reducer.idle() and self.tracker.idle() and self.dma.idle()
