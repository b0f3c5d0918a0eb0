"""Run the tracker RTL on Verilator through its cocotb testbenches (`sim.blocks.tracker.tb`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import sim.blocks.tracker.harness as tracker_harness
from hw.tracker import TrackerParams, TrackTrigger
from hw.verilog import generate
from sim.core import trace
from sim.core.stimulus import probability_threshold
from sim.rtl.replay_top import REPLAY_BUILD_ARGS
from sim.rtl.runner import build, run_cocotb

TB = "sim.blocks.tracker.tb"


def _stimulus(work: Path, program: np.ndarray, requests: np.ndarray) -> Path:
    t = trace.Trace(clock_hz=1.0, producer="sim.blocks.tracker.rtl")
    t.add("program", "tracker_program", program)
    t.add("requests", "tracker_requests", requests)
    return trace.write(t, work / "stimulus.npz")


def _max_cycles(requests: np.ndarray, slack: int) -> int:
    last = int(requests["cycle"][-1]) if len(requests) else 0
    return last + 64 * len(requests) + slack


def replay_harness(params: TrackerParams, program: np.ndarray, requests: np.ndarray, work: Path, *,
                   bp_seed: int = 0, bp_prob: float = 0.0, waves: bool = False) -> dict:
    """Full-speed replay (Python waits for ``done`` only). Returns cycles, wall time and triggers."""
    build_dir = build(tracker_harness.TOP, tracker_harness.sources(params), REPLAY_BUILD_ARGS, waves=waves)
    stim = _stimulus(work, program, requests)
    prog, reqs = tracker_harness.write_inputs(work, program, requests)
    trig_file = work / "triggers.hex"
    job = {"params": params.as_dict(), "stimulus": str(stim), "triggers_file": str(trig_file),
           "max_cycles": _max_cycles(requests, 10_000)}
    plus = [f"+program={prog}", f"+requests={reqs}", f"+triggers={trig_file}", f"+bp_seed={bp_seed & 0xFFFFFFFF}",
            f"+bp_thresh={probability_threshold(bp_prob)}"]
    return run_cocotb(build_dir, tracker_harness.TOP, TB, "replay_harness", test_dir=work, job=job,
                      plusargs=plus, waves=waves)


def _bare_build(params: TrackerParams) -> Path:
    return build("track_trigger", {"track_trigger.v": generate("track_trigger", TrackTrigger(params))})


def replay_driven(params: TrackerParams, program: np.ndarray, requests: np.ndarray, work: Path, *,
                  bp_seed: int = 0, bp_prob: float = 0.0) -> dict:
    """Replay with Python driving every cycle (the classic cocotb testbench)."""
    stim = _stimulus(work, program, requests)
    job = {"params": params.as_dict(), "stimulus": str(stim), "bp_seed": bp_seed, "bp_prob": bp_prob,
           "max_cycles": _max_cycles(requests, 1000)}
    return run_cocotb(_bare_build(params), "track_trigger", TB, "replay_driven", test_dir=work, job=job)


def config_port(params: TrackerParams, work: Path) -> dict:
    """Status registers, error flags and reset behaviour."""
    return run_cocotb(_bare_build(params), "track_trigger", TB, "config_port", test_dir=work,
                      job={"params": params.as_dict()})
