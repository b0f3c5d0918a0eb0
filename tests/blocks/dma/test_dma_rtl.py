"""The DMA engine on Verilator against its cycle model and a functional scoreboard."""

from __future__ import annotations

import numpy as np
import pytest

from hw.dma import DmaError, DmaOp, DmaParams
from hw.memory import MemoryParams
from sim.blocks.dma.model import Descriptor, DmaModel, run_dma
from sim.blocks.dma.rtl import run_dma_rtl
from sim.blocks.memory.model import SimpleMemoryModel
from sim.core.stimulus import ReadyPattern, random_dma_workload

pytestmark = pytest.mark.rtl  # runs on Verilator

P = DmaParams(descriptors=64, channels=3, burst=4, outstanding=8, device_bits=3)
MEM = MemoryParams(size_log2=12, latency=5, interval=2)


def _scoreboard(descs: dict[int, Descriptor], preload, triggers, packets, statuses, num_devices: int):
    """Every valid descriptor's words arrive exactly once with the right header and data; every trigger gets
    exactly one status with the right error code."""
    model_errors = {}
    checker = DmaModel(P, num_devices)
    for _, idx in triggers:
        model_errors.setdefault(idx, int(checker._check(descs.get(idx))))
    assert sorted(s[1] for s in statuses) == sorted(idx for _, idx in triggers)
    for _, desc, tag, err in statuses:
        assert err == model_errors[desc]
        if desc in descs:
            assert tag == descs[desc].tag
    expected = []
    for _, idx in triggers:
        d = descs.get(idx)
        if d is None or model_errors[idx] != DmaError.OK or d.op == DmaOp.NOTIFY:
            continue
        words = [(d.dst_device, (d.dst_addr >> 2) + i, d.op & 3, preload[(d.src_addr >> 2) + i], d.tag)
                 for i in range(d.length // 4)]
        expected.extend(words)
    got = [tuple(p[1:]) for p in packets]
    assert sorted(got) == sorted(expected)


@pytest.mark.parametrize("seed,bp", [(1, 0.0), (2, 0.4), (3, 0.8)])
def test_dma_replay_matches_model_and_scoreboard(seed, bp, tmp_path):
    rng = np.random.default_rng(seed)
    descs, preload, triggers = random_dma_workload(P, rng, descriptors=40, num_devices=5, mem_words=2048)
    res = run_dma_rtl(P, MEM, 5, descs, preload, triggers, tmp_path, link_seed=seed, link_bp=bp,
                      status_seed=seed + 100, status_bp=bp / 2)
    run = run_dma(P, 5, descs, SimpleMemoryModel(MEM, dict(preload)), triggers, ReadyPattern(seed, bp),
                  ReadyPattern(seed + 100, bp / 2))
    _scoreboard(descs, preload, triggers, res["packets"], res["statuses"], 5)
    assert [tuple(p) for p in res["packets"]] == run.packets
    assert [tuple(s) for s in res["statuses"]] == run.statuses
    assert res["cycles"] == run.cycles
    assert any(s[3] != DmaError.OK for s in run.statuses), "the workload must exercise error codes"


def test_reset_in_the_middle_of_transfers_leaves_the_engine_usable(tmp_path):
    rng = np.random.default_rng(7)
    descs, preload, triggers = random_dma_workload(P, rng, descriptors=20, num_devices=4, mem_words=2048,
                                                   bad_fraction=0.0)
    res = run_dma_rtl(P, MEM, 4, descs, preload, triggers, tmp_path, link_seed=1, link_bp=0.5, reset_after=60)
    run = run_dma(P, 4, descs, SimpleMemoryModel(MEM, dict(preload)), triggers, ReadyPattern(1, 0.5))
    _scoreboard(descs, preload, triggers, res["packets"], res["statuses"], 4)
    assert [tuple(p) for p in res["packets"]] == run.packets
