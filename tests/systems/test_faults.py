"""Fault campaigns: the Llama 3 log's rates, scaling, determinism, components in range."""

from __future__ import annotations

import numpy as np
import pytest

from sim.systems.faults import (
    CAUSE_KIND,
    LLAMA3_COUNTS,
    LLAMA3_DAYS,
    LLAMA3_GPUS,
    CampaignSpec,
    FaultKind,
    draw_campaign,
    interruption_rates,
)

PARTS = {"gpu": 1024, "node": 128, "nic_port": 2048, "link": 4096, "switch": 96}


def test_rates_reproduce_the_log():
    assert sum(LLAMA3_COUNTS.values()) == 419
    assert all(abs(sum(s for _, s in CAUSE_KIND[c]) - 1) < 1e-12 for c in LLAMA3_COUNTS)
    per_log = {k: r * LLAMA3_DAYS * LLAMA3_GPUS for k, r in interruption_rates().items()}
    assert sum(per_log.values()) == pytest.approx(419)
    assert per_log[FaultKind.GPU_HANG] == pytest.approx(148 + 72 + 19 + 17 + 6 + 6)
    assert per_log[FaultKind.LINK_DOWN] == pytest.approx(35 * 0.8)


def test_counts_scale_with_gpus_and_days():
    """The Llama 3 exposure itself, ten times over: about 4190 interruptions (Poisson, within 5 %)."""
    big = draw_campaign(CampaignSpec(gpus=LLAMA3_GPUS, days=10 * LLAMA3_DAYS, slow_per_kgpu_day=0), PARTS)
    assert abs(len(big) - 4190) < 0.05 * 4190
    small = draw_campaign(CampaignSpec(gpus=1024, days=30, slow_per_kgpu_day=0), PARTS)
    assert len(small) < 40  # expected 14.6


def test_campaign_is_deterministic_sorted_and_in_range():
    spec = CampaignSpec(gpus=4096, days=60, slow_per_kgpu_day=2.0, seed=7)
    a, b = draw_campaign(spec, PARTS), draw_campaign(spec, PARTS)
    assert a.tobytes() == b.tobytes() and len(a) > 50
    assert np.all(np.diff(a["time_s"]) >= 0) and a["time_s"].max() < 60 * 86_400
    for kind, part in (("gpu", FaultKind.GPU_HANG), ("link", FaultKind.LINK_SLOW), ("node", FaultKind.NODE_DOWN)):
        rows = a[a["kind"] == part]
        assert len(rows) and rows["component"].max() < PARTS[kind]
    slow = a[np.isin(a["kind"], [FaultKind.LINK_SLOW, FaultKind.GPU_SLOW])]
    assert len(slow) and np.all((slow["factor"] >= 0.2) & (slow["factor"] <= 0.6))
    assert np.all(a[~np.isin(a["kind"], [FaultKind.LINK_SLOW, FaultKind.GPU_SLOW])]["factor"] == 0)
    other = draw_campaign(CampaignSpec(gpus=4096, days=60, slow_per_kgpu_day=2.0, seed=8), PARTS)
    assert other.tobytes() != a.tobytes()


def test_kinds_without_components_are_not_drawn():
    c = draw_campaign(CampaignSpec(gpus=16_384, days=54), {"gpu": 16_384})
    assert set(c["kind"].tolist()) <= {FaultKind.GPU_HANG, FaultKind.SOFTWARE_HANG, FaultKind.COMM_HANG,
                                       FaultKind.GPU_SLOW}
    with pytest.raises(ValueError):
        draw_campaign(CampaignSpec(gpus=0, days=1), PARTS)
