"""Jitted helpers shared by the numba cycle-model kernels (one place for each rule they all need).

* ``mix32_nb`` / ``ready_nb``: `sim.core.stimulus.mix32` and the `sim.core.stimulus.ReadyPattern` rule
  ``(mix32((cycle & 0xFFFFFFFF) ^ seed) >> 16) >= threshold`` on int64 scalars, so a kernel evaluates the same
  output backpressure as the RTL harness at any cycle. Pass ``ReadyPattern.seed`` and ``ReadyPattern.threshold``.

All arithmetic stays in int64 and below 2**63: numba turns mixed unsigned/signed integer arithmetic into floats,
and a 32x32-bit product would overflow, so each multiplication modulo 2**32 is split into 16-bit halves.
"""

from __future__ import annotations

import numba

_M32 = 0xFFFFFFFF


@numba.njit(cache=True, inline="always")
def mulmod32_nb(x: int, c: int) -> int:
    """``(x * c) & 0xFFFFFFFF`` for 32-bit ``x`` and ``c``, exact in int64."""
    lo = x * (c & 0xFFFF)
    hi = (x * (c >> 16)) & 0xFFFF
    return (lo + (hi << 16)) & _M32


@numba.njit(cache=True, inline="always")
def mix32_nb(x: int) -> int:
    """`sim.core.stimulus.mix32` (the "lowbias32" finaliser) in a kernel."""
    x &= _M32
    x ^= x >> 16
    x = mulmod32_nb(x, 0x7FEB352D)
    x ^= x >> 15
    x = mulmod32_nb(x, 0x846CA68B)
    x ^= x >> 16
    return x


@numba.njit(cache=True, inline="always")
def ready_nb(cycle: int, seed: int, threshold: int) -> bool:
    """`sim.core.stimulus.ReadyPattern` ``(cycle)`` for the pattern's ``seed`` and ``threshold``."""
    return (mix32_nb((cycle & _M32) ^ seed) >> 16) >= threshold
