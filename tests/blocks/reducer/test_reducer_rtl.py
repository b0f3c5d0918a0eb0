"""The near-memory reducer RTL on Verilator (cocotb): data scoreboard, commit stream, and every commit's cycle
against the timing model, under random input idles and commit backpressure; and a reset mid-trace.

Builds are cached by design and parameters (`sim.rtl.runner`), so only the first run pays for them.
"""

from __future__ import annotations

import numpy as np
import pytest

from hw.memory import MemoryParams
from hw.reducer import ReducerParams
from sim.blocks.reducer.model import model_commits
from sim.blocks.reducer.reference import random_packets
from sim.blocks.reducer.rtl import replay_driven, replay_harness
from sim.core.stimulus import ReadyPattern

pytestmark = pytest.mark.rtl  # runs on Verilator

PARAMS = ReducerParams()
SMALL = ReducerParams(addr_bits=24, tag_bits=6, inflight=2, commit_depth=2)


def _mem(interval: int) -> MemoryParams:
    return MemoryParams(addr_bits=24, size_log2=12, latency=6, interval=interval)


def _check(res: dict, n: int) -> None:
    assert res["writes_ok"] and res["memory_ok"] and res["commits_ok"] and res["commits"] == n
    assert res["model_mismatches"] == 0, (res["model_max_abs_err"], res["model_last_err"])


@pytest.mark.parametrize("seed,interval,bp,params", [
    (1, 1, 0.0, PARAMS), (2, 1, 0.6, PARAMS), (3, 2, 0.3, PARAMS), (4, 2, 0.9, PARAMS), (5, 1, 0.5, SMALL),
], ids=["i1-free", "i1-bp60", "i2-bp30", "i2-bp90", "small-i1-bp50"])
def test_harness_replay_scoreboard_and_exact_cycles(seed, interval, bp, params, tmp_path):
    n = 6_000
    rng = np.random.default_rng(seed)
    memory0, packets = random_packets(rng, n, 1024, tag_bits=params.tag_bits, idle_prob=0.3, hot=6)
    res = replay_harness(params, _mem(interval), memory0, packets, tmp_path, bp_seed=seed * 77, bp_prob=bp)
    _check(res, n)
    assert res["accepted"] == res["applied"] == n
    if 0.4 <= bp <= 0.7:
        # The comparison has teeth: a model with a deeper commit FIFO no longer matches. (At 90 % backpressure
        # the consumer alone sets every commit cycle, and at none the FIFO never fills.)
        deeper = ReducerParams(**{**params.as_dict(), "commit_depth": params.commit_depth + 1})
        ready = ReadyPattern(seed * 77, bp).as_model_ready()
        assert model_commits(deeper, _mem(interval), packets, ready).commit.tolist() != res["commit_cycles"]


def test_harness_replay_of_a_single_hot_word(tmp_path):
    """Every packet updates one of two words: the hazard path back to back, all four ops."""
    rng = np.random.default_rng(9)
    memory0, packets = random_packets(rng, 3000, 2, idle_prob=0.0, hot=2, hot_frac=1.0, burst_frac=1.0)
    res = replay_harness(PARAMS, _mem(1), memory0, packets, tmp_path, bp_seed=3, bp_prob=0.2)
    _check(res, len(packets))
    # One word at a time: each update waits for the previous one's write (latency 6: 10 cycles apart at best).
    assert res["rtl_last_commit"] >= 3000 * 10 // 2


def test_driven_replay_with_idles_and_backpressure(tmp_path):
    """The classic per-edge cocotb testbench, with the same stalls as the model."""
    rng = np.random.default_rng(21)
    memory0, packets = random_packets(rng, 2500, 256, idle_prob=0.4, hot=4)
    res = replay_driven(PARAMS, _mem(1), memory0, packets, tmp_path, bp_seed=5, bp_prob=0.5)
    _check(res, len(packets))


def test_reset_in_the_middle_of_a_trace_leaves_the_block_usable(tmp_path):
    rng = np.random.default_rng(33)
    memory0, packets = random_packets(rng, 600, 64, idle_prob=0.1, hot=2)
    res = replay_driven(PARAMS, _mem(1), memory0, packets, tmp_path, bp_seed=8, bp_prob=0.7, reset_at=300)
    assert res["busy_before_reset"] and 0 < res["cut_commits"] < len(packets)
    assert res["idle_after_reset"] == 1 and res["commit_valid_after_reset"] == 0 and res["applied_after_reset"] == 0
    _check(res, len(packets))
