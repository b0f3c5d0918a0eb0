"""Swap durations for the serving engine, taken from the KV swap DMA controller's model on the PCIe link.

The engine (`sw_stack.serving`) hands every swap to a `SwapCostModel` as its list of contiguous copies. Here
each copy becomes a controller run of blocks (a copy unit, one 16-token block of one layer's K or V, is a whole
number of controller blocks), the
controller coalesces and splits them into bursts of at most ``max_burst_bytes`` (`sim.blocks.kv_swap.model.coalesce`)
and each burst costs the link's per-transfer overhead plus its bytes at the link bandwidth
(`sim.blocks.kv_swap.model.swap_cycles`). The link is calibrated to docs/papers.md: 2.3 us per transfer and 24 GB/s give
about 8.9 GB/s for 32 KiB transfers and 22.8 GB/s for 1 MiB ones. A change to the controller (its burst limit,
its coalescing) therefore shows up in TTFT and TBT.
"""

from __future__ import annotations

import numpy as np

from hw.kv_swap import KvSwapParams
from sim.blocks.kv_swap.model import LinkParams, swap_cycles
from sim.core.config import PcieLinkConfig

CLOCK_HZ = 1e9  # the controller's clock (assumed); it cancels out of the durations


class ControllerSwapCost:
    """A `sw_stack.serving.link.SwapCostModel` backed by the controller model."""

    def __init__(self, pcie: PcieLinkConfig, unit_bytes: int, max_burst_bytes: int = 1 << 20) -> None:
        if unit_bytes % 4 or unit_bytes & (unit_bytes - 1):
            raise ValueError(f"unit_bytes must be a power-of-two number of 32-bit words, not {unit_bytes}")
        block_words = min(4096, unit_bytes // 4)  # the controller's block; a copy unit is a whole number of them
        self.block_bytes = 4 * block_words
        self.params = KvSwapParams(block_words=block_words,
                                   max_burst_blocks=max(1, min(255, max_burst_bytes // self.block_bytes)))
        self.link = LinkParams(overhead_cycles=round(pcie.per_copy_us * 1e-6 * CLOCK_HZ),
                               words_per_cycle=pcie.bandwidth_gbps * 1e9 / 4 / CLOCK_HZ)
        self.swaps = 0

    def swap_seconds(self, runs_bytes: np.ndarray, direction: str) -> float:
        if direction not in ("out", "in"):
            raise ValueError(f"direction must be 'out' or 'in', got {direction!r}")
        counts = -(-np.asarray(runs_bytes, dtype=np.int64) // self.block_bytes)
        # Separate copies are never adjacent, so the controller's coalescing only splits each run into bursts
        # of at most max_burst_blocks: the same sum as `swap_cycles(self.runs(runs_bytes), ...)`, vectorised
        # because the baseline issues thousands of copies per swap.
        bursts = int(np.sum(-(-counts // self.params.max_burst_blocks)))
        words = int(np.sum(counts)) * self.params.block_words
        self.swaps += 1
        return (bursts * self.link.overhead_cycles + words / self.link.words_per_cycle) / CLOCK_HZ

    def runs(self, runs_bytes: np.ndarray) -> list[tuple[int, int, int]]:
        """The controller runs ``(src, dst, blocks)`` of one swap (separate copies are not adjacent)."""
        out, pos = [], 0
        for nbytes in np.asarray(runs_bytes, dtype=np.int64).tolist():
            count = -(-nbytes // self.block_bytes)
            out.append((pos, pos, count))
            pos += count + 1
        return out

    def swap_seconds_by_controller_model(self, runs_bytes: np.ndarray) -> float:
        """`swap_cycles` on the controller's own coalescing (what `swap_seconds` computes in closed form)."""
        return swap_cycles(self.runs(runs_bytes), self.params, self.link) / CLOCK_HZ
