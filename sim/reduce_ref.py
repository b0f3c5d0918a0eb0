"""Functional reference of the near-memory reducer (`hw.reducer.NearMemoryReducer`), bit-exact.

``reduce_words(op, old, new)`` gives the word the reducer writes back for each (old, new) pair; ``apply_packets``
replays a packet stream onto a memory image in order. The arithmetic rules are those of `hw.reducer`:

* ``STORE``: ``new``. ``ADD_I32``: ``old + new`` modulo 2**32.
* ``ADD_F32`` / ``ADD_BF16`` (two independent lanes, lane 0 in bits 15:0): IEEE-754 addition with round to
  nearest even, subnormal inputs and outputs (no flush to zero), overflow to infinity, ``inf + inf = inf``,
  ``inf + (-inf) = NaN``, NaN in -> NaN out; every NaN result is the canonical quiet NaN (``0x7FC00000``,
  ``0x7FC0``); an exact zero sum is ``+0`` unless both operands are ``-0``.

The floating-point add is computed exactly with integers (no float arithmetic, so no double rounding for bf16):
operands are aligned onto the smaller one's exponent and summed exactly. When the exponents differ by more than
``mbits + 2`` the smaller operand is below a quarter of the larger one's smallest possible ulp, so the correctly
rounded sum is the larger operand itself; otherwise the exact sum fits in ``2 * mbits + 4`` bits (50 for fp32),
well inside int64, and is rounded once.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

STORE, ADD_I32, ADD_F32, ADD_BF16 = 0, 1, 2, 3
F32_NAN = 0x7FC00000
BF16_NAN = 0x7FC0

# Packet tables (`apply_packets`, the testbenches and the models) use this dtype; ``cycle`` is the arrival cycle.
PACKET_DTYPE = np.dtype([("cycle", "<u8"), ("addr", "<u4"), ("op", "u1"), ("data", "<u4"), ("tag", "<u2")])


def _round_to_format(neg: np.ndarray, mag: np.ndarray, k: np.ndarray, ebits: int, mbits: int) -> np.ndarray:
    """Encode ``(-1)**neg * mag * 2**k`` (``mag`` > 0, < 2**53) in the format, rounding to nearest even."""
    bias = (1 << (ebits - 1)) - 1
    emin_ulp = 1 - bias - mbits  # exponent of the smallest subnormal's unit
    inf_enc = ((1 << ebits) - 1) << mbits
    # Bit length of mag, exactly: mag < 2**53 converts to float64 without rounding.
    nbits = np.frexp(mag.astype(np.float64))[1].astype(np.int64)
    top = k + nbits - 1  # exponent of the leading bit
    q = np.maximum(top - mbits, emin_ulp)  # exponent of the result's unit in the last place
    shift = q - k
    pos = np.maximum(shift, 0)
    kept = mag >> pos
    rem = mag - (kept << pos)
    half = np.where(pos > 0, np.left_shift(np.int64(1), np.maximum(pos - 1, 0)), 0)
    up = (pos > 0) & ((rem > half) | ((rem == half) & ((kept & 1) == 1)))
    sig = np.where(shift < 0, mag << np.maximum(-shift, 0), kept + up)
    # With the hidden bit included, (q - emin_ulp) << mbits + sig is the encoding, carries included.
    enc = ((q - emin_ulp) << mbits) + sig
    enc = np.where(enc >= inf_enc, inf_enc, enc)
    return enc | (neg.astype(np.int64) << (ebits + mbits))


def fp_add_bits(a: np.ndarray, b: np.ndarray, ebits: int, mbits: int) -> np.ndarray:
    """Bit-exact IEEE addition (rules in the module docstring) of encodings ``a`` and ``b`` (any int arrays)."""
    width = 1 + ebits + mbits
    a = np.asarray(a, dtype=np.int64) & ((1 << width) - 1)
    b = np.asarray(b, dtype=np.int64) & ((1 << width) - 1)
    a, b = np.broadcast_arrays(a, b)
    emask, fmask = (1 << ebits) - 1, (1 << mbits) - 1
    sa, ea, fa = a >> (width - 1), (a >> mbits) & emask, a & fmask
    sb, eb, fb = b >> (width - 1), (b >> mbits) & emask, b & fmask
    a_nan, b_nan = (ea == emask) & (fa != 0), (eb == emask) & (fb != 0)
    a_inf, b_inf = (ea == emask) & (fa == 0), (eb == emask) & (fb == 0)
    nan = a_nan | b_nan | (a_inf & b_inf & (sa != sb))
    inf = (a_inf | b_inf) & ~nan

    # Finite operands: value = (-1)**s * m * 2**(max(e, 1) - bias - mbits); align onto the smaller exponent.
    ma = np.where(ea != 0, fa | (1 << mbits), fa)
    mb = np.where(eb != 0, fb | (1 << mbits), fb)
    xa, xb = np.maximum(ea, 1), np.maximum(eb, 1)
    d = xa - xb
    far = np.abs(d) > mbits + 2
    dd = np.minimum(np.abs(d), mbits + 2)
    va = np.where(sa == 1, -ma, ma) << np.where(d > 0, dd, 0)
    vb = np.where(sb == 1, -mb, mb) << np.where(d < 0, dd, 0)
    total = va + vb
    bias = (1 << (ebits - 1)) - 1
    k = np.minimum(xa, xb) - bias - mbits
    nonzero = total != 0
    mag = np.where(nonzero, np.abs(total), 1)
    rounded = _round_to_format(total < 0, mag, k, ebits, mbits)

    zero = (sa & sb) << (width - 1)  # exact zero sum: -0 only for (-0) + (-0)
    out = np.where(nonzero, rounded, zero)
    # Exponents far apart: the sum rounds to the larger operand.
    out = np.where(far, np.where(d > 0, a, b), out)
    out = np.where(inf, np.where(a_inf, a, b), out)
    out = np.where(nan, ((emask << mbits) | (1 << (mbits - 1))), out)
    return out


def reduce_words(op: int, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """The word the reducer writes for ``op`` given the memory's ``old`` words and the packets' ``new`` words."""
    old = np.asarray(old, dtype=np.uint32)
    new = np.asarray(new, dtype=np.uint32)
    op = int(op)
    if op == STORE:
        return np.broadcast_arrays(old, new)[1].copy()
    if op == ADD_I32:
        return (old.astype(np.uint64) + new.astype(np.uint64)).astype(np.uint32)
    if op == ADD_F32:
        return fp_add_bits(old, new, 8, 23).astype(np.uint32)
    if op == ADD_BF16:
        o, n = old.astype(np.int64), new.astype(np.int64)
        lo = fp_add_bits(o & 0xFFFF, n & 0xFFFF, 8, 7)
        hi = fp_add_bits(o >> 16, n >> 16, 8, 7)
        return (lo | (hi << 16)).astype(np.uint32)
    raise ValueError(f"unknown reduce op {op}")


def as_packets(rows: Iterable[tuple[int, int, int, int, int]]) -> np.ndarray:
    """A packet table from ``(cycle, addr, op, data, tag)`` rows."""
    return np.array(list(rows), dtype=PACKET_DTYPE)


def apply_packets(memory: np.ndarray, packets: np.ndarray) -> np.ndarray:
    """The memory image (uint32 words) after applying ``packets`` (a `PACKET_DTYPE` table) in order.

    Addresses index ``memory`` directly. Packets to different addresses commute, so the packets are applied in
    rounds: round *r* holds the *r*-th packet to each address, one vectorised `reduce_words` call per op.
    """
    mem = np.array(memory, dtype=np.uint32, copy=True)
    n = len(packets)
    if n == 0:
        return mem
    addr = packets["addr"].astype(np.int64)
    if addr.min() < 0 or addr.max() >= len(mem):
        raise ValueError(f"packet addresses must lie in 0..{len(mem) - 1}")
    order = np.argsort(addr, kind="stable")
    sorted_addr = addr[order]
    start = np.r_[0, np.flatnonzero(np.diff(sorted_addr)) + 1]
    run_start = np.repeat(start, np.diff(np.r_[start, n]))
    occurrence = np.empty(n, dtype=np.int64)
    occurrence[order] = np.arange(n) - run_start
    by_round = np.argsort(occurrence, kind="stable")
    bounds = np.r_[0, np.flatnonzero(np.diff(occurrence[by_round])) + 1, n]
    ops, data = packets["op"], packets["data"].astype(np.uint32)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        idx = by_round[lo:hi]
        for op in np.unique(ops[idx]):
            sel = idx[ops[idx] == op]
            a = addr[sel]
            mem[a] = reduce_words(int(op), mem[a], data[sel])
    return mem
