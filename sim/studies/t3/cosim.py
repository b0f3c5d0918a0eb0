"""Co-simulation of one `hw.t3_device.T3Device` in a ring, against numpy and the device model.

A scaled-down fused GEMM + ring reduce-scatter (fp32 partial sums, ``devices`` chunks of ``chunk_words``
words, tracked in tiles of ``tile_words``) runs with one device (``device``) in RTL on Verilator. The
testbench plays the rest of the ring by symmetry: every device runs the same staggered schedule, so the
predecessor's traffic is this device's own, ``link_latency`` cycles later, carrying the predecessor's values:

* this device's stage-0 stores (which in T3 go straight to the successor) become the predecessor's stage-0
  updates arriving on ``link_in``;
* each packet the device's DMA sends on ``link_out`` becomes the predecessor's packet for the same address and
  tag arriving on ``link_in``, with the predecessor's running sum as data.

GEMM traffic: per tile, ``reads_per_tile`` loads on the ``compute`` port, ``cycles_per_tile`` of compute,
then the tile's output words as ``ADD_F32`` updates on ``produce`` (stages 1..N-1).

Checks: every word the device holds at the end (its own fully reduced chunk and the partially reduced
chunks it forwarded) equals numpy's ring-order sum bit for bit (`sim.blocks.reducer.reference`); the DMA's
bytes equal the model's; each descriptor's completion cycle (its status) is within the bound of the device model's.

The device model (`model_device`) is `sim.blocks.t3_device.model.T3DeviceModel`, the blocks' cycle models composed
as the RTL composes the blocks, driven with the same stimulus and the same mirrored ring.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hw.arbiter import ArbiterMode
from hw.dma import DmaOp
from hw.memory import MemoryParams
from hw.reducer import ReduceOp
from hw.t3_device import BYTES_PER_WORD, T3DeviceParams
from sim.blocks.dma.model import Descriptor
from sim.blocks.memory.model import SimpleMemoryModel
from sim.blocks.reducer.reference import reduce_words
from sim.blocks.t3_device.model import T3DeviceModel
from sim.core.config import RunConfig
from sim.core.stimulus import ReadyPattern
from sim.exec.api import completion_errors
from sw_stack.t3.planner import chunk_at


@dataclass(frozen=True)
class CosimScenario:
    devices: int = 4
    device: int = 1
    chunk_words: int = 512
    tile_words: int = 64
    reads_per_tile: int = 16
    cycles_per_tile: int = 120
    link_latency: int = 40
    link_backpressure: float = 0.2
    status_backpressure: float = 0.3
    compute_backpressure: float = 0.1
    reset_at: int | None = None  # cut the first replay with a reset at this cycle, then run it again
    sublayer: str = "synthetic"  # what the GEMM traffic was scaled from
    seed: int = 1
    mem: MemoryParams = field(default_factory=lambda: MemoryParams(addr_bits=20, size_log2=14, latency=6,
                                                                    queue_depth=8, interval=1))
    params: T3DeviceParams = field(default_factory=T3DeviceParams)
    arb_mode: int = ArbiterMode.MCA
    arb_threshold: int = 4
    arb_starvation: int = 32

    @property
    def tiles(self) -> int:
        return self.chunk_words // self.tile_words

    def out_base(self) -> int:
        return 0  # word address of the output buffer (tile-major chunks)

    def in_base(self) -> int:
        return self.devices * self.chunk_words  # GEMM inputs live after the output

    def word_addr(self, chunk: int, offset: int) -> int:
        return self.out_base() + chunk * self.chunk_words + offset

    def tag(self, stage: int, tile: int) -> int:
        return (stage - 1) * self.tiles + tile


def _f32(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random fp32 bit patterns: mostly normal values of mixed sign and scale, some zeros and subnormals."""
    vals = (rng.standard_normal(n) * np.exp2(rng.integers(-8, 8, n))).astype(np.float32).view(np.uint32)
    special = rng.random(n)
    vals = np.where(special < 0.02, np.uint32(0x80000000), vals)
    vals = np.where((special >= 0.02) & (special < 0.04), rng.integers(1, 1 << 23, n).astype(np.uint32), vals)
    return vals.astype(np.uint32)


@dataclass
class CosimPlan:
    sc: CosimScenario
    partials: np.ndarray  # (devices, devices * chunk_words) uint32: each device's GEMM output
    running: np.ndarray  # (devices, devices + 1, chunk_words): running[c][k] after k contributions to chunk c
    program: list[tuple[int, int, int, int, int]]  # tracker: entry, threshold, desc, enable, rearm
    descriptors: dict[int, dict[str, int]]
    compute: list[tuple[int, int]]  # (cycle, word address) GEMM loads
    produce: list[tuple[int, int, int, int]]  # (cycle, word address, data, tag), stages >= 1
    stage0: list[tuple[int, int, int]]  # (cycle, word offset in chunk, tile) of this device's stage-0 stores
    preload: dict[int, int]


def plan(sc: CosimScenario) -> CosimPlan:
    """Tracker programming, DMA descriptors, GEMM traffic and the numpy reference for ``sc``."""
    p, d, g = sc.devices, sc.device, sc.tiles
    if sc.chunk_words % sc.tile_words or (p - 1) * g > sc.params.tracker.entries:
        raise ValueError("co-simulation scenario: tiles must divide chunks and fit the tracker")
    rng = np.random.default_rng(sc.seed)
    partials = np.stack([_f32(rng, p * sc.chunk_words) for _ in range(p)])
    running = np.zeros((p, p + 1, sc.chunk_words), dtype=np.uint32)
    zero = np.zeros(sc.chunk_words, dtype=np.uint32)
    for c in range(p):
        for k in range(1, p + 1):
            contrib = partials[(c + k) % p, c * sc.chunk_words:(c + 1) * sc.chunk_words]
            if k == 1:
                running[c, 1] = reduce_words(ReduceOp.ADD_F32, zero, contrib)
            else:  # (0 + incoming) + local: exact whichever arrives first
                first = reduce_words(ReduceOp.ADD_F32, zero, running[c, k - 1])
                running[c, k] = reduce_words(ReduceOp.ADD_F32, first, contrib)

    tile_bytes = sc.tile_words * BYTES_PER_WORD
    program, descriptors = [], {}
    for s in range(1, p):
        c = chunk_at(p, d, s)
        for t in range(g):
            tag = sc.tag(s, t)
            program.append((tag, 2 * tile_bytes, tag, 1, 0))
            byte_addr = sc.word_addr(c, t * sc.tile_words) * BYTES_PER_WORD
            if s < p - 1:
                descriptors[tag] = dict(src_addr=byte_addr, dst_device=(d + 1) % p, dst_addr=byte_addr,
                                        length=tile_bytes, op=DmaOp.ADD_F32, tag=sc.tag(s + 1, t), valid=1)
            else:
                descriptors[tag] = dict(src_addr=byte_addr, dst_device=d, dst_addr=byte_addr, length=tile_bytes,
                                        op=DmaOp.NOTIFY, tag=tag, valid=1)

    compute, produce, stage0 = [], [], []
    t_now = 0
    in_words = 4096
    for s in range(p):
        c = chunk_at(p, d, s)
        for t in range(g):
            for r in range(sc.reads_per_tile):
                compute.append((t_now + r, sc.in_base() + int(rng.integers(0, in_words))))
            t_now += sc.cycles_per_tile
            for w in range(sc.tile_words):
                off = t * sc.tile_words + w
                if s == 0:
                    stage0.append((t_now + w, off, t))
                else:
                    produce.append((t_now + w, sc.word_addr(c, off), int(partials[d, c * sc.chunk_words + off]),
                                    sc.tag(s, t)))
    preload = {sc.in_base() + a: int(v) for a, v in enumerate(rng.integers(0, 1 << 32, in_words, dtype=np.uint64))}
    return CosimPlan(sc, partials, running, program, descriptors, compute, produce, stage0, preload)


def expected_memory(pl: CosimPlan) -> dict[int, int]:
    """The words the device must hold at the end: after stage s it holds running[c][s + 1] for its chunk."""
    sc = pl.sc
    out = {}
    for s in range(1, sc.devices):
        c = chunk_at(sc.devices, sc.device, s)
        vals = pl.running[c, s + 1]
        for off in range(sc.chunk_words):
            out[sc.word_addr(c, off)] = int(vals[off])
    return out


def _pred_partial(pl: CosimPlan) -> np.ndarray:
    """The predecessor's raw stage-0 partial of the chunk this device reduces at stage 1."""
    sc = pl.sc
    c1 = chunk_at(sc.devices, sc.device, 1)
    return pl.partials[(sc.device - 1) % sc.devices, c1 * sc.chunk_words:(c1 + 1) * sc.chunk_words]


# --- device model ------------------------------------------------------------------------------------------

@dataclass
class DeviceModelResult:
    statuses: list[tuple[int, int, int]]  # (cycle, desc, tag)
    dma_bytes: int
    cycles: int


def model_device(pl: CosimPlan, max_cycles: int = 2_000_000) -> DeviceModelResult:
    """The device's cycle model (`sim.blocks.t3_device.model`) driven exactly as the testbench drives the RTL."""
    sc = pl.sc
    descs = {i: Descriptor(**{k: v for k, v in d.items()}) for i, d in pl.descriptors.items()}
    dev = T3DeviceModel(sc.params, SimpleMemoryModel(sc.mem, dict(pl.preload)), num_devices=sc.devices,
                        arb_mode=sc.arb_mode, arb_threshold=sc.arb_threshold, arb_starvation=sc.arb_starvation,
                        program=pl.program, descriptors=descs)
    link_ready = ReadyPattern(sc.seed + 17, sc.link_backpressure)
    status_ready = ReadyPattern(sc.seed + 29, sc.status_backpressure)
    compute_ready = ReadyPattern(sc.seed + 31, sc.compute_backpressure)
    pending: list[tuple[int, int, int, int]] = []  # (cycle, seq, addr, tag)
    seq = 0
    c1 = chunk_at(sc.devices, sc.device, 1)
    for cyc, off, tile in pl.stage0:
        heapq.heappush(pending, (cyc + sc.link_latency, seq, c1 * sc.chunk_words + off, tile))
        seq += 1
    ci = pi = 0
    n_packets = 0
    expected = len(pl.program)
    for k in range(max_cycles):
        if len(dev.run.statuses) == expected and not pending and dev.idle():
            break
        comp = (pl.compute[ci][1], 0, 0) if ci < len(pl.compute) and pl.compute[ci][0] <= k else None
        prod = None
        if pi < len(pl.produce) and pl.produce[pi][0] <= k:
            prod = (pl.produce[pi][1], int(ReduceOp.ADD_F32), pl.produce[pi][3])
        lin = (pending[0][2], int(ReduceOp.ADD_F32), pending[0][3]) if pending and pending[0][0] <= k else None
        took_c, took_p, took_l, _ = dev.cycle(k, comp, prod, lin, link_ready(k), status_ready(k),
                                              compute_ready(k))
        ci += took_c
        pi += took_p
        if took_l:
            heapq.heappop(pending)
        for pkt in dev.run.packets[n_packets:]:
            _, _, addr, _, _, tag = pkt
            stage = tag // sc.tiles + 1
            off = addr - chunk_at(sc.devices, sc.device, stage - 1) * sc.chunk_words
            heapq.heappush(pending, (k + sc.link_latency, seq,
                                     chunk_at(sc.devices, sc.device, stage) * sc.chunk_words + off, tag))
            seq += 1
        n_packets = len(dev.run.packets)
    else:
        raise RuntimeError(f"the device model did not finish within {max_cycles} cycles")
    statuses = [(c, desc, tag) for c, desc, tag, _ in dev.run.statuses]
    return DeviceModelResult(statuses, BYTES_PER_WORD * len(dev.run.packets), max(c for c, _, _ in statuses))


# --- the co-simulation -------------------------------------------------------------------------------------

def scenario_from_config(cfg: RunConfig) -> CosimScenario:
    """The study's first sublayer scaled down to the co-simulated device.

    The RTL's memory moves one word per cycle, so the GEMM is slowed to keep the sublayer's ratio of DRAM
    bandwidth to output production, and its loads per output word are the sublayer's.
    """
    from sim.systems.t3_system import shape, sublayers

    sl = sublayers(cfg.t3_study)[0]
    sh = shape(sl, cfg.hardware, cfg.t3_study)
    tile_time = sh.steps * sh.step_cycles
    production = cfg.hardware.gpu.compute_units * sh.tile_bytes / tile_time  # output bytes per cycle
    base = CosimScenario(seed=cfg.seed)
    ratio = sh.dram_bpc / production
    loads = sh.step_bytes * sh.steps / sh.tile_bytes
    return dataclasses.replace(
        base, cycles_per_tile=max(base.tile_words, round(base.tile_words * ratio)),
        reads_per_tile=max(1, round(base.tile_words * loads)), sublayer=sl.key)


def compare(pl: CosimPlan, rtl: dict[str, Any], model: DeviceModelResult) -> dict[str, Any]:
    exp = expected_memory(pl)
    got = {int(a): int(v) for a, v in rtl["memory"]}
    data_mismatches = sum(1 for a, v in exp.items() if got.get(a) != v)
    rtl_status = {(s[1]): s[0] for s in rtl["statuses"]}
    model_status = {s[1]: s[0] for s in model.statuses}
    keys = sorted(set(rtl_status) | set(model_status))
    timing = completion_errors([rtl_status.get(k) for k in keys], [model_status.get(k) for k in keys])
    return {
        "data_mismatches": data_mismatches + timing["missing_completions"],
        "words_checked": len(exp),
        "rtl_dma_bytes": rtl["dma_bytes"], "model_dma_bytes": model.dma_bytes,
        "rtl_completion_cycle": max(rtl_status.values(), default=0),
        "model_completion_cycle": model.cycles,
        **timing,
        "statuses": len(rtl_status),
        "status_errors": [s for s in rtl["statuses"] if s[3] != 0],
        "reset_cut_run": rtl.get("cut_run"),
    }


def run_t3_cosim(cfg: RunConfig, work: Path, progress: Callable[[str], None] = lambda _: None,
                 scenario: CosimScenario | None = None, waves: bool = False) -> dict[str, Any]:
    from sim.blocks.t3_device.rtl import run_device_rtl

    sc = scenario or scenario_from_config(cfg)
    pl = plan(sc)
    progress(f"co-simulation: device {sc.device} of {sc.devices} on Verilator "
             f"({sc.devices * sc.chunk_words} output words)")
    job = {
        "devices": sc.devices, "device": sc.device, "tiles": sc.tiles, "chunk_words": sc.chunk_words,
        "link_latency": sc.link_latency, "link_seed": sc.seed + 17, "link_bp": sc.link_backpressure,
        "status_seed": sc.seed + 29, "status_bp": sc.status_backpressure, "compute_seed": sc.seed + 31,
        "compute_bp": sc.compute_backpressure, "reset_at": sc.reset_at,
        "output_words": list(range(sc.out_base(), sc.out_base() + sc.devices * sc.chunk_words)),
        "arb": [int(sc.arb_mode), sc.arb_threshold, sc.arb_starvation],
        "program": pl.program, "descriptors": {str(k): v for k, v in pl.descriptors.items()},
        "compute": pl.compute, "produce": pl.produce, "stage0": pl.stage0,
        "preload": sorted(pl.preload.items()), "readback": sorted(expected_memory(pl)),
        "running": pl.running.tolist(), "params": sc.params.blocks_dict(), "mem": sc.mem.as_dict(),
        "pred_partial": _pred_partial(pl).tolist(), "max_cycles": 1_000_000,
    }
    rtl = run_device_rtl(sc.params, sc.mem, job, work, waves=waves)
    model = model_device(pl)
    res = compare(pl, rtl, model)
    res["description"] = (f"{sc.sublayer} scaled down: a {sc.devices}-device ring reduce-scatter of "
                          f"{sc.devices * sc.chunk_words} fp32 words per device in tiles of {sc.tile_words}, "
                          f"{sc.reads_per_tile} GEMM loads and {sc.cycles_per_tile} cycles of compute per tile "
                          f"(device {sc.device} in RTL, the ring mirrored by the testbench)")
    res["scenario"] = {k: v for k, v in dataclasses.asdict(sc).items() if k not in ("mem", "params")}
    return res
