"""T3's memory arbiter (MCA, `hw.arbiter.MemoryArbiter`) in front of `SimpleMemory`, on every target.

Stimulus: ``compute`` and ``comm`` (``mem_commands``: ``cycle`` from which the command may be offered, ``addr``,
``write``, ``data``; each requester offers its commands in order, one per cycle at most, see
`sim.blocks.arbiter.model`); ``meta``: the arbiter's static inputs ``mode`` (`hw.arbiter.ArbiterMode`),
``threshold`` and ``starvation_limit``, the memory (``mem``: `hw.memory.MemoryParams.as_dict`, starting
zeroed) and ``readback_words`` (words read back after the run).

Results (what the replay harness observes, `sim.blocks.arbiter.rtl.replay_harness`): ``compute_grants`` and
``comm_grants`` (``mem_grants``: cycle each command was granted, its ``index`` in its stream),
``compute_reads`` and ``comm_reads`` (``mem_read_data``: cycle each read's word was taken, the word) and
``readback`` (``mem_readback``: cycle, ``addr``, word of the read-back of addresses ``0 .. readback_words-1``
through the compute port once the run is over). All are in a defined order (per stream, per address). The
reference (`sim.blocks.arbiter.reference`) needs streams that do not conflict (no word written by one requester
and touched by the other): the standard stimulus gives each requester its own region.

Stalls: port 0 is compute's ``rsp``, port 1 comm's ``rsp``. ``cycles``: the first cycle, counted from the first
replay cycle (0), in which every command has been granted and every read answered (the harness's
``run_cycles``; the read-back comes after it and is not counted).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hw.arbiter import ArbiterMode, ArbiterParams, MemoryArbiter
from hw.memory import MemoryParams
from sim.blocks.arbiter.model import CMD_DTYPE
from sim.core import trace
from sim.exec.api import Block, ResultTable, Stalls, register

trace.register_kind("mem_commands", CMD_DTYPE)
trace.register_kind("mem_grants", [("cycle", "<u8"), ("index", "<u4")])
trace.register_kind("mem_read_data", [("cycle", "<u8"), ("data", "<u4")])
trace.register_kind("mem_readback", [("cycle", "<u8"), ("addr", "<u8"), ("data", "<u4")])

STREAMS = ("compute", "comm")


def _config(p: ArbiterParams, stim: trace.Trace) -> tuple[MemoryParams, ArbiterMode, int, int, int]:
    """``(memory, mode, threshold, starvation_limit, readback_words)`` of ``stim``, checked against ``p``."""
    m = stim.meta
    mem = MemoryParams(**m["mem"])
    if mem.addr_bits != p.addr_bits:
        raise ValueError(f"the memory's addr_bits ({mem.addr_bits}) must equal the arbiter's ({p.addr_bits})")
    threshold, limit, words = int(m["threshold"]), int(m["starvation_limit"]), int(m["readback_words"])
    if not 0 <= threshold < 1 << p.occupancy_bits:
        raise ValueError(f"threshold {threshold} does not fit in {p.occupancy_bits} bits")
    if not 0 <= limit < 1 << p.limit_bits:
        raise ValueError(f"starvation_limit {limit} does not fit in {p.limit_bits} bits")
    return mem, ArbiterMode(int(m["mode"])), threshold, limit, words


def _tables(grants: list[list[int]], reads: list[list], readback: list) -> dict[str, np.ndarray]:
    out = {}
    for who, name in enumerate(STREAMS):
        g = trace.empty("mem_grants", len(grants[who]))
        g["cycle"], g["index"] = grants[who], np.arange(len(grants[who]))
        r = trace.empty("mem_read_data", len(reads[who]))
        if len(reads[who]):
            r["cycle"], r["data"] = np.asarray(reads[who], dtype=np.uint64).reshape(-1, 2).T
        out[f"{name}_grants"], out[f"{name}_reads"] = g, r
    rb = trace.empty("mem_readback", len(readback))
    if len(readback):
        rb["cycle"], rb["data"] = np.asarray(readback, dtype=np.uint64).reshape(-1, 2).T
        rb["addr"] = np.arange(len(readback))
    out["readback"] = rb
    return out


def _reference(p: ArbiterParams, stim: trace.Trace) -> dict[str, np.ndarray]:
    from sim.blocks.arbiter.reference import arbiter_reference

    mem, _, _, _, words = _config(p, stim)
    reads, readback = arbiter_reference(stim["compute"], stim["comm"], mem.size_log2, words)
    out = {}
    for who, name in enumerate(STREAMS):
        out[f"{name}_grants"] = np.zeros(len(stim[name]), [("index", "<u4")])
        out[f"{name}_grants"]["index"] = np.arange(len(stim[name]))
        out[f"{name}_reads"] = np.array([(d,) for d in reads[who]], dtype=[("data", "<u4")])
    rb = np.zeros(words, [("addr", "<u8"), ("data", "<u4")])
    rb["addr"], rb["data"] = np.arange(words), readback
    out["readback"] = rb
    return out


def _model(p: ArbiterParams, stim: trace.Trace, stalls: Stalls) -> tuple[dict[str, np.ndarray], int]:
    from sim.blocks.arbiter.model import run_arbiter_fast

    mem, mode, threshold, limit, words = _config(p, stim)
    run = run_arbiter_fast(p, mem, stim["compute"], stim["comm"], mode=mode, threshold=threshold,
                           starvation_limit=limit, compute_ready=stalls.ready(0), comm_ready=stalls.ready(1),
                           readback_words=words)
    out = {}
    for who, name in enumerate(STREAMS):
        g = trace.empty("mem_grants", len(run.grants[who]))
        g["cycle"], g["index"] = run.grants[who], np.arange(len(run.grants[who]))
        r = trace.empty("mem_read_data", len(run.reads[who]))
        r["cycle"], r["data"] = run.reads[who][:, 0], run.reads[who][:, 1]
        out[f"{name}_grants"], out[f"{name}_reads"] = g, r
    rb = trace.empty("mem_readback", len(run.readback))
    rb["cycle"], rb["addr"], rb["data"] = run.readback[:, 0], np.arange(len(run.readback)), run.readback[:, 1]
    out["readback"] = rb
    return out, run.cycles


def _rtl(p: ArbiterParams, stim: trace.Trace, stalls: Stalls, work: Path, waves: bool
         ) -> tuple[dict[str, np.ndarray], int]:
    from sim.blocks.arbiter.rtl import replay_harness

    mem, mode, threshold, limit, words = _config(p, stim)
    res = replay_harness(p, mem, stim["compute"], stim["comm"], work, mode=mode, threshold=threshold,
                         starvation_limit=limit, compute_ready=stalls.ready(0), comm_ready=stalls.ready(1),
                         readback_words=words, waves=waves)
    readback = list(zip(res["readback_cycles"], res["readback"], strict=True))
    return _tables([res["compute_grants"], res["comm_grants"]], [res["compute_rsp"], res["comm_rsp"]],
                   readback), int(res["cycles"])


def standard_memory(p: ArbiterParams) -> MemoryParams:
    """The memory of the standard stimulus: 1 Ki words, DRAM-like latency, a queue the occupancy input can count."""
    return MemoryParams(addr_bits=p.addr_bits, size_log2=min(10, p.addr_bits), latency=4, interval=2,
                        queue_depth=max(2, min(16, (1 << p.occupancy_bits) - 1)), rsp_depth=8)


def arbiter_stimulus(compute: np.ndarray, comm: np.ndarray, mem: MemoryParams, *, mode: ArbiterMode,
                     threshold: int, starvation_limit: int = 0, readback_words: int = 0, **meta) -> trace.Trace:
    """A stimulus trace from two `CMD_DTYPE` streams and the arbiter's configuration."""
    t = trace.Trace(clock_hz=1.0, producer="sim.blocks.arbiter",
                    meta={"mode": int(mode), "threshold": threshold, "starvation_limit": starvation_limit,
                          "readback_words": readback_words, "mem": mem.as_dict(), **meta})
    t.add("compute", "mem_commands", compute)
    t.add("comm", "mem_commands", comm)
    return t


def _standard(p: ArbiterParams, seed: int, size: int) -> trace.Trace:
    """MCA with a quarter-queue threshold and a starvation limit, ``size`` commands about half each: GEMM bursts
    (after a preload of its region) against a steady read-modify-write stream, each requester in its own region
    of ``region`` words (so the reference can give the data) and both read back."""
    from sim.blocks.arbiter.model import random_streams

    mem = standard_memory(p)
    region = min(64, 1 << (mem.size_log2 - 1))
    bursts = max(1, round((size / 2 - region) / 24))  # bursts of 8..40 commands
    compute, comm = random_streams(np.random.default_rng(seed), region_words=region, comm_base=region,
                                   bursts=bursts, comm_pairs=max(1, size // 4), comm_gap=(2, 10), idle_prob=0.1)
    return arbiter_stimulus(compute, comm, mem, mode=ArbiterMode.MCA, threshold=mem.queue_depth // 4,
                            starvation_limit=min(32, (1 << p.limit_bits) - 1), readback_words=2 * region, seed=seed)


BLOCK = register(Block(
    name="arbiter",
    module="memory_arbiter",
    params=ArbiterParams,
    component=MemoryArbiter,
    stimulus={"compute": "mem_commands", "comm": "mem_commands"},
    results={**{f"{s}_grants": ResultTable("mem_grants") for s in STREAMS},
             **{f"{s}_reads": ResultTable("mem_read_data") for s in STREAMS},
             "readback": ResultTable("mem_readback")},
    reference=_reference,
    model=_model,
    rtl=_rtl,
    standard_stimulus=_standard,
    test_params=lambda: ArbiterParams(addr_bits=10, occupancy_bits=5, max_reads=8, limit_bits=8),
    test_size=10_000,
    doc="T3's memory arbiter (MCA): compute first, comm admitted below a queue-level threshold, starvation limit",
))
