"""Stimulus arrivals: the configured input idles really happen."""

from __future__ import annotations

import numpy as np
import pytest

from hw.dma import DmaParams
from hw.memory import MemoryParams
from hw.tracker import TrackerParams
from sim.blocks.dma.stimulus import random_dma_workload
from sim.core.stimulus import arrival_cycles, idle_fraction, random_tracker_workload


@pytest.mark.parametrize("idle", [0.0, 0.05, 0.2, 0.3, 0.5, 0.8])
def test_arrivals_offer_one_item_a_cycle_with_the_configured_idle_fraction(idle):
    c = arrival_cycles(50_000, idle, np.random.default_rng(1))
    assert np.all(np.diff(c) >= 1), "a one-per-cycle input never gets two items in one cycle"
    assert idle_fraction(c) == pytest.approx(idle, abs=0.01)


def test_idle_fraction_counts_cycles_without_a_new_item():
    assert idle_fraction(np.array([0, 1, 2, 3])) == 0.0
    assert idle_fraction(np.array([0, 2, 4, 6])) == pytest.approx(3 / 7)
    assert idle_fraction(np.array([0, 0, 0, 0])) == 0.0  # one cycle, an item in it (the input is the bottleneck)


@pytest.mark.parametrize("idle", [0.1, 0.3])
def test_tracker_workload_has_its_idles(idle):
    _, req = random_tracker_workload(TrackerParams(entries=32), 20_000, np.random.default_rng(2), idle_prob=idle)
    assert idle_fraction(req["cycle"]) == pytest.approx(idle, abs=0.015)
    assert np.all(np.diff(req["cycle"].astype(np.int64)) >= 1)


@pytest.mark.parametrize("idle", [0.2, 0.5])
def test_dma_workload_has_its_idles(idle):
    stim = random_dma_workload(DmaParams(descriptors=256), np.random.default_rng(3), triggers=4000, num_devices=4,
                               mem=MemoryParams(size_log2=12), idle_prob=idle)
    assert idle_fraction(stim["triggers"]["cycle"]) == pytest.approx(idle, abs=0.03)
