"""Serving simulator speed: wall time of each system on one setup (default: 1000 conversations, LLaMA-8B/A10),
with every swap timed by the KV swap controller model, as in `llmarch study fastswitch`.

    .venv/bin/python benchmarks/bench_serving.py [--config FILE] [--conversations N] [--systems a,b]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from sim.core.config import REPO_ROOT, load_config
from sim.studies.fastswitch.study import unit_bytes
from sim.systems.swap_cost import ControllerSwapCost
from sw_stack.serving import SYSTEMS, generate, simulate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default=str(REPO_ROOT / "configs" / "serving" / "llama8b_a10.yaml"))
    ap.add_argument("--conversations", type=int, default=None)
    ap.add_argument("--systems", default="baseline,fastswitch")
    args = ap.parse_args()
    cfg = load_config(args.config).fastswitch
    if args.conversations:
        cfg = dataclasses.replace(cfg, workload=dataclasses.replace(cfg.workload, conversations=args.conversations))
    t0 = time.perf_counter()
    wl = generate(cfg.workload, cfg.model.max_context)
    print(f"workload: {cfg.workload.conversations} conversations, {len(wl.turns)} turns, "
          f"generated in {time.perf_counter() - t0:.2f} s")
    for name in args.systems.split(","):
        if name not in SYSTEMS:
            raise SystemExit(f"unknown system {name!r}; known: {', '.join(SYSTEMS)}")
        t0 = time.perf_counter()
        r = simulate(cfg, wl, name, swap_cost=ControllerSwapCost(cfg.pcie, unit_bytes(cfg)))
        dt = time.perf_counter() - t0
        print(f"{name:18s} {dt:6.2f} s  iterations {r['iterations']}  TTFT p50/p99/p999 "
              f"{r['ttft']['p50']:.2f}/{r['ttft']['p99']:.2f}/{r['ttft']['p999']:.2f} s  TBT p99/p999 "
              f"{r['tbt']['p99']:.3f}/{r['tbt']['p999']:.3f} s  swap {r['swap_gbps']:.1f} GB/s  "
              f"{r['throughput_tokens_per_s']:.0f} tok/s  preemptions {r['preemptions']}  "
              f"recomputes {r['recomputes']}  idle {r['gpu_idle_fraction']:.3f}")


if __name__ == "__main__":
    main()
