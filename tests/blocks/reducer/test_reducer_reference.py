"""The reducer's functional reference (`sim.blocks.reducer.reference`) against independent oracles.

* bf16: every pair from a dense sample holding every special class, against an oracle that rounds the exact
  (big-integer) sum to the nearest of the 2**15 representable magnitudes, ties to the even encoding.
* fp32: against numpy's float32 addition (IEEE, round to nearest even, subnormals kept) for every non-NaN
  result, and against an exact integer oracle on specials.
"""

from __future__ import annotations

import bisect

import numpy as np
import pytest

from sim.blocks.reducer.reference import (
    ADD_BF16,
    ADD_F32,
    ADD_I32,
    BF16_NAN,
    F32_NAN,
    STORE,
    apply_packets,
    as_packets,
    packet_results,
    reduce_words,
)

# --- exact oracles ----------------------------------------------------------------------------------------


class ExactFormat:
    """A binary float format decoded to exact integers in units of its smallest subnormal."""

    def __init__(self, ebits: int, mbits: int) -> None:
        self.ebits, self.mbits = ebits, mbits
        self.width = 1 + ebits + mbits
        self.emax = (1 << ebits) - 1
        self.inf = self.emax << mbits
        self.nan = self.inf | (1 << (mbits - 1))

    def classify(self, bits: int) -> str:
        e, f = (bits >> self.mbits) & self.emax, bits & ((1 << self.mbits) - 1)
        if e == self.emax:
            return "nan" if f else "inf"
        return "finite"

    def value(self, bits: int) -> int:
        """The exact value of a finite encoding, in units of the smallest subnormal."""
        e, f = (bits >> self.mbits) & self.emax, bits & ((1 << self.mbits) - 1)
        mag = (f | (1 << self.mbits)) << (e - 1) if e else f
        return -mag if bits >> (self.width - 1) else mag

    def add(self, a: int, b: int, round_fn) -> int:
        ca, cb = self.classify(a), self.classify(b)
        sign = 1 << (self.width - 1)
        if "nan" in (ca, cb) or (ca == cb == "inf" and (a ^ b) & sign):
            return self.nan
        if ca == "inf":
            return a
        if cb == "inf":
            return b
        total = self.value(a) + self.value(b)
        if total == 0:
            return sign if (a & b & sign) else 0
        return round_fn(abs(total)) | (sign if total < 0 else 0)


class TableRounder:
    """Round a positive exact value to the nearest representable magnitude by search in the full value table.

    The value just past the largest finite number (one ulp above it) stands for infinity: with an unbounded
    exponent, round-to-nearest-even would give it, and IEEE then returns infinity.
    """

    def __init__(self, fmt: ExactFormat) -> None:
        self.fmt = fmt
        codes = list(range(fmt.inf))  # every non-negative finite encoding, in increasing value order
        self.values = [fmt.value(c) for c in codes]
        top = fmt.value(fmt.inf - 1)
        self.values.append(top + (1 << (fmt.emax - 2)))  # max finite + its ulp (ulp in smallest-subnormal units)
        self.codes = codes + [fmt.inf]
        assert self.values == sorted(self.values)

    def __call__(self, mag: int) -> int:
        vals = self.values
        i = bisect.bisect_left(vals, mag)
        if i == len(vals):
            return self.fmt.inf
        if vals[i] == mag:
            return self.codes[i]
        lo, hi = vals[i - 1], vals[i]
        if mag - lo < hi - mag:
            return self.codes[i - 1]
        if mag - lo > hi - mag:
            return self.codes[i]
        return self.codes[i - 1] if self.codes[i - 1] % 2 == 0 else self.codes[i]


def integer_rounder(fmt: ExactFormat):
    """Round a positive exact value by integer arithmetic (for fp32, where no table fits)."""
    p = fmt.mbits + 1

    def rnd(mag: int) -> int:
        n = mag.bit_length()
        if n <= p:
            return mag  # subnormal or smallest binade: exact; the integer is the encoding
        shift = n - p
        kept, rem = mag >> shift, mag & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        if rem > half or (rem == half and kept & 1):
            kept += 1
        enc = (shift << fmt.mbits) + kept  # kept includes the hidden bit: its carry bumps the exponent
        return min(enc, fmt.inf)

    return rnd


BF16 = ExactFormat(8, 7)
F32 = ExactFormat(8, 23)


def bf16_sample(rng: np.random.Generator) -> np.ndarray:
    """A dense bf16 sample: every special class, every fraction in a few binades, every exponent, random."""
    vals = {0x0000, 0x8000, 0x0001, 0x8001, 0x007F, 0x807F, 0x0080, 0x8080, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80,
            0x7FC0, 0xFFC0, 0x7F81, 0xFFFF, 0x3F80, 0xBF80, 0x7F00, 0x0100}
    for exp in (0, 1, 2, 127, 254):  # every fraction: ties to even, carries, subnormal/normal boundary
        for f in range(0, 128, 1 if exp in (0, 1) else 3):
            vals.add((exp << 7) | f)
            vals.add(0x8000 | (exp << 7) | f)
    for exp in range(256):
        vals.add((exp << 7) | int(rng.integers(0, 128)))
        vals.add(0x8000 | (exp << 7) | 0x7F)
    vals.update(int(v) for v in rng.integers(0, 1 << 16, 150))
    return np.array(sorted(vals), dtype=np.uint32)


def _bf16_pairs_word(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pack pairs into words with the pair in lane 0 and the swapped pair in lane 1."""
    return a | (b << 16), b | (a << 16)


# --- tests --------------------------------------------------------------------------------------------------


def test_bf16_reference_matches_exact_oracle_on_a_dense_sample():
    rng = np.random.default_rng(7)
    sample = bf16_sample(rng)
    assert len(sample) > 900
    a = np.repeat(sample, len(sample))
    b = np.tile(sample, len(sample))
    old, new = _bf16_pairs_word(a, b)
    got = reduce_words(ADD_BF16, old, new)
    rounder = TableRounder(BF16)
    expect = np.array([BF16.add(x, y, rounder) for x, y in zip(a.tolist(), b.tolist(), strict=True)],
                      dtype=np.uint32)
    lane0, lane1 = got & 0xFFFF, got >> 16
    bad = np.flatnonzero(lane0 != expect)
    assert bad.size == 0, [(hex(a[i]), hex(b[i]), hex(lane0[i]), hex(expect[i])) for i in bad[:5]]
    assert np.array_equal(lane1, expect), "addition must be commutative, lane by lane"
    # The sample reaches every result class.
    kinds = {"nan": expect == BF16_NAN, "inf": (expect & 0x7FFF) == 0x7F80,
             "subnormal": ((expect & 0x7F80) == 0) & ((expect & 0x7F) != 0), "-0": expect == 0x8000,
             "+0": expect == 0}
    assert all(v.any() for v in kinds.values()), {k: int(v.sum()) for k, v in kinds.items()}


def test_bf16_lanes_are_independent():
    old = np.array([0x3F80_7F80, 0x0001_FF80, 0x7F7F_3F80], dtype=np.uint32)
    new = np.array([0x3F80_FF80, 0x8001_7FC1, 0x7F7F_3F80], dtype=np.uint32)
    got = reduce_words(ADD_BF16, old, new)
    assert got.tolist() == [0x4000_7FC0, 0x0000_7FC0, 0x7F80_4000]


def test_bf16_overflow_threshold_and_ties():
    # The largest finite bf16 has an ulp of 2**120: adding half of it (2**119, 0x7B00) is a tie between the
    # maximum (odd) and 2**128 (even): infinity. A quarter ulp (0x7A80) leaves the maximum.
    rounder = TableRounder(BF16)
    for addend, expect in ((0x7B80, 0x7F80), (0x7B00, 0x7F80), (0x7A80, 0x7F7F)):
        assert reduce_words(ADD_BF16, np.uint32(0x7F7F), np.uint32(addend)) == expect
        assert BF16.add(0x7F7F, addend, rounder) == expect
    # 1 + 2**-8 is a tie between 1 and 1 + 2**-7: to even (1); 1 + 3 * 2**-8 rounds up to even 1 + 2**-6.
    assert reduce_words(ADD_BF16, np.uint32(0x3F80), np.uint32(0x3B80)) == 0x3F80
    assert reduce_words(ADD_BF16, np.uint32(0x3F81), np.uint32(0x3B80)) == 0x3F82
    # Subnormal + subnormal carrying into the smallest normal; smallest normal - smallest subnormal.
    assert reduce_words(ADD_BF16, np.uint32(0x0040), np.uint32(0x0040)) == 0x0080
    assert reduce_words(ADD_BF16, np.uint32(0x0080), np.uint32(0x8001)) == 0x007F


def test_fp32_reference_matches_numpy_for_non_nan_results():
    rng = np.random.default_rng(11)
    n = 400_000
    a = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    near = n // 2  # half the pairs with close exponents, so that cancellation and ties occur
    shift = rng.integers(-26, 27, near)
    exp_b = np.clip(((a[:near] >> 23) & 0xFF).astype(np.int64) + shift, 0, 255).astype(np.uint32)
    b[:near] = (b[:near] & 0x807FFFFF) | (exp_b << 23)
    b[near:near + 5000] = a[near:near + 5000] ^ 0x80000000  # x + (-x)
    sub = slice(near + 5000, near + 50_000)  # subnormals and the smallest normals
    a[sub] &= 0x80FFFFFF
    b[sub] &= 0x80FFFFFF
    got = reduce_words(ADD_F32, a, b)
    with np.errstate(all="ignore"):
        ref = (a.view(np.float32) + b.view(np.float32)).view(np.uint32)
    is_nan = np.isnan(ref.view(np.float32))
    assert np.array_equal(got[~is_nan], ref[~is_nan])
    assert np.all(got[is_nan] == F32_NAN)
    assert is_nan.any() and (got == 0).any()


F32_SPECIALS = [0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007FFFFF, 0x807FFFFF, 0x00800000, 0x80800000,
                0x00800001, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F7FFFFE, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000,
                0x7F800001, 0xFFFFFFFF, 0x3F800000, 0xBF800000, 0x3F800001, 0x33800000, 0x33800001, 0x33000000,
                0x73800000, 0x73000000, 0x72800000, 0x4B800000, 0xCB7FFFFF]


def test_fp32_reference_matches_exact_oracle_on_specials():
    s = np.array(F32_SPECIALS, dtype=np.uint32)
    a, b = np.repeat(s, len(s)), np.tile(s, len(s))
    got = reduce_words(ADD_F32, a, b)
    rnd = integer_rounder(F32)
    expect = [F32.add(x, y, rnd) for x, y in zip(a.tolist(), b.tolist(), strict=True)]
    assert got.tolist() == expect
    pairs = dict(zip(zip(a.tolist(), b.tolist(), strict=True), got.tolist(), strict=True))
    assert pairs[(0x7F800000, 0xFF800000)] == F32_NAN
    assert pairs[(0x7F800000, 0x7F800000)] == 0x7F800000
    assert pairs[(0x80000000, 0x80000000)] == 0x80000000
    assert pairs[(0x00000000, 0x80000000)] == 0
    assert pairs[(0x3F800000, 0xBF800000)] == 0
    assert pairs[(0x7F7FFFFF, 0x73800000)] == 0x7F800000  # max + ulp
    assert pairs[(0x7F7FFFFF, 0x73000000)] == 0x7F800000  # max + half ulp: a tie, to even -> inf
    assert pairs[(0x7F7FFFFF, 0x72800000)] == 0x7F7FFFFF  # max + quarter ulp
    assert pairs[(0x3F800000, 0x33800000)] == 0x3F800000  # 1 + 2**-24: tie, to even
    assert pairs[(0x3F800001, 0x33800000)] == 0x3F800002  # tie, up to even
    assert pairs[(0x3F800000, 0x33800001)] == 0x3F800001  # just above the tie
    assert pairs[(0x00800000, 0x80000001)] == 0x007FFFFF  # normal - subnormal -> subnormal


def test_fp32_oracle_agrees_with_numpy():
    """The integer oracle itself, checked against numpy on random finite pairs."""
    rng = np.random.default_rng(3)
    a = rng.integers(0, 1 << 32, 3000, dtype=np.uint64).astype(np.uint32)
    b = (rng.integers(0, 1 << 32, 3000, dtype=np.uint64).astype(np.uint32) & 0x807FFFFF) | (a & 0x7F800000)
    with np.errstate(all="ignore"):
        ref = (a.view(np.float32) + b.view(np.float32)).view(np.uint32)
    rnd = integer_rounder(F32)
    for x, y, r in zip(a.tolist(), b.tolist(), ref.tolist(), strict=True):
        if F32.classify(x) == "finite" and F32.classify(y) == "finite":
            assert F32.add(x, y, rnd) == r


def test_int32_wraps_and_store_overwrites():
    old = np.array([0xFFFFFFFF, 0x7FFFFFFF, 5], dtype=np.uint32)
    new = np.array([1, 1, 0xFFFFFFFE], dtype=np.uint32)
    assert reduce_words(ADD_I32, old, new).tolist() == [0, 0x80000000, 3]
    assert reduce_words(STORE, old, new).tolist() == new.tolist()
    with pytest.raises(ValueError):
        reduce_words(4, old, new)


def test_apply_packets_in_order_with_repeated_addresses():
    rng = np.random.default_rng(5)
    n, words = 3000, 16
    rows = [(i, int(rng.integers(0, words)), int(rng.integers(0, 4)), int(rng.integers(0, 1 << 32)), i & 0xFF)
            for i in range(n)]
    packets = as_packets(rows)
    mem0 = rng.integers(0, 1 << 32, words, dtype=np.uint64).astype(np.uint32)
    got = apply_packets(mem0, packets)
    slow = [int(x) for x in mem0]
    writes = []
    for _, addr, op, d, _ in rows:
        slow[addr] = int(reduce_words(op, np.uint32(slow[addr]), np.uint32(d)))
        writes.append(slow[addr])
    assert got.tolist() == slow
    assert packet_results(mem0, packets)[1].tolist() == writes
    assert mem0.tolist() != slow  # the input is not modified in place ...
    assert apply_packets(mem0, packets[:0]).tolist() == mem0.tolist()  # ... and no packets change nothing
    with pytest.raises(ValueError):
        apply_packets(mem0[:4], packets)
