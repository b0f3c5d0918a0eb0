"""The memory arbiter + SimpleMemory on Verilator (cocotb): scoreboard, exact cycle agreement with the model in
both modes, several thresholds, the starvation limit on and off, and MCA's effect on the GEMM's traffic.

Builds are cached by design and parameters (`sim.rtl.runner`), so only the first run pays for them.
"""

from __future__ import annotations

import numpy as np
import pytest

import sim.exec as ex
from hw.arbiter import ArbiterMode, ArbiterParams
from hw.memory import MemoryParams
from sim.blocks.arbiter import arbiter_stimulus, standard_memory
from sim.blocks.arbiter.model import ArbiterRun, random_streams, run_arbiter
from sim.blocks.arbiter.rtl import replay_driven, replay_harness
from sim.blocks.memory.model import SimpleMemoryModel
from sim.core.stimulus import ReadyPattern

pytestmark = pytest.mark.rtl  # runs on Verilator

ARB = ArbiterParams(max_reads=12)
MEM = MemoryParams(size_log2=10, latency=4, interval=2, queue_depth=16, rsp_depth=8)
REGION = 128
MCA, RR = ArbiterMode.MCA, ArbiterMode.ROUND_ROBIN


def _model(compute, comm, mode, threshold, limit, ready) -> ArbiterRun:
    return run_arbiter(ARB, SimpleMemoryModel(MEM), compute, comm, mode=mode, threshold=threshold,
                       starvation_limit=limit, compute_ready=ready[0].as_model_ready(),
                       comm_ready=ready[1].as_model_ready())


def _assert_exact(res: dict, model: ArbiterRun) -> None:
    """Every grant and response cycle, every word, the run length and both statistics counters agree."""
    assert res["scoreboard_ok"], res["scoreboard_errors"]
    assert res["compute_grants"] == model.compute.grants
    assert res["comm_grants"] == model.comm.grants
    assert [tuple(r) for r in res["compute_rsp"]] == model.compute.responses
    assert [tuple(r) for r in res["comm_rsp"]] == model.comm.responses
    assert res["cycles"] == model.cycles
    assert (res["comm_wait_cycles"], res["starvation_grants"]) == (model.comm_wait_cycles, model.starvation_grants)


def _completion(res: dict, who: str) -> int:
    return max([-1, *res[f"{who}_grants"][-1:], *(c for c, _ in res[f"{who}_rsp"][-1:])])


def _max_wait(arrivals, grants) -> int:
    worst, prev = 0, -1
    for a, g in zip(arrivals, grants, strict=True):
        worst, prev = max(worst, g - max(a, prev + 1)), g
    return worst


@pytest.mark.parametrize("mode,threshold,limit,bp", [
    (RR, 0, 0, (0.3, 0.3)),
    (MCA, 2, 0, (0.2, 0.6)),
    (MCA, 6, 32, (0.6, 0.2)),
    (MCA, 12, 0, (0.0, 0.0)),
    (MCA, 0, 8, (0.4, 0.4)),
    (MCA, 40, 16, (0.3, 0.3)),
], ids=["rr", "mca-t2", "mca-t6-lim32", "mca-t12", "mca-t0-lim8", "mca-t40-lim16"])
def test_harness_replay_matches_model_and_scoreboard(mode, threshold, limit, bp, tmp_path):
    """Random bursty compute against steady read-modify-write comm, random idles and response stalls."""
    seed = 10 * threshold + limit
    compute, comm = random_streams(np.random.default_rng(seed), region_words=REGION, bursts=25, comm_pairs=700,
                                   comm_gap=(0, 3), idle_prob=0.1)
    ready = (ReadyPattern(seed + 1, bp[0]), ReadyPattern(seed + 2, bp[1]))
    res = replay_harness(ARB, MEM, compute, comm, tmp_path, mode=mode, threshold=threshold,
                         starvation_limit=limit, compute_ready=ready[0], comm_ready=ready[1],
                         readback_words=REGION)
    model = _model(compute, comm, mode, threshold, limit, ready)
    _assert_exact(res, model)
    assert len(compute) + len(comm) > 1800
    assert res["readback"] and any(res["readback"])
    if limit and mode == MCA:
        assert res["starvation_grants"] > 0


def test_mca_speeds_up_the_gemm_and_the_limit_bounds_comm_wait(tmp_path):
    """Heavy comm traffic (more than the memory can serve) against long GEMM bursts, same streams three ways."""
    compute, comm = random_streams(np.random.default_rng(7), region_words=REGION, bursts=12, burst_len=(40, 80),
                                   burst_gap=(60, 200), comm_pairs=900, comm_gap=(0, 1), idle_prob=0.05)
    ready = (ReadyPattern(0, 0.0), ReadyPattern(0, 0.0))
    runs = {}
    for name, mode, limit in (("rr", RR, 0), ("mca", MCA, 0), ("mca_limit", MCA, 16)):
        res = replay_harness(ARB, MEM, compute, comm, tmp_path / name, mode=mode, threshold=4,
                             starvation_limit=limit, readback_words=REGION)
        _assert_exact(res, _model(compute, comm, mode, 4, limit, ready))
        runs[name] = res
    gemm = {k: _completion(r, "compute") for k, r in runs.items()}
    assert gemm["mca"] < 0.75 * gemm["rr"], gemm
    assert gemm["mca_limit"] < 0.8 * gemm["rr"], gemm
    arrivals = comm["cycle"].tolist()
    wait = {k: _max_wait(arrivals, r["comm_grants"]) for k, r in runs.items()}
    # With the limit comm waits at most 16 cycles plus the memory's own delays (a held command, a full queue,
    # a full owner FIFO); without it comm waits out whole GEMM bursts.
    assert wait["mca_limit"] <= 16 + 8, wait
    assert wait["mca"] > 20 * 16, wait
    assert runs["mca"]["starvation_grants"] == 0 < runs["mca_limit"]["starvation_grants"]


def test_driven_replay(tmp_path):
    """The classic per-edge cocotb testbench (Python drives the design every cycle), same checks."""
    compute, comm = random_streams(np.random.default_rng(3), region_words=64, bursts=8, comm_pairs=200,
                                   comm_gap=(0, 2), idle_prob=0.2)
    ready = (ReadyPattern(5, 0.4), ReadyPattern(6, 0.4))
    res = replay_driven(ARB, MEM, compute, comm, tmp_path, mode=MCA, threshold=5, starvation_limit=12,
                        compute_ready=ready[0], comm_ready=ready[1], readback_words=64)
    _assert_exact(res, _model(compute, comm, MCA, 5, 12, ready))
    assert res["starvation_grants"] > 0


@pytest.mark.parametrize("mode,threshold,limit", [(RR, 0, 0), (MCA, 2, 0)], ids=["rr", "mca-t2"])
def test_exec_replay_agrees_with_model_and_reference(mode, threshold, limit, tmp_path):
    """Through the execution API (the generic agreement test runs MCA with a limit): every table, the read-back's
    cycles included, exact against the model, data equal to the reference."""
    p = ex.get("arbiter").small_params()
    compute, comm = random_streams(np.random.default_rng(11), region_words=64, comm_base=64, bursts=30,
                                   comm_pairs=600, comm_gap=(0, 4), idle_prob=0.1)
    stim = arbiter_stimulus(compute, comm, standard_memory(p), mode=mode, threshold=threshold,
                            starvation_limit=limit, readback_words=128)
    stalls = ex.Stalls(seed=threshold + 3, backpressure=0.4)
    rtl = ex.run("arbiter", stim, "rtl", p, stalls, work=tmp_path)
    vs_model = ex.agree(rtl, ex.run("arbiter", stim, "model", p, stalls))
    assert vs_model.data_mismatches == 0 and vs_model.cycle_mismatches == 0, vs_model.per_table
    assert ex.agree(rtl, ex.run("arbiter", stim, "reference", p)).data_mismatches == 0
    assert len(rtl.tables["readback"]) == 128
