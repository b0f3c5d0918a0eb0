"""Tracker replay speed: the RTL on Verilator and the cycle model, on a 1 M-request trace.

    .venv/bin/python benchmarks/bench_tracker.py [--requests N] [--driven N] [--seed S]

Prints, for one seeded random trace (re-arming entries, 20% input idles, 10% trigger backpressure):
* RTL replay through the file-fed harness (Python awaits only the end): simulated cycles per second;
* RTL replay with Python driving every clock edge (the classic cocotb testbench) on ``--driven`` requests;
* the cycle model: requests per second and events per second;
and checks that the RTL's and the model's trigger cycles agree.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from hw.tracker import TrackerParams
from sim.blocks.tracker.model import replay_tracker
from sim.blocks.tracker.rtl import replay_driven, replay_harness
from sim.core.stimulus import ReadyPattern, random_tracker_workload


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--driven", type=int, default=20_000, help="requests for the per-edge testbench")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    params = TrackerParams()
    program, requests = random_tracker_workload(params, args.requests, np.random.default_rng(args.seed))
    ready = ReadyPattern(args.seed, 0.1)

    t0 = time.perf_counter()
    model = replay_tracker(params, program, requests, ready.as_model_ready())
    model_s = time.perf_counter() - t0
    model_trig = np.array(model.triggers, dtype=np.int64)
    print(f"model: {len(requests)} requests, {len(model_trig)} triggers in {model_s:.2f} s = "
          f"{len(requests) / model_s / 1e3:.0f} k requests/s, {model.loop.events_run / model_s / 1e3:.0f} k events/s")

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = replay_harness(params, program, requests, Path(tmp) / "harness", bp_seed=ready.seed, bp_prob=ready.prob)
        total = time.perf_counter() - t0
        rtl_trig = np.array(res["triggers"], dtype=np.int64)
        same = np.array_equal(rtl_trig, model_trig)
        print(f"RTL harness replay: {res['cycles']} cycles in {res['wall_s']:.2f} s of simulation = "
              f"{res['cycles'] / res['wall_s'] / 1e6:.2f} M cycles/s ({total:.1f} s with build check, file "
              f"writing and start-up); triggers identical to the model: {same}")

        sub = requests[: args.driven]
        t0 = time.perf_counter()
        res = replay_driven(params, program, sub, Path(tmp) / "driven", bp_seed=ready.seed, bp_prob=ready.prob)
        sub_model = replay_tracker(params, program, sub, ready.as_model_ready())
        cycles = (int(res["triggers"][-1][0]) if res["triggers"] else int(sub["cycle"][-1])) + 1
        same = np.array_equal(np.array(res["triggers"], dtype=np.int64), np.array(sub_model.triggers, np.int64))
        print(f"RTL per-edge cocotb replay: ~{cycles} cycles in {res['wall_s']:.2f} s = "
              f"{cycles / res['wall_s'] / 1e3:.0f} k cycles/s; triggers identical to the model: {same}")


if __name__ == "__main__":
    main()
