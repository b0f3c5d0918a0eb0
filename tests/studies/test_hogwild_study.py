"""The Hogwild! study: keys, the paper's claims as our model sees them, the invariant, the command."""

from __future__ import annotations

import json

import pytest

from sim.cli import main
from sim.core.config import load_config
from sim.studies.hogwild import study


@pytest.fixture(scope="module")
def cfg():
    return load_config("configs/hogwild_study.yaml")


@pytest.fixture(scope="module")
def result(cfg):
    return study.run_study(cfg.hogwild, cfg.hardware)


def test_every_point_has_the_three_systems(result, cfg):
    h = cfg.hogwild
    assert len(result["points"]) == len(h.workers) * len(h.layouts) * len(h.contexts)
    for p in result["points"]:
        assert sum(p["blocks"]) == p["context"]
        for system in ("hogwild", "single", "independent"):
            s = p[system]
            assert s["tokens_per_s"] > 0 and s["kv_footprint_bytes"] > 0 and s["bound"] in ("memory", "compute")
            assert s["step_time_s"] >= max(s["memory_s"], s["compute_s"]) * (1 - 1e-12)


def test_four_workers_share_memory_and_beat_one(result, cfg):
    for layout in cfg.hogwild.layouts:
        for ctx in cfg.hogwild.contexts:
            p = study._find(result, 4, layout, ctx)
            assert p["hogwild"]["kv_footprint_bytes"] < p["independent"]["kv_footprint_bytes"]
            assert p["hogwild"]["tokens_per_s"] > p["single"]["tokens_per_s"]


def test_query_rotation_saves_against_rerotating_keys(result):
    p = study._find(result, 8, "contiguous", 32768)
    assert p["rotation"]["rerotate_flops"] > 100 * p["rotation"]["query_flops"] > 0
    assert p["rotation"]["rerotate_bytes"] > 0


def test_block_lengths_split_the_context(cfg):
    h = cfg.hogwild
    assert study.block_lengths(h, 3, "contiguous", 512 + 10) == [512, 4, 3, 3]
    lens = study.block_lengths(h, 2, "combined", 512 + 1000)
    assert lens[1:] == [h.step_tokens // 2] * 2 and sum(lens) == 1512


def test_invariant_within_bound(result):
    inv = result["invariants"]
    assert inv["max_rel_error"] <= 1e-5 and len(inv["cases"]) == 4 * 3 * 2


def test_invariant_check_has_teeth(monkeypatch):
    from sw_stack.hogwild import cache

    real = cache.SharedCache.attend

    def off_by_one(self, layer, q):  # a 0.1 % error in every attention output
        out = real(self, layer, q)
        return out * 1.001

    monkeypatch.setattr(cache.SharedCache, "attend", off_by_one)
    assert study.invariant_error(2, "combined", True) > 1e-5


def test_study_command_writes_json_report_and_plot(tmp_path, capsys):
    assert main(["study", "hogwild", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "hogwild.json").read_text())
    assert data["schema"] == study.SCHEMA and data["invariants"]["max_rel_error"] <= 1e-5
    assert "memory-bound" in (tmp_path / "hogwild.md").read_text()
    assert (tmp_path / "hogwild.png").stat().st_size > 10_000
    assert "x single" in capsys.readouterr().out
