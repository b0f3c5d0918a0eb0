"""The near-memory reducer (`hw.reducer.NearMemoryReducer`) in front of a `SimpleMemory`, on every target.

Stimulus: ``packets`` (``reduce_packets``: each available from its ``cycle``; addr, op, data, tag) and
``memory`` (``mem_words``: the memory's preload). ``meta["mem"]`` is the memory's `hw.memory.MemoryParams`
(``as_dict()``; its ``addr_bits`` must equal the reducer's). The memory image is words ``0 .. n-1``, ``n`` one past
the highest address the preload or a packet names; words the preload leaves out are 0 (the memory's reset
contents).

Results: ``commits`` (``reduce_commits``: cycle each commit entry left on ``commit``, addr, tag; one per packet,
in packet order), ``writes`` (``reduce_writes``: cycle the memory accepted each packet's write, addr, the word
written; in packet order) and ``memory`` (``mem_words``: the final image, every word ``0 .. n-1``). Stalls: port
0 is the ``commit`` output.

``cycles``: replay cycles up to and including the first one in which the reducer is idle with every packet
accepted, i.e. the last commit's cycle + 2 (the replay top stops counting in the cycle after it sees ``idle``;
1 without packets).

The model is transaction-level timing without a datapath: its data columns (the written words, the image) are
the functional reference's (`sim.blocks.reducer.reference.packet_results`); its cycles are its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hw.memory import MemoryParams
from hw.reducer import NearMemoryReducer, ReducerParams
from sim.blocks.reducer.reference import PACKET_DTYPE, packet_results, random_packets
from sim.core import trace
from sim.exec.api import Block, ResultTable, Stalls, register

trace.register_kind("reduce_packets", PACKET_DTYPE)
trace.register_kind("mem_words", [("addr", "<u8"), ("data", "<u4")])
trace.register_kind("reduce_commits", [("cycle", "<u8"), ("addr", "<u4"), ("tag", "<u2")])
trace.register_kind("reduce_writes", [("cycle", "<u8"), ("addr", "<u4"), ("data", "<u4")])


def _mem(p: ReducerParams, stim: trace.Trace) -> MemoryParams:
    mem = MemoryParams(**stim.meta["mem"])
    if mem.addr_bits != p.addr_bits:  # as the RTL harness requires, on every target
        raise ValueError(f"meta['mem'] addr_bits ({mem.addr_bits}) must equal the reducer's ({p.addr_bits})")
    return mem


def _image(mem: MemoryParams, stim: trace.Trace) -> np.ndarray:
    """The preload as a dense image of words ``0 .. n-1`` (see the module docstring)."""
    pre, packets = stim["memory"], stim["packets"]
    top = max(int(pre["addr"].max()) + 1 if len(pre) else 0, int(packets["addr"].max()) + 1 if len(packets) else 0)
    if top > 1 << mem.size_log2:
        raise ValueError(f"the memory image needs {top} words, the memory has 2**{mem.size_log2}")
    image = np.zeros(top, dtype=np.uint32)
    image[pre["addr"].astype(np.int64)] = pre["data"]
    return image


def _words(image: np.ndarray) -> np.ndarray:
    out = trace.empty("mem_words", len(image))
    out["addr"] = np.arange(len(image))
    out["data"] = image
    return out


def _reference(p: ReducerParams, stim: trace.Trace) -> dict[str, np.ndarray]:
    packets = stim["packets"]
    final, written = packet_results(_image(_mem(p, stim), stim), packets)
    commits = np.zeros(len(packets), dtype=[("addr", "<u4"), ("tag", "<u2")])
    commits["addr"], commits["tag"] = packets["addr"], packets["tag"]
    writes = np.zeros(len(packets), dtype=[("addr", "<u4"), ("data", "<u4")])
    writes["addr"], writes["data"] = packets["addr"], written
    return {"commits": commits, "writes": writes, "memory": _words(final)}


def _timed(packets: np.ndarray, commit: np.ndarray, write: np.ndarray, data: np.ndarray) -> dict[str, np.ndarray]:
    commits = trace.empty("reduce_commits", len(packets))
    commits["cycle"], commits["addr"], commits["tag"] = commit, packets["addr"], packets["tag"]
    writes = trace.empty("reduce_writes", len(packets))
    writes["cycle"], writes["addr"], writes["data"] = write, packets["addr"], data
    return {"commits": commits, "writes": writes}


def _model(p: ReducerParams, stim: trace.Trace, stalls: Stalls) -> tuple[dict[str, np.ndarray], int]:
    from sim.blocks.reducer.model import model_commits

    mem = _mem(p, stim)
    packets = stim["packets"]
    tl = model_commits(p, mem, packets, stalls.ready(0).as_model_ready())
    final, written = packet_results(_image(mem, stim), packets)  # no datapath in the model: the reference's data
    tables = _timed(packets, tl.commit, tl.write, written)
    return tables | {"memory": _words(final)}, tl.last_commit + 2 if len(packets) else 1


def _rtl(p: ReducerParams, stim: trace.Trace, stalls: Stalls, work: Path, waves: bool
         ) -> tuple[dict[str, np.ndarray], int]:
    from sim.blocks.reducer.rtl import read_commits, read_readback, read_writes, replay_harness

    mem = _mem(p, stim)
    packets = stim["packets"]
    ready = stalls.ready(0)
    res = replay_harness(p, mem, _image(mem, stim), packets, work, bp_seed=ready.seed, bp_prob=ready.prob,
                         waves=waves)
    commits = read_commits(work / "commits.hex")  # cycle, tag, addr
    writes = read_writes(work / "writes.hex")  # cycle, addr, data
    out = trace.empty("reduce_commits", len(commits))
    out["cycle"], out["tag"], out["addr"] = commits[:, 0], commits[:, 1], commits[:, 2]
    wr = trace.empty("reduce_writes", len(writes))
    wr["cycle"], wr["addr"], wr["data"] = writes[:, 0], writes[:, 1], writes[:, 2]
    return {"commits": out, "writes": wr, "memory": _words(read_readback(work / "readback.hex"))}, int(res["cycles"])


def standard_memory(p: ReducerParams, words: int) -> MemoryParams:
    """The memory of the standard stimulus: latency 6, one command a cycle, an 8-deep queue."""
    size_log2 = max(1, (words - 1).bit_length())
    return MemoryParams(addr_bits=p.addr_bits, size_log2=size_log2, latency=6, interval=1, queue_depth=8,
                        rsp_depth=max(16, p.inflight + 1))


def _standard(p: ReducerParams, seed: int, size: int) -> trace.Trace:
    """`random_packets` on 256 words (4 hot), the input idle 75 % of the cycles: about what the reducer takes
    with 4 in flight and the hot words' hazards (~0.25 packets a cycle), so the input both backs up and runs dry
    (measured at the test parameters: a fifth of the packets accepted in their arrival cycle, median wait 12)."""
    words = min(256, 1 << p.addr_bits)
    memory0, packets = random_packets(np.random.default_rng(seed), size, words, tag_bits=p.tag_bits,
                                      idle_prob=0.75, hot=min(4, words))
    mem = standard_memory(p, words)
    t = trace.Trace(clock_hz=1.0, producer="sim.blocks.reducer", meta={"seed": seed, "mem": mem.as_dict()})
    t.add("packets", "reduce_packets", packets)
    t.add("memory", "mem_words", _words(memory0))
    return t


BLOCK = register(Block(
    name="reducer",
    module="near_memory_reducer",
    params=ReducerParams,
    component=NearMemoryReducer,
    stimulus={"packets": "reduce_packets", "memory": "mem_words"},
    results={"commits": ResultTable("reduce_commits"), "writes": ResultTable("reduce_writes"),
             "memory": ResultTable("mem_words")},
    reference=_reference,
    model=_model,
    rtl=_rtl,
    standard_stimulus=_standard,
    test_params=lambda: ReducerParams(addr_bits=12, tag_bits=8, inflight=4, commit_depth=4),
    test_size=10_000,
    doc="T3's near-memory reducer: tagged stores and fp32/bf16/int32 adds applied next to memory, commits in order",
))
