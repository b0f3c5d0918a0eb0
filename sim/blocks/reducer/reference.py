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

The rules are written once, as scalar integer functions compiled with numba (`_fp_add`, `_reduce_word`):
`fp_add_bits` and `reduce_words` apply them element-wise, `packet_results` packet after packet (a packet reads
what the previous one to its word wrote, so the replay is sequential; compiled it takes microseconds a packet).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numba
import numpy as np

STORE, ADD_I32, ADD_F32, ADD_BF16 = 0, 1, 2, 3
F32_NAN = 0x7FC00000
BF16_NAN = 0x7FC0

# Packet tables (`apply_packets`, the testbenches and the models) use this dtype; ``cycle`` is the arrival cycle.
PACKET_DTYPE = np.dtype([("cycle", "<u8"), ("addr", "<u4"), ("op", "u1"), ("data", "<u4"), ("tag", "<u2")])


@numba.njit(cache=True)
def _round_to_format(neg: int, mag: int, k: int, ebits: int, mbits: int) -> int:
    """Encode ``(-1)**neg * mag * 2**k`` (``mag`` > 0, < 2**53) in the format, rounding to nearest even."""
    bias = (1 << (ebits - 1)) - 1
    emin_ulp = 1 - bias - mbits  # exponent of the smallest subnormal's unit
    inf_enc = ((1 << ebits) - 1) << mbits
    nbits = math.frexp(float(mag))[1]  # bit length of mag, exactly: mag < 2**53 converts without rounding
    top = k + nbits - 1  # exponent of the leading bit
    q = max(top - mbits, emin_ulp)  # exponent of the result's unit in the last place
    shift = q - k
    if shift < 0:
        sig = mag << -shift
    elif shift == 0:
        sig = mag
    else:
        kept = mag >> shift
        rem = mag - (kept << shift)
        half = 1 << (shift - 1)
        sig = kept + (1 if rem > half or (rem == half and (kept & 1) == 1) else 0)
    # With the hidden bit included, (q - emin_ulp) << mbits + sig is the encoding, carries included.
    enc = ((q - emin_ulp) << mbits) + sig
    if enc >= inf_enc:
        enc = inf_enc
    return enc | (neg << (ebits + mbits))


@numba.njit(cache=True)
def _fp_add(a: int, b: int, ebits: int, mbits: int) -> int:
    """Bit-exact IEEE addition (rules in the module docstring) of the encodings ``a`` and ``b``."""
    width = 1 + ebits + mbits
    a &= (1 << width) - 1
    b &= (1 << width) - 1
    emask, fmask = (1 << ebits) - 1, (1 << mbits) - 1
    sa, ea, fa = a >> (width - 1), (a >> mbits) & emask, a & fmask
    sb, eb, fb = b >> (width - 1), (b >> mbits) & emask, b & fmask
    a_inf, b_inf = ea == emask and fa == 0, eb == emask and fb == 0
    if (ea == emask and fa != 0) or (eb == emask and fb != 0) or (a_inf and b_inf and sa != sb):
        return (emask << mbits) | (1 << (mbits - 1))  # the canonical quiet NaN
    if a_inf:
        return a
    if b_inf:
        return b
    # Finite operands: value = (-1)**s * m * 2**(max(e, 1) - bias - mbits); align onto the smaller exponent.
    xa, xb = max(ea, 1), max(eb, 1)
    d = xa - xb
    if d > mbits + 2:  # exponents far apart: the sum rounds to the larger operand
        return a
    if d < -(mbits + 2):
        return b
    ma = fa | (1 << mbits) if ea != 0 else fa
    mb = fb | (1 << mbits) if eb != 0 else fb
    va = (-ma if sa == 1 else ma) << max(d, 0)
    vb = (-mb if sb == 1 else mb) << max(-d, 0)
    total = va + vb
    if total == 0:
        return (sa & sb) << (width - 1)  # exact zero sum: -0 only for (-0) + (-0)
    bias = (1 << (ebits - 1)) - 1
    return _round_to_format(1 if total < 0 else 0, abs(total), min(xa, xb) - bias - mbits, ebits, mbits)


@numba.njit(cache=True)
def _reduce_word(op: int, old: int, new: int) -> int:
    """The word written for one packet (``old``, ``new`` 32-bit); -1 for an unknown ``op``."""
    if op == STORE:
        return new
    if op == ADD_I32:
        return (old + new) & 0xFFFFFFFF
    if op == ADD_F32:
        return _fp_add(old, new, 8, 23)
    if op == ADD_BF16:
        return _fp_add(old & 0xFFFF, new & 0xFFFF, 8, 7) | (_fp_add(old >> 16, new >> 16, 8, 7) << 16)
    return -1


@numba.njit(cache=True)
def _fp_add_many(a: np.ndarray, b: np.ndarray, ebits: int, mbits: int, out: np.ndarray) -> None:
    for i in range(len(out)):
        out[i] = _fp_add(a[i], b[i], ebits, mbits)


@numba.njit(cache=True)
def _reduce_many(op: int, old: np.ndarray, new: np.ndarray, out: np.ndarray) -> None:
    for i in range(len(out)):
        out[i] = _reduce_word(op, old[i], new[i])


@numba.njit(cache=True)
def _apply_in_order(mem: np.ndarray, addr: np.ndarray, op: np.ndarray, data: np.ndarray,
                    written: np.ndarray) -> int:
    """Apply the packets to ``mem`` one after the other; the index of a packet with an unknown op, or -1."""
    for i in range(len(addr)):
        v = _reduce_word(op[i], mem[addr[i]], data[i])
        if v < 0:
            return i
        mem[addr[i]] = v
        written[i] = v
    return -1


def _flat_pair(a, b) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
    return np.ascontiguousarray(a).ravel(), np.ascontiguousarray(b).ravel(), a.shape


def fp_add_bits(a: np.ndarray, b: np.ndarray, ebits: int, mbits: int) -> np.ndarray:
    """Bit-exact IEEE addition (rules in the module docstring) of encodings ``a`` and ``b`` (any int arrays)."""
    fa, fb, shape = _flat_pair(a, b)
    out = np.empty(len(fa), dtype=np.int64)
    _fp_add_many(fa, fb, int(ebits), int(mbits), out)
    return out.reshape(shape)


def reduce_words(op: int, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """The word the reducer writes for ``op`` given the memory's ``old`` words and the packets' ``new`` words."""
    op = int(op)
    if op not in (STORE, ADD_I32, ADD_F32, ADD_BF16):
        raise ValueError(f"unknown reduce op {op}")
    fo, fn, shape = _flat_pair(np.asarray(old, dtype=np.uint32), np.asarray(new, dtype=np.uint32))
    out = np.empty(len(fo), dtype=np.int64)
    _reduce_many(op, fo, fn, out)
    return out.astype(np.uint32).reshape(shape)


def as_packets(rows: Iterable[tuple[int, int, int, int, int]]) -> np.ndarray:
    """A packet table from ``(cycle, addr, op, data, tag)`` rows."""
    return np.array(list(rows), dtype=PACKET_DTYPE)


def packet_results(memory: np.ndarray, packets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(final memory image, word written by each packet)`` after applying ``packets`` in order.

    Addresses index ``memory`` directly; the packets are applied one after the other.
    """
    mem = np.array(memory, dtype=np.uint32, copy=True)
    n = len(packets)
    written = np.zeros(n, dtype=np.uint32)
    if n == 0:
        return mem, written
    addr = packets["addr"].astype(np.int64)
    if addr.min() < 0 or addr.max() >= len(mem):
        raise ValueError(f"packet addresses must lie in 0..{len(mem) - 1}")
    work, out = mem.astype(np.int64), np.zeros(n, dtype=np.int64)
    bad = _apply_in_order(work, addr, packets["op"].astype(np.int64), packets["data"].astype(np.int64), out)
    if bad >= 0:
        raise ValueError(f"unknown reduce op {int(packets['op'][bad])}")
    return work.astype(np.uint32), out.astype(np.uint32)


def apply_packets(memory: np.ndarray, packets: np.ndarray) -> np.ndarray:
    """The memory image (uint32 words) after applying ``packets`` (a `PACKET_DTYPE` table) in order."""
    return packet_results(memory, packets)[0]


# --- stimulus -----------------------------------------------------------------------------------------------

F32_SPECIALS = (0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007FFFFF, 0x807FFFFF, 0x00800000, 0x80800000,
                0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0xFFFFFFFF, 0x3F800000,
                0xBF800000, 0x3F800001, 0x33800000, 0xB3800000, 0x33800001, 0x73000000, 0x73800000, 0x34000000)
BF16_SPECIALS = (0x0000, 0x8000, 0x0001, 0x8001, 0x007F, 0x0080, 0x8080, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80, 0x7FC0,
                 0x7F81, 0xFFFF, 0x3F80, 0xBF80, 0x3F81, 0x3B80, 0xBB80, 0x7B00, 0x7B80, 0x0040)


def _words_for(op: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Operands suited to each op: specials, values near 1.0 (cancellation, ties), and random bits."""
    n = len(op)
    out = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    kind = rng.integers(0, 3, n)  # 0 special, 1 near one, 2 random bits
    f32 = op == ADD_F32
    pick = f32 & (kind == 0)
    out[pick] = np.array(F32_SPECIALS, dtype=np.uint32)[rng.integers(0, len(F32_SPECIALS), pick.sum())]
    pick = f32 & (kind == 1)  # exponents 2**-26..2**2 around one, either sign: cancellations and ties
    exps = rng.integers(127 - 26, 127 + 3, pick.sum()).astype(np.uint32)
    out[pick] = (out[pick] & 0x807FFFFF) | (exps << 23)
    bf = op == ADD_BF16
    for shift in (0, 16):
        lane = (out >> shift) & 0xFFFF
        k = rng.integers(0, 3, n)
        special = np.array(BF16_SPECIALS, dtype=np.uint32)[rng.integers(0, len(BF16_SPECIALS), n)]
        near = (lane & 0x807F) | (rng.integers(127 - 10, 127 + 3, n).astype(np.uint32) << 7)
        lane = np.where(k == 0, special, np.where(k == 1, near, lane))
        out = np.where(bf, (out & ~np.uint32(0xFFFF << shift)) | (lane << shift), out).astype(np.uint32)
    small = (op == ADD_I32) & (kind == 1)
    out[small] = rng.integers(-1000, 1000, small.sum()).astype(np.int64).astype(np.uint32)
    return out


def _special_pairs(rng: np.random.Generator, n: int, ebits: int, mbits: int) -> tuple[np.ndarray, np.ndarray]:
    """Operand pairs ``(x, y)`` of one format that reach the corner results: x + (-x), (-0) + (-0), doubling
    the largest normals, subnormal sums and differences, neighbours cancelling, specials against each other."""
    width = 1 + ebits + mbits
    sign = np.uint32(1 << (width - 1))
    specials = np.array(F32_SPECIALS if mbits == 23 else BF16_SPECIALS, dtype=np.uint32)
    x = specials[rng.integers(0, len(specials), n)]
    small = rng.integers(0, 1 << (mbits + 2), n).astype(np.uint32)  # subnormals and the first normal binades
    small |= rng.integers(0, 2, n).astype(np.uint32) << (width - 1)
    x = np.where(rng.random(n) < 0.4, small, x)
    kind = rng.integers(0, 6, n)
    y = np.select(
        [kind == 0, kind == 1, kind == 2, kind == 3, kind == 4],
        [x ^ sign,  # exact cancellation: +0
         x,  # doubling: overflow at the largest normals, -0 for -0
         (x ^ sign) + np.where((x & ~sign) > 0, 1, 0).astype(np.uint32),  # neighbour: the smallest differences
         rng.integers(0, 1 << (mbits + 1), n).astype(np.uint32) | (x & sign),  # subnormal/normal boundary
         specials[rng.integers(0, len(specials), n)]],
        small,
    ).astype(np.uint32)
    return x, y


def packet_cycles(rng: np.random.Generator, n: int, idle_prob: float, burst_frac: float) -> np.ndarray:
    """Arrival cycles of ``n`` packets: one a cycle at most (`sim.core.stimulus.arrival_cycles` semantics), the
    input idle in an ``idle_prob`` fraction of the cycles from 0 to the last arrival (`idle_fraction`).

    A ``burst_frac`` of the packets follow the previous one back to back (no idle cycle between); the idle cycles
    go, geometric, into the other gaps, whose mean is raised so that the idle fraction stays ``idle_prob``: bursts
    make the idles come in longer stretches, not fewer. (Several packets in one cycle would not be a burst the
    block sees but a backlog that swallows the following idles.)
    """
    if not 0.0 <= idle_prob < 1.0:
        raise ValueError(f"idle_prob must be in [0, 1), not {idle_prob}")
    if not 0.0 <= burst_frac <= 1.0:
        raise ValueError(f"burst_frac must be in [0, 1], not {burst_frac}")
    together = rng.random(n) < burst_frac
    gaps = np.zeros(n, dtype=np.int64)
    if idle_prob > 0 and burst_frac < 1:
        # idle cycles per packet idle_prob / (1 - idle_prob), all in the (1 - burst_frac) non-burst gaps
        mean = idle_prob / ((1.0 - idle_prob) * (1.0 - burst_frac))
        gaps = rng.geometric(1.0 / (1.0 + mean), n) - 1
        gaps[together] = 0
    return np.arange(n, dtype=np.int64) + np.cumsum(gaps)


def random_packets(rng: np.random.Generator, n: int, words: int, *, tag_bits: int = 8, idle_prob: float = 0.3,
                   hot: int = 4, hot_frac: float = 0.4, store_frac: float = 0.15, burst_frac: float = 0.3,
                   pair_frac: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """A seeded stress stimulus: ``(memory0, packets)`` for a memory of ``words`` words.

    A ``hot_frac`` of the packets go to ``hot`` addresses (many back-to-back updates of one word); ops mix
    all four (``store_frac`` stores, the rest split between the adds), operands come from the special values
    (zeros, subnormals, the largest normals, infinities, NaNs, ties around 1.0) and random bits. Arrival cycles
    are `packet_cycles`: at most one packet a cycle, the input idle in an ``idle_prob`` fraction of the cycles, a
    ``burst_frac`` of the packets back to back behind the previous one. A ``pair_frac`` of the packets come as
    (STORE x, ADD y) pairs to a cold word, x and y chosen to hit zero, subnormal, overflow and NaN results
    (`_special_pairs`).
    """
    addr = rng.integers(0, words, n)
    hot_addr = rng.choice(words, size=min(hot, words), replace=False)
    is_hot = rng.random(n) < hot_frac
    addr[is_hot] = hot_addr[rng.integers(0, len(hot_addr), is_hot.sum())]
    op = rng.integers(ADD_I32, ADD_BF16 + 1, n)
    op[rng.random(n) < store_frac] = STORE
    # Give each hot address a preferred op, so that long runs of one kind of sum build up.
    pref = rng.integers(ADD_I32, ADD_BF16 + 1, len(hot_addr))
    keep = is_hot & (rng.random(n) < 0.7) & (op != STORE)
    order = np.argsort(hot_addr)
    op[keep] = pref[order][np.searchsorted(hot_addr[order], addr[keep])]
    data = _words_for(op, rng)
    # Special pairs: packet j stores x, packet j + 1 adds y, on one cold word (never a hot one).
    cold = np.setdiff1d(np.arange(words), hot_addr)
    starts = np.flatnonzero(rng.random(n - 1) < pair_frac / 2) if len(cold) else np.zeros(0, np.int64)
    starts = starts[np.r_[True, np.diff(starts) > 1]] if len(starts) else starts  # pairs do not overlap
    if len(starts):
        fop = rng.integers(ADD_F32, ADD_BF16 + 1, len(starts))
        x, y = np.zeros(len(starts), np.uint32), np.zeros(len(starts), np.uint32)
        f = fop == ADD_F32
        x[f], y[f] = _special_pairs(rng, int(f.sum()), 8, 23)
        m = int((~f).sum())
        x0, y0 = _special_pairs(rng, m, 8, 7)
        x1, y1 = _special_pairs(rng, m, 8, 7)
        x[~f], y[~f] = x0 | (x1 << 16), y0 | (y1 << 16)
        a = cold[rng.integers(0, len(cold), len(starts))]
        addr[starts], addr[starts + 1] = a, a
        op[starts], op[starts + 1] = STORE, fop
        data[starts], data[starts + 1] = x, y
    packets = np.zeros(n, dtype=PACKET_DTYPE)
    packets["cycle"] = packet_cycles(rng, n, idle_prob, burst_frac)
    packets["addr"] = addr
    packets["op"] = op
    packets["data"] = data
    packets["tag"] = rng.integers(0, 1 << tag_bits, n)
    memory0 = _words_for(rng.integers(0, 4, words), rng)
    return memory0, packets
