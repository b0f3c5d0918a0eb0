"""Speed of the T3 study: wall time of ``llmarch study t3`` (without ``--rtl``) and the system model's rate.

    .venv/bin/python benchmarks/bench_t3_study.py [--config configs/t3_study.yaml] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

from sim.core.config import REPO_ROOT, load_config
from sim.studies.t3.study import run_study


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(REPO_ROOT / "configs" / "t3_study.yaml"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cfg = load_config(args.config)
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        result = run_study(cfg.hardware, cfg.t3_study)
        times.append(time.perf_counter() - t0)
    best = min(times)
    events = result["model_events"]
    print(f"T3 study: {len(result['sublayers'])} sublayers x 3 simulated configurations, {events} events; "
          f"best of {args.repeat}: {best:.2f} s ({events / best / 1e3:.0f} k events/s); all runs: "
          + ", ".join(f"{t:.2f}" for t in times) + " s")


if __name__ == "__main__":
    main()
