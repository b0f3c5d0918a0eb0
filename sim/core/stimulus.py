"""Seeded stall patterns shared by the RTL testbenches and the cycle models.

Both sides must see the same stalls for cycle agreement, so the patterns are plain functions:

* input idles: ``add_input_idles`` delays each request's availability by a random number of idle cycles
  (geometric, probability ``idle_prob`` per cycle); the delays accumulate, as in a trace with gaps;
* output backpressure: ``ReadyPattern`` makes ``ready`` a stateless hash of the cycle number, so the Verilog
  replay harness computes it with a few gates and the model evaluates it at any cycle without history.
"""

from __future__ import annotations

import numpy as np

_M32 = 0xFFFFFFFF


def mix32(x: int) -> int:
    """32-bit integer hash (the "lowbias32" finaliser); identical in `sim.blocks.tracker.harness`."""
    x &= _M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _M32
    x ^= x >> 16
    return x


def probability_threshold(prob: float) -> int:
    """The 16-bit threshold that makes ``ready`` low with probability ``prob``."""
    if not 0.0 <= prob < 1.0:
        raise ValueError(f"a stall probability must be in [0, 1), not {prob}")
    return int(round(prob * 65536))


class ReadyPattern:
    """``ready(cycle)`` is low with probability ``prob``, decided by ``mix32(cycle ^ seed)``."""

    def __init__(self, seed: int, prob: float) -> None:
        self.seed = seed & _M32
        self.prob = prob
        self.threshold = probability_threshold(prob)

    def __call__(self, cycle: int) -> bool:
        return (mix32((cycle & _M32) ^ self.seed) >> 16) >= self.threshold

    def as_model_ready(self):
        """The callable a model takes, or ``None`` (always ready) when there is no backpressure."""
        return None if self.threshold == 0 else self


def add_input_idles(cycles: np.ndarray, idle_prob: float, rng: np.random.Generator) -> np.ndarray:
    """Return availability cycles delayed by cumulative random idle gaps (geometric per request)."""
    cycles = np.asarray(cycles, dtype=np.uint64)
    if idle_prob <= 0.0 or len(cycles) == 0:
        return cycles.copy()
    if idle_prob >= 1.0:
        raise ValueError(f"idle_prob must be in [0, 1), not {idle_prob}")
    gaps = rng.geometric(1.0 - idle_prob, size=len(cycles)) - 1
    return cycles + np.cumsum(gaps, dtype=np.uint64)


def arrival_cycles(n: int, idle_prob: float, rng: np.random.Generator) -> np.ndarray:
    """Cycles at which a source offering one item per cycle, idle with probability ``idle_prob`` in each cycle,
    makes ``n`` items available: item *i* comes ``i`` cycles plus all idle cycles before it after the start.

    The stimulus then really has the configured idle fraction (`idle_fraction`); cumulative gaps alone, without
    the ``i``, would stamp items earlier than a one-per-cycle input can take them and leave no idle cycle.
    """
    if not 0.0 <= idle_prob < 1.0:
        raise ValueError(f"idle_prob must be in [0, 1), not {idle_prob}")
    gaps = rng.geometric(1.0 - idle_prob, n) - 1 if idle_prob > 0 else np.zeros(n, np.int64)
    return np.arange(n, dtype=np.int64) + np.cumsum(gaps, dtype=np.int64)


def idle_fraction(cycles: np.ndarray) -> float:
    """Fraction of the cycles from 0 to the last item's in which no new item became available."""
    cycles = np.asarray(cycles)
    if len(cycles) == 0:
        return 0.0
    return 1.0 - len(np.unique(cycles)) / (int(cycles.max()) + 1)


def random_tracker_workload(params, n_requests: int, rng: np.random.Generator, *, idle_prob: float = 0.2,
                            disabled_fraction: float = 0.02, max_threshold: int = 4096):
    """A seeded random tracker stimulus: ``(program, requests)`` as trace tables.

    Every entry is programmed (re-arming, so entries fire many times) except a ``disabled_fraction`` left
    disabled, whose requests exercise the unprogrammed-entry error. Sizes are multiples of 64 bytes up to 1 KiB
    (clipped to the size field), thresholds multiples of 64 up to ``max_threshold`` (clipped to the counter).
    """
    from sim.core import trace  # local: stimulus stays importable without the trace module's users

    n = params.entries
    program = trace.empty("tracker_program", n)
    program["entry"] = np.arange(n)
    max_thr = min(max_threshold, (1 << params.count_bits) - 1)
    program["threshold"] = np.maximum(1, rng.integers(1, max(2, max_thr // 64 + 1), n) * 64 % (max_thr + 1))
    program["desc"] = rng.integers(0, 1 << min(params.desc_bits, 16), n)
    program["enable"] = rng.random(n) >= disabled_fraction
    program["rearm"] = 1
    requests = trace.empty("tracker_requests", n_requests)
    requests["cycle"] = arrival_cycles(n_requests, idle_prob, rng)
    requests["tag"] = rng.integers(0, n, n_requests)
    max_size = (1 << params.size_bits) - 1
    requests["size"] = np.minimum(rng.integers(1, 17, n_requests) * 64, max_size)
    requests["addr"] = rng.integers(0, 1 << max(0, min(params.addr_bits, 40) - 6), n_requests) << 6
    requests["kind"] = rng.integers(0, 2, n_requests)
    requests["source"] = 0
    return program, requests

