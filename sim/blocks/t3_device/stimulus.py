"""The device's stimulus tables and the standard stimulus (a ring reduce-scatter step, opened, plus error cases).

The table kinds and ``meta`` keys are documented (and registered) in `sim.blocks.t3_device`.

Contract of a stimulus (what makes its answer independent of timing, as in T3): a word is updated from both
packet streams only by order-free ops (``ADD_I32``, or exactly two ``ADD_F32``/``ADD_BF16`` contributions onto
a zero word, which commute exactly); ``compute`` uses words no packet or descriptor touches; a descriptor reads
words whose last packet its tracker entry has counted before it fires.
"""

from __future__ import annotations

import numpy as np

from hw.arbiter import ArbiterMode
from hw.dma import DmaOp
from hw.memory import MemoryParams
from hw.reducer import ReduceOp
from hw.t3_device import BYTES_PER_WORD, T3DeviceParams
from sim.core import trace
from sim.core.stimulus import arrival_cycles

STIMULUS = {"program": "tracker_program", "descriptors": "t3_descriptors", "preload": "mem_words",
            "compute": "t3_compute", "produce": "t3_packets", "link_in": "t3_packets"}


def memory_params(stim: trace.Trace) -> MemoryParams:
    return MemoryParams(**stim.meta["mem"])


def readback_addrs(stim: trace.Trace) -> np.ndarray:
    """The words the result's ``memory`` table holds: every word preloaded or written (sorted, wrapped)."""
    mask = (1 << memory_params(stim).size_log2) - 1
    comp = stim["compute"]
    parts = [stim["preload"]["addr"], comp["addr"][comp["write"] != 0], stim["produce"]["addr"],
             stim["link_in"]["addr"]]
    return np.unique(np.concatenate([np.asarray(a, np.int64) for a in parts]) & mask).astype(np.int64)


def memory_for(p: T3DeviceParams, words: int) -> MemoryParams:
    """The memory the stimuli run on: at least 2**14 words (one RTL build for every small stimulus), latency 6,
    a queue of 8 (or what ``occupancy_bits`` can report)."""
    size_log2 = max(14, words.bit_length())
    if size_log2 > p.addr_bits:
        raise ValueError(f"the stimulus needs {size_log2} address bits, the device has {p.addr_bits}")
    queue_depth = min(8, (1 << p.arbiter.occupancy_bits) - 1)
    return MemoryParams(addr_bits=p.addr_bits, size_log2=size_log2, latency=6, queue_depth=queue_depth, interval=1)


def check_stimulus(stim: trace.Trace) -> None:
    """Raise ``ValueError`` where ``stim`` breaks the contract (module docstring) in a way visible without timing:
    a word both packet streams update with ops that do not commute, or a ``compute`` word that a packet or a
    descriptor's source also uses. (Whether a descriptor fires after its words' last packet depends on the
    tracker program, and is left to the stimulus.)"""
    mask = (1 << memory_params(stim).size_log2) - 1
    pre = {a & mask: v for a, v in zip(stim["preload"]["addr"].tolist(), stim["preload"]["data"].tolist(),
                                       strict=True)}
    ops: dict[int, list[int]] = {}
    sides: dict[int, set[int]] = {}
    for side, name in enumerate(("produce", "link_in")):
        for a, op in zip(stim[name]["addr"].tolist(), stim[name]["op"].tolist(), strict=True):
            ops.setdefault(a & mask, []).append(op)
            sides.setdefault(a & mask, set()).add(side)
    for a, side in sides.items():
        o = ops[a]
        if len(side) == 2 and not (all(x == ReduceOp.ADD_I32 for x in o)
                                   or (len(o) == 2 and o[0] == o[1] != ReduceOp.STORE and not pre.get(a, 0))):
            raise ValueError(f"word {a:#x} is updated from both streams with ops {o} (initially "
                             f"{pre.get(a, 0):#x}): the result would depend on timing")
    words = set(ops)
    for r in stim["descriptors"]:
        if r["valid"] and r["op"] != DmaOp.NOTIFY:
            src = int(r["src_addr"]) >> 2
            words.update((src + i) & mask for i in range(int(r["length"]) // BYTES_PER_WORD))
    shared = words & {a & mask for a in stim["compute"]["addr"].tolist()}
    if shared:
        raise ValueError(f"compute uses words packets or descriptors also use: {sorted(shared)[:8]}")


def _table(kind: str, rows: list[tuple]) -> np.ndarray:
    return np.array(rows, dtype=trace.TABLE_KINDS[kind]) if rows else trace.empty(kind)


def _by_cycle(arr: np.ndarray) -> np.ndarray:
    return arr[np.argsort(arr["cycle"], kind="stable")]


def standard_stimulus(p: T3DeviceParams, seed: int, size: int, *, devices: int = 3) -> trace.Trace:
    """About ``size`` packets: one device's share of a ``devices``-ring reduce-scatter, plus error cases.

    The ring part is `sim.studies.t3.cosim.plan` (tiles of fp32 partial sums, the tracker and DMA programs, GEMM
    loads on ``compute``), opened: the ring's packets arrive at fixed cycles (the predecessor's stage-1 partials
    ``link_latency`` after this device's stage-0 stores, later stages a tile after this device's own stores of
    the same tile) instead of in answer to the DMA. A fifth of the GEMM loads become stores. Extra cases on
    spare tracker entries: packets of mixed ops (``STORE``, the three adds) to an unprogrammed entry; an entry
    whose byte count saturates (threshold ``2**count_bits - 1``; when the counter is too wide for that at this
    size, a small threshold), followed by packets to it once disabled, whose descriptor names a device out of
    range (``BAD_DEVICE``; ``MISALIGNED`` if every device number is in range); a re-arming entry whose
    descriptor is programmed invalid (``UNPROGRAMMED``).
    """
    from sim.studies.t3.cosim import CosimScenario, plan  # lazily: the study imports this package's model
    from sw_stack.t3.planner import chunk_at

    tp = p.tracker
    spare = 3
    if tp.entries < (devices - 1) + spare:
        raise ValueError(f"the standard stimulus needs at least {devices - 1 + spare} tracker entries")
    tiles = max(1, min(8, (tp.entries - spare) // (devices - 1)))
    max_tile = ((1 << tp.count_bits) - 1) // (2 * BYTES_PER_WORD)  # the threshold (two tiles' bytes) must fit
    tile_words = max(2, min(max_tile, size // (2 * (devices - 1) * tiles)))
    chunk_words = tiles * tile_words
    scratch = devices * chunk_words + 4096  # after plan's output and GEMM input regions
    mem = memory_for(p, scratch + 64)
    sc = CosimScenario(devices=devices, device=1, chunk_words=chunk_words, tile_words=tile_words,
                       reads_per_tile=max(1, tile_words // 2), cycles_per_tile=3 * tile_words + 8, link_latency=20,
                       seed=seed, mem=mem, params=p)
    pl = plan(sc)
    rng = np.random.default_rng(seed + 0x7E3)
    d, cw = sc.device, sc.chunk_words

    produce = [(c, a, int(ReduceOp.ADD_F32), v, tag) for c, a, v, tag in pl.produce]
    link = []
    c1 = chunk_at(devices, d, 1)
    pred = pl.partials[(d - 1) % devices, c1 * cw:(c1 + 1) * cw]
    for cyc, off, tile in pl.stage0:
        link.append((cyc + sc.link_latency, c1 * cw + off, int(ReduceOp.ADD_F32), int(pred[off]), tile))
    for cyc, addr, _, tag in pl.produce:
        stage = tag // sc.tiles + 1
        if stage + 1 < devices:  # the predecessor's packet of the same tile for the next stage
            off = addr - chunk_at(devices, d, stage) * cw
            c = chunk_at(devices, d, stage + 1)
            link.append((cyc + tile_words + sc.link_latency, c * cw + off, int(ReduceOp.ADD_F32),
                         int(pl.running[c, stage + 1, off]), sc.tag(stage + 1, tag % sc.tiles)))

    compute, preload = [], {}
    for cyc, addr in pl.compute:
        if rng.random() < 0.2:
            compute.append((cyc, addr, 1, int(rng.integers(0, 1 << 32))))
        else:
            compute.append((cyc, addr, 0, 0))
        preload[addr] = pl.preload[addr]

    program = list(pl.program)
    descriptors = [(i, x["src_addr"], x["dst_device"], x["dst_addr"], x["length"], x["op"], x["tag"], x["valid"])
                   for i, x in sorted(pl.descriptors.items())]
    span = max(c for c, *_ in produce)
    unprog, sat, rearm = (devices - 1) * tiles, (devices - 1) * tiles + 1, (devices - 1) * tiles + 2

    def when(n: int) -> np.ndarray:  # n arrivals with idles, spread over the run
        a = arrival_cycles(n, 0.3, rng)
        return a * span // max(1, int(a[-1]) + 1)

    # An unprogrammed entry: mixed ops on a few produce-only words (hazards, STORE after ADD, bf16 lanes).
    ops = (ReduceOp.STORE, ReduceOp.ADD_I32, ReduceOp.ADD_F32, ReduceOp.ADD_BF16)
    n_u = max(8, tile_words)
    for cyc in when(n_u):
        produce.append((int(cyc), scratch + int(rng.integers(0, 8)), int(ops[rng.integers(0, 4)]),
                        int(rng.integers(0, 1 << 32)), unprog))
    # A saturating entry (then disabled: 3 more packets are unprogrammed), on words both streams add to.
    max_count = (1 << tp.count_bits) - 1
    fire_at = (max_count + 1) // BYTES_PER_WORD  # count reaches 2**count_bits - 4, then saturates
    threshold = max_count if fire_at + 3 <= max(size // 2, 8) else 4 * BYTES_PER_WORD
    n_s = (fire_at if threshold == max_count else 4) + 3
    for i, cyc in enumerate(when(n_s)):
        row = (int(cyc), scratch + 8 + int(rng.integers(0, 8)), int(ReduceOp.ADD_I32), int(rng.integers(0, 1 << 32)),
               sat)
        (link if i % 2 else produce).append(row)
    program.append((sat, threshold, sat, 1, 0))
    if devices < 1 << p.dma.device_bits:  # BAD_DEVICE
        descriptors.append((sat, 4 * (scratch + 8), devices, 0, 8 * BYTES_PER_WORD, int(DmaOp.ADD_I32), 0, 1))
    else:  # MISALIGNED
        descriptors.append((sat, 4 * (scratch + 8) + 2, 0, 0, 8 * BYTES_PER_WORD, int(DmaOp.ADD_I32), 0, 1))
    # A re-arming entry firing every two packets into a descriptor programmed with valid = 0.
    for cyc in when(6):
        produce.append((int(cyc), scratch + 16 + int(rng.integers(0, 4)), int(ReduceOp.ADD_I32),
                        int(rng.integers(0, 1 << 32)), rearm))
    program.append((rearm, 2 * BYTES_PER_WORD, rearm, 1, 1))
    descriptors.append((rearm, 4 * (scratch + 16), d, 4 * (scratch + 16), 4 * BYTES_PER_WORD, int(DmaOp.ADD_I32),
                        5, 0))

    t = trace.Trace(clock_hz=1.0, producer="sim.blocks.t3_device", meta={
        "seed": seed, "mem": mem.as_dict(), "num_devices": devices, "arb_mode": int(ArbiterMode.MCA),
        "arb_threshold": 4, "arb_starvation": 32})
    t.add("program", "tracker_program", _table("tracker_program", program))
    t.add("descriptors", "t3_descriptors", _table("t3_descriptors", descriptors))
    t.add("preload", "mem_words", _table("mem_words", sorted(preload.items())))
    t.add("compute", "t3_compute", _by_cycle(_table("t3_compute", compute)))
    t.add("produce", "t3_packets", _by_cycle(_table("t3_packets", produce)))
    t.add("link_in", "t3_packets", _by_cycle(_table("t3_packets", link)))
    return t


def saturating_stimulus(p: T3DeviceParams, seed: int = 0) -> trace.Trace:
    """Tracker entries whose byte counts pass ``2**count_bits - 1`` (keep ``count_bits`` small: 2**(count_bits-2)
    packets make one saturation), both streams adding ``ADD_I32`` words, every descriptor a ``NOTIFY``.

    Entry 0: threshold ``2**count_bits - 1``, saturates once and fires, then two packets find it disabled.
    Entry 1: threshold ``2**count_bits - 2``, re-arming: saturates and fires twice. Entry 2: threshold 8, re-arming,
    never saturates. Three overflows in all.
    """
    tp = p.tracker
    max_count = (1 << tp.count_bits) - 1
    n = (max_count + 1) // BYTES_PER_WORD  # packets to reach 2**count_bits - 4, then saturate
    rng = np.random.default_rng(seed)
    tags = [0] * (n + 2) + [1] * (2 * n) + [2] * 6
    rng.shuffle(tags)
    cycles = arrival_cycles(len(tags), 0.3, rng)
    produce, link = [], []
    for cyc, tag in zip(cycles.tolist(), tags, strict=True):
        row = (cyc, 8 * tag + int(rng.integers(0, 4)), int(ReduceOp.ADD_I32), int(rng.integers(0, 1 << 32)), tag)
        (link if rng.random() < 0.5 else produce).append(row)
    program = [(0, max_count, 0, 1, 0), (1, max_count - 1, 1, 1, 1), (2, 2 * BYTES_PER_WORD, 2, 1, 1)]
    descriptors = [(i, 0, 0, 0, 0, int(DmaOp.NOTIFY), 10 + i, 1) for i in range(3)]
    mem = memory_for(p, 64)
    t = trace.Trace(clock_hz=1.0, producer="sim.blocks.t3_device.saturating", meta={
        "seed": seed, "mem": mem.as_dict(), "num_devices": 2, "arb_mode": int(ArbiterMode.MCA), "arb_threshold": 2,
        "arb_starvation": 8})
    t.add("program", "tracker_program", _table("tracker_program", program))
    t.add("descriptors", "t3_descriptors", _table("t3_descriptors", descriptors))
    t.add("preload", "mem_words", _table("mem_words", []))
    t.add("compute", "t3_compute", _table("t3_compute", []))
    t.add("produce", "t3_packets", _table("t3_packets", produce))
    t.add("link_in", "t3_packets", _table("t3_packets", link))
    return t
