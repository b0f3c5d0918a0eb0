"""Tracker replay speed: the cycle model, the RTL on Verilator (cocotb harness and bare C++ loop), one trace.

    .venv/bin/python benchmarks/bench_tracker.py [--requests N] [--driven N] [--seed S]

Prints, for one seeded random trace (re-arming entries, 20% input idles, 10% trigger backpressure):
* the cycle model: requests per second and events per second;
* the RTL replay through the self-clocked harness (`sim.blocks.tracker.harness`; Python awaits only the end):
  simulated cycles per second inside the simulation, and the whole call (start-up, files, scoreboard);
* the same Verilog on the bare Verilator C++ loop (`sim.rtl.bare`), the physical limit, and the harness's ratio;
* the RTL replay with Python driving every clock edge (the classic cocotb testbench) on ``--driven`` requests;
and checks that every RTL replay's triggers equal the model's, cycles included. ``llmarch bench`` measures the
same for every block (`sim.exec.bench`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from hw.tracker import TrackerParams
from sim.blocks.tracker.model import replay_tracker
from sim.blocks.tracker.rtl import replay_bare, replay_driven, replay_harness
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
    kw = {"bp_seed": ready.seed, "bp_prob": ready.prob}

    t0 = time.perf_counter()
    model = replay_tracker(params, program, requests, ready.as_model_ready())
    model_s = time.perf_counter() - t0
    model_trig = np.array(model.triggers, dtype=np.uint64).reshape(-1, 3)
    print(f"model: {len(requests)} requests, {len(model_trig)} triggers in {model_s:.2f} s = "
          f"{len(requests) / model_s / 1e3:.0f} k requests/s, {model.loop.events_run / model_s / 1e3:.0f} k events/s")

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = replay_harness(params, program, requests, Path(tmp) / "harness", **kw)
        total = time.perf_counter() - t0
        same = np.array_equal(res["triggers"], model_trig)
        print(f"RTL harness replay: {res['cycles']} cycles in {res['wall_s']:.3f} s of simulation = "
              f"{res['cycles'] / res['wall_s'] / 1e6:.2f} M cycles/s ({total:.2f} s for the whole call, build check, "
              f"files, start-up and scoreboard included); triggers identical to the model: {same}")

        bare = replay_bare(params, program, requests, Path(tmp) / "bare", **kw)
        same = np.array_equal(bare["triggers"], model_trig)
        print(f"bare Verilator loop: {bare['cycles']} cycles in {bare['loop_s']:.3f} s = "
              f"{bare['cycles'] / bare['loop_s'] / 1e6:.2f} M cycles/s ({bare['process_s']:.2f} s for the process); "
              f"harness / bare = {res['wall_s'] / bare['loop_s']:.2f}; triggers identical to the model: {same}")

        sub = requests[: args.driven]
        t0 = time.perf_counter()
        res = replay_driven(params, program, sub, Path(tmp) / "driven", **kw)
        sub_model = replay_tracker(params, program, sub, ready.as_model_ready())
        cycles = (int(res["triggers"][-1][0]) if res["triggers"] else int(sub["cycle"][-1])) + 1
        same = np.array_equal(np.array(res["triggers"], dtype=np.int64), np.array(sub_model.triggers, np.int64))
        print(f"RTL per-edge cocotb replay: ~{cycles} cycles in {res['wall_s']:.2f} s = "
              f"{cycles / res['wall_s'] / 1e3:.0f} k cycles/s; triggers identical to the model: {same}")


if __name__ == "__main__":
    main()
