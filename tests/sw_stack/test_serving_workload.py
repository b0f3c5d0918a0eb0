"""Workload generator: determinism, distributions, trace round trip and validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim.core.config import ServingWorkloadConfig
from sim.core.trace import TraceError
from sw_stack.serving import workload as wlmod


@pytest.fixture(scope="module")
def big():
    return wlmod.generate(ServingWorkloadConfig(conversations=2000), 8192)


def test_same_seed_same_workload_other_seed_differs():
    cfg = ServingWorkloadConfig(conversations=50)
    a, b = wlmod.generate(cfg, 8192), wlmod.generate(cfg, 8192)
    assert np.array_equal(a.turns, b.turns)
    c = wlmod.generate(dataclasses.replace(cfg, seed=2), 8192)
    assert not np.array_equal(a.turns, c.turns)


def test_distributions_are_sharegpt_like(big):
    t = big.turns
    turns_per_conv = np.bincount(t["conv"])
    assert 5.0 <= turns_per_conv.mean() <= 6.0
    assert 120 <= t["new_tokens"].mean() <= 200 and np.median(t["new_tokens"]) < t["new_tokens"].mean()
    assert 280 <= t["answer_tokens"].mean() <= 380
    first = t[t["turn"] == 0]
    gaps = np.diff(first["arrival_us"].astype(np.int64)) * 1e-6
    rate = ServingWorkloadConfig().arrival_rate
    assert 0.9 / rate <= gaps.mean() <= 1.1 / rate  # Poisson at the configured rate
    assert np.all(t["think_us"][t["turn"] == 0] == 0) and t["think_us"][t["turn"] > 0].mean() > 5e6


def test_context_is_capped():
    w = wlmod.generate(ServingWorkloadConfig(conversations=300), 1024)
    t = w.turns
    total = np.zeros(w.conversations, dtype=np.int64)
    np.add.at(total, t["conv"], t["new_tokens"].astype(np.int64) + t["answer_tokens"])
    assert total.max() <= 1024


def test_trace_round_trip_and_validation(tmp_path):
    w = wlmod.generate(ServingWorkloadConfig(conversations=20), 8192)
    path = wlmod.save(w, tmp_path / "wl.npz")
    back = wlmod.load(path)
    assert np.array_equal(back.turns, w.turns) and back.meta["max_context"] == 8192
    with pytest.raises(TraceError, match="no such trace"):
        wlmod.load(tmp_path / "absent.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(TraceError, match="junk.npz"):
        wlmod.load(tmp_path / "junk.npz")
    bad = wlmod.Workload(w.turns[::-1].copy(), {})
    with pytest.raises(TraceError, match="not sorted"):
        wlmod.save(bad, tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()
    wrong = np.zeros(3, dtype=[("conv", "<u4")])
    with pytest.raises(TraceError, match="expected"):
        wlmod.save(wlmod.Workload(wrong, {}), tmp_path / "bad2.npz")
