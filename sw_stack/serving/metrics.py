"""Serving metrics: latency percentiles, throughput, swap traffic, GPU idle time; deterministic.

Keys of the dict `MetricsRecorder.summary` returns (seconds, bytes, counts):

``system``; ``ttft`` and ``tbt``: ``{"p50", "p95", "p99", "p999", "mean"}`` (TTFT: turn arrival to its first
token; TBT: gap between consecutive tokens of a request, preemption stalls included);
``throughput_tokens_per_s`` (output tokens / makespan); ``swap_bytes``; ``swap_gbps`` (bytes over the summed
duration of all swaps, GB/s); ``swap_seconds``; ``swap_copies`` (copy calls); ``swaps_out``, ``swaps_in``;
``preemptions``; ``recomputes`` (preempted by recompute because the CPU pool was full); ``rejections`` (count)
and ``rejected`` (list of ``{"conv", "turn", "reason"}``); ``gpu_idle_fraction`` (1 - compute time / makespan,
idle for lack of work included); ``swap_stall_fraction`` (time the GPU waited for synchronous swaps /
makespan); ``turns_completed``; ``output_tokens``; ``prefill_tokens``; ``iterations``; ``makespan_s``;
``priority_updates``; ``reused_blocks`` (blocks not copied out again thanks to KV reuse); ``reuse_evictions``;
``gpu_kv_blocks``, ``cpu_kv_blocks``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99, "p999": 0.999}


CDF_POINTS = 101


def weighted_cdf(values: np.ndarray, weights: np.ndarray, points: int = CDF_POINTS) -> list[float]:
    """Values at cumulative weight 0, 1/(points-1), ..., 1 (inverted CDF), for plotting CDFs from JSON."""
    if len(values) == 0 or weights.sum() == 0:
        return []
    order = np.argsort(values, kind="stable")
    v, cum = values[order], np.cumsum(weights[order])
    idx = np.minimum(len(v) - 1, np.searchsorted(cum, np.linspace(0, 1, points) * cum[-1], side="left"))
    return [float(x) for x in v[idx]]


def weighted_percentiles(values: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    """Percentiles (inverted CDF: the smallest value whose cumulative weight reaches q) and the mean."""
    if len(values) == 0 or weights.sum() == 0:
        return {**{k: 0.0 for k in PERCENTILES}, "mean": 0.0}
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    total = cum[-1]
    out = {k: float(v[min(len(v) - 1, int(np.searchsorted(cum, q * total, side="left")))])
           for k, q in PERCENTILES.items()}
    out["mean"] = float(np.dot(v, w) / total)
    return out


class MetricsRecorder:
    """Counters the engine updates while it runs."""

    def __init__(self) -> None:
        self.ttft: list[float] = []
        self.tbt_gaps: list[float] = []  # individual gaps (first decode after a prefill gap, resumes, ...)
        self.tbt_regular: list[tuple[float, int]] = []  # (gap, count): requests served in consecutive steps
        self.output_tokens = self.prefill_tokens = self.iterations = self.turns_done = 0
        self.preemptions = self.recomputes = self.reuse_evictions = self.reused_blocks = 0
        self.priority_updates = 0
        self.busy = self.swap_stall = self.makespan = 0.0
        self.swap_bytes = self.swap_copies = self.swaps_out = self.swaps_in = 0
        self.swap_time = 0.0
        self.rejected: list[dict[str, Any]] = []
        self.gpu_blocks = self.cpu_blocks = 0

    def swap(self, direction: str, nbytes: int, copies: int, seconds: float) -> None:
        if direction == "out":
            self.swaps_out += 1
        else:
            self.swaps_in += 1
        self.swap_bytes += nbytes
        self.swap_copies += copies
        self.swap_time += seconds

    def reject(self, conv: int, turn: int, reason: str) -> None:
        self.rejected.append({"conv": conv, "turn": turn, "reason": reason})

    def summary(self, system: str) -> dict[str, Any]:
        tbt_v = np.array(self.tbt_gaps + [g for g, _ in self.tbt_regular], dtype=np.float64)
        tbt_w = np.array([1] * len(self.tbt_gaps) + [c for _, c in self.tbt_regular], dtype=np.float64)
        span = self.makespan if self.makespan > 0 else 1.0
        ttft = np.array(self.ttft, dtype=np.float64)
        return {
            "system": system,
            "ttft": weighted_percentiles(ttft, np.ones(len(ttft))),
            "tbt": weighted_percentiles(tbt_v, tbt_w),
            "ttft_cdf": weighted_cdf(ttft, np.ones(len(ttft))),
            "tbt_cdf": weighted_cdf(tbt_v, tbt_w),
            "throughput_tokens_per_s": self.output_tokens / span,
            "swap_bytes": self.swap_bytes,
            "swap_gbps": self.swap_bytes / self.swap_time / 1e9 if self.swap_time > 0 else 0.0,
            "swap_seconds": self.swap_time,
            "swap_copies": self.swap_copies,
            "swaps_out": self.swaps_out,
            "swaps_in": self.swaps_in,
            "preemptions": self.preemptions,
            "recomputes": self.recomputes,
            "rejections": len(self.rejected),
            "rejected": list(self.rejected),
            "gpu_idle_fraction": max(0.0, 1.0 - self.busy / span),
            "swap_stall_fraction": self.swap_stall / span,
            "turns_completed": self.turns_done,
            "output_tokens": self.output_tokens,
            "prefill_tokens": self.prefill_tokens,
            "iterations": self.iterations,
            "makespan_s": self.makespan,
            "priority_updates": self.priority_updates,
            "reused_blocks": self.reused_blocks,
            "reuse_evictions": self.reuse_evictions,
            "gpu_kv_blocks": self.gpu_blocks,
            "cpu_kv_blocks": self.cpu_blocks,
        }
