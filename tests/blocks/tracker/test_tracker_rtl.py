"""The tracker RTL on Verilator (cocotb): config port, scoreboards and exact cycle agreement with the model.

Builds are cached by design and parameters (`sim.rtl.runner`), so only the first run pays for them.
"""

from __future__ import annotations

import numpy as np
import pytest

from hw.tracker import TrackerParams
from sim.blocks.tracker.model import replay_tracker
from sim.blocks.tracker.rtl import config_port, replay_driven, replay_harness
from sim.core.stimulus import ReadyPattern, random_tracker_workload
from sim.studies.ring.study import device_stimulus
from sim.systems.t3_ring import simulate_ring
from sw_stack.t3.planner import plan_t3

pytestmark = pytest.mark.rtl  # runs on Verilator

SMALL = TrackerParams(entries=16, count_bits=20, desc_bits=8, addr_bits=32, size_bits=12, fifo_depth=4)
TINY_FIFO = TrackerParams(entries=32, count_bits=12, desc_bits=16, addr_bits=32, size_bits=11, fifo_depth=2)


@pytest.fixture(scope="module")
def small_ring(small_config):
    plan = plan_t3(small_config.t3, small_config.hardware)
    return plan, simulate_ring(plan, small_config.hardware)


def _triggers(res) -> list[tuple[int, int, int]]:
    return [tuple(t) for t in res["triggers"]]


@pytest.mark.parametrize("params", [TrackerParams(), SMALL], ids=["default", "small"])
def test_config_port_registers_errors_and_reset(params, tmp_path):
    res = config_port(params, tmp_path)
    assert res["regs"]["ERRORS"] == 3 and res["cleared_errors"] == 0


def test_driven_replay_of_a_planner_trace(small_config, small_ring, tmp_path):
    """The classic per-edge cocotb testbench: random idles and backpressure, scoreboard, exact cycles."""
    plan, ring = small_ring
    params = small_config.hardware.tracker
    assert params == SMALL
    stim, ready = device_stimulus(ring.devices[1].tracker_input, 11, 1, 0.3, 0.5)
    res = replay_driven(params, plan.devices[1].program, stim, tmp_path, bp_seed=ready.seed, bp_prob=ready.prob)
    model = replay_tracker(params, plan.devices[1].program, stim, ready.as_model_ready())
    assert res["scoreboard_ok"] and res["expected_triggers"] == len(plan.devices[1].program)
    assert _triggers(res) == model.triggers


@pytest.mark.parametrize("device", range(4))
def test_harness_replay_of_every_device(small_config, small_ring, device, tmp_path):
    plan, ring = small_ring
    params = small_config.hardware.tracker
    stim, ready = device_stimulus(ring.devices[device].tracker_input, 5, device, 0.2, 0.3)
    res = replay_harness(params, plan.devices[device].program, stim, tmp_path, bp_seed=ready.seed,
                         bp_prob=ready.prob)
    model = replay_tracker(params, plan.devices[device].program, stim, ready.as_model_ready())
    assert res["scoreboard_ok"] and res["requests"] == len(stim)
    assert _triggers(res) == model.triggers


@pytest.mark.parametrize("seed,bp", [(1, 0.0), (2, 0.5), (3, 0.8), (4, 0.95)])
def test_harness_replay_of_random_traces(seed, bp, tmp_path):
    """Random re-arming traces with a two-deep FIFO and heavy backpressure: the stall paths, exactly."""
    params = TINY_FIFO
    program, requests = random_tracker_workload(params, 20_000, np.random.default_rng(seed), idle_prob=0.3,
                                                max_threshold=512)
    ready = ReadyPattern(seed, bp)
    res = replay_harness(params, program, requests, tmp_path, bp_seed=ready.seed, bp_prob=bp)
    model = replay_tracker(params, program, requests, ready.as_model_ready())
    assert res["scoreboard_ok"]
    assert len(model.triggers) > 1000
    assert _triggers(res) == model.triggers
    assert res["errors"] == (1 if model.stats.unprogrammed else 0) | (2 if model.stats.overflow else 0)
    if bp >= 0.8:  # the comparison has teeth: a model with a deeper FIFO no longer matches
        deeper = TrackerParams(**{**params.as_dict(), "fifo_depth": params.fifo_depth + 1})
        assert replay_tracker(deeper, program, requests, ready.as_model_ready()).triggers != model.triggers
