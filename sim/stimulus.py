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
    """32-bit integer hash (the "lowbias32" finaliser); identical in `sim.rtl.tracker_harness`."""
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
