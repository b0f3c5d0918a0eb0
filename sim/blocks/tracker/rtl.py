"""Run the tracker RTL on Verilator: the self-clocked replay harness, the cocotb testbenches
(`sim.blocks.tracker.tb`) and the bare C++ loop (`sim.rtl.bare`)."""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import sim.blocks.tracker.harness as tracker_harness
from hw.tracker import TrackerParams, TrackTrigger
from hw.verilog import generate
from sim.blocks.tracker import reference
from sim.core import trace
from sim.core.stimulus import probability_threshold
from sim.rtl.runner import RtlError, build, run_cocotb

TB = "sim.blocks.tracker.tb"
REPLAY_TB = "sim.rtl.replay_tb"  # the harness's test: wait for done (a light module: the simulator starts fast)


def _stimulus(work: Path, program: np.ndarray, requests: np.ndarray) -> Path:
    t = trace.Trace(clock_hz=1.0, producer="sim.blocks.tracker.rtl")
    t.add("program", "tracker_program", program)
    t.add("requests", "tracker_requests", requests)
    return trace.write(t, work / "stimulus.npz")


def _max_cycles(requests: np.ndarray, slack: int) -> int:
    last = int(requests["cycle"][-1]) if len(requests) else 0
    return last + 64 * len(requests) + slack


@functools.lru_cache(maxsize=8)
def _harness_sources(params: TrackerParams, burst: int) -> dict[str, str]:
    """The harness build's Verilog (generating it takes most of a second; `build` needs it for its cache key)."""
    return tracker_harness.sources(params, burst)


def _expected(program: np.ndarray, requests: np.ndarray, params: TrackerParams) -> np.ndarray:
    """The reference trigger sequence as an (n, 2) uint64 array of (desc, entry)."""
    return np.array(reference.tracker_triggers(program, requests, params).sequence, dtype=np.uint64).reshape(-1, 2)


def replay_harness(params: TrackerParams, program: np.ndarray, requests: np.ndarray, work: Path, *,
                   bp_seed: int = 0, bp_prob: float = 0.0, waves: bool = False, scoreboard: bool = True) -> dict:
    """Full-speed replay (`sim.blocks.tracker.harness`; Python waits for ``done`` only), scoreboarded.

    Returns ``cycles``, ``wall_s`` (simulation from the start of the cocotb test to ``done``), ``requests``,
    ``errors``, ``triggers`` (an (n, 3) uint64 array of cycle, desc, entry), ``scoreboard_ok`` and
    ``expected_triggers``. The scoreboard (`reference.tracker_triggers`) is computed in a thread while the
    simulator runs; a request left over or a trigger sequence that differs from it raises `RtlError`. Without
    ``scoreboard`` (e.g. when the caller compares with the reference anyway) ``scoreboard_ok`` and
    ``expected_triggers`` are None: the reference costs about a second per million requests, more than the
    simulation.
    """
    work.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        expected = pool.submit(_expected, program, requests, params) if scoreboard else None
        burst = 0 if waves else tracker_harness.BURST  # a wave dump needs one time step per clock edge
        build_dir = build(tracker_harness.TOP, _harness_sources(params, burst), tracker_harness.build_args(burst),
                          waves=waves)
        prog, reqs, big = tracker_harness.write_inputs(work, params, program, requests)
        trig_file = work / "triggers.bin"
        trig_file.unlink(missing_ok=True)
        job = {"time_limit_ns": tracker_harness.time_limit_ns(_max_cycles(requests, 10_000), burst),
               "report": ["cycle", "n_req", "n_trig", "errors"]}
        plus = [f"+program={prog}", f"+requests={reqs}", f"+big={big}", f"+n_requests={len(requests)}",
                f"+triggers={trig_file}", f"+bp_seed={bp_seed & 0xFFFFFFFF}",
                f"+bp_thresh={probability_threshold(bp_prob)}"]
        res = run_cocotb(build_dir, tracker_harness.TOP, REPLAY_TB, "replay_done", test_dir=work, job=job,
                         plusargs=plus, waves=waves)
        want = expected.result() if expected is not None else None
    if res["n_req"] != len(requests):
        raise RtlError(f"the harness accepted {res['n_req']} of {len(requests)} requests")
    trig = tracker_harness.read_triggers(trig_file, params, res["n_trig"])
    out = {"cycles": res["cycle"], "wall_s": res["wall_s"], "requests": res["n_req"], "triggers": trig,
           "errors": res["errors"], "scoreboard_ok": None, "expected_triggers": None}
    if want is None:
        return out
    n = min(len(want), len(trig))
    bad = np.flatnonzero(np.any(trig[:n, 1:] != want[:n], axis=1))
    if len(bad) or len(want) != len(trig):
        first = int(bad[0]) if len(bad) else n
        raise RtlError(f"scoreboard: trigger {first} differs (RTL {trig[first:first + 1, 1:].tolist()}, reference "
                       f"{want[first:first + 1].tolist()}); {len(trig)} vs {len(want)} triggers")
    return out | {"scoreboard_ok": True, "expected_triggers": len(want)}


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


@functools.lru_cache(maxsize=8)
def _bare_sources(params: TrackerParams) -> tuple[dict[str, str], str]:
    return {"track_trigger.v": generate("track_trigger", TrackTrigger(params))}, tracker_harness.bare_main(params)


def replay_bare(params: TrackerParams, program: np.ndarray, requests: np.ndarray, work: Path, *,
                bp_seed: int = 0, bp_prob: float = 0.0) -> dict:
    """The same replay on the bare Verilator C++ loop (`sim.rtl.bare`), the yardstick of the harness.

    Returns ``cycles``, ``requests``, ``errors``, ``triggers`` (an (n, 3) uint64 array of cycle, desc, entry),
    ``loop_s`` (the cycle loop alone) and ``process_s`` (the whole process: start, loading, loop, writing).
    """
    from sim.rtl import bare

    exe = bare.build("track_trigger", *_bare_sources(params))
    prog, reqs = tracker_harness.write_bare_inputs(work, program, requests)
    out = work / "triggers.u64"
    rep = bare.run(exe, [str(prog), str(reqs), str(out), str(bp_seed & 0xFFFFFFFF),
                         str(probability_threshold(bp_prob))])
    trig = np.fromfile(out, "<u8").reshape(-1, 3)
    return {"cycles": int(rep["cycles"]), "requests": int(rep["requests"]), "errors": int(rep["errors"]),
            "triggers": trig, "loop_s": rep["loop_s"], "process_s": rep["process_s"]}
