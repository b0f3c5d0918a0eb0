"""T3's DMA engine (`hw.dma.DmaEngine`) in front of `SimpleMemory`, on every target.

Stimulus (`sim.blocks.dma.stimulus`): ``descriptors`` (``dma_descriptors``: the programmed table, ``dst_tag`` is
the engine's ``tag``, an absent index is unprogrammed), ``triggers`` (``dma_triggers``: ``cycle`` from which the
trigger is offered, ``desc``; offered in table order) and ``memory`` (``mem_words``: the memory preload by word
address); ``meta``: ``num_devices`` and ``mem`` (`hw.memory.MemoryParams.as_dict`).

Results: ``link`` (``link_packets``: cycle each packet left on ``link``, ``dst_device``, word ``addr``, ``op``,
``data``, ``tag``) and ``status`` (``dma_status``: cycle each status left, ``desc``, ``tag``, ``error``). Both are
unordered for the reference (channels interleave packets; completions come in no trigger-defined order, see
`sim.blocks.dma.reference`); between timed targets their rows are compared in order, cycles included.

Stalls: port 0 is ``link``, port 1 ``status``. ``cycles``: counted from the first replay cycle (0; the memory
preloaded and the table programmed before it), the first cycle in which every trigger has been taken and the
engine is idle (no channel, read, pending error or queued status), i.e. one past its last activity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hw.dma import DmaEngine, DmaParams
from hw.memory import MemoryParams
from sim.core import trace
from sim.exec.api import Block, ResultTable, Stalls, register

trace.register_kind("dma_triggers", [("cycle", "<u8"), ("desc", "<u4")])
trace.register_kind("mem_words", [("addr", "<u8"), ("data", "<u4")])
trace.register_kind("link_packets", [("cycle", "<u8"), ("dst_device", "<u2"), ("addr", "<u8"), ("op", "u1"),
                                     ("data", "<u4"), ("tag", "<u4")])
trace.register_kind("dma_status", [("cycle", "<u8"), ("desc", "<u4"), ("tag", "<u4"), ("error", "u1")])


def _tables(packets, statuses) -> dict[str, np.ndarray]:
    link = trace.empty("link_packets", len(packets))
    if len(packets):
        a = np.asarray(packets, dtype=np.uint64).reshape(-1, 6)
        for i, col in enumerate(link.dtype.names):
            link[col] = a[:, i]
    status = trace.empty("dma_status", len(statuses))
    if len(statuses):
        a = np.asarray(statuses, dtype=np.uint64).reshape(-1, 4)
        for i, col in enumerate(status.dtype.names):
            status[col] = a[:, i]
    return {"link": link, "status": status}


def _reference(p: DmaParams, stim: trace.Trace) -> dict[str, np.ndarray]:
    from sim.blocks.dma.reference import dma_reference
    from sim.blocks.dma.stimulus import check_stimulus, stimulus_memory

    check_stimulus(p, stim)
    link, status = dma_reference(p, stimulus_memory(p, stim), int(stim.meta["num_devices"]), stim["descriptors"],
                                 stim["memory"], stim["triggers"])
    return {"link": link, "status": status}


def _model(p: DmaParams, stim: trace.Trace, stalls: Stalls) -> tuple[dict[str, np.ndarray], int]:
    from sim.blocks.dma.model import run_dma_fast
    from sim.blocks.dma.stimulus import check_stimulus, stimulus_memory

    check_stimulus(p, stim)
    run = run_dma_fast(p, int(stim.meta["num_devices"]), stim["descriptors"], stimulus_memory(p, stim),
                       stim["memory"], stim["triggers"], stalls.ready(0), stalls.ready(1))
    link = trace.empty("link_packets", len(run.packets))
    for i, col in enumerate(link.dtype.names):
        link[col] = run.packets[:, i]
    status = trace.empty("dma_status", len(run.statuses))
    for i, col in enumerate(status.dtype.names):
        status[col] = run.statuses[:, i]
    return {"link": link, "status": status}, run.cycles


def _rtl(p: DmaParams, stim: trace.Trace, stalls: Stalls, work: Path, waves: bool
         ) -> tuple[dict[str, np.ndarray], int]:
    from sim.blocks.dma.rtl import run_dma_rtl
    from sim.blocks.dma.stimulus import runner_inputs

    mem, nd, descs, preload, triggers = runner_inputs(p, stim)
    link, status = stalls.ready(0), stalls.ready(1)
    res = run_dma_rtl(p, mem, nd, descs, preload, triggers, work, link_seed=link.seed, link_bp=link.prob,
                      status_seed=status.seed, status_bp=status.prob, waves=waves)
    return _tables(res["packets"], res["statuses"]), int(res["cycles"])


def standard_memory(p: DmaParams) -> MemoryParams:
    """The memory of the standard stimulus: 1 Ki words (or the whole address space), DRAM-like latency."""
    return MemoryParams(addr_bits=p.addr_bits, size_log2=min(10, p.addr_bits), latency=5, interval=2)


def _standard(p: DmaParams, seed: int, size: int) -> trace.Trace:
    from sim.blocks.dma.stimulus import random_dma_workload

    # Triggers come at most every few cycles (idle_prob 0.9: ten cycles apart on average, about a descriptor's
    # transfer time), so the engine alternates between a full trigger queue and running dry.
    stim = random_dma_workload(p, np.random.default_rng(seed), triggers=size,
                               num_devices=max(1, (1 << p.device_bits) - 3), mem=standard_memory(p), idle_prob=0.9)
    stim.meta["seed"] = seed
    return stim


BLOCK = register(Block(
    name="dma",
    module="dma_engine",
    params=DmaParams,
    component=DmaEngine,
    stimulus={"descriptors": "dma_descriptors", "triggers": "dma_triggers", "memory": "mem_words"},
    # Neither table has a timing-free order: channels interleave packets, and statuses come in completion order
    # (a short descriptor finishes before a long one triggered earlier; an error status jumps ahead of both).
    results={"link": ResultTable("link_packets", ordered=False), "status": ResultTable("dma_status", ordered=False)},
    reference=_reference,
    model=_model,
    rtl=_rtl,
    standard_stimulus=_standard,
    test_params=lambda: DmaParams(addr_bits=12, descriptors=64, device_bits=3, length_bits=12, tag_bits=8,
                                  channels=3, burst=4, outstanding=8, status_depth=4),
    doc="T3's DMA engine: descriptors started by triggers read memory and send one link packet per word",
))
