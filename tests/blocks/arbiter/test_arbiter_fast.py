"""The arbiter model's two ways to run its rules agree: the compiled kernel (`run_arbiter_fast`, the block's model
runner) and the stepped `ArbiterModel` on a `SimpleMemoryModel` (`run_arbiter`, what the device model composes)."""

from __future__ import annotations

import numpy as np
import pytest

from hw.arbiter import ArbiterMode, ArbiterParams
from hw.memory import MemoryParams
from sim.blocks.arbiter.model import random_streams, run_arbiter, run_arbiter_fast
from sim.blocks.memory.model import SimpleMemoryModel
from sim.core.stimulus import ReadyPattern

MCA, RR = ArbiterMode.MCA, ArbiterMode.ROUND_ROBIN
CASES = [  # arbiter, memory, mode, threshold, starvation limit, backpressure
    (ArbiterParams(max_reads=12), MemoryParams(size_log2=10, latency=4, interval=2, queue_depth=16, rsp_depth=8),
     MCA, 4, 16, 0.3),
    (ArbiterParams(max_reads=2, limit_bits=4, occupancy_bits=5),
     MemoryParams(size_log2=8, latency=2, interval=3, queue_depth=4, rsp_depth=2), MCA, 3, 5, 0.6),
    (ArbiterParams(max_reads=3), MemoryParams(size_log2=8, latency=1, interval=1, queue_depth=2, rsp_depth=2),
     RR, 0, 0, 0.8),
    (ArbiterParams(), MemoryParams(size_log2=9, latency=6, interval=1), MCA, 2, 0, 0.0),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_kernel_and_stepped_class_agree(case):
    arb, mem, mode, threshold, limit, bp = CASES[case]
    compute, comm = random_streams(np.random.default_rng(case), region_words=64, bursts=10, burst_len=(8, 30),
                                   comm_pairs=300, comm_gap=(0, 3), idle_prob=0.2, comm_base=64)
    readies = ReadyPattern(case + 1, bp), ReadyPattern(case + 5, bp)
    kw = dict(mode=mode, threshold=threshold, starvation_limit=limit, readback_words=128)
    fast = run_arbiter_fast(arb, mem, compute, comm, compute_ready=readies[0], comm_ready=readies[1], **kw)
    stepped = run_arbiter(arb, SimpleMemoryModel(mem), compute, comm, compute_ready=readies[0].as_model_ready(),
                          comm_ready=readies[1].as_model_ready(), **kw)
    assert fast.grants[0].tolist() == stepped.compute.grants
    assert fast.grants[1].tolist() == stepped.comm.grants
    assert [tuple(r) for r in fast.reads[0].tolist()] == stepped.compute.responses
    assert [tuple(r) for r in fast.reads[1].tolist()] == stepped.comm.responses
    assert [tuple(r) for r in fast.readback.tolist()] == stepped.readback
    assert fast.cycles == stepped.cycles
    # the run exercised what the rules branch on: contention, a full queue or owner FIFO, delayed responses
    assert stepped.comm_wait_cycles > 0
    waits = stepped.compute.waits() + stepped.comm.waits()
    assert max(waits) > 2


def test_fast_runner_takes_only_stateless_readies():
    arb, mem, *_ = CASES[0]
    compute, comm = random_streams(np.random.default_rng(0), region_words=8, bursts=1, comm_pairs=2)
    with pytest.raises(TypeError):
        run_arbiter_fast(arb, mem, compute, comm, mode=MCA, threshold=1, compute_ready=lambda t: True)
