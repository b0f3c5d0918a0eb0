"""The STREAM unit's functional reference (`sim.blocks.stream.reference`) and its registration
(`sim.blocks.stream`), checked from the `hw.stream` contract: the error order, bit-exact numpy float32 kernels
(TRIAD rounded twice, canonical NaNs, COPY keeping payloads), chunking, donation and the stimulus checks."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import sim.exec as ex
from hw.memory import MemoryParams
from hw.stream import StreamError, StreamOp, StreamParams
from sim.blocks.stream import random_words
from sim.blocks.stream import reference as refmod
from sim.blocks.stream.reference import CHUNK, check, run_programs
from sim.core import trace

P = StreamParams(addr_bits=12, length_bits=12, tag_bits=8, inflight=4, status_depth=2)
BIG = StreamParams(addr_bits=22, length_bits=22, tag_bits=8, inflight=4, status_depth=2)  # room for > CHUNK
TOP = 1 << P.byte_addr_bits  # one past the last byte of the port's address space
NAN = 0x7FC00000
E = StreamError
COPY, SCALE, ADD, TRIAD = StreamOp.COPY, StreamOp.SCALE, StreamOp.ADD, StreamOp.TRIAD


def _programs(rows: list[dict]) -> np.ndarray:
    progs = trace.empty("stream_programs", len(rows))
    for i, row in enumerate(rows):
        for k, v in {"cycle": i, "c": 0, "q": 0x3F800000, "tag": i & 0xFF, **row}.items():
            progs[k][i] = v
    return progs


def _stimulus(rows: list[dict], memory: np.ndarray, *, size_log2: int = 12, addr_bits: int = 12,
              **meta) -> trace.Trace:
    mem = MemoryParams(addr_bits=addr_bits, size_log2=size_log2, latency=4)
    t = trace.Trace(clock_hz=1.0, producer="test", meta={"mem": mem.as_dict(), **meta})
    t.add("programs", "stream_programs", _programs(rows))
    t.add("memory", "mem_image", np.asarray(memory, dtype=np.uint32).view(trace.TABLE_KINDS["mem_image"]))
    return t


def _f(words) -> np.ndarray:
    return np.asarray(words, dtype=np.uint32).view(np.float32)


def _canon(x: np.ndarray) -> np.ndarray:
    out = np.asarray(x, dtype=np.float32).view(np.uint32).copy()
    out[np.isnan(np.asarray(x, dtype=np.float32))] = NAN
    return out


# --- check: the documented error order ----------------------------------------------------------------------

@pytest.mark.parametrize("case,op,a,b,c,n,want", [
    # one case per class
    ("ok", COPY, 0, 64, 0, 4, E.OK),
    ("bad-op", 4, 0, 64, 128, 4, E.BAD_OP),
    ("bad-op-7", 7, 0, 64, 128, 4, E.BAD_OP),
    ("zero", ADD, 0, 64, 128, 0, E.ZERO_LENGTH),
    ("misaligned-a", COPY, 2, 64, 0, 4, E.MISALIGNED),
    ("misaligned-b", SCALE, 0, 65, 0, 4, E.MISALIGNED),
    ("range-a", COPY, TOP - 12, 0, 0, 4, E.OUT_OF_RANGE),
    ("range-b", SCALE, 0, TOP - 12, 0, 4, E.OUT_OF_RANGE),
    ("overlap-b", COPY, 64, 64, 0, 4, E.OVERLAP),
    # two flaws: the first in the order wins
    ("bad-op+zero", 5, 0, 64, 128, 0, E.BAD_OP),
    ("bad-op+misaligned", 6, 1, 2, 3, 4, E.BAD_OP),
    ("zero+misaligned", COPY, 1, 2, 0, 0, E.ZERO_LENGTH),
    ("zero+overlap", COPY, 0, 0, 0, 0, E.ZERO_LENGTH),
    ("misaligned+range", COPY, TOP - 2, 0, 0, 4, E.MISALIGNED),
    ("misaligned+overlap", COPY, 64, 66, 0, 4, E.MISALIGNED),
    ("range+overlap", COPY, TOP - 8, TOP - 8, 0, 4, E.OUT_OF_RANGE),
    # c counts only for ADD/TRIAD
    ("copy-ignores-misaligned-c", COPY, 0, 64, 3, 4, E.OK),
    ("scale-ignores-misaligned-c", SCALE, 0, 64, 3, 4, E.OK),
    ("add-misaligned-c", ADD, 0, 64, 130, 4, E.MISALIGNED),
    ("triad-misaligned-c", TRIAD, 0, 64, 129, 4, E.MISALIGNED),
    ("copy-ignores-range-c", COPY, 0, 64, TOP - 4, 4, E.OK),
    ("add-range-c", ADD, 0, 64, TOP - 4, 4, E.OUT_OF_RANGE),
    ("scale-ignores-overlap-c", SCALE, 64, 0, 64, 4, E.OK),
    ("triad-overlap-c", TRIAD, 64, 0, 72, 4, E.OVERLAP),
    ("add-overlap-c-below", ADD, 64, 0, 52, 4, E.OVERLAP),
    # two sources may overlap, even be the same array
    ("add-b-is-c", ADD, 0, 64, 64, 4, E.OK),
    ("triad-b-overlaps-c", TRIAD, 0, 64, 68, 4, E.OK),
    # touching is not overlapping: the destination right after or right before a source
    ("a-after-b", COPY, 80, 64, 0, 4, E.OK),
    ("a-before-b", COPY, 48, 64, 0, 4, E.OK),
    ("a-after-c", ADD, 80, 0, 64, 4, E.OK),
    ("a-before-c", TRIAD, 48, 0, 64, 4, E.OK),
    ("a-one-word-into-b", COPY, 76, 64, 0, 4, E.OVERLAP),
    ("b-one-word-into-a", COPY, 64, 76, 0, 4, E.OVERLAP),
    # the top of the byte address space
    ("a-ends-at-top", COPY, TOP - 16, 0, 0, 4, E.OK),
    ("b-ends-at-top", TRIAD, 0, TOP - 16, TOP - 32, 4, E.OK),
    ("c-ends-at-top", ADD, 0, 64, TOP - 16, 4, E.OK),
    ("a-one-word-past", COPY, TOP - 12, 0, 0, 4, E.OUT_OF_RANGE),
    ("c-one-word-past", ADD, 0, 64, TOP - 12, 4, E.OUT_OF_RANGE),
    ("whole-space", COPY, 0, TOP // 2, 0, TOP // 8, E.OK),
    ("longest-past-top", COPY, 8, 0, 0, (1 << 12) - 1, E.OUT_OF_RANGE),
])
def test_check_error_order(case, op, a, b, c, n, want):
    got = check(P, op, a, b, c, n)
    assert got == want, (case, got)


def test_check_range_with_counts_wider_than_the_address_space():
    """A count whose span alone exceeds the address space is out of range, not wrapped."""
    p = StreamParams(addr_bits=8, length_bits=20, tag_bits=4, inflight=2, status_depth=2)
    top = 1 << p.byte_addr_bits
    assert check(p, COPY, 0, 0, 0, (1 << 20) - 1) == E.OUT_OF_RANGE
    assert check(p, COPY, 0, top // 2, 0, top // 8) == E.OK
    assert check(p, COPY, 0, top // 2, 0, top // 8 + 1) == E.OUT_OF_RANGE


def test_reference_statuses_follow_check_and_bad_programs_move_no_data():
    rng = np.random.default_rng(4)
    mem0 = rng.integers(0, 1 << 32, 256, dtype=np.uint64).astype(np.uint32)
    rows = [dict(op=COPY, a=0, b=64, n=4, tag=11),                 # ok: words 0..3 <- 16..19
            dict(op=4, a=128, b=192, c=0, n=4, tag=12),             # bad op
            dict(op=SCALE, a=128, b=192, n=0, tag=13),              # zero length
            dict(op=ADD, a=128, b=192, c=130, n=4, tag=14),         # misaligned c
            dict(op=COPY, a=TOP - 4, b=192, n=2, tag=15),           # out of range
            dict(op=TRIAD, a=128, b=192, c=136, n=4, tag=16)]       # overlap of a and c
    res = ex.run("stream", _stimulus(rows, mem0), "reference", P)
    st = res.tables["status"]
    assert st["error"].tolist() == [E.OK, E.BAD_OP, E.ZERO_LENGTH, E.MISALIGNED, E.OUT_OF_RANGE, E.OVERLAP]
    assert st["tag"].tolist() == [11, 12, 13, 14, 15, 16]
    assert st["op"].tolist() == [COPY, 4, SCALE, ADD, COPY, TRIAD]
    want = mem0.copy()
    want[0:4] = mem0[16:20]
    assert res.tables["memory"]["data"].tolist() == want.tolist()


# --- kernels: bit-exact numpy float32 --------------------------------------------------------------------------

def _run(op, words: np.ndarray, n: int, q: int, *, a: int, b: int, c: int = 0, params=P) -> np.ndarray:
    image = words.copy()
    errs = run_programs(params, image, _programs([dict(op=op, a=a * 4, b=b * 4, c=c * 4, n=n, q=q)]))
    assert errs.tolist() == [E.OK]
    return image


@pytest.mark.parametrize("op", list(StreamOp))
def test_kernels_are_bit_exact_numpy_float32_with_canonical_nans(op):
    rng = np.random.default_rng(int(op) + 1)
    n = 1000
    words = random_words(rng, 3 * n)
    bw, cw = words[n:2 * n], words[2 * n:]
    q = 0x3FC00001 if op is TRIAD else 0x40490FDB
    got = _run(op, words, n, q, a=0, b=n, c=2 * n)[:n]
    qf, bf, cf = np.float32(_f(q)), _f(bw), _f(cw)
    with np.errstate(all="ignore"):
        want = {COPY: bw, SCALE: _canon(bf * qf), ADD: _canon(bf + cf), TRIAD: _canon(bf + qf * cf)}[op]
    bad = np.flatnonzero(got != want)
    assert not bad.size, [(hex(bw[i]), hex(cw[i]), hex(got[i]), hex(want[i])) for i in bad[:4]]
    # the sample reaches the special paths
    assert np.isnan(bf).any() and np.isinf(bf).any() and ((bw & 0x7F800000) == 0).any()
    if op is not COPY:
        assert (got == NAN).any() and not (np.isnan(got.view(np.float32)) & (got != NAN)).any()


def test_nan_results_are_canonical_and_copy_keeps_payloads():
    nans = np.array([0x7F800001, 0xFFC00000, 0xFFFFFFFF, 0x7FC12345], dtype=np.uint32)
    words = np.zeros(64, dtype=np.uint32)
    words[16:20] = nans  # b
    words[32:36] = [0x7F800000, 0x3F800000, 0x00000000, 0xFF800000]  # c
    got = _run(COPY, words, 4, 0x3F800000, a=0, b=16)
    assert got[0:4].tolist() == nans.tolist()
    got = _run(SCALE, words, 4, 0x3F800000, a=0, b=16)
    assert got[0:4].tolist() == [NAN] * 4
    # inf + (-inf) (numpy's default NaN on x86 is negative) and 0 * inf are canonical too
    words[16:20] = [0xFF800000, 0x3F800000, 0x7F800000, 0x7F800000]
    got = _run(ADD, words, 4, 0, a=0, b=16, c=32)
    assert got[0:4].tolist() == [NAN, 0x40000000, 0x7F800000, NAN]
    got = _run(TRIAD, words, 4, 0x00000000, a=0, b=16, c=32)  # q = 0: 0 * inf = NaN at c[0] and c[3]
    assert got[0:4].tolist() == [NAN, 0x3F800000, 0x7F800000, NAN]
    got = _run(SCALE, words, 4, 0x7FA00000, a=0, b=32)  # a NaN scalar
    assert got[0:4].tolist() == [NAN] * 4


def _exact(bits: int) -> Fraction:
    return Fraction(float(np.uint32(bits).view(np.float32)))


def _round_f32(x: Fraction) -> int:
    """The fp32 encoding nearest to the exact ``x`` (normal range, ties to even)."""
    lo = np.float32(float(x))  # float() rounds to nearest double; then refine on the float32 grid
    cands = [np.nextafter(lo, np.float32(-np.inf)), lo, np.nextafter(lo, np.float32(np.inf))]
    best = min(cands, key=lambda v: (abs(Fraction(float(v)) - x), int(np.float32(v).view(np.uint32)) & 1))
    return int(np.float32(best).view(np.uint32))


def test_triad_rounds_twice_like_numpy():
    """b + q*c with the product rounded first: where a fused multiply-add differs, the reference is unfused."""
    b, q, c = 0xBF800000, 0x3F800800, 0x3F800800  # -1 + (1 + 2**-12)**2: the product 1 + 2**-11 + 2**-24 ties
    fused = _round_f32(_exact(b) + _exact(q) * _exact(c))
    unfused = _round_f32(_exact(b) + _exact(_round_f32(_exact(q) * _exact(c))))
    assert fused != unfused  # the case tells the two apart
    numpy_unfused = int((_f([b]) + np.float32(_f(q)) * _f([c])).view(np.uint32)[0])
    assert numpy_unfused == unfused
    words = np.zeros(16, dtype=np.uint32)
    words[4], words[8] = b, c
    assert int(_run(TRIAD, words, 1, q, a=0, b=4, c=8)[0]) == unfused
    # and a random search: many inputs where fused and unfused differ, all given numpy's unfused result
    rng = np.random.default_rng(9)
    n = 4000
    bw = (rng.integers(0, 1 << 23, n).astype(np.uint32) | np.uint32(0xBF800000))  # in [-2, -1)
    cw = (rng.integers(0, 1 << 23, n).astype(np.uint32) | np.uint32(0x3F800000))  # in [1, 2)
    qv = np.uint32(0x3F9E3779)
    words = np.concatenate([np.zeros(n, np.uint32), bw, cw])
    got = _run(TRIAD, words, n, int(qv), a=0, b=n, c=2 * n, params=BIG)[:n]
    f64 = bw.view(np.float32).astype(np.float64) + np.float64(_f(qv)) * cw.view(np.float32).astype(np.float64)
    fused = f64.astype(np.float32).view(np.uint32)  # b + q*c is exact in float64: one rounding
    unfused = (_f(bw) + np.float32(_f(qv)) * _f(cw)).view(np.uint32)
    assert np.count_nonzero(fused != unfused) > 50
    assert np.array_equal(got, unfused)


def test_overflow_underflow_and_signed_zeros():
    words = np.zeros(64, dtype=np.uint32)
    words[16:22] = [0x7F7FFFFF, 0x00000001, 0x80000000, 0x80000000, 0x00800000, 0x3F800000]  # b
    words[32:38] = [0x7F7FFFFF, 0x80000001, 0x80000000, 0x00000000, 0x80000001, 0xBF800000]  # c
    got = _run(ADD, words, 6, 0, a=0, b=16, c=32)[:6]
    assert got.tolist() == [0x7F800000, 0x00000000, 0x80000000, 0x00000000, 0x007FFFFF, 0x00000000]
    got = _run(SCALE, words, 6, 0x00800000, a=0, b=16)[:6]  # q = 2**-126: subnormal / zero products
    assert got.tolist() == [0x407FFFFF, 0x00000000, 0x80000000, 0x80000000, 0x00000000, 0x00800000]
    got = _run(SCALE, words, 1, 0x40000000, a=0, b=16)[:1]  # max * 2 overflows to infinity
    assert got.tolist() == [0x7F800000]


# --- chunking ------------------------------------------------------------------------------------------------

def test_arrays_longer_than_a_chunk_equal_an_unchunked_computation():
    n = CHUNK + 1237
    rng = np.random.default_rng(17)
    b = random_words(rng, n)
    c = random_words(rng, n)
    b[CHUNK + 5] = 0xFFC00001  # NaNs in the second chunk
    c[CHUNK + 9] = 0x7F800001
    words = np.concatenate([np.zeros(n, np.uint32), b, c])
    q = 0xC0490FDB
    qf = np.float32(_f(q))
    with np.errstate(all="ignore"):
        want = {SCALE: _canon(_f(b) * qf), ADD: _canon(_f(b) + _f(c)), TRIAD: _canon(_f(b) + qf * _f(c))}
    for op, w in want.items():
        got = _run(op, words, n, q, a=0, b=n, c=2 * n, params=BIG)
        assert np.array_equal(got[:n], w), op
        assert np.array_equal(got[n:], words[n:]), op  # the sources are untouched
    got = _run(COPY, words, n, q, a=0, b=n, params=BIG)
    assert np.array_equal(got[:n], b)


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_small_chunks_give_the_same_words(chunk, monkeypatch):
    rng = np.random.default_rng(chunk)
    n = 301
    words = random_words(rng, 3 * n)
    want = {op: _run(op, words, n, 0x3F9E3779, a=0, b=n, c=2 * n) for op in StreamOp}
    monkeypatch.setattr(refmod, "CHUNK", chunk)
    for op in StreamOp:
        assert np.array_equal(_run(op, words, n, 0x3F9E3779, a=0, b=n, c=2 * n), want[op]), op


# --- the registered reference: image, donation, stimulus checks ---------------------------------------------------

def test_result_image_is_extended_to_the_highest_word_used():
    rows = [dict(op=COPY, a=400, b=0, n=5), dict(op=4, a=4000, b=0, n=5), dict(op=COPY, a=4000, b=0, n=4000)]
    res = ex.run("stream", _stimulus(rows, np.arange(10, dtype=np.uint32) + 1), "reference", P)
    image = res.tables["memory"]["data"]
    assert len(image) == 105  # one past word 104; bad programs (even far away) do not count
    assert image[:10].tolist() == list(range(1, 11)) and image[100:105].tolist() == [1, 2, 3, 4, 5]
    assert not image[10:100].any()


def _donation_stimulus(donate: bool | None) -> tuple[trace.Trace, np.ndarray]:
    rng = np.random.default_rng(3)
    mem0 = random_words(rng, 512)
    rows = [dict(op=TRIAD, a=0, b=256, c=512, n=64, q=0x40400000), dict(op=SCALE, a=1024, b=1536, n=100),
            dict(op=COPY, a=1800, b=0, n=50)]
    meta = {} if donate is None else {"donate": donate}
    return _stimulus(rows, mem0, **meta), mem0


def test_donation_returns_the_stimulus_buffer_and_without_it_the_stimulus_is_untouched():
    stim, mem0 = _donation_stimulus(None)
    kept = ex.run("stream", stim, "reference", P)
    assert np.array_equal(stim["memory"]["data"], mem0), "the stimulus must be untouched without donation"
    assert not np.shares_memory(kept.tables["memory"], stim["memory"])
    assert not np.array_equal(kept.tables["memory"]["data"], mem0)  # the programs did change words
    for donate in (False, True):
        stim, _ = _donation_stimulus(donate)
        res = ex.run("stream", stim, "reference", P)
        assert np.array_equal(res.tables["memory"]["data"], kept.tables["memory"]["data"])
        assert np.array_equal(res.tables["status"], kept.tables["status"])
        assert np.shares_memory(res.tables["memory"], stim["memory"]) == donate
        if donate:
            assert np.array_equal(stim["memory"]["data"], kept.tables["memory"]["data"])  # spent in place
        else:
            assert np.array_equal(stim["memory"]["data"], mem0)


def test_programs_past_the_memory_raise():
    mem0 = np.zeros(16, dtype=np.uint32)
    # 2**6 = 64 words: a program ending at word 64 fits, one word more does not
    fits = _stimulus([dict(op=COPY, a=0, b=60 * 4, n=4)], mem0, size_log2=6)
    assert len(ex.run("stream", fits, "reference", P).tables["memory"]) == 64
    for row in (dict(op=COPY, a=0, b=61 * 4, n=4), dict(op=ADD, a=0, b=16, c=64 * 4, n=1),
                dict(op=COPY, a=64 * 4, b=0, n=1)):
        stim = _stimulus([row], mem0, size_log2=6)
        for target in ("reference", "model"):
            with pytest.raises(ValueError, match="2\\*\\*6"):
                ex.run("stream", stim, target, P)


def test_only_bad_programs_out_of_the_memory_do_not_raise():
    mem0 = np.zeros(16, dtype=np.uint32)
    rows = [dict(op=5, a=0, b=2000 * 4, n=100), dict(op=COPY, a=0, b=3000 * 4, n=0),
            dict(op=COPY, a=2, b=3000 * 4, n=4), dict(op=COPY, a=TOP - 4, b=3000 * 4, n=4),
            dict(op=COPY, a=3000 * 4, b=3000 * 4, n=4)]
    res = ex.run("stream", _stimulus(rows, mem0, size_log2=6), "reference", P)
    assert res.tables["status"]["error"].tolist() == [E.BAD_OP, E.ZERO_LENGTH, E.MISALIGNED, E.OUT_OF_RANGE,
                                                      E.OVERLAP]
    assert res.tables["memory"]["data"].tolist() == mem0.tolist()


@pytest.mark.parametrize("op", [8, 9, 255])
def test_an_op_wider_than_three_bits_raises(op):
    stim = _stimulus([dict(op=COPY, a=0, b=64, n=4), dict(op=op, a=0, b=64, n=4)], np.zeros(64, np.uint32))
    for target in ("reference", "model"):
        with pytest.raises(ValueError, match="3-bit"):
            ex.run("stream", stim, target, P)
    stim7 = _stimulus([dict(op=7, a=0, b=64, n=4)], np.zeros(64, np.uint32))
    assert ex.run("stream", stim7, "reference", P).tables["status"]["error"].tolist() == [E.BAD_OP]


@pytest.mark.parametrize("field,value", [("a", 1 << (P.byte_addr_bits)), ("c", 1 << 40),
                                         ("n", 1 << P.length_bits), ("tag", 1 << P.tag_bits)])
def test_a_field_wider_than_the_unit_raises_instead_of_being_truncated(field, value):
    """The RTL would truncate the field (and run a program the reference rejects): every target refuses it."""
    stim = _stimulus([dict(op=ADD, a=0, b=64, c=128, n=4) | {field: value}], np.zeros(64, np.uint32))
    for target in ("reference", "model"):
        with pytest.raises(ValueError, match=f"{field} does not fit"):
            ex.run("stream", stim, target, P)


def test_memory_addr_bits_must_match_the_unit():
    stim = _stimulus([dict(op=COPY, a=0, b=64, n=4)], np.zeros(64, np.uint32), addr_bits=13)
    with pytest.raises(ValueError, match="addr_bits"):
        ex.run("stream", stim, "reference", P)
