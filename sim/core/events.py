"""The discrete-event core shared by every llmarch model.

Time is an integer (cycles of the model's clock). Events at the same time run in (priority, insertion order):
a lower priority number runs first, and two events with equal time and priority run in the order they were
scheduled. That total order makes every run deterministic: the same inputs give the same event sequence.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any


class EventHandle:
    """A scheduled event; ``cancel()`` keeps it from running."""

    __slots__ = ("time", "cancelled")

    def __init__(self, time: int) -> None:
        self.time = time
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class EventLoop:
    """A heap-based event loop with deterministic tie-breaking."""

    def __init__(self) -> None:
        self.now: int = 0
        self.events_run: int = 0
        self._heap: list[tuple[int, int, int, EventHandle, Callable[..., Any], tuple[Any, ...]]] = []
        self._seq = 0

    def at(self, time: int, fn: Callable[..., Any], *args: Any, priority: int = 0) -> EventHandle:
        """Schedule ``fn(*args)`` at absolute ``time`` (not earlier than ``now``)."""
        if time < self.now:
            raise ValueError(f"cannot schedule at {time}, the loop is already at {self.now}")
        handle = EventHandle(time)
        heapq.heappush(self._heap, (time, priority, self._seq, handle, fn, args))
        self._seq += 1
        return handle

    def after(self, delay: int, fn: Callable[..., Any], *args: Any, priority: int = 0) -> EventHandle:
        """Schedule ``fn(*args)`` ``delay`` time units from now."""
        return self.at(self.now + delay, fn, *args, priority=priority)

    def pending(self) -> int:
        return len(self._heap)

    def run(self, until: int | None = None) -> int:
        """Run events in order until none is left (or the next is later than ``until``); return ``now``."""
        heap = self._heap
        pop = heapq.heappop
        while heap:
            if until is not None and heap[0][0] > until:
                self.now = until
                break
            time, _, _, handle, fn, args = pop(heap)
            if handle.cancelled:
                continue
            self.now = time
            self.events_run += 1
            fn(*args)
        return self.now
