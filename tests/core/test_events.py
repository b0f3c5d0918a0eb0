"""The event core: time order, deterministic tie-breaking, cancellation, ``until``."""

from __future__ import annotations

import pytest

from sim.core.events import EventLoop


def test_order_by_time_then_priority_then_insertion():
    loop = EventLoop()
    seen = []
    loop.at(5, seen.append, "t5")
    loop.at(1, seen.append, "t1-p1", priority=1)
    loop.at(1, seen.append, "t1-p0-a")
    loop.at(1, seen.append, "t1-p0-b")
    loop.at(0, lambda: loop.after(3, seen.append, "scheduled-from-event"))
    assert loop.run() == 5
    assert seen == ["t1-p0-a", "t1-p0-b", "t1-p1", "scheduled-from-event", "t5"]
    assert loop.events_run == 6


def test_cancel_and_until():
    loop = EventLoop()
    seen = []
    h = loop.at(2, seen.append, "cancelled")
    loop.at(3, seen.append, "kept")
    loop.at(10, seen.append, "later")
    h.cancel()
    assert loop.run(until=5) == 5 and seen == ["kept"]
    assert loop.pending() == 1
    loop.run()
    assert seen == ["kept", "later"]


def test_scheduling_in_the_past_is_refused():
    loop = EventLoop()
    loop.at(4, lambda: None)
    loop.run()
    with pytest.raises(ValueError, match="already at 4"):
        loop.at(3, lambda: None)
