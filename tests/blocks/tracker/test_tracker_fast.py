"""The compiled tracker replay (`replay_fast`, the block's model runner) against the event-driven `TrackerModel`
that system models compose: both run the same rule functions, compiled and interpreted, and must give the same
triggers, cycles and counters on random stimuli with idles, backpressure, both error kinds and two sources."""

from __future__ import annotations

import numpy as np
import pytest

from hw.tracker import TrackerParams
from sim.blocks.tracker import triggers_table
from sim.blocks.tracker.model import replay_fast, replay_tracker
from sim.core import trace
from sim.core.fast import mix32_nb, ready_nb
from sim.core.stimulus import ReadyPattern, mix32, random_tracker_workload

STATS = ("requests", "triggers", "unprogrammed", "overflow", "stall_cycles", "last_trigger_cycle")


def _both(params, program, requests, ready):
    fast = replay_fast(params, program, requests, ready)
    event = replay_tracker(params, program, requests, ready)
    assert np.array_equal(fast.triggers, triggers_table(event.triggers))
    assert fast.last_tick == event.loop.now
    assert [getattr(fast.stats, s) for s in STATS] == [getattr(event.stats, s) for s in STATS]
    assert fast.stats.errors == event.stats.errors
    return fast


@pytest.mark.parametrize("seed,bp,depth", [(0, 0.0, 2), (1, 0.3, 2), (2, 0.7, 3), (3, 0.95, 5), (4, 0.5, 16)])
def test_fast_replay_equals_the_event_model(seed, bp, depth):
    # count_bits 8 with sizes up to 511: requests overflow the counter; entry 0 stays unprogrammed
    params = TrackerParams(entries=16, count_bits=8, size_bits=9, fifo_depth=depth)
    rng = np.random.default_rng(seed)
    program, requests = random_tracker_workload(params, 4000, rng, idle_prob=0.3, max_threshold=1024)
    program["enable"][0] = 0
    fast = _both(params, program, requests, ReadyPattern(seed, bp).as_model_ready())
    assert fast.stats.unprogrammed and fast.stats.overflow and len(fast.triggers) > 100
    if bp >= 0.5:
        assert fast.stats.stall_cycles > 0


@pytest.mark.parametrize("seed", range(3))
def test_fast_replay_orders_two_sources_like_the_event_model(seed):
    """Rows of one cycle from a higher source first in the table: both take the lower source first."""
    params = TrackerParams(entries=8, count_bits=10, size_bits=9, fifo_depth=2)
    rng = np.random.default_rng(seed)
    program, requests = random_tracker_workload(params, 2000, rng, max_threshold=256)
    requests["cycle"] //= 3  # several requests per cycle: the order among them matters
    requests["source"] = rng.integers(0, 2, len(requests))
    cyc, src = (requests[c].astype(np.int64) for c in ("cycle", "source"))
    assert np.any((np.diff(cyc) == 0) & (np.diff(src) < 0))
    _both(params, program, requests, ReadyPattern(seed, 0.4))


def test_fast_replay_of_nothing():
    params = TrackerParams(entries=4)
    program = trace.empty("tracker_program", 0)
    fast = _both(params, program, trace.empty("tracker_requests", 0), None)
    assert fast.last_tick == 0 and len(fast.triggers) == 0


def test_fast_replay_refuses_a_tag_outside_the_table():
    params = TrackerParams(entries=4)
    requests = trace.empty("tracker_requests", 1)
    requests["tag"] = 4
    with pytest.raises(ValueError, match="tag 4"):
        replay_fast(params, trace.empty("tracker_program", 0), requests)


def test_jitted_ready_pattern_equals_the_python_one():
    rng = np.random.default_rng(0)
    for x in [0, 1, 0xFFFFFFFF, 1 << 32, *rng.integers(0, 1 << 40, 2000).tolist()]:
        assert mix32_nb(x) == mix32(x)
    for seed, prob in [(0, 0.1), (0xDEADBEEF, 0.5), (7, 0.9)]:
        pat = ReadyPattern(seed, prob)
        assert [ready_nb(c, pat.seed, pat.threshold) for c in range(3000)] == [pat(c) for c in range(3000)]
