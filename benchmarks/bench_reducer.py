"""Near-memory reducer scoreboard at scale: the RTL on Verilator against the reference and the timing model.

    .venv/bin/python benchmarks/bench_reducer.py [--packets N] [--words W] [--interval I] [--bp P] [--seed S]

One seeded random trace (all four ops, hot words updated back to back, special fp32/bf16 operands, 30% input
idles, ``--bp`` commit backpressure) is replayed through the file-fed harness (Python waits only for the end).
Prints packets, simulated cycles, simulated cycles per second, scoreboard mismatches (the word each packet
writes, the final memory words, commit entries) and the model's commit-cycle error (per packet and on the last
commit).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from hw.memory import MemoryParams
from hw.reducer import ReducerParams
from sim.blocks.reducer.model import model_commits
from sim.blocks.reducer.reference import apply_packets, random_packets
from sim.blocks.reducer.rtl import read_commits, read_readback, replay_harness
from sim.core.stimulus import ReadyPattern


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=100_000)
    ap.add_argument("--words", type=int, default=4096, help="memory words the packets address")
    ap.add_argument("--interval", type=int, default=1, help="memory service interval (cycles per command)")
    ap.add_argument("--bp", type=float, default=0.3, help="probability that commit.ready is low in a cycle")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    params = ReducerParams()
    mem = MemoryParams(addr_bits=params.addr_bits, size_log2=max(1, (args.words - 1).bit_length()), latency=6,
                       interval=args.interval)
    memory0, packets = random_packets(np.random.default_rng(args.seed), args.packets, args.words,
                                      tag_bits=params.tag_bits)
    ready = ReadyPattern(args.seed, args.bp)

    t0 = time.perf_counter()
    model = model_commits(params, mem, packets, ready.as_model_ready())
    model_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    expect = apply_packets(memory0, packets)
    ref_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        res = replay_harness(params, mem, memory0, packets, work, bp_seed=ready.seed, bp_prob=ready.prob)
        total = time.perf_counter() - t0
        commits = read_commits(work / "commits.hex")
        image = read_readback(work / "readback.hex")

    word_mismatches = int(np.count_nonzero(image != expect)) if image.shape == expect.shape else len(expect)
    want = np.stack([packets["tag"].astype(np.int64), packets["addr"].astype(np.int64)], axis=1)
    n = min(len(commits), len(packets))
    commit_mismatches = int(np.count_nonzero(np.any(commits[:n, 1:] != want[:n], axis=1))) + abs(len(commits)
                                                                                                 - len(packets))
    err = commits[:n, 0] - model.commit[:n]
    last_rtl = int(commits[-1, 0]) if n else 0
    print(f"packets: {len(packets)} ({np.bincount(packets['op'], minlength=4).tolist()} store/i32/f32/bf16), "
          f"{args.words} words, memory latency {mem.latency}, interval {mem.interval}, commit backpressure "
          f"{args.bp:.0%}")
    print(f"RTL: {res['cycles']} cycles in {res['wall_s']:.2f} s of simulation = "
          f"{res['cycles'] / res['wall_s'] / 1e6:.2f} M simulated cycles/s ({total:.1f} s end to end, with build "
          f"check, files, start-up and the testbench's own scoreboard)")
    print(f"scoreboard: {res['write_mismatches']} of {len(packets)} packet writes, {word_mismatches} final memory "
          f"words and {commit_mismatches} commit entries differ from the reference (tb verdict: "
          f"writes_ok={res['writes_ok']}, memory_ok={res['memory_ok']}, commits_ok={res['commits_ok']})")
    print(f"model: last commit at {model.last_commit} vs RTL {last_rtl} (error {model.last_commit - last_rtl:+d}, "
          f"{abs(model.last_commit - last_rtl) / max(1, last_rtl):.3%}); per packet: "
          f"{int(np.count_nonzero(err))} commit cycles differ, max |error| {int(np.abs(err).max()) if n else 0}; "
          f"model {len(packets) / model_s / 1e3:.0f} k packets/s, reference {len(packets) / ref_s / 1e3:.0f} k "
          f"packets/s")


if __name__ == "__main__":
    main()
