"""The compiled reducer model (`sim.blocks.reducer.model.reducer_timeline`): the commit consumer's ``ready`` as the
`ReadyPattern` rule inside the kernel (`sim.core.fast.ready_nb`) against the same pattern as a plain callable
(tabulated, the table extended as far as the kernel asks)."""

from __future__ import annotations

import numpy as np
import pytest

from hw.memory import MemoryParams
from hw.reducer import ReducerParams
from sim.blocks.reducer.model import ReducerModel
from sim.blocks.reducer.reference import random_packets
from sim.core.stimulus import ReadyPattern


@pytest.mark.parametrize("seed,bp", [(1, 0.3), (2, 0.8), (3, 0.97)])  # 0.97: commits run past the first table
def test_ready_rule_in_the_kernel_equals_the_pattern(seed, bp):
    params = ReducerParams(inflight=3, commit_depth=2)
    mem = MemoryParams(latency=5, interval=2, queue_depth=3)
    _, packets = random_packets(np.random.default_rng(seed), 300, 32, idle_prob=0.3, hot=3)
    pattern = ReadyPattern(seed * 7, bp)
    args = packets["cycle"], packets["addr"], packets["op"]
    fast = ReducerModel(params, mem, pattern).run(*args)
    slow = ReducerModel(params, mem, lambda c: pattern(c)).run(*args)
    for f in ("accept", "pop", "write", "commit"):
        assert getattr(fast, f).tolist() == getattr(slow, f).tolist(), f
    assert fast.stall_cycles == slow.stall_cycles
    free = ReducerModel(params, mem).run(*args)
    assert free.commit.tolist() != fast.commit.tolist()  # the backpressure did hold commits back
