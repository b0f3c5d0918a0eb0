"""Swap cost models: how long one KV swap between GPU and host memory takes.

The engine describes a swap as the list of contiguous copies it issues (bytes each, one entry per
``cudaMemcpyAsync``) and a direction, and asks a `SwapCostModel` for the duration. Any object with a
``swap_seconds`` method fits, e.g. a cycle model of a KV swap DMA controller.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import numpy as np

Direction = Literal["out", "in"]  # "out": GPU -> CPU (device to host), "in": CPU -> GPU


@runtime_checkable
class SwapCostModel(Protocol):
    """Duration of one swap.

    Parameters of ``swap_seconds``
    ------------------------------
    runs_bytes
        One entry per contiguous copy, in issue order (a 1-D integer array or a sequence of ints, each > 0).
        For a vLLM-style paged swap of N blocks of an L-layer model this is 2*L*N entries of one block's
        per-layer K (or V) bytes; a block group of B contiguous blocks gives 2*L entries of B times that.
    direction
        ``"out"`` (GPU to CPU) or ``"in"`` (CPU to GPU). The engine models the two directions as independent
        channels (PCIe is full duplex); swaps of one direction are serialised.

    Returns the seconds from the first copy's start to the last copy's end (>= 0; 0 for no copies).
    """

    def swap_seconds(self, runs_bytes: np.ndarray, direction: Direction) -> float: ...


class PcieLinkModel:
    """Per-copy overhead plus bytes at bandwidth: ``t = n_copies * per_copy + sum(bytes) / bandwidth``.

    Calibrated to docs/papers.md (FastSwitch) (PCIe 4.0 x16, pinned host memory): about 2-4 us per copy call and
    ~24 GB/s for large runs. With the defaults (2.3 us, 24 GB/s) a 32 KiB copy takes 3.67 us (8.9 GB/s
    effective) and a 1 MiB run 46 us (22.8 GB/s).
    """

    def __init__(self, bandwidth_gbps: float = 24.0, per_copy_us: float = 2.3) -> None:
        if bandwidth_gbps <= 0 or per_copy_us < 0:
            raise ValueError("bandwidth_gbps must be > 0 and per_copy_us >= 0")
        self.bytes_per_s = bandwidth_gbps * 1e9
        self.per_copy_s = per_copy_us * 1e-6

    def swap_seconds(self, runs_bytes: np.ndarray, direction: Direction) -> float:
        if direction not in ("out", "in"):
            raise ValueError(f"direction must be 'out' or 'in', got {direction!r}")
        n = len(runs_bytes)
        if n == 0:
            return 0.0
        return n * self.per_copy_s + float(np.sum(runs_bytes)) / self.bytes_per_s

    def effective_gbps(self, run_bytes: int) -> float:
        """Effective GB/s of a stream of copies of ``run_bytes`` each."""
        return run_bytes / (self.per_copy_s + run_bytes / self.bytes_per_s) / 1e9
