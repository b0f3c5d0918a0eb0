"""``llmarch bench`` (`sim.exec.bench`): targets.json, the bare Verilator loop, the event core benchmark."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import sim.exec as ex
from sim.exec.bench import bench_events, items_of, run_bench, summary, write_json


def _strict(text: str):
    def refuse(name):
        raise AssertionError(f"targets.json holds {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.rtl
def test_run_bench_on_the_tracker_writes_targets_json(tmp_path):
    result = run_bench(tmp_path, block="tracker", size=300, repeats=1, event_size=2000)
    text = (tmp_path / "targets.json").read_text()
    data = _strict(text)
    assert data == result
    assert text == json.dumps(data, sort_keys=True, indent=2) + "\n"  # sim.core.results.write_json
    b = data["blocks"]["tracker"]
    assert b["size"] == 300 and b["items"] == 300
    for target in ("reference", "model", "rtl"):
        assert b[target]["items_per_s"] > 0 and b[target]["wall_s"] > 0, b[target]
        assert "api_overhead" in b[target]
    for target in ("model", "rtl"):
        assert b[target]["cycles_per_s"] > 0
    assert b["cycles_exact"] is True and b["reference_ok"] is True
    assert b["model_over_rtl"] == pytest.approx(b["model"]["items_per_s"] / b["rtl"]["items_per_s"])
    assert b["api_overhead"] == max(b[t]["api_overhead"] for t in ("reference", "model", "rtl"))
    assert b["bare"]["agrees_with_rtl"] is True and b["bare"]["cycles"] == b["rtl"]["cycles"]
    assert b["rtl_over_bare"] == pytest.approx(b["bare"]["harness_s"] / b["bare"]["loop_s"])
    assert data["event_core"]["events"] == 2000 and data["event_core"]["loop_over_bare"] > 0
    assert "tracker" in data["bare_loops"]
    lines = summary(result).splitlines()
    assert lines[0].startswith("tracker: 300 items") and "cycles exact" in lines[0]
    assert lines[-1].startswith("event core:")


@pytest.mark.rtl
@pytest.mark.parametrize("seed,bp,long_gaps", [(1, 0.0, False), (2, 0.6, False), (3, 0.3, True)])
def test_bare_loop_triggers_equal_the_harness(seed, bp, long_gaps, tmp_path):
    """The bare C++ loop drives the same Verilog with the same stimulus, stalls and cycle numbering; both equal
    the model. Long gaps (255 cycles or more) take the harness's second request file."""
    from sim.blocks.tracker.model import replay_tracker
    from sim.blocks.tracker.rtl import replay_bare, replay_harness

    blk = ex.get("tracker")
    params = blk.small_params()
    stim = blk.standard_stimulus(params, seed, 3000)
    program, requests = stim["program"], stim["requests"].copy()
    if long_gaps:
        rng = np.random.default_rng(seed)
        delta = np.diff(requests["cycle"].astype(np.int64), prepend=0)
        delta += np.where(rng.random(len(delta)) < 0.05, rng.integers(200, 3000, len(delta)), 0)
        delta[100:104] = [254, 255, 256, 0]  # both sides of the one-byte limit
        requests["cycle"] = np.cumsum(delta)
        assert np.count_nonzero(delta >= 255) > 50
    ready = ex.Stalls(seed=seed, backpressure=bp).ready(0)
    kw = {"bp_seed": ready.seed, "bp_prob": ready.prob}
    bare = replay_bare(params, program, requests, tmp_path / "bare", **kw)
    harness = replay_harness(params, program, requests, tmp_path / "harness", **kw)
    model = replay_tracker(params, program, requests, ready.as_model_ready())
    assert len(bare["triggers"]) > 1000
    assert np.array_equal(bare["triggers"], harness["triggers"])
    assert np.array_equal(harness["triggers"], np.array(model.triggers, np.uint64))
    assert (bare["cycles"], bare["requests"], bare["errors"]) == (harness["cycles"], harness["requests"],
                                                                  harness["errors"])
    assert harness["cycles"] == model.loop.now + 2


def test_bench_events_reports_both_rates_and_their_ratio():
    ev = bench_events(3000, repeats=1, procs=8)
    assert ev["events"] == 3000
    for k in ("bare", "loop", "loop_handles", "inline"):
        assert ev[f"{k}_events_per_s"] > 0
    assert ev["loop_over_bare"] == pytest.approx(ev["bare_events_per_s"] / ev["loop_events_per_s"])


def test_items_are_the_rows_of_timed_input_tables():
    blk = ex.get("tracker")
    stim = blk.standard_stimulus(blk.small_params(), 1, 123)
    assert items_of(blk, stim) == 123  # requests (timed), not the program (untimed)


def test_targets_json_is_strict_and_sorted(tmp_path):
    path = write_json(tmp_path / "t.json", {"b": math.nan, "a": [np.float64(math.inf), np.int64(3)]})
    assert path.read_text() == '{\n  "a": [\n    null,\n    3\n  ],\n  "b": null\n}\n'
    assert not list(tmp_path.glob(".t.json.*")), "the temporary file is renamed, not left behind"


def test_summary_names_failures():
    result = {"blocks": {"x": {"error": "RtlError: boom\nmore"},
                         "y": {"items": 5, "reference": {"items_per_s": 1e6}, "model": {"error": "E"},
                               "rtl": {"items_per_s": 2.0, "cycles_per_s": 3.0}, "cycles_exact": None,
                               "model_over_rtl": None, "api_overhead": 0.01, "bare": None}}}
    assert summary(result).splitlines() == [
        "x: error: RtlError: boom",
        "y: 5 items, reference 1M/s, model error, rtl 2/s (3cyc/s), cycles not compared, api +1.0%"]
