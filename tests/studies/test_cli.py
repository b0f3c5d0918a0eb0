"""``llmarch run`` and ``llmarch verilog`` end to end."""

from __future__ import annotations

import json

import pytest

from sim.cli import main
from sim.core import trace


def test_run_writes_run_json_and_traces(small_config_path, tmp_path, capsys):
    out = tmp_path / "a"
    assert main(["run", "--config", str(small_config_path), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "llmarch run: T3 fused GEMM + ring reduce-scatter" in text and "tracker" in text
    run = json.loads((out / "run.json").read_text())
    assert run["schema"] == "llmarch.run/1" and run["seed"] == 3
    tr = run["tracker"]
    assert tr["triggers"] == 4 * 12 and tr["model_last_trigger_cycle"] > 0
    assert run["ring"]["last_reduced_cycle"] >= run["ring"]["compute_end_cycle"]
    assert "rtl_last_trigger_cycle" not in tr
    t = trace.read(out / "traces" / "device2.npz")
    assert t.meta["device"] == 2 and len(t["tracker_input"]) == tr["per_device"][2]["requests"]


def test_same_seed_same_bytes_other_seed_other_stalls(small_config_path, tmp_path):
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        assert main(["run", "--config", str(small_config_path), "--out", str(tmp_path / name), "--seed", seed]) == 0
    a, b, c = ((tmp_path / n / "run.json").read_bytes() for n in "abc")
    assert a == b
    assert json.loads(c)["tracker"]["model_last_trigger_cycle"] != json.loads(a)["tracker"]["model_last_trigger_cycle"]


@pytest.mark.rtl
def test_run_rtl_reports_zero_mismatches(small_config_path, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", "--config", str(small_config_path), "--out", str(out), "--rtl"]) == 0
    assert "0 cycle mismatches, 0 data mismatches" in capsys.readouterr().out
    tr = json.loads((out / "run.json").read_text())["tracker"]
    assert tr["mismatches"] == 0 and tr["data_mismatches"] == 0 and tr["scoreboard_ok"]
    assert tr["rtl_last_trigger_cycle"] == tr["model_last_trigger_cycle"]


def test_default_config_runs(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path)]) == 0
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["config"]["hardware"]["gpu"]["compute_units"] == 80
    assert run["tracker"]["triggers"] == 4 * 3 * run["ring"]["tiles_per_chunk"] // run["ring"]["tiles_per_group"]
    fs = run["fastswitch"]
    assert set(fs["systems"]) == {"baseline", "fastswitch"} and fs["conversations"] == 500
    assert fs["speedup"]["ttft"]["p99"] > 1 and fs["speedup"]["tbt"]["p999"] > 1
    assert fs["systems"]["fastswitch"]["swap_gbps"] > fs["systems"]["baseline"]["swap_gbps"]


def test_verilog_writes_one_file_per_block(tmp_path, capsys):
    assert main(["verilog", "--out", str(tmp_path / "v")]) == 0
    files = {p.name for p in (tmp_path / "v").iterdir()}
    assert files == {"track_trigger.v", "dma_engine.v", "near_memory_reducer.v", "memory_arbiter.v", "t3_device.v",
                     "kv_swap_controller.v", "stream_unit.v"}
    for name in files:
        assert f"module {name[:-2]}(" in (tmp_path / "v" / name).read_text().replace(" (", "(")
    assert "trigger__valid" in (tmp_path / "v" / "track_trigger.v").read_text()
    assert capsys.readouterr().out.count("wrote") == 7


def test_a_registered_block_is_picked_up_without_editing_the_commands(tmp_path, monkeypatch, capsys):
    """A new registry entry reaches `llmarch verilog`, `llmarch bench --block` and `sim.exec.run`."""
    import dataclasses

    import sim.exec as ex
    from sim.exec import api

    tracker = ex.get("tracker")
    extra = dataclasses.replace(tracker, name="tracker_copy", module="tracker_copy")
    monkeypatch.setitem(api.BLOCKS, "tracker_copy", extra)
    assert main(["verilog", "--out", str(tmp_path / "v"), "--block", "tracker_copy"]) == 0
    assert "module tracker_copy" in (tmp_path / "v" / "tracker_copy.v").read_text()
    from sim.cli import build_parser

    assert build_parser().parse_args(["bench", "--block", "tracker_copy"]).block == "tracker_copy"
    stim = extra.standard_stimulus(extra.small_params(), 1, 200)
    res = ex.run("tracker_copy", stim, "model", extra.small_params())
    assert ex.agree(res, ex.run("tracker_copy", stim, "reference", extra.small_params())).data_mismatches == 0
