"""The DMA model's two ways to run its rules agree: the compiled kernel (`run_dma_fast`, the block's model runner)
and the stepped `DmaModel` on a `SimpleMemoryModel` (`run_dma`, what the device model composes)."""

from __future__ import annotations

import numpy as np
import pytest

from hw.dma import DmaError, DmaParams
from hw.memory import MemoryParams
from sim.blocks.dma.model import run_dma, run_dma_fast
from sim.blocks.dma.stimulus import random_dma_workload, runner_inputs
from sim.blocks.memory.model import SimpleMemoryModel
from sim.core.stimulus import ReadyPattern, idle_fraction

CASES = [
    (DmaParams(addr_bits=12, descriptors=64, device_bits=3, length_bits=12, tag_bits=8, channels=3, burst=4,
               outstanding=8, status_depth=4), MemoryParams(addr_bits=12, size_log2=10, latency=5, interval=2), 0.0),
    (DmaParams(addr_bits=10, descriptors=32, device_bits=2, length_bits=10, tag_bits=4, channels=2, burst=1,
               outstanding=2, status_depth=2), MemoryParams(addr_bits=10, size_log2=8, latency=1, interval=1,
                                                            queue_depth=2, rsp_depth=2), 0.5),
    (DmaParams(descriptors=16, channels=4, burst=2, outstanding=3, status_depth=2),
     MemoryParams(addr_bits=24, size_log2=9, latency=3, interval=3, queue_depth=3, rsp_depth=2), 0.8),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_kernel_and_stepped_class_agree(case):
    p, mem, bp = CASES[case]
    stim = random_dma_workload(p, np.random.default_rng(case), triggers=400,
                               num_devices=max(1, (1 << p.device_bits) - 1), mem=mem, idle_prob=0.5,
                               wrap_fraction=0.1)
    link, status = ReadyPattern(case + 1, bp), ReadyPattern(case + 7, bp)
    fast = run_dma_fast(p, int(stim.meta["num_devices"]), stim["descriptors"], mem, stim["memory"], stim["triggers"],
                        link, status)
    mem_p, nd, descs, preload, triggers = runner_inputs(p, stim)
    stepped = run_dma(p, nd, descs, SimpleMemoryModel(mem_p, preload), triggers, link.as_model_ready(),
                      status.as_model_ready())
    assert [tuple(r) for r in fast.packets.tolist()] == stepped.packets
    assert [tuple(r) for r in fast.statuses.tolist()] == stepped.statuses
    assert fast.cycles == stepped.cycles
    # the stimulus exercised what the rules branch on: idles, errors, backpressure, every trigger answered
    assert idle_fraction(stim["triggers"]["cycle"]) > 0.3
    assert len(stepped.statuses) == len(triggers)
    assert {s[3] for s in stepped.statuses} >= {int(DmaError.OK), int(DmaError.UNPROGRAMMED)}
    assert len(stepped.packets) > 500


def test_fast_runner_takes_only_stateless_readies():
    p, mem, _ = CASES[0]
    stim = random_dma_workload(p, np.random.default_rng(0), triggers=4, num_devices=3, mem=mem)
    with pytest.raises(TypeError):
        run_dma_fast(p, 3, stim["descriptors"], mem, stim["memory"], stim["triggers"], lambda t: True)
