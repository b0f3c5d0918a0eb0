"""GPU time of one Hogwild! decode step (every worker emits one token), from the step's memory traffic.

The input is one step of the cache's traffic trace (`sw_stack.hogwild.traffic`, a `STEP_DTYPE` row: bytes and
tokens of each record kind, summed over layers and workers). A step runs the decoder's layers once for all W
workers together (one batched matmul per projection), so each layer's weights are read once per step whatever W
is, while each worker's attention reads the K and V of every block of its view (the trace's ``KV_READ`` rows:
no reuse across workers, each worker's attention is its own kernel). Per layer, on average over the layers:

* bytes: the layer's weights, the K and V read and written (``KV_READ``, ``KV_WRITE``), a commit's move (read and
  written, ``COMMIT_MOVE``);
* FLOPs: 2 per weight per worker (projections and MLP), 4 per query element per key read (QK^T and the weighted
  sum of V), and the query rotations (`sw_stack.hogwild.traffic.rotation_costs`).

Each layer takes the longer of its bytes at ``memory_efficiency`` of the HBM bandwidth and its FLOPs at
``compute_efficiency`` of the peak matrix rate (a roofline; both efficiencies are assumed, in the config); the
output head is one more such stage (its weights, 2 FLOPs per weight per worker). The step is memory-bound when
the memory side dominates. Launch and synchronisation overheads are not modelled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sim.core.config import STORAGE_DTYPES, DecoderShape, GpuConfig
from sw_stack.hogwild.cache import SharedCache
from sw_stack.hogwild.traffic import Traffic, rotation_costs


@dataclass(frozen=True)
class StepCost:
    workers: int
    weight_bytes: float  # per step, every layer and the head
    kv_read_bytes: float
    kv_write_bytes: float
    matmul_flops: float
    attention_flops: float
    rotation_flops: float
    memory_s: float  # the step's time if every stage were memory-bound
    compute_s: float  # ... if every stage were compute-bound
    step_time_s: float

    @property
    def tokens_per_s(self) -> float:
        return self.workers / self.step_time_s

    @property
    def bound(self) -> str:
        return "memory" if self.memory_s >= self.compute_s else "compute"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"tokens_per_s": self.tokens_per_s, "bound": self.bound}


def peak_flops(gpu: GpuConfig) -> float:
    return gpu.compute_units * gpu.clock_ghz * 1e9 * gpu.flops_per_cu_per_cycle


def step_cost(shape: DecoderShape, storage: str, gpu: GpuConfig, step: np.ndarray, *, memory_efficiency: float,
              compute_efficiency: float) -> StepCost:
    """The cost of the decode step whose traffic is ``step`` (one `STEP_DTYPE` row)."""
    sb = STORAGE_DTYPES[storage]
    n = shape.layers
    w = int(step["kv_write_tokens"]) // n
    bw = gpu.hbm_gbps * 1e9 * memory_efficiency
    fl = peak_flops(gpu) * compute_efficiency
    weights = n * shape.layer_params() * sb
    kv_read, kv_write = float(step["kv_read_bytes"]), float(step["kv_write_bytes"])
    moved = 2.0 * float(step["commit_move_bytes"])
    mm = 2.0 * n * shape.layer_params() * w
    attn = 4.0 * float(step["kv_read_tokens"]) * shape.q_dim
    rot = float(rotation_costs(np.asarray(step)[None], shape, storage)["query_flops"][0])
    head_weights = shape.vocab * shape.hidden * sb
    head_flops = 2.0 * shape.vocab * shape.hidden * w
    layer_mem = (weights + kv_read + kv_write + moved) / n / bw
    layer_comp = (mm + attn + rot) / n / fl
    head_mem, head_comp = head_weights / bw, head_flops / fl
    return StepCost(
        workers=w, weight_bytes=weights + head_weights, kv_read_bytes=kv_read, kv_write_bytes=kv_write,
        matmul_flops=mm + head_flops, attention_flops=attn, rotation_flops=rot, memory_s=n * layer_mem + head_mem,
        compute_s=n * layer_comp + head_comp, step_time_s=n * max(layer_mem, layer_comp) + max(head_mem, head_comp))


def traffic_of_step(shape: DecoderShape, storage: str, workers: int, layout: str, lengths: list[int]) -> np.ndarray:
    """The traffic (`STEP_DTYPE` row) of one decode step of a shape-only cache whose blocks hold ``lengths``."""
    traffic = Traffic()
    cache = SharedCache(shape, workers, layout, storage, tensors=False, traffic=traffic)
    cache.fill(lengths)
    cache.decode_step()
    return traffic.per_step()[-1]


def crossover_workers(shape: DecoderShape, storage: str, gpu: GpuConfig, context: int, *, memory_efficiency: float,
                      compute_efficiency: float, limit: int = 1 << 16) -> int | None:
    """The smallest power of two W at which a step of W workers, each seeing ``context`` tokens of its own (W
    private caches), is compute-bound, or None below ``limit``: the weights are shared by the batch, the KV reads
    are not, so at long contexts this never happens."""
    one = traffic_of_step(shape, storage, 1, "contiguous", [context, 0])
    w = 1
    while w <= limit:
        step = one.copy()
        for name in step.dtype.names[1:]:
            step[name] *= w
        cost = step_cost(shape, storage, gpu, step, memory_efficiency=memory_efficiency,
                         compute_efficiency=compute_efficiency)
        if cost.bound == "compute":
            return w
        w *= 2
    return None
