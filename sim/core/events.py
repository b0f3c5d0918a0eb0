"""The discrete-event core shared by every llmarch model.

Time is an integer (cycles of the model's clock). Events at the same time run in (priority, insertion order):
a lower priority number runs first, and two events with equal time and priority run in the order they were
scheduled. That total order makes every run deterministic: the same inputs give the same event sequence.

Speed: the heap holds plain tuples ``(time, priority, seq, fn, args)``, the same as a bare ``heapq`` loop;
cancelling adds ``seq`` to a set that `run` consults only when it is not empty. `at` and `after` return an
`EventHandle` (its allocation is about a fifth of the cost of an event); `post` and `post_after` schedule
without one, for hot paths that never cancel (`sim.exec.bench.bench_events` measures both against a bare
loop).
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

_new = object.__new__


class EventHandle:
    """A scheduled event; ``cancel()`` keeps it from running (a no-op once it has run)."""

    __slots__ = ("_seq", "_loop")

    def cancel(self) -> None:
        self._loop._cancelled.add(self._seq)


class EventLoop:
    """A heap-based event loop with deterministic tie-breaking."""

    __slots__ = ("now", "_heap", "_seq", "_cancelled", "_skipped")

    def __init__(self) -> None:
        self.now: int = 0
        self._heap: list[tuple[int, int, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._seq = 0              # events ever scheduled (the next insertion number)
        self._cancelled: set[int] = set()  # seq of cancelled events still in the heap (or already run)
        self._skipped = 0          # cancelled events taken off the heap without running

    @property
    def events_run(self) -> int:
        """Events run so far (cancelled ones excluded)."""
        return self._seq - len(self._heap) - self._skipped

    def at(self, time: int, fn: Callable[..., Any], *args: Any, priority: int = 0) -> EventHandle:
        """Schedule ``fn(*args)`` at absolute ``time`` (not earlier than ``now``)."""
        if time < self.now:
            raise ValueError(f"cannot schedule at {time}, the loop is already at {self.now}")
        seq = self._seq
        self._seq = seq + 1
        heappush(self._heap, (time, priority, seq, fn, args))
        h = _new(EventHandle)
        h._seq, h._loop = seq, self
        return h

    def after(self, delay: int, fn: Callable[..., Any], *args: Any, priority: int = 0) -> EventHandle:
        """Schedule ``fn(*args)`` ``delay`` (>= 0) time units from now."""
        if delay < 0:
            raise ValueError(f"cannot schedule at {self.now + delay}, the loop is already at {self.now}")
        seq = self._seq
        self._seq = seq + 1
        heappush(self._heap, (self.now + delay, priority, seq, fn, args))
        h = _new(EventHandle)
        h._seq, h._loop = seq, self
        return h

    def post(self, time: int, fn: Callable[..., Any], *args: Any, priority: int = 0) -> None:
        """`at` without a handle (the event cannot be cancelled): the fastest way to schedule."""
        if time < self.now:
            raise ValueError(f"cannot schedule at {time}, the loop is already at {self.now}")
        seq = self._seq
        self._seq = seq + 1
        heappush(self._heap, (time, priority, seq, fn, args))

    def post_after(self, delay: int, fn: Callable[..., Any], *args: Any, priority: int = 0) -> None:
        """`after` without a handle (the event cannot be cancelled)."""
        if delay < 0:
            raise ValueError(f"cannot schedule at {self.now + delay}, the loop is already at {self.now}")
        seq = self._seq
        self._seq = seq + 1
        heappush(self._heap, (self.now + delay, priority, seq, fn, args))

    def pending(self) -> int:
        """Events in the heap, cancelled ones not yet reached included."""
        return len(self._heap)

    def run(self, until: int | None = None) -> int:
        """Run events in order until none is left (or the next is later than ``until``); return ``now``."""
        heap, pop, cancelled = self._heap, heappop, self._cancelled
        if until is None:
            while heap:
                time, _, seq, fn, args = pop(heap)
                if cancelled and seq in cancelled:
                    cancelled.discard(seq)
                    self._skipped += 1
                    continue
                self.now = time
                fn(*args)
        else:
            while heap:
                if heap[0][0] > until:
                    self.now = until
                    break
                time, _, seq, fn, args = pop(heap)
                if cancelled and seq in cancelled:
                    cancelled.discard(seq)
                    self._skipped += 1
                    continue
                self.now = time
                fn(*args)
        return self.now
