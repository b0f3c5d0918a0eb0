"""The arbiter's functional reference and its stream generator: data from the streams alone when they do not
conflict, refused when they do; streams offer one command per cycle with real idles; the model against the
reference under both policies and response stalls."""

from __future__ import annotations

import numpy as np
import pytest

import sim.exec as ex
from hw.arbiter import ArbiterMode, ArbiterParams
from hw.memory import MemoryParams
from sim.blocks.arbiter import arbiter_stimulus
from sim.blocks.arbiter.model import CMD_DTYPE, expected_data, random_streams, run_arbiter
from sim.blocks.arbiter.reference import arbiter_reference, conflicts
from sim.blocks.memory.model import SimpleMemoryModel
from sim.core.stimulus import ReadyPattern, idle_fraction

ARB = ArbiterParams(addr_bits=10, occupancy_bits=5, max_reads=8, limit_bits=8)
MEM = MemoryParams(addr_bits=10, size_log2=8, latency=4, interval=2, queue_depth=16, rsp_depth=8)


def _cmds(rows) -> np.ndarray:
    return np.array(rows, dtype=CMD_DTYPE)


def test_reads_see_their_own_writes_and_zero_elsewhere():
    compute = _cmds([(0, 3, 0, 0), (1, 3, 1, 11), (2, 3, 0, 0), (3, 3 + 256, 0, 0), (4, 5, 0, 0)])  # 259 wraps to 3
    comm = _cmds([(0, 7, 1, 22), (1, 7, 0, 0), (2, 5, 0, 0), (3, 8, 1, 33), (4, 8, 1, 34)])
    reads, readback = arbiter_reference(compute, comm, MEM.size_log2, 10)
    assert reads == [[0, 11, 11, 0], [22, 0]]  # both may read word 5: nobody writes it
    assert readback == [0, 0, 0, 11, 0, 0, 0, 22, 34, 0]


def test_conflicting_streams_are_refused():
    compute = _cmds([(0, 4, 1, 1)])
    for comm in (_cmds([(0, 4, 0, 0)]), _cmds([(0, 4, 1, 2)]), _cmds([(0, 4 + 256, 0, 0)])):
        assert conflicts(compute, comm, MEM.size_log2).tolist() == [4]
        with pytest.raises(ValueError, match="conflict"):
            arbiter_reference(compute, comm, MEM.size_log2, 0)
        with pytest.raises(ValueError, match="conflict"):
            arbiter_reference(comm, compute, MEM.size_log2, 0)


@pytest.mark.parametrize("mode,threshold,limit", [(ArbiterMode.ROUND_ROBIN, 0, 0), (ArbiterMode.MCA, 2, 0),
                                                  (ArbiterMode.MCA, 6, 12)])
def test_reference_equals_any_grant_order_replay(mode, threshold, limit):
    """For conflict-free streams, the grant-order replay of whatever run the model makes gives the reference."""
    compute, comm = random_streams(np.random.default_rng(4), region_words=64, comm_base=64, bursts=10,
                                   comm_pairs=200, comm_gap=(0, 2))
    run = run_arbiter(ARB, SimpleMemoryModel(MEM), compute, comm, mode=mode, threshold=threshold,
                      starvation_limit=limit, compute_ready=ReadyPattern(1, 0.3), comm_ready=ReadyPattern(2, 0.5),
                      readback_words=128)
    reads, final = expected_data(compute, comm, run.order, MEM.size_log2)
    ref_reads, ref_readback = arbiter_reference(compute, comm, MEM.size_log2, 128)
    assert reads == ref_reads and [final.get(a, 0) for a in range(128)] == ref_readback
    assert [d for _, d in run.readback] == ref_readback
    assert any(ref_reads[0]) and any(ref_reads[1])


def test_streams_offer_one_command_per_cycle_with_the_configured_idles():
    compute, comm = random_streams(np.random.default_rng(1), region_words=32, bursts=40, burst_gap=(0, 0),
                                   comm_pairs=2000, comm_gap=(0, 0), idle_prob=0.3)
    for s in (compute, comm):
        assert np.all(np.diff(s["cycle"].astype(np.int64)) >= 1)  # never two commands stamped in one cycle
        assert 0.25 < idle_fraction(s["cycle"]) < 0.35
    assert np.array_equal(comm["addr"][0::2], comm["addr"][1::2]) and comm["write"].tolist()[:4] == [0, 1, 0, 1]
    _, comm = random_streams(np.random.default_rng(1), region_words=32, comm_base=32, comm_pairs=100)
    assert comm["addr"].min() >= 32 and comm["addr"].max() < 64


@pytest.mark.parametrize("mode", [ArbiterMode.ROUND_ROBIN, ArbiterMode.MCA])
@pytest.mark.parametrize("bp", [0.0, 0.6])
def test_model_data_equals_the_reference(mode, bp):
    compute, comm = random_streams(np.random.default_rng(8), region_words=64, comm_base=64, bursts=20,
                                   comm_pairs=300)
    stim = arbiter_stimulus(compute, comm, MEM, mode=mode, threshold=3, starvation_limit=20, readback_words=128)
    model = ex.run("arbiter", stim, "model", ARB, ex.Stalls(seed=5, backpressure=bp))
    ref = ex.run("arbiter", stim, "reference", ARB)
    agreement = ex.agree(model, ref)
    assert agreement.rows > 1000 and agreement.data_mismatches == 0, agreement.per_table
