"""`llmarch study fastswitch` end to end on a small workload, and the controller-backed swap cost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sim.cli import main
from sim.core.config import PcieLinkConfig
from sim.systems.swap_cost import ControllerSwapCost

DATA = Path(__file__).parents[1] / "data"


def test_controller_swap_cost_follows_the_calibrated_pcie_curve():
    cost = ControllerSwapCost(PcieLinkConfig(), 32768)
    small = 32768 / cost.swap_seconds(np.array([32768]), "out") / 1e9
    large = (8 << 20) / cost.swap_seconds(np.array([8 << 20]), "in") / 1e9
    assert 8 <= small <= 10 and 22 <= large <= 24  # docs/papers.md: 8-10 GB/s for 32 KiB, ~24 GB/s for >= 1 MiB
    # 64 separate blocks cost 64 transfers; one 64-block run is split only at the controller's burst limit
    scattered = cost.swap_seconds(np.array([32768] * 64), "out")
    contiguous = cost.swap_seconds(np.array([32768 * 64]), "out")
    assert scattered > 2 * contiguous


def test_closed_form_equals_the_controller_model():
    cost = ControllerSwapCost(PcieLinkConfig(), 32768)
    rng = np.random.default_rng(3)
    for _ in range(50):
        runs = rng.integers(1, 300, rng.integers(1, 40)) * 32768
        assert np.isclose(cost.swap_seconds(runs, "out"), cost.swap_seconds_by_controller_model(runs))


def test_study_command(tmp_path, capsys):
    assert main(["study", "fastswitch", "--config", str(DATA / "fastswitch_small.yaml"), "--out", str(tmp_path)]) == 0
    assert "llama8b_a10" in capsys.readouterr().out
    r = json.loads((tmp_path / "fastswitch.json").read_text())
    s = r["setups"]["llama8b_a10"]
    assert set(s["systems"]) == {"baseline", "fastswitch"}
    for m in s["systems"].values():
        assert set(m["ttft"]) >= {"p50", "p95", "p99", "p999"} and m["swap_gbps"] >= 0
    assert s["systems"]["fastswitch"]["swap_gbps"] > s["systems"]["baseline"]["swap_gbps"]
    assert set(s["speedup"]["ttft"]) == {"p50", "p95", "p99", "p999"}
    assert "Where ours differs from the paper" in (tmp_path / "fastswitch.md").read_text()
    assert (tmp_path / "fastswitch.png").read_bytes()[:4] == b"\x89PNG"
