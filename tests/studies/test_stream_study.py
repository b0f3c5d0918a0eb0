"""The STREAM study: every target validated, the overhead and device figures, run.json's part, the checks' teeth."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import sim.exec as ex
from sim.cli import main
from sim.core.config import load_config
from sim.studies.stream import study
from sw_stack.stream import kernel as K

KERNELS = [k.name for k in K.SEQUENCE]


@pytest.fixture(scope="module")
def small():
    return load_config("tests/data/small.yaml")


@pytest.fixture(scope="module")
def result(small):
    return study.run_study(small.stream, small.hardware.stream)


def test_every_target_and_kernel_has_validated_figures(result):
    assert set(result["targets"]) == {"numpy", "c", "reference", "model"}
    for name, t in result["targets"].items():
        assert t["validated"], name
        for k in KERNELS:
            assert t[k]["validated"] and t[k]["gbps"] > 0 and math.isfinite(t[k]["gbps"]), (name, k)
    assert result["bytes_per_element"] == {"copy": 8, "scale": 8, "add": 12, "triad": 12}


def test_overhead_is_measured_where_a_direct_call_exists(result):
    t = result["targets"]
    assert t["numpy"]["api_overhead"] is None and t["c"]["api_overhead"] is None
    for name in ("reference", "model"):
        assert isinstance(t[name]["api_overhead"], float) and t[name]["api_overhead"] > -0.5, name


def test_device_figures_follow_from_cycles_and_stay_under_the_port_peak(result, small):
    m, d = result["targets"]["model"], result["device"]
    clock = small.stream.clock_mhz * 1e6
    assert d["peak_gbps"] == pytest.approx(4 * clock / small.stream.memory_interval / 1e9)
    n = small.stream.device_elements
    for k in K.SEQUENCE:
        row = m[k.name]
        assert row["gbps"] == pytest.approx(k.bytes(n) / (row["best_cycles"] / clock) / 1e9)
        assert row["gbps"] <= d["peak_gbps"]
        # one word a cycle on the port: 2 or 3 cycles an element plus the start-up of the memory and pipeline
        assert k.arrays * n <= row["best_cycles"] <= k.arrays * n + 40
    sweep = d["inflight_sweep"]
    assert [r["inflight"] for r in sweep] == [1, 2, 4, 8, 16]
    for name in KERNELS:  # Little's law: more elements in flight hide more of the memory's latency
        gbps = [r[name] for r in sweep]
        assert gbps == sorted(gbps) and gbps[0] < 0.3 * d["peak_gbps"] and gbps[-1] > 0.9 * d["peak_gbps"]


def test_run_json_part_is_deterministic(small):
    a = study.deterministic(study.run_study(small.stream, small.hardware.stream))
    b = study.deterministic(study.run_study(small.stream, small.hardware.stream))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert "gbps" not in a["targets"]["numpy"]["copy"] and "api_overhead" not in a["targets"]["reference"]
    assert a["targets"]["model"]["copy"]["gbps"] > 0  # from cycles, so kept


def test_device_validation_catches_a_wrong_element(small):
    p = small.hardware.stream
    _, stim = study.device_setup(small.stream, p)
    ref = ex.run("stream", stim, "reference", p)
    res = ex.run("stream", stim, "model", p)
    assert study.device_figures(small.stream, res, ref)["validated"]
    res.tables["memory"]["data"][1] ^= 1  # one bit of a's second element
    fig = study.device_figures(small.stream, res, ref)
    assert not fig["validated"] and fig["reference_mismatches"] == 1


def test_device_arrays_must_fit_the_unit(small, tmp_path, capsys):
    from dataclasses import replace

    with pytest.raises(ValueError, match="do not fit"):
        study.device_setup(replace(small.stream, device_elements=1 << 23), small.hardware.stream)
    bad = tmp_path / "bad.yaml"
    bad.write_text("hardware: {name: x, gpu: {name: g, compute_units: 1, clock_ghz: 1, flops_per_cu_per_cycle: 1, "
                   "hbm_gbps: 1, l2_mib: 1}, ring_link: {bandwidth_gbps: 1, latency_ns: 1}, stream: {addr_bits: 12}}\n"
                   "stream: {device_elements: 1366}\n")
    assert main(["study", "stream", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "stream.device_elements" in err and "at most 1365" in err


def test_missing_compiler_is_a_skipped_target_with_a_note(small, monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    monkeypatch.setenv("PATH", "/nonexistent")
    r = study.run_study(small.stream, small.hardware.stream)
    c = r["targets"]["c"]
    assert c["skipped"] and "compiler" in c["note"] and c["copy"]["gbps"] is None
    assert "skipped" in study.summary_table(r)


def test_study_command_writes_json_report_and_plot(tmp_path, capsys):
    assert main(["study", "stream", "--config", "tests/data/small.yaml", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "stream.json").read_text())
    assert data["schema"] == study.SCHEMA and data["targets"]["reference"]["validated"]
    assert (tmp_path / "stream.md").read_text().count("| yes |") == 4
    assert (tmp_path / "stream.png").stat().st_size > 10_000
    assert "validated" in capsys.readouterr().out


@pytest.mark.rtl
def test_rtl_target_matches_the_model_exactly(small, tmp_path):
    r = study.run_study(small.stream, small.hardware.stream, rtl=True, work=tmp_path / "rtl")
    assert r["targets"]["rtl"]["validated"]
    m = r["device"]["model_vs_rtl"]
    assert m["max_gbps_error"] == 0.0 and m["cycle_mismatches"] == 0 and m["data_mismatches"] == 0
    assert np.isclose(r["targets"]["rtl"]["triad"]["gbps"], r["targets"]["model"]["triad"]["gbps"])
