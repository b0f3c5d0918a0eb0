"""Cycle model of the track-and-trigger unit (`hw.tracker.TrackTrigger`).

The model mirrors the RTL cycle by cycle where it matters and skips cycles where nothing can change:

* cycle *t*: ``req.ready`` is ``level + stage1_busy < fifo_depth`` (level counts triggers pushed before *t*);
  the FIFO head leaves if it was pushed before *t* and the consumer is ready at *t*; the request in stage 1
  (accepted at *t-1*) pushes its trigger; a new request is accepted if one is available and ``req.ready``.
* the table update of an accepted request is applied at acceptance: requests are processed in order, so this
  is equivalent to the RTL's update one cycle later (its read port is transparent to its write port).
* the tracker ticks at every cycle while stage 1 or the FIFO is busy, otherwise at the next request's cycle.

One source of truth, two ways to run it. The rules above are written once, as the numba functions
`program_entry`, `head_due`, `tick` and `next_tick` over a state vector (``S_*`` slots), a FIFO
ring (``fifo``: push cycle, desc, entry per slot) and the table columns:

* `replay_fast` (the block's ``model`` runner) runs them compiled, in one jitted loop over a whole request table
  (`replay_kernel`), with the output backpressure of a `sim.core.stimulus.ReadyPattern` (`sim.core.fast.ready_nb`).
* `TrackerModel`, the event-driven class that system models compose (several trackers, DMA engines and links in
  one `sim.core.events.EventLoop`; arbitrary ``ready`` and ``on_trigger`` callables), calls the *same* functions
  uncompiled (they are `numba.extending.register_jitable` functions) on Python lists: a jitted call per cycle
  from Python costs more than the interpreted rule itself. ``tests/blocks/tracker/test_tracker_fast.py`` runs
  both on the same random stimuli.

`TrackerModel` receives requests with ``submit`` at the cycle they reach the tracker; among the available
requests it takes the one that arrived first (ties: lower ``source``, then submission order); `replay_fast`
orders a request table the same way.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
from numba.extending import register_jitable

from hw.tracker import TrackerParams
from sim.core.events import EventLoop
from sim.core.fast import ready_nb
from sim.core.stimulus import ReadyPattern

TriggerCallback = Callable[[int, int, int], None]

# The state vector: FIFO ring position, stage 1, the last trigger out, counters, and the parameters the rules use.
S_HEAD, S_LEVEL, S_S1, S_S1_DESC, S_S1_ENTRY, S_OUT_DESC, S_OUT_ENTRY = range(7)
S_REQUESTS, S_TRIGGERS, S_UNPROGRAMMED, S_OVERFLOW, S_STALLS, S_LAST_TRIGGER = range(7, 13)
S_DEPTH, S_MAX_COUNT, S_DESC_MASK = range(13, 16)
N_STATE = 16
S1_EMPTY, S1_BUBBLE, S1_FIRES = 0, 1, 2  # stage 1: no request / a request that fires nothing / one that fires

# Flags `tick` returns.
POPPED, ACCEPTED, STALLED, UNPROGRAMMED, OVERFLOW, FIRED = 1, 2, 4, 8, 16, 32


def new_state(params: TrackerParams) -> list[int]:
    """A reset state vector (a list; ``np.array(..., np.int64)`` of it for the kernel)."""
    st = [0] * N_STATE
    st[S_LAST_TRIGGER] = -1
    st[S_DEPTH] = params.fifo_depth
    st[S_MAX_COUNT] = (1 << params.count_bits) - 1
    st[S_DESC_MASK] = (1 << params.desc_bits) - 1
    return st


# The rules ---------------------------------------------------------------------------------------------------
# ``st``, ``fifo`` and the table columns (``threshold``, ``count``, ``desc``, ``enable``, ``rearm``) are int64
# arrays in the kernels and lists in `TrackerModel`; no annotations, as numba specialises on what it is given.

@register_jitable(inline="always")
def program_entry(st, threshold, count, desc, enable, rearm, entry, thr, d, en, re):
    """A ``CfgOp.PROGRAM`` command: the fields masked to their widths, the count restarts from zero."""
    threshold[entry] = thr & st[S_MAX_COUNT]
    desc[entry] = d & st[S_DESC_MASK]
    enable[entry] = 1 if en else 0
    rearm[entry] = 1 if re else 0
    count[entry] = 0


@register_jitable(inline="always")
def head_due(t, st, fifo):
    """The FIFO head may leave at ``t`` (it was pushed before ``t``), if the consumer is ready."""
    return st[S_LEVEL] > 0 and fifo[3 * st[S_HEAD]] < t


@register_jitable(inline="always")
def tick(t, st, fifo, threshold, count, desc, enable, rearm, pop, avail, tag, size):
    """Cycle ``t``: the FIFO head leaves if ``pop`` (due and consumer ready; it is then in ``S_OUT_*``), stage 1
    pushes its trigger, and the request ``(tag, size)``, if ``avail``, is accepted when ``req.ready``.
    Returns the `POPPED` / `ACCEPTED` / `STALLED` / ... flags.

    `TrackerModel` runs it as plain Python; the kernels inline it compiled."""
    depth = st[S_DEPTH]
    s1 = st[S_S1]
    ready_in = st[S_LEVEL] + (1 if s1 != S1_EMPTY else 0) < depth
    flags = 0
    if pop:
        h = st[S_HEAD]
        st[S_OUT_DESC] = fifo[3 * h + 1]
        st[S_OUT_ENTRY] = fifo[3 * h + 2]
        h += 1
        st[S_HEAD] = 0 if h == depth else h
        st[S_LEVEL] -= 1
        st[S_LAST_TRIGGER] = t
        flags = POPPED
    if s1 != S1_EMPTY:
        if s1 == S1_FIRES:
            tail = st[S_HEAD] + st[S_LEVEL]
            if tail >= depth:
                tail -= depth
            fifo[3 * tail] = t
            fifo[3 * tail + 1] = st[S_S1_DESC]
            fifo[3 * tail + 2] = st[S_S1_ENTRY]
            st[S_LEVEL] += 1
        st[S_S1] = S1_EMPTY
    if not avail:
        return flags
    if not ready_in:
        st[S_STALLS] += 1
        return flags | STALLED
    # accepted: the table update (saturating count, fire at the threshold, re-arm)
    st[S_REQUESTS] += 1
    flags |= ACCEPTED
    if enable[tag] == 0:
        st[S_UNPROGRAMMED] += 1
        st[S_S1] = S1_BUBBLE
        return flags | UNPROGRAMMED
    total = count[tag] + size
    if total > st[S_MAX_COUNT]:
        total = st[S_MAX_COUNT]
        st[S_OVERFLOW] += 1
        flags |= OVERFLOW
    if total >= threshold[tag]:
        st[S_TRIGGERS] += 1
        count[tag] = 0
        enable[tag] = rearm[tag]
        st[S_S1] = S1_FIRES
        st[S_S1_DESC] = desc[tag]
        st[S_S1_ENTRY] = tag
        return flags | FIRED
    count[tag] = total
    st[S_S1] = S1_BUBBLE
    return flags


@register_jitable(inline="always")
def next_tick(t, st, next_avail):
    """The tracker's next tick after ``t``: the next cycle while busy, else the next request's (``next_avail``,
    -1 if none); -1 when it is idle for good."""
    if st[S_S1] != S1_EMPTY or st[S_LEVEL] > 0:
        return t + 1
    if next_avail < 0:
        return -1
    return next_avail if next_avail > t else t + 1


# The compiled replay -----------------------------------------------------------------------------------------
# The kernels allocate nothing, so they run without numba's reference counting (``_nrt=False``): with it, every
# array the inlined rules pass around is increfed and decrefed each cycle, which made the replay 3-4x slower.

@numba.njit(cache=True, _nrt=False)
def program_kernel(st, threshold, count, desc, enable, rearm, entries, thrs, descs, ens, res):
    for k in range(len(entries)):
        program_entry(st, threshold, count, desc, enable, rearm, np.int64(entries[k]), np.int64(thrs[k]),
                      np.int64(descs[k]), ens[k] != 0, res[k] != 0)


@numba.njit(cache=True, _nrt=False)
def in_order(cyc, src):
    """The rows are in the order `TrackerModel` takes them: by cycle, then source (then row)."""
    for i in range(1, len(cyc)):
        if cyc[i] < cyc[i - 1] or (cyc[i] == cyc[i - 1] and src[i] < src[i - 1]):
            return False
    return True


@numba.njit(cache=True, _nrt=False)
def replay_kernel(cyc, tags, sizes, st, fifo, threshold, count, desc, enable, rearm, seed, ready_threshold,
                  out_cycle, out_desc, out_entry):
    """Replay requests (columns of a table in `in_order`) to the end; return (triggers written, last tick)."""
    n = len(cyc)
    if n == 0:
        return 0, 0
    i = 0
    k = 0
    t = np.int64(cyc[0])
    while True:
        pop = head_due(t, st, fifo) and (ready_threshold == 0 or ready_nb(t, seed, ready_threshold))
        avail = i < n and np.int64(cyc[i]) <= t
        tag = np.int64(tags[i]) if avail else np.int64(0)
        size = np.int64(sizes[i]) if avail else np.int64(0)
        flags = tick(t, st, fifo, threshold, count, desc, enable, rearm, pop, avail, tag, size)
        if flags & POPPED:
            out_cycle[k] = t
            out_desc[k] = st[S_OUT_DESC]
            out_entry[k] = st[S_OUT_ENTRY]
            k += 1
        if flags & ACCEPTED:
            i += 1
        nt = next_tick(t, st, np.int64(cyc[i]) if i < n else np.int64(-1))
        if nt < 0:
            return k, t
        t = nt


@dataclass
class FastReplay:
    """What `replay_fast` returns: the triggers as a ``triggers`` table, the last tick, and the state counters."""

    triggers: np.ndarray
    last_tick: int
    stats: TrackerStats


def replay_fast(params: TrackerParams, program: np.ndarray, requests: np.ndarray, ready=None) -> FastReplay:
    """Replay a ``tracker_requests`` table with the compiled rules (the model side of RTL agreement).

    ``ready``: a `sim.core.stimulus.ReadyPattern` of the trigger consumer, or None (always ready); for any other
    consumer use `replay_tracker`. Same results as `replay_tracker`: triggers, ``stats``, and its last tick
    (``loop.now``).
    """
    from sim.core import trace

    if ready is not None and not isinstance(ready, ReadyPattern):
        raise TypeError("replay_fast takes a ReadyPattern (or None); use replay_tracker for other consumers")
    n = params.entries
    st = np.array(new_state(params), dtype=np.int64)
    fifo = np.zeros(3 * params.fifo_depth, dtype=np.int64)
    threshold, count, desc, enable, rearm = (np.zeros(n, dtype=np.int64) for _ in range(5))
    entries = program["entry"]
    if len(entries) and entries.max() >= n:
        raise ValueError(f"program entry {int(entries.max())} out of range 0..{n - 1}")
    program_kernel(st, threshold, count, desc, enable, rearm, entries, program["threshold"], program["desc"],
                   program["enable"], program["rearm"])
    if not in_order(requests["cycle"], requests["source"]):
        requests = requests[np.lexsort((requests["source"], requests["cycle"]))]
    tags = requests["tag"]
    if len(tags) and tags.max() >= n:
        raise ValueError(f"request tag {int(tags.max())} out of range 0..{n - 1}")
    out = np.empty(len(requests), dtype=trace.TABLE_KINDS["triggers"])  # at most one trigger per request
    seed, thr = (0, 0) if ready is None else (int(ready.seed), int(ready.threshold))
    k, last = replay_kernel(requests["cycle"], tags, requests["size"], st, fifo, threshold, count, desc, enable,
                            rearm, seed, thr, out["cycle"], out["desc"], out["entry"])
    return FastReplay(out[:k], int(last), TrackerStats(st.tolist()))  # a view: copying costs ~10 % of the run


# The event-driven class --------------------------------------------------------------------------------------

_program_entry, _head_due, _tick, _next_tick = program_entry, head_due, tick, next_tick


class TrackerStats:
    """Counters the RTL exposes as status registers, plus the model's own timing figures: a view of a state
    vector."""

    __slots__ = ("_st",)

    def __init__(self, st) -> None:
        self._st = st

    @property
    def requests(self) -> int:
        return int(self._st[S_REQUESTS])

    @property
    def triggers(self) -> int:
        return int(self._st[S_TRIGGERS])

    @property
    def unprogrammed(self) -> int:
        return int(self._st[S_UNPROGRAMMED])

    @property
    def overflow(self) -> int:
        return int(self._st[S_OVERFLOW])

    @property
    def stall_cycles(self) -> int:
        """Cycles a request was available but not accepted."""
        return int(self._st[S_STALLS])

    @property
    def last_trigger_cycle(self) -> int:
        return int(self._st[S_LAST_TRIGGER])

    @property
    def errors(self) -> set[str]:
        return {name for name, n in (("unprogrammed", self.unprogrammed), ("overflow", self.overflow)) if n}


class TrackerModel:
    """Event-driven, cycle-exact model of one tracker (the rules are the module's shared functions).

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
        self.enable = [0] * n
        self.rearm = [0] * n
        self._tables = (self.threshold, self.count, self.desc, self.enable, self.rearm)
        self._st = new_state(params)
        self._fifo = [0] * (3 * params.fifo_depth)
        self.stats = TrackerStats(self._st)
        self.triggers: list[tuple[int, int, int]] = []  # (cycle, desc, entry)
        self.accepted: list[tuple[int, int, int, int, int, int]] | None = [] if record else None
        self._ready = ready
        self._on_trigger = on_trigger
        self._pending: list[tuple[int, int, int, int, int, int, int]] = []
        self._seq = 0
        self._next_wake: int | None = None

    # Software-visible programming ------------------------------------------------------------------------
    def program(self, entry: int, threshold: int, desc: int, *, enable: bool = True, rearm: bool = False) -> None:
        """Program one entry, as a ``CfgOp.PROGRAM`` command does (the count restarts from zero)."""
        if not 0 <= entry < self.params.entries:
            raise ValueError(f"entry {entry} out of range 0..{self.params.entries - 1}")
        _program_entry(self._st, *self._tables, entry, threshold, desc, enable, rearm)

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
        st = self._st
        return st[S_S1] == S1_EMPTY and st[S_LEVEL] == 0 and not self._pending

    # Cycle behaviour ---------------------------------------------------------------------------------------
    def _wake(self, cycle: int) -> None:
        cycle = max(cycle, self.loop.now)
        if self._next_wake is None or cycle < self._next_wake:
            self._next_wake = cycle
            self.loop.post(cycle, self._on_tick, cycle, priority=self.TICK_PRIORITY)

    def _on_tick(self, t: int) -> None:
        if t != self._next_wake:
            return  # superseded by an earlier wake-up
        self._next_wake = None
        st, fifo, pend = self._st, self._fifo, self._pending
        pop = _head_due(t, st, fifo) and (self._ready is None or self._ready(t))
        if pend and pend[0][0] <= t:
            head = pend[0]
            flags = _tick(t, st, fifo, *self._tables, pop, True, head[3], head[4])
        else:
            flags = _tick(t, st, fifo, *self._tables, pop, False, 0, 0)
        if flags & POPPED:
            desc, entry = st[S_OUT_DESC], st[S_OUT_ENTRY]
            self.triggers.append((t, desc, entry))
            if self._on_trigger is not None:
                self._on_trigger(t, desc, entry)
        if flags & ACCEPTED:
            avail, _, _, tag, size, addr, kind = heapq.heappop(pend)
            if self.accepted is not None:
                self.accepted.append((avail, tag, addr, kind, size, t))
        nt = _next_tick(t, st, pend[0][0] if pend else -1)
        if nt >= 0:  # later than now and no wake-up pending: `_wake` without its checks
            self._next_wake = nt
            self.loop.post(nt, self._on_tick, nt, priority=self.TICK_PRIORITY)


def program_tracker(model: TrackerModel, program: np.ndarray) -> None:
    for row in program:
        model.program(int(row["entry"]), int(row["threshold"]), int(row["desc"]),
                      enable=bool(row["enable"]), rearm=bool(row["rearm"]))


def replay_tracker(params: TrackerParams, program: np.ndarray, requests: np.ndarray,
                   ready=None) -> TrackerModel:
    """Replay a ``tracker_requests`` table into a fresh event-driven tracker model (any ``ready`` callable)."""
    loop = EventLoop()
    tm = TrackerModel(loop, params, ready=ready)
    program_tracker(tm, program)
    for cyc, tag, size, addr, kind, src in zip(requests["cycle"].tolist(), requests["tag"].tolist(),
                                               requests["size"].tolist(), requests["addr"].tolist(),
                                               requests["kind"].tolist(), requests["source"].tolist(), strict=True):
        tm.submit(cyc, tag, size, addr, kind, src)
    loop.run()
    return tm
