"""DMA engine stimuli: the seeded random workload, and the trace tables as the runners take them.

A DMA stimulus (`sim.core.trace.Trace`) holds ``descriptors`` (``dma_descriptors``: one row per programmed
index; ``dst_tag`` is the engine's ``tag``; an index absent from the table is unprogrammed), ``triggers``
(``dma_triggers``: each trigger offered from its ``cycle``, in table order) and ``memory`` (``mem_words``: the
memory preload by word address; other words read 0), with ``meta`` ``num_devices`` (the engine's input) and
``mem`` (`hw.memory.MemoryParams.as_dict`, the memory behind the engine).

`check_stimulus` is the one definition of a well-formed stimulus, shared by every target: every field must fit
its port field (the hardware would silently truncate it, and the targets would then disagree about what was
asked), each index and preload address appears at most once.
"""

from __future__ import annotations

import numpy as np

from hw.dma import DmaOp, DmaParams
from hw.memory import MemoryParams
from sim.blocks.dma.model import Descriptor
from sim.core import trace
from sim.core.stimulus import arrival_cycles


def stimulus_memory(params: DmaParams, stim: trace.Trace) -> MemoryParams:
    """The memory parameters of ``stim`` (its ``meta["mem"]``), checked against the engine's port width."""
    mem = MemoryParams(**stim.meta["mem"])
    if mem.addr_bits != params.addr_bits:
        raise ValueError(f"the memory's addr_bits ({mem.addr_bits}) must equal the DMA's ({params.addr_bits})")
    return mem


def check_stimulus(params: DmaParams, stim: trace.Trace) -> None:
    """Raise ``ValueError`` unless ``stim`` is a well-formed DMA stimulus for ``params`` (module docstring)."""
    p = params
    mem = stimulus_memory(p, stim)
    nd = int(stim.meta["num_devices"])
    if not 0 <= nd <= 1 << p.device_bits:
        raise ValueError(f"num_devices {nd} does not fit the {p.device_bits + 1}-bit input (at most "
                         f"{1 << p.device_bits})")
    d = stim["descriptors"]
    limits = {"index": p.descriptors, "src_addr": 1 << p.byte_addr_bits, "dst_addr": 1 << p.byte_addr_bits,
              "dst_device": 1 << p.device_bits, "length": 1 << p.length_bits, "op": 8, "dst_tag": 1 << p.tag_bits}
    for col, limit in limits.items():
        if len(d) and int(d[col].max()) >= limit:
            raise ValueError(f"descriptor {col} {int(d[col].max())} does not fit its field (< {limit})")
    if len(np.unique(d["index"])) != len(d):
        raise ValueError("a descriptor index is programmed twice")
    t = stim["triggers"]
    if len(t) and int(t["desc"].max()) >= p.descriptors:
        raise ValueError(f"trigger desc {int(t['desc'].max())} is outside the table ({p.descriptors})")
    w = stim["memory"]
    if len(w) and int(w["addr"].max()) >> mem.size_log2:
        raise ValueError(f"preload address {int(w['addr'].max())} is outside the memory (2**{mem.size_log2} words)")
    if len(np.unique(w["addr"])) != len(w):
        raise ValueError("a preload address appears twice")


def _count(fraction: float, n: int) -> int:
    """``fraction`` of ``n``, rounded, but at least one when the fraction is not 0."""
    return 0 if fraction <= 0 else min(n, max(1, round(fraction * n)))


def runner_inputs(params: DmaParams, stim: trace.Trace
                  ) -> tuple[MemoryParams, int, dict[int, Descriptor], dict[int, int], list[tuple[int, int]]]:
    """``(memory params, num_devices, descriptors, preload, triggers)`` as `sim.blocks.dma.model.run_dma` and
    `sim.blocks.dma.rtl.run_dma_rtl` take them; ``stim`` is checked first (`check_stimulus`)."""
    check_stimulus(params, stim)
    descs = {int(r["index"]): Descriptor(src_addr=int(r["src_addr"]), dst_device=int(r["dst_device"]),
                                         dst_addr=int(r["dst_addr"]), length=int(r["length"]), op=int(r["op"]),
                                         tag=int(r["dst_tag"]))
             for r in stim["descriptors"]}
    w, t = stim["memory"], stim["triggers"]
    preload = dict(zip(w["addr"].tolist(), w["data"].tolist(), strict=True))
    triggers = list(zip(t["cycle"].tolist(), t["desc"].tolist(), strict=True))
    return stimulus_memory(params, stim), int(stim.meta["num_devices"]), descs, preload, triggers


def random_dma_workload(params: DmaParams, rng: np.random.Generator, *, triggers: int, num_devices: int,
                        mem: MemoryParams, max_words: int = 16, unprogrammed_fraction: float = 0.05,
                        notify_fraction: float = 0.05, bad_fraction: float = 0.15, wrap_fraction: float = 0.02,
                        idle_prob: float = 0.3, preload_words: int | None = None) -> trace.Trace:
    """A seeded DMA stimulus (module docstring) for ``params``.

    The whole descriptor table is programmed except an ``unprogrammed_fraction`` of its indices. Programmed
    descriptors move 1..``max_words`` words with a random data op. A ``notify_fraction`` of them are ``NOTIFY``,
    with misaligned sources and random lengths (a NOTIFY is only checked for being programmed). A
    ``bad_fraction`` carry one fault, sometimes two (so the check order matters): a bad op, a zero length, a
    device at or above ``num_devices``, a misaligned source, destination or length; each fault is used alone at
    least once (a nonzero fraction is at least one index). A ``wrap_fraction`` end past the top of the destination word
    address space (addresses wrap). ``triggers`` triggers (every index once in random order, then random
    indices; unprogrammed ones included) arrive one per cycle at most, idle with ``idle_prob`` per cycle
    (`sim.core.stimulus.arrival_cycles`). The memory's first ``preload_words`` words (default: all of it) hold
    random data; sources span twice that, so some read unloaded (zero) or wrapped words.
    """
    p = params
    if not 1 <= num_devices <= 1 << p.device_bits:
        raise ValueError(f"num_devices must be in 1..{1 << p.device_bits}, not {num_devices}")
    if mem.addr_bits != p.addr_bits:
        raise ValueError(f"the memory's addr_bits ({mem.addr_bits}) must equal the DMA's ({p.addr_bits})")
    max_words = min(max_words, ((1 << p.length_bits) - 1) >> 2)
    n = p.descriptors
    programmed = np.sort(rng.permutation(n)[_count(unprogrammed_fraction, n):])
    k = len(programmed)
    d = trace.empty("dma_descriptors", k)
    d["index"] = programmed
    words = rng.integers(1, max_words + 1, k)
    addr_words = 1 << p.addr_bits
    preload_words = (1 << mem.size_log2) if preload_words is None else preload_words
    src_span = min(addr_words, 2 * preload_words)
    d["src_addr"] = rng.integers(0, src_span, k) * 4
    d["dst_addr"] = rng.integers(0, addr_words, k) * 4
    d["length"] = words * 4
    d["dst_device"] = rng.integers(0, num_devices, k)
    d["op"] = rng.integers(int(DmaOp.STORE), int(DmaOp.ADD_BF16) + 1, k)
    d["dst_tag"] = rng.integers(0, 1 << min(p.tag_bits, 32), k, dtype=np.uint64)
    wrap = rng.random(k) < wrap_fraction
    d["dst_addr"][wrap] = (addr_words - rng.integers(1, np.maximum(words[wrap], 2))) * 4
    rows = rng.permutation(k)
    n_notify = _count(notify_fraction, k)
    notify, rows = rows[:n_notify], rows[n_notify:]
    d["op"][notify] = int(DmaOp.NOTIFY)
    d["length"][notify] = rng.integers(0, 1 << min(p.length_bits, 16), n_notify)
    d["src_addr"][notify] += rng.integers(1, 4, n_notify).astype(np.uint64)  # would be MISALIGNED if checked
    faults = ["op", "zero", "misaligned"] + (["device"] if num_devices < 1 << p.device_bits else [])
    n_bad = min(len(rows), max(len(faults), _count(bad_fraction, k))) if bad_fraction > 0 else 0
    for j, i in enumerate(rows[:n_bad]):
        first = faults[j % len(faults)]  # every fault once alone, so every error code is reported
        two = j >= len(faults) and rng.random() < 0.3
        second = [str(f) for f in rng.choice(faults, 2, replace=False) if f != first][:int(two)]
        for fault in [first, *second]:
            if fault == "op":
                d["op"][i] = rng.integers(int(DmaOp.NOTIFY) + 1, 8)
            elif fault == "zero":
                d["length"][i] = 0
            elif fault == "device":
                d["dst_device"][i] = rng.integers(num_devices, 1 << p.device_bits)
            else:
                col = ("src_addr", "dst_addr", "length")[int(rng.integers(0, 3))]
                d[col][i] = (int(d[col][i]) & ~3) | int(rng.integers(1, 4))
    t = trace.empty("dma_triggers", triggers)
    t["cycle"] = arrival_cycles(triggers, idle_prob, rng)
    t["desc"] = np.concatenate([rng.permutation(n), rng.integers(0, n, max(0, triggers - n))])[:triggers]
    w = trace.empty("mem_words", preload_words)
    w["addr"] = np.arange(preload_words)
    w["data"] = rng.integers(0, 1 << 32, preload_words, dtype=np.uint64)
    stim = trace.Trace(clock_hz=1.0, producer="sim.blocks.dma", meta={"num_devices": num_devices,
                                                                       "mem": mem.as_dict()})
    stim.add("descriptors", "dma_descriptors", d)
    stim.add("triggers", "dma_triggers", t)
    stim.add("memory", "mem_words", w)
    check_stimulus(p, stim)
    return stim
