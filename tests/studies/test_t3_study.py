"""The T3 system model and study: orderings, conservation, keys, determinism, report files."""

from __future__ import annotations

import dataclasses
import json

import pytest

from sim.cli import main
from sim.core.config import load_config
from sim.studies.t3.study import run_study
from sim.systems.t3_system import run_sequential, run_t3, shape, sublayers


@pytest.fixture(scope="module")
def study_cfg():
    return load_config("configs/t3_study.yaml")


def test_paper_sublayer_set_and_shapes(study_cfg):
    subs = sublayers(study_cfg.t3_study)
    assert len(subs) == 2 * 2 * 4
    op = next(s for s in subs if s.model == "T-NLG" and s.name == "OP" and s.tp == 8)
    fc2 = next(s for s in subs if s.model == "T-NLG" and s.name == "FC-2" and s.tp == 8)
    assert (op.n, op.k, fc2.k) == (4256, 4256 // 8, 4 * 4256 // 8)


def test_traffic_conservation_and_ordering(study_cfg):
    hw, st = study_cfg.hardware, study_cfg.t3_study
    sl = sublayers(st)[0]
    sh = shape(sl, hw, st)
    out_bytes = sl.tp * sh.tiles_per_chunk * sh.tile_bytes
    seq, t_gemm, t_rs = run_sequential(sl, hw, st)
    t3 = run_t3(sl, hw, st, mca=False)
    mca = run_t3(sl, hw, st, mca=True)
    chunk = sh.tiles_per_chunk * sh.tile_bytes
    # every chunk but the own one crosses the link once per step in both schemes
    assert seq.traffic.link == t3.traffic.link == mca.traffic.link == (sl.tp - 1) * chunk
    # T3 never writes the GEMM output plainly: local and incoming updates are read-modify-writes
    assert t3.traffic.dram_write == (sl.tp - 1) * chunk + (sl.tp - 1) * chunk
    assert seq.traffic.dram_write == out_bytes + 2 * (sl.tp - 1) * chunk
    assert seq.cycles >= t_gemm + t_rs - 1
    assert max(t_gemm, t_rs) <= t3.cycles and max(t_gemm, t_rs) <= mca.cycles


def test_study_orders_configurations_and_is_deterministic(study_cfg):
    hw = study_cfg.hardware
    st = dataclasses.replace(study_cfg.t3_study, tokens=2048, tp=(8,))
    a = run_study(hw, st)
    b = run_study(hw, st)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    excepted = {e["key"]: e["why"] for e in a["ordering_exceptions"]}
    for r in a["sublayers"]:
        s = r["speedup"]
        if not (0 <= s["t3"] <= s["t3_mca"] <= s["ideal"]):
            assert excepted.get(r["key"]), f"{r['key']} breaks the ordering without an explanation"
        assert s["t3"] <= s["ideal"] and s["t3_mca"] <= s["ideal"], r["key"]
    assert set(a["summary"]) >= {"t3", "t3_mca", "ideal", "data_movement_reduction_geomean"}
    assert 0 < a["summary"]["data_movement_reduction_geomean"] < 1


def test_mca_protects_the_gemm_under_contention(study_cfg):
    """With a slow, contended DRAM, MCA must cut the GEMM's slowdown relative to plain FIFO arbitration."""
    hw = dataclasses.replace(study_cfg.hardware,
                             gpu=dataclasses.replace(study_cfg.hardware.gpu, hbm_gbps=250.0))
    st = dataclasses.replace(study_cfg.t3_study, tokens=2048, tp=(8,), sublayers=("OP",))
    sl = sublayers(st)[0]
    _, t_gemm, _ = run_sequential(sl, hw, st)
    t3 = run_t3(sl, hw, st, mca=False)
    mca = run_t3(sl, hw, st, mca=True, threshold=2)
    assert mca.gemm_end < t3.gemm_end
    assert t3.gemm_end > t_gemm


def test_study_command_writes_json_report_and_plot(small_config_path, tmp_path, capsys):
    assert main(["study", "t3", "--config", str(small_config_path), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "T3 + MCA" in out and "paper geomean" in out
    r = json.loads((tmp_path / "t3.json").read_text())
    assert r["schema"] == "llmarch.t3/1" and len(r["sublayers"]) == 2
    row = r["sublayers"][0]
    assert set(row["speedup"]) == {"t3", "t3_mca", "ideal"}
    assert set(row["bytes"]) == {"sequential", "t3", "t3_mca"}
    md = (tmp_path / "t3.md").read_text()
    assert "| T3 + MCA |" in md and "Where ours differs from the paper" in md
    assert (tmp_path / "t3.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.rtl
def test_study_with_rtl_cosimulation(small_config_path, tmp_path, capsys):
    assert main(["study", "t3", "--config", str(small_config_path), "--out", str(tmp_path), "--rtl"]) == 0
    assert "co-simulation: 0 data mismatches, max completion-cycle error 0.00%" in capsys.readouterr().out
    r = json.loads((tmp_path / "t3.json").read_text())
    assert r["cosim"]["data_mismatches"] == 0 and r["cosim"]["max_cycle_error"] == 0.0
    assert "RTL co-simulation" in (tmp_path / "t3.md").read_text()
