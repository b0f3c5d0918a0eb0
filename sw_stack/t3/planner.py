"""T3-aware collective planner: a GEMM fused with a ring reduce-scatter.

What a collective library would precompute for T3 (docs/papers.md, T3), for ``N`` devices in a ring:

* **Staggered schedule.** The GEMM output is split by rows into ``N`` chunks, one per ring stage. Device ``d``
  computes chunk ``(d + N - 1 - s) mod N`` at stage ``s``, so every device starts on a different chunk and
  finishes on its own chunk ``d``, which then holds the fully reduced result.
* **remote_map.** Stage 0's stores go straight to the next device ``(d + 1) mod N`` as updates.
* **Tracker programming.** Stages ``1..N-1`` are tracked: one entry per group of tiles, threshold = the local
  update plus the incoming update = ``2 x group bytes``.
* **dma_map.** When a middle-stage entry fires, its descriptor sends the reduced group to the next device as
  an update tagged with that device's entry for the next stage; the last stage's descriptor is a ``NOTIFY``
  (the reduced group is ready for its consumer).

Layout: each device's output buffer is tile-major (tile ``i`` of chunk ``c`` at
``(c * tiles_per_chunk + i) * tile_bytes``), so a group of consecutive tiles is one contiguous range and one
DMA descriptor. Tags (tracker entries) are ``(stage - 1) * groups_per_chunk + group``; descriptor index = tag.

Producer timing is a roofline estimate: tiles run in waves of ``compute_units`` workgroups; a tile takes
``max(flops / rate_per_cu, hbm_bytes_share / hbm_bytes_per_cycle_per_cu)`` cycles, with inputs read once per
GEMM (held in L2) and bytes shared evenly over tiles; a wave's output leaves at HBM write rate after the wave.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hw.dma import DmaOp
from sim.core import trace
from sim.core.config import HardwareConfig, T3Config

# The reducer op of a descriptor that forwards a partial sum, by element size (bf16 or fp32 elements).
UPDATE_OPS = {2: DmaOp.ADD_BF16, 4: DmaOp.ADD_F32}


class PlanError(Exception):
    """The workload cannot be planned as configured; names the config key at fault."""

    def __init__(self, keypath: str, message: str) -> None:
        self.keypath = keypath
        super().__init__(f"{keypath}: {message}")


@dataclass
class DevicePlan:
    device: int
    program: np.ndarray      # trace kind tracker_program
    descriptors: np.ndarray  # trace kind dma_descriptors
    stores: np.ndarray       # trace kind producer_stores, sorted by cycle
    compute_end_cycle: int


@dataclass
class T3Plan:
    workload: T3Config
    devices: list[DevicePlan]
    tiles_per_chunk: int
    tiles_per_group: int
    groups_per_chunk: int
    tile_bytes: int
    group_bytes: int
    tile_cycles: int
    clock_hz: float

    def chunk_at(self, device: int, stage: int) -> int:
        return chunk_at(self.workload.devices, device, stage)

    def to_trace(self, device: int) -> trace.Trace:
        dp = self.devices[device]
        t = trace.Trace(clock_hz=self.clock_hz, producer="sw_stack.t3.planner",
                        meta={"device": device, "devices": self.workload.devices})
        t.add("program", "tracker_program", dp.program)
        t.add("descriptors", "dma_descriptors", dp.descriptors)
        t.add("stores", "producer_stores", dp.stores)
        return t


def chunk_at(n: int, device: int, stage: int) -> int:
    return (device + n - 1 - stage) % n


def plan_t3(w: T3Config, hw: HardwareConfig) -> T3Plan:
    """Plan the fused GEMM + ring reduce-scatter of ``w`` on ``hw``; raise `PlanError` if it does not fit."""
    n = w.devices
    if w.tokens % (n * w.tile_m):
        raise PlanError("t3.tokens", f"must be a multiple of devices x tile_m = {n * w.tile_m}, got {w.tokens}")
    if w.hidden % w.tile_n:
        raise PlanError("t3.hidden", f"must be a multiple of tile_n = {w.tile_n}, got {w.hidden}")
    tile_bytes = w.tile_m * w.tile_n * w.dtype_bytes
    if tile_bytes % w.store_bytes:
        raise PlanError("t3.store_bytes", f"must divide the tile size ({tile_bytes} bytes), got {w.store_bytes}")
    update_op = UPDATE_OPS.get(w.dtype_bytes)
    if update_op is None:
        raise PlanError("t3.dtype_bytes",
                        f"must be 2 (bf16) or 4 (fp32): the reducer's element sizes, got {w.dtype_bytes}")
    tp = hw.tracker
    for key, size in (("t3.store_bytes", w.store_bytes), ("t3.dma_packet_bytes", w.dma_packet_bytes)):
        if size >= 1 << tp.size_bits:
            raise PlanError(key, f"must fit the tracker's {tp.size_bits}-bit size field (< {1 << tp.size_bits})")

    tiles_per_chunk = (w.tokens // n // w.tile_m) * (w.hidden // w.tile_n)
    tracked = (n - 1) * tiles_per_chunk
    # Coarsen the tracking granularity until every tracked group has its own entry.
    tiles_per_group = next(g for g in range(1, tiles_per_chunk + 1)
                           if tiles_per_chunk % g == 0 and (n - 1) * (tiles_per_chunk // g) <= tp.entries)
    groups = tiles_per_chunk // tiles_per_group
    if (n - 1) * groups > tp.entries:
        raise PlanError("hardware.tracker.entries",
                        f"{tp.entries} entries cannot track {tracked} tiles over {n - 1} stages")
    group_bytes = tiles_per_group * tile_bytes
    threshold = 2 * group_bytes
    if threshold >= 1 << tp.count_bits:
        raise PlanError("hardware.tracker.count_bits",
                        f"a threshold of {threshold} bytes does not fit in {tp.count_bits} bits")
    if (n - 1) * groups > 1 << tp.desc_bits:
        raise PlanError("hardware.tracker.desc_bits", f"too narrow for {(n - 1) * groups} descriptors")

    gpu = hw.gpu
    hbm_bpc = gpu.hbm_gbps / gpu.clock_ghz  # bytes per cycle
    total_tiles = n * tiles_per_chunk
    gemm_bytes = (w.tokens * w.k + w.k * w.hidden + w.tokens * w.hidden) * w.dtype_bytes
    compute_cycles = 2 * w.tile_m * w.tile_n * w.k / gpu.flops_per_cu_per_cycle
    memory_cycles = gemm_bytes / total_tiles / (hbm_bpc / gpu.compute_units)
    tile_cycles = max(1, math.ceil(max(compute_cycles, memory_cycles)))
    store_interval = w.store_bytes / hbm_bpc
    stores_per_tile = tile_bytes // w.store_bytes

    devices = []
    for d in range(n):
        program = trace.empty("tracker_program", (n - 1) * groups)
        descs = trace.empty("dma_descriptors", (n - 1) * groups)
        for s in range(1, n):
            c = chunk_at(n, d, s)
            for g in range(groups):
                tag = (s - 1) * groups + g
                addr = (c * tiles_per_chunk + g * tiles_per_group) * tile_bytes
                program[tag] = (tag, threshold, tag, 1, 0)
                if s < n - 1:
                    descs[tag] = (tag, update_op, addr, (d + 1) % n, addr, s * groups + g, group_bytes)
                else:
                    descs[tag] = (tag, DmaOp.NOTIFY, addr, d, addr, 0, group_bytes)

        rows = []
        t0 = 0
        for s in range(n):
            c = chunk_at(n, d, s)
            dst = (d + 1) % n if s == 0 else d
            for wave_start in range(0, tiles_per_chunk, gpu.compute_units):
                wave = range(wave_start, min(wave_start + gpu.compute_units, tiles_per_chunk))
                t0 += tile_cycles
                # Round-robin over the wave's workgroups: store j of every tile, then store j + 1.
                i = 0
                for j in range(stores_per_tile):
                    for tile in wave:
                        g = tile // tiles_per_group
                        tag = g if s == 0 else (s - 1) * groups + g
                        addr = (c * tiles_per_chunk + tile) * tile_bytes + j * w.store_bytes
                        rows.append((t0 + int(i * store_interval), tag, addr, 1, w.store_bytes, dst, s))
                        i += 1
        stores = np.array(rows, dtype=trace.TABLE_KINDS["producer_stores"])
        stores = stores[np.argsort(stores["cycle"], kind="stable")]
        devices.append(DevicePlan(d, program, descs, stores, compute_end_cycle=t0))

    return T3Plan(workload=w, devices=devices, tiles_per_chunk=tiles_per_chunk, tiles_per_group=tiles_per_group,
                  groups_per_chunk=groups, tile_bytes=tile_bytes, group_bytes=group_bytes,
                  tile_cycles=tile_cycles, clock_hz=gpu.clock_ghz * 1e9)
