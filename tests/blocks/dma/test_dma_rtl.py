"""The DMA engine on Verilator against its cycle model and the functional reference (`sim.blocks.dma.reference`)."""

from __future__ import annotations

import numpy as np
import pytest

import sim.exec as ex
from hw.dma import DmaError, DmaParams
from hw.memory import MemoryParams
from sim.blocks.dma.model import run_dma
from sim.blocks.dma.rtl import run_dma_rtl
from sim.blocks.dma.stimulus import random_dma_workload, runner_inputs
from sim.blocks.memory.model import SimpleMemoryModel
from sim.core import trace
from sim.core.stimulus import ReadyPattern

pytestmark = pytest.mark.rtl  # runs on Verilator

P = DmaParams(descriptors=64, channels=3, burst=4, outstanding=8, device_bits=3)
MEM = MemoryParams(size_log2=12, latency=5, interval=2)


def _stimulus(seed: int, triggers: int, **kw) -> trace.Trace:
    return random_dma_workload(P, np.random.default_rng(seed), triggers=triggers, num_devices=5, mem=MEM,
                               max_words=64, preload_words=2048, **kw)


def _as_table(kind: str, rows: list) -> np.ndarray:
    out = trace.empty(kind, len(rows))
    if rows:
        a = np.asarray(rows, dtype=np.uint64)
        for i, col in enumerate(out.dtype.names):
            out[col] = a[:, i]
    return out


@pytest.mark.parametrize("seed,bp", [(1, 0.0), (2, 0.4), (3, 0.8)])
def test_dma_replay_matches_model_and_reference(seed, bp, tmp_path):
    stim = _stimulus(seed, 120, idle_prob=0.5)
    stalls = ex.Stalls(seed=seed, backpressure=bp)
    rtl = ex.run("dma", stim, "rtl", P, stalls, work=tmp_path)
    model = ex.run("dma", stim, "model", P, stalls)
    ref = ex.run("dma", stim, "reference", P)
    vs_model = ex.agree(rtl, model)
    assert vs_model.data_mismatches == 0 and vs_model.cycle_mismatches == 0, vs_model.per_table
    assert ex.agree(rtl, ref).data_mismatches == 0
    assert set(np.unique(ref.tables["status"]["error"])) == {int(e) for e in DmaError}, "every error code"


def test_reset_in_the_middle_of_transfers_leaves_the_engine_usable(tmp_path):
    """A reset cuts the first replay mid-transfer; the replay run again from the kept table is complete."""
    stim = _stimulus(7, 40, bad_fraction=0.0, unprogrammed_fraction=0.0, notify_fraction=0.0)
    mem, nd, descs, preload, triggers = runner_inputs(P, stim)
    ready = ReadyPattern(1, 0.5)
    res = run_dma_rtl(P, mem, nd, descs, preload, triggers, tmp_path, link_seed=ready.seed, link_bp=ready.prob,
                      reset_after=60)
    run = run_dma(P, nd, descs, SimpleMemoryModel(mem, dict(preload)), triggers, ready)
    assert [tuple(p) for p in res["packets"]] == run.packets
    assert [tuple(s) for s in res["statuses"]] == run.statuses
    assert res["cycles"] == run.cycles
    ref = ex.run("dma", stim, "reference", P)
    got = ex.Result("dma", ex.Target.RTL, {"link": _as_table("link_packets", res["packets"]),
                                           "status": _as_table("dma_status", res["statuses"])}, res["cycles"], 0.0)
    assert ex.agree(got, ref).data_mismatches == 0
