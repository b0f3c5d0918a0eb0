"""Cycle model of the track-and-trigger unit (`hw.tracker.TrackTrigger`).

The model mirrors the RTL cycle by cycle where it matters and skips cycles where nothing can change:

* cycle *t*: ``req.ready`` is ``level + stage1_busy < fifo_depth`` (level counts triggers pushed before *t*);
  the FIFO head leaves if it was pushed before *t* and the consumer is ready at *t*; the request in stage 1
  (accepted at *t-1*) pushes its trigger; a new request is accepted if one is available and ``req.ready``.
* the table update of an accepted request is applied at acceptance: requests are processed in order, so this
  is equivalent to the RTL's update one cycle later (its read port is transparent to its write port).

It runs inside `sim.core.events.EventLoop`, so system models put several trackers, DMA engines and links in one
loop. Requests arrive with ``submit`` at the cycle they reach the tracker; among the available requests the
tracker takes the one that arrived first (ties: lower ``source``, then submission order).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hw.tracker import TrackerParams
from sim.core.events import EventLoop

TriggerCallback = Callable[[int, int, int], None]


@dataclass
class TrackerStats:
    """Counters the RTL exposes as status registers, plus the model's own timing figures."""

    requests: int = 0
    triggers: int = 0
    unprogrammed: int = 0
    overflow: int = 0
    stall_cycles: int = 0  # cycles a request was available but not accepted
    last_trigger_cycle: int = -1
    errors: set[str] = field(default_factory=set)


class TrackerModel:
    """Event-driven, cycle-exact model of one tracker.

    Parameters
    ----------
    loop : the event loop the tracker runs in.
    params : the same parameters the RTL is built with.
    ready : ``ready(cycle) -> bool`` of the trigger consumer; ``None`` means always ready.
    on_trigger : called as ``on_trigger(cycle, desc, entry)`` when a trigger leaves the FIFO.
    record : keep the accepted requests (in acceptance order) in ``accepted``.
    """

    TICK_PRIORITY = 100  # after every arrival scheduled at the same cycle

    def __init__(self, loop: EventLoop, params: TrackerParams, *,
                 ready: Callable[[int], bool] | None = None,
                 on_trigger: TriggerCallback | None = None, record: bool = False) -> None:
        self.loop = loop
        self.params = params
        n = params.entries
        self.threshold = [0] * n
        self.count = [0] * n
        self.desc = [0] * n
        self.enable = [False] * n
        self.rearm = [False] * n
        self.stats = TrackerStats()
        self.triggers: list[tuple[int, int, int]] = []  # (cycle, desc, entry)
        self.accepted: list[tuple[int, int, int, int, int, int]] | None = [] if record else None
        self._ready = ready
        self._on_trigger = on_trigger
        self._pending: list[tuple[int, int, int, int, int, int, int]] = []
        self._seq = 0
        self._fifo: deque[tuple[int, int, int]] = deque()  # (push cycle, desc, entry)
        self._s1: tuple[int, int] | None = None  # (desc, entry) of a firing request, or (-1, -1)
        self._next_wake: int | None = None
        self._max_count = (1 << params.count_bits) - 1

    # Software-visible programming ------------------------------------------------------------------------
    def program(self, entry: int, threshold: int, desc: int, *, enable: bool = True, rearm: bool = False) -> None:
        """Program one entry, as a ``CfgOp.PROGRAM`` command does (the count restarts from zero)."""
        if not 0 <= entry < self.params.entries:
            raise ValueError(f"entry {entry} out of range 0..{self.params.entries - 1}")
        self.threshold[entry] = threshold & self._max_count
        self.desc[entry] = desc & ((1 << self.params.desc_bits) - 1)
        self.enable[entry] = bool(enable)
        self.rearm[entry] = bool(rearm)
        self.count[entry] = 0

    # Requests ----------------------------------------------------------------------------------------------
    def submit(self, cycle: int, tag: int, size: int, addr: int = 0, kind: int = 0, source: int = 0) -> None:
        """A request reaches the tracker's input at ``cycle``."""
        if cycle < self.loop.now:
            raise ValueError(f"request at cycle {cycle} submitted late (loop is at {self.loop.now})")
        heapq.heappush(self._pending, (cycle, source, self._seq, tag, size, addr, kind))
        self._seq += 1
        self._wake(cycle)

    @property
    def idle(self) -> bool:
        return self._s1 is None and not self._fifo and not self._pending

    # Cycle behaviour ---------------------------------------------------------------------------------------
    def _wake(self, cycle: int) -> None:
        cycle = max(cycle, self.loop.now)
        if self._next_wake is None or cycle < self._next_wake:
            self._next_wake = cycle
            self.loop.at(cycle, self._tick, cycle, priority=self.TICK_PRIORITY)

    def _tick(self, t: int) -> None:
        if t != self._next_wake:
            return  # superseded by an earlier wake-up
        self._next_wake = None
        fifo = self._fifo
        s1 = self._s1
        ready_in = len(fifo) + (s1 is not None) < self.params.fifo_depth

        if fifo and fifo[0][0] < t and (self._ready is None or self._ready(t)):
            _, desc, entry = fifo.popleft()
            self.triggers.append((t, desc, entry))
            self.stats.last_trigger_cycle = t
            if self._on_trigger is not None:
                self._on_trigger(t, desc, entry)

        if s1 is not None:
            if s1[0] >= 0:
                fifo.append((t, s1[0], s1[1]))
            self._s1 = None

        pend = self._pending
        if pend and pend[0][0] <= t:
            if ready_in:
                self._accept(t, heapq.heappop(pend))
            else:
                self.stats.stall_cycles += 1

        if self._s1 is not None or fifo:
            self._wake(t + 1)
        elif pend:
            self._wake(max(pend[0][0], t + 1))

    def _accept(self, t: int, req: tuple[int, int, int, int, int, int, int]) -> None:
        avail, _, _, tag, size, addr, kind = req
        st = self.stats
        st.requests += 1
        if self.accepted is not None:
            self.accepted.append((avail, tag, addr, kind, size, t))
        if not self.enable[tag]:
            st.unprogrammed += 1
            st.errors.add("unprogrammed")
            self._s1 = (-1, -1)
            return
        total = self.count[tag] + size
        if total > self._max_count:
            total = self._max_count
            st.overflow += 1
            st.errors.add("overflow")
        if total >= self.threshold[tag]:
            st.triggers += 1
            self.count[tag] = 0
            self.enable[tag] = self.rearm[tag]
            self._s1 = (self.desc[tag], tag)
        else:
            self.count[tag] = total
            self._s1 = (-1, -1)


def program_tracker(model: TrackerModel, program: np.ndarray) -> None:
    for row in program:
        model.program(int(row["entry"]), int(row["threshold"]), int(row["desc"]),
                      enable=bool(row["enable"]), rearm=bool(row["rearm"]))


def replay_tracker(params: TrackerParams, program: np.ndarray, requests: np.ndarray,
                   ready=None) -> TrackerModel:
    """Replay a ``tracker_requests`` table into a fresh tracker model (the model side of RTL agreement)."""
    loop = EventLoop()
    tm = TrackerModel(loop, params, ready=ready)
    program_tracker(tm, program)
    for cyc, tag, size, addr, kind, src in zip(requests["cycle"].tolist(), requests["tag"].tolist(),
                                               requests["size"].tolist(), requests["addr"].tolist(),
                                               requests["kind"].tolist(), requests["source"].tolist(), strict=True):
        tm.submit(cyc, tag, size, addr, kind, src)
    loop.run()
    return tm
