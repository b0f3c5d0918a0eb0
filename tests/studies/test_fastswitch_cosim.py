"""The FastSwitch swap-window co-simulation: scale-down, hazard gating and reference in Python, then the swap
controller RTL on a window of the scheduler's swaps, and ``llmarch study fastswitch --rtl``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import sim.studies.fastswitch.cosim as fc
from hw.kv_swap import SwapDir
from sim.blocks.kv_swap.model import coalesce
from sim.cli import main
from sim.core.config import PcieLinkConfig, load_config
from sim.studies.fastswitch.study import unit_bytes
from sim.systems.swap_cost import ControllerSwapCost
from sw_stack.serving import generate
from sw_stack.serving.engine import ServingEngine, SwapRecord

DATA = Path(__file__).parents[1] / "data"
UNIT = 32768  # LLaMA-8B: one 16-token block of one layer's K or V
OUT, IN = int(SwapDir.OUT), int(SwapDir.IN)


def _cost() -> ControllerSwapCost:
    return ControllerSwapCost(PcieLinkConfig(), UNIT)


def _rec(direction: str, *copies: tuple[int, int, int]) -> SwapRecord:
    return SwapRecord(0.0, 0.0, direction, 0, tuple(copies))


# --- scale-down ------------------------------------------------------------------------------------------------

def test_remap_keeps_adjacency_and_leaves_one_block_per_gap():
    m, size = fc.remap_blocks([7, 3, 4, 5, 10, 11, 100, 4])
    assert m == {3: 0, 4: 1, 5: 2, 7: 4, 10: 6, 11: 7, 100: 9} and size == 10
    assert fc.remap_blocks([]) == ({}, 0)
    rng = np.random.default_rng(5)
    ids = sorted({int(x) for x in rng.integers(0, 5000, 700)})
    m, size = fc.remap_blocks(ids)
    for a, b in zip(ids, ids[1:], strict=False):
        assert m[b] - m[a] == (1 if b == a + 1 else 2)
    assert size == m[ids[-1]] + 1 < 2 * len(ids)


def test_link_scaling_keeps_the_overhead_to_transfer_ratio():
    cost = _cost()
    burst, overhead = fc.scaled_link(cost, UNIT, 16)
    assert burst == (1 << 20) // UNIT  # the study's 1 MiB burst holds 32 copy units
    study_ratio = cost.link.overhead_cycles / (UNIT / 4 / cost.link.words_per_cycle)  # 2.3 us vs 32 KiB at 24 GB/s
    assert abs(overhead / 16 - study_ratio) / study_ratio < 0.01


def test_plan_keeps_each_swaps_contiguity_and_bursts():
    # Copies adjacent on one side only, adjacent on both sides (the controller merges them), far apart, and one
    # longer than a run record's count (split into adjacent runs that merge again).
    records = [
        _rec("out", (100, 5000, 4), (104, 9000, 2), (300, 9002, 1)),
        _rec("out", (10, 7000, 3), (13, 7003, 2), (2000, 7100, 1)),
        _rec("in", (5000, 40, 4), (9000, 44, 3)),
        _rec("out", (1500, 20000, 600)),
    ]
    plan = fc.plan_window(records, 2164, 28610, _cost(), UNIT, seed=3)
    mb = plan.params.max_burst_blocks
    assert len(plan.swaps) == 4 and plan.skipped == 0
    for rec, (d, runs) in zip(records, plan.swaps, strict=True):
        assert d == (OUT if rec.direction == "out" else IN)
        assert sum(n for *_, n in runs) == sum(n for *_, n in rec.copies)
        assert [n for *_, n in coalesce(runs, mb)] == [n for *_, n in coalesce(rec.copies, mb)]
    assert max(n for _, runs in plan.swaps for *_, n in runs) <= (1 << fc.COUNT_BITS) - 1
    assert len(plan.gaps) == sum(len(r) for _, r in plan.swaps)
    assert plan.dev_words == fc.remap_blocks({b for r in records for b in fc._touched(r)[0]})[1] * 16


def test_plan_skips_swaps_that_do_not_fit_the_pools():
    records = [_rec("out", (0, 0, 4)), _rec("out", (10, 10, 4)), _rec("out", (4, 4, 2))]
    plan = fc.plan_window(records, 64, 200, _cost(), UNIT, capacity_blocks=8)
    assert [r for _, r in plan.swaps] == [[(0, 0, 4)], [(4, 4, 2)]] and plan.skipped == 1  # 2nd: 9 CPU blocks
    many = _rec("out", *((2 * i, 2 * i, 1) for i in range(fc.RUN_DEPTH + 1)))  # more runs than a run FIFO holds
    plan = fc.plan_window([many, records[0]], 2164, 28610, _cost(), UNIT)
    assert len(plan.swaps) == 1 and plan.skipped == 1


# --- hazards and reference -------------------------------------------------------------------------------------

def test_dependencies_follow_conflicting_blocks_only():
    swaps = [
        (OUT, [(0, 0, 4)]),   # 0: reads dev 0-3, writes host 0-3
        (IN, [(0, 8, 4)]),    # 1: reads host 0-3 (written by 0)
        (OUT, [(20, 10, 1)]),  # 2: unrelated
        (IN, [(12, 2, 1)]),   # 3: writes dev 2 (read by 0)
        (OUT, [(0, 30, 2)]),  # 4: reads dev 0-1 like 0 (no conflict); writes host 30-31
        (OUT, [(2, 31, 1)]),  # 5: reads dev 2 (written by 3), writes host 31 (written by 4)
    ]
    assert fc.dependencies(swaps) == [[], [0], [], [0], [], [3, 4]]


def test_expected_memories_apply_the_swaps_in_order():
    dev = np.arange(8, dtype=np.uint32)
    host = np.arange(100, 108, dtype=np.uint32)
    swaps = [(OUT, [(0, 2, 1)]), (IN, [(2, 3, 1), (0, 0, 1)]), (OUT, [(3, 0, 1)])]  # block_words 2
    d, h = fc.expected_memories(swaps, dev, host, 2)
    assert d.tolist() == [100, 101, 2, 3, 4, 5, 0, 1]
    assert h.tolist() == [0, 1, 102, 103, 0, 1, 106, 107]
    assert dev.tolist() == list(range(8))  # the preloads are not touched
    words = np.concatenate([fc.pool_words(0, 4096, 7), fc.pool_words(1, 4096, 7)])
    assert len(set(words.tolist())) == len(words)


def _hazard_plan() -> fc.WindowPlan:
    # A long unrelated swap-out keeps the engine busy while a swap-out and the swap-in reading its destination
    # queue up: ungated, the swap-in (served first) would read the CPU blocks before they are written.
    records = [_rec("out", (0, 0, 200)), _rec("out", (300, 400, 8)), _rec("in", (400, 500, 8)),
               _rec("out", (600, 700, 3))]
    return fc.plan_window(records, 2164, 28610, _cost(), UNIT, seed=4, backpressure=0.4)


def test_gated_offers_keep_the_window_order_on_the_model():
    plan = _hazard_plan()
    assert plan.deps == [[], [], [1], []]
    fc.schedule(plan)
    res, dev, host = fc.replay_model(plan)
    done, errors = fc.completions(plan, res.statuses)
    first = plan.first_run()
    assert errors == 0 and None not in done
    for k, deps in enumerate(plan.deps):
        assert all(plan.offers[first[k]] > done[j] for j in deps)
    assert np.array_equal(dev, plan.expect_dev) and np.array_equal(host, plan.expect_host)
    assert fc.write_errors(plan, res.dev_cmds, res.host_cmds) == 0

    ungated = dataclasses.replace(plan, deps=[[] for _ in plan.deps])
    fc.schedule(ungated)
    _, dev, _ = fc.replay_model(ungated)
    assert not np.array_equal(dev, plan.expect_dev), "without the gating the swap-in overtakes its swap-out"


# --- the RTL on a window of the scheduler's swaps ---------------------------------------------------------------

@pytest.fixture(scope="module")
def window(tmp_path_factory):
    study = load_config(DATA / "fastswitch_small.yaml")
    cfg = load_config(DATA / study.fastswitch_study.setups[0]).fastswitch
    cfg = dataclasses.replace(cfg, workload=dataclasses.replace(cfg.workload, conversations=150))
    cost = ControllerSwapCost(cfg.pcie, unit_bytes(cfg))
    engine = ServingEngine(cfg, "fastswitch", cost, record_swaps=48)
    engine.run(generate(cfg.workload, cfg.model.max_context))
    plan = fc.plan_window(engine.swap_log, engine.gpu_blocks, engine.cpu_blocks, cost, unit_bytes(cfg), window=24,
                          seed=9, backpressure=0.4)
    fc.schedule(plan)
    model = fc.replay_model(plan)
    rtl = fc.replay_rtl(plan, tmp_path_factory.mktemp("fs_cosim"), 2 * model[0].cycles + 10_000)
    return plan, rtl, model


@pytest.mark.rtl
def test_rtl_moves_every_block_once_to_its_place_in_the_models_cycles(window):
    plan, rtl, model = window
    r = fc.compare(plan, rtl, model)
    assert r["swaps"] == 24 and r["swaps_out"] and r["swaps_in"] and r["gated_swaps"]
    assert r["runs"] > r["swaps"] and r["bursts"] >= r["swaps"]
    assert r["words_checked"] == plan.dev_words + plan.host_words and r["words_moved"] > 10_000
    assert r["data_mismatches"] == 0 and r["model_data_mismatches"] == 0
    assert r["write_errors"] == 0 and r["model_write_errors"] == 0
    assert r["status_errors"] == 0 and r["missing_statuses"] == 0
    assert r["max_cycle_error"] <= 0.05
    assert r["cycles_rtl"] == r["cycles_model"] and r["command_mismatches"] == 0  # the model is cycle-exact
    assert 0.3 < r["words_per_cycle_rtl"] <= 1.0


@pytest.mark.rtl
def test_checks_catch_a_wrong_reference_a_wrong_model_and_a_lost_status(window):
    plan, rtl, model = window
    bad = dataclasses.replace(plan, expect_host=plan.expect_host.copy())
    bad.expect_host[len(bad.expect_host) // 2] ^= 1
    assert fc.compare(bad, rtl, model)["data_mismatches"] == 1

    slow = fc.replay_model(plan, overhead_cycles=2 * plan.overhead_cycles)  # a model of a slower link
    r = fc.compare(plan, rtl, slow)
    assert r["max_cycle_error"] > 0.05 and r["cycles_model"] > r["cycles_rtl"]

    lost = dict(rtl, statuses=rtl["statuses"][:-1], dev_mem=list(rtl["dev_mem"]))
    lost["dev_mem"][0] ^= 1 << 31
    r = fc.compare(plan, lost, model)
    assert r["missing_statuses"] == 1 and r["missing_completions"] == 1 and r["data_mismatches"] == 1
    assert r["max_cycle_error"] == 0.0  # finite: the lost status is counted, not turned into an infinite error


@pytest.mark.rtl
def test_study_command_with_rtl(tmp_path, capsys):
    assert main(["study", "fastswitch", "--config", str(DATA / "fastswitch_rtl.yaml"), "--out", str(tmp_path),
                 "--rtl"]) == 0
    text = capsys.readouterr().out
    assert f"co-simulation: {fc.WINDOW_SWAPS} swaps, 0 data mismatches" in text
    c = json.loads((tmp_path / "fastswitch.json").read_text())["cosim"]
    assert c["setup"] == "llama8b_a10" and c["system"] == "fastswitch" and c["swaps"] == fc.WINDOW_SWAPS
    assert c["data_mismatches"] == 0 and c["max_cycle_error"] <= 0.05 and c["status_errors"] == 0
    assert c["cycles_rtl"] == c["cycles_model"] > 0
    assert "Swap controller RTL co-simulation" in (tmp_path / "fastswitch.md").read_text()


def test_study_rtl_needs_the_fastswitch_system(tmp_path, capsys):
    root = Path(__file__).parents[2] / "configs"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"seed: 1\nhardware: {root / 'hardware/t3_gpu.yaml'}\nfastswitch_study:\n"
                   f"  setups: [{root / 'serving/llama8b_a10.yaml'}]\n  systems: [baseline]\n  conversations: 20\n")
    assert main(["study", "fastswitch", "--config", str(cfg), "--out", str(tmp_path / "o"), "--rtl"]) == 2
    assert "fastswitch" in capsys.readouterr().err
