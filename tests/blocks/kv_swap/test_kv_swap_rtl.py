"""The KV swap controller on Verilator against its cycle model and a memory scoreboard."""

from __future__ import annotations

import numpy as np
import pytest

from hw.kv_swap import KvSwapParams, SwapError
from hw.memory import MemoryParams
from sim.blocks.kv_swap.model import (
    HostLinkModel,
    SimpleMemoryModel,
    SwapRun,
    place_aborts,
    random_swap_workload,
    run_kv_swap,
)
from sim.blocks.kv_swap.reference import scoreboard
from sim.blocks.kv_swap.rtl import run_kv_swap_rtl
from sim.core.stimulus import ReadyPattern

pytestmark = pytest.mark.rtl  # runs on Verilator

P = KvSwapParams(block_words=4, max_burst_blocks=4, dev_blocks=256, host_blocks=256, block_bits=8, count_bits=4,
                 dev_addr_bits=10, host_addr_bits=10, queue_depth=3, run_depth=6, outstanding=6, tag_bits=6)
DEV = MemoryParams(addr_bits=10, size_log2=10, latency=3, interval=1, queue_depth=4, rsp_depth=4)
HOST = MemoryParams(addr_bits=10, size_log2=10, latency=6, interval=2, queue_depth=4, rsp_depth=8)
OVERHEAD = 5


def _model(w, status_seed: int, status_bp: float) -> SwapRun:
    return run_kv_swap(P,
                       SimpleMemoryModel(DEV, dict(w.dev_preload)), HostLinkModel(HOST, OVERHEAD, dict(w.host_preload)),
                       w.runs, w.aborts, ReadyPattern(status_seed, status_bp).as_model_ready())


def _as_run(res: dict) -> SwapRun:
    return SwapRun(statuses=[tuple(s) for s in res["statuses"]], dev_cmds=[tuple(c) for c in res["dev_cmds"]],
                   host_cmds=[tuple(c) for c in res["host_cmds"]], cycles=res["cycles"], bad_aborts=res["bad_aborts"])


@pytest.mark.parametrize("seed,bp", [(11, 0.0), (12, 0.5), (13, 0.8)])
def test_replay_matches_model_and_scoreboard(seed, bp, tmp_path):
    rng = np.random.default_rng(seed)
    w = random_swap_workload(P, rng, n_requests=40, idle_prob=0.2, abort_fraction=0.0)
    w = place_aborts(w, _model(w, seed, bp), rng, 0.3)
    res = run_kv_swap_rtl(P, DEV, HOST, OVERHEAD, w.dev_preload, w.host_preload, w.runs, w.aborts, tmp_path,
                          status_seed=seed, status_bp=bp)
    rtl = _as_run(res)
    model = _model(w, seed, bp)
    scoreboard(P, w, rtl, dict(enumerate(res["dev_mem"])), dict(enumerate(res["host_mem"])))
    assert rtl.statuses == model.statuses
    assert rtl.dev_cmds == model.dev_cmds
    assert rtl.host_cmds == model.host_cmds
    assert (rtl.cycles, rtl.bad_aborts) == (model.cycles, model.bad_aborts)
    assert res["abort_err"] == int(model.bad_aborts > 0)
    errors = {e for _, _, e in model.statuses}
    assert {SwapError.OK, SwapError.ABORTED} <= errors and len(errors) >= 4, errors


def test_reset_in_the_middle_of_transfers_leaves_the_controller_usable(tmp_path):
    w = random_swap_workload(P, np.random.default_rng(21), n_requests=24, bad_fraction=0.0, abort_fraction=0.0)
    res = run_kv_swap_rtl(P, DEV, HOST, OVERHEAD, w.dev_preload, w.host_preload, w.runs, w.aborts, tmp_path,
                          status_seed=3, status_bp=0.3, reset_after=150)
    rtl = _as_run(res)
    model = _model(w, 3, 0.3)
    assert len(model.dev_cmds) + len(model.host_cmds) > 300, "the reset must hit transfers in flight"
    scoreboard(P, w, rtl, dict(enumerate(res["dev_mem"])), dict(enumerate(res["host_mem"])))
    assert rtl.statuses == model.statuses
    assert rtl.dev_cmds == model.dev_cmds and rtl.host_cmds == model.host_cmds
