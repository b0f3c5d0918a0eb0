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


def test_post_keeps_the_same_order_as_at():
    """``post``/``post_after`` share the insertion counter with ``at``/``after``: one total order."""
    loop = EventLoop()
    seen = []
    loop.post(1, seen.append, "post-a")
    loop.at(1, seen.append, "at-b")
    loop.post(1, seen.append, "post-p1", priority=1)
    loop.post(0, lambda: (loop.post_after(1, seen.append, "post-after-c"), loop.after(1, seen.append, "after-d")))
    assert loop.post(2, seen.append, "last") is None
    loop.run()
    assert seen == ["post-a", "at-b", "post-after-c", "after-d", "post-p1", "last"]
    assert loop.events_run == 7 and loop.pending() == 0


def test_cancelled_events_are_not_counted_and_late_cancel_is_harmless():
    loop = EventLoop()
    seen = []
    done = loop.at(1, seen.append, 1)
    loop.run()
    done.cancel()  # already ran: nothing changes
    h = loop.after(5, seen.append, "cancelled")
    loop.after(5, seen.append, 6)
    h.cancel()
    h.cancel()
    assert loop.pending() == 2
    assert loop.run() == 6 and seen == [1, 6]
    assert loop.events_run == 2 and loop.pending() == 0


def test_negative_delays_are_refused():
    loop = EventLoop()
    loop.at(4, lambda: None)
    loop.run()
    for schedule in (loop.after, loop.post_after):
        with pytest.raises(ValueError, match="already at 4"):
            schedule(-1, lambda: None)
    with pytest.raises(ValueError, match="already at 4"):
        loop.post(3, lambda: None)
