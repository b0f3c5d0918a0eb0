"""Block managers: paged and buddy allocation, free, coalescing, fragmentation, copy runs."""

from __future__ import annotations

import numpy as np
import pytest

from sw_stack.serving.kv import BuddyAllocator, KvPoolError, PagedAllocator, copy_segments, run_blocks
from sw_stack.serving.link import PcieLinkModel


def test_paged_allocates_single_blocks_and_frees_everything():
    pool = PagedAllocator(10)
    a = pool.allocate(3)
    assert a == [(0, 3)] and pool.free_blocks == 7
    b = pool.allocate(2)
    pool.free(a)
    c = pool.allocate(4)  # LIFO: reuses a's blocks, then the next fresh one
    assert c == [(0, 3), (5, 1)] and pool.free_blocks == 4
    pool.free(b)
    pool.free(c)
    assert pool.free_blocks == 10
    with pytest.raises(KvPoolError):
        pool.allocate(11)


def test_buddy_exact_allocation_coalesces_back_to_the_initial_groups():
    pool = BuddyAllocator(100, max_order=5)
    initial = pool.free_groups()
    a = pool.allocate(5)
    assert a == [(0, 5)] and pool.free_blocks == 95  # one contiguous run, tail returned
    b = pool.allocate(17)
    assert len(b) == 1 and run_blocks(b) == 17
    pool.extend(a, 3)  # the blocks after a are free: grows in place
    assert a == [(0, 8)]
    pool.free(a)
    pool.free(b)
    assert pool.free_blocks == 100 and pool.free_groups() == initial


def test_buddy_random_churn_leaks_nothing_and_falls_back_to_several_groups():
    rng = np.random.default_rng(3)
    pool = BuddyAllocator(300, max_order=6)
    initial = pool.free_groups()
    live: list[list[tuple[int, int]]] = []
    for _ in range(2000):
        if live and (rng.random() < 0.5 or pool.free_blocks < 40):
            pool.free(live.pop(int(rng.integers(len(live)))))
        else:
            runs = pool.allocate(int(rng.integers(1, 40)))
            if rng.random() < 0.5:
                pool.extend(runs, int(rng.integers(1, 4)))
            live.append(runs)
        owned = sorted(b for runs in live for s, n in runs for b in range(s, s + n))
        assert len(owned) == len(set(owned)) and len(owned) + pool.free_blocks == 300
    for runs in live:
        pool.free(runs)
    assert pool.free_groups() == initial and pool.free_runs() == 1
    # fragmented pool: an allocation larger than any group still succeeds, as several runs
    held = [pool.allocate(1) for _ in range(300)]
    for runs in held[::2]:
        pool.free(runs)
    got = pool.allocate(100)
    assert run_blocks(got) == 100 and len(got) == 100


def test_copy_segments_split_where_either_side_breaks():
    src = [(0, 4), (10, 4)]
    dst = [(100, 2), (200, 6)]
    assert copy_segments(src, dst) == [2, 2, 4]
    assert copy_segments(src, dst, skip=3) == [1, 4]
    assert copy_segments(src, dst, skip=1, count=2) == [1, 1]
    assert copy_segments([(0, 8)], [(50, 8)]) == [8]


def test_pcie_model_calibration():
    link = PcieLinkModel(24.0, 2.3)
    assert 8.0 <= link.effective_gbps(32 * 1024) <= 10.0
    assert link.effective_gbps(1 << 20) >= 22.0
    assert link.swap_seconds(np.full(64, 32768), "out") == pytest.approx(64 * (2.3e-6 + 32768 / 24e9))
    assert link.swap_seconds(np.zeros(0, dtype=np.int64), "in") == 0.0
    with pytest.raises(ValueError):
        link.swap_seconds([1], "sideways")
