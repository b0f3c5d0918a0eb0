"""The track-and-trigger unit (`hw.tracker.TrackTrigger`) on every target.

Stimulus: ``program`` (``tracker_program``) and ``requests`` (``tracker_requests``, each available from its
``cycle``). Result: ``triggers`` (``triggers``: cycle each left the tracker, descriptor, entry). Stalls: port 0
is the trigger output. ``cycles``: the cycle the tracker is idle with every request consumed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hw.tracker import TrackerParams, TrackTrigger
from sim.core import trace
from sim.core.stimulus import random_tracker_workload
from sim.exec.api import Block, ResultTable, Stalls, register


def _reference(p: TrackerParams, stim: trace.Trace) -> dict[str, np.ndarray]:
    from sim.blocks.tracker.reference import tracker_triggers

    seq = tracker_triggers(stim["program"], stim["requests"], p).sequence
    out = np.zeros(len(seq), dtype=[("desc", "<u4"), ("entry", "<u4")])
    if seq:
        out["desc"], out["entry"] = np.array(seq, dtype=np.uint32).T
    return {"triggers": out}


def triggers_table(rows) -> np.ndarray:
    """``(cycle, desc, entry)`` rows as a ``triggers`` table."""
    out = trace.empty("triggers", len(rows))
    if len(rows):
        a = np.asarray(rows, dtype=np.uint64).reshape(-1, 3)
        out["cycle"], out["desc"], out["entry"] = a[:, 0], a[:, 1], a[:, 2]
    return out


def _model(p: TrackerParams, stim: trace.Trace, stalls: Stalls) -> tuple[dict[str, np.ndarray], int]:
    from sim.blocks.tracker.model import replay_fast

    res = replay_fast(p, stim["program"], stim["requests"], stalls.ready(0).as_model_ready())
    # the harness counts up to and including the first cycle it sees the tracker idle: last tick + 1
    return {"triggers": res.triggers}, res.last_tick + 2


def _rtl(p: TrackerParams, stim: trace.Trace, stalls: Stalls, work: Path, waves: bool
         ) -> tuple[dict[str, np.ndarray], int]:
    from sim.blocks.tracker.rtl import replay_harness

    ready = stalls.ready(0)
    # The generic agreement test compares with the reference; the harness's own scoreboard would only repeat it.
    res = replay_harness(p, stim["program"], stim["requests"], work, bp_seed=ready.seed, bp_prob=ready.prob,
                         waves=waves, scoreboard=False)
    return {"triggers": triggers_table(res["triggers"])}, int(res["cycles"])


def _standard(p: TrackerParams, seed: int, size: int) -> trace.Trace:
    program, requests = random_tracker_workload(p, size, np.random.default_rng(seed), idle_prob=0.2,
                                                max_threshold=512)
    t = trace.Trace(clock_hz=1.0, producer="sim.blocks.tracker", meta={"seed": seed})
    t.add("program", "tracker_program", program)
    t.add("requests", "tracker_requests", requests)
    return t


BLOCK = register(Block(
    name="tracker",
    module="track_trigger",
    params=TrackerParams,
    component=TrackTrigger,
    stimulus={"program": "tracker_program", "requests": "tracker_requests"},
    results={"triggers": ResultTable("triggers")},
    reference=_reference,
    model=_model,
    rtl=_rtl,
    standard_stimulus=_standard,
    test_params=lambda: TrackerParams(entries=32, count_bits=12, desc_bits=16, addr_bits=32, size_bits=11,
                                      fifo_depth=2),
    bench_size=1_000_000,
    doc="T3's track-and-trigger unit: counts bytes per tracked region, fires a DMA descriptor at a threshold",
))
