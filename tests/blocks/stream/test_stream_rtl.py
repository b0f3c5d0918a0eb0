"""The STREAM unit RTL on Verilator (cocotb) through the execution API: cycle-exact against the cycle model and
bit-exact against the reference, on parameter/memory sets the generic agreement test does not use; a reset in
the middle of a run; and the fp32 datapath (`hw.fp` multiplier and adder) on a sweep of special operands.

Three parameter/memory sets, two builds of their own (``FAST`` is the generic test's), cached in ``.cache``.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import sim.exec as ex
from hw.memory import MemoryParams
from hw.stream import StreamError, StreamOp, StreamParams
from sim.blocks.stream import error_counts, make_stimulus, random_programs, random_words, standard_memory
from sim.blocks.stream.model import run_stream
from sim.blocks.stream.rtl import run_stream_rtl
from sim.core import trace
from sim.core.stimulus import idle_fraction

pytestmark = pytest.mark.rtl  # runs on Verilator

# One element in flight behind a slow, long-latency memory with a shallow queue and response FIFO.
SLOW = (StreamParams(addr_bits=10, length_bits=10, tag_bits=6, inflight=1, status_depth=3),
        MemoryParams(addr_bits=10, size_log2=10, latency=12, interval=2, queue_depth=3, rsp_depth=4))
# Eight in flight on a memory serving a command every cycle, a 2-deep status FIFO under heavy backpressure: the
# block's test parameters and standard memory, so this set shares the generic agreement test's build.
FAST = (ex.get("stream").small_params(), standard_memory(ex.get("stream").small_params(), 4096))
# A memory slower than the unit (a command every 3 cycles, a 2-deep queue): cmd.ready backpressure on reads and
# writes, which the sets above never produce (with them, a read or a write counted without cmd.ready went unseen).
# Latency 5: with interval 3 a latency of 6 lines every write up with a free queue slot, and writes never wait.
BACKED = (StreamParams(addr_bits=10, length_bits=8, tag_bits=4, inflight=8, status_depth=4),
          MemoryParams(addr_bits=10, size_log2=10, latency=5, interval=3, queue_depth=2))
SETS = {"slow": SLOW, "fast": FAST, "backed": BACKED}
NAN = 0x7FC00000


def _trace(programs: np.ndarray, memory: np.ndarray, mem: MemoryParams) -> trace.Trace:
    return make_stimulus(programs, np.asarray(memory, dtype=np.uint32), mem, producer="test")


def _programs(rows: list[dict]) -> np.ndarray:
    progs = trace.empty("stream_programs", len(rows))
    for i, row in enumerate(rows):
        for k, v in {"cycle": 0, "c": 0, "q": 0x3F800000, "tag": i & 0xF, **row}.items():
            progs[k][i] = v
    return progs


def _all_three(stim: trace.Trace, p: StreamParams, stalls: ex.Stalls, work: Path) -> ex.Result:
    rtl = ex.run("stream", stim, "rtl", p, stalls, work=work)
    model = ex.run("stream", stim, "model", p, stalls)
    ref = ex.run("stream", stim, "reference", p)
    vs_model = ex.agree(rtl, model)
    assert vs_model.data_mismatches == 0 and vs_model.cycle_mismatches == 0, vs_model.per_table
    vs_ref = ex.agree(rtl, ref)
    assert vs_ref.data_mismatches == 0, vs_ref.per_table
    assert vs_ref.rows == len(stim["programs"]) + len(ref.tables["memory"])
    return ref


@pytest.mark.parametrize("which,seed,count,bp", [("slow", 1, 40, 0.3), ("fast", 2, 90, 0.8), ("backed", 3, 50, 0.5)])
def test_rtl_agrees_with_model_and_reference_on_random_programs(which, seed, count, bp, tmp_path):
    p, mem = SETS[which]
    rng = np.random.default_rng(seed)
    words = 1 << mem.size_log2
    # a third of the memory for the programs (overlaps are frequent enough to be sure of one), every op
    programs = random_programs(p, rng, count, words // 3, max_n=40, bad=0.35, idle_prob=0.9)
    stim = _trace(programs, random_words(rng, words), mem)
    stalls = ex.Stalls(seed, bp)
    ref = _all_three(stim, p, stalls, tmp_path)
    ready = stalls.ready(0)
    stalled = sum(not ready(t) for t in range(int(programs["cycle"][-1])))
    assert stalled > bp / 2 * int(programs["cycle"][-1]), "status backpressure during the run"
    counts = error_counts(ref.tables["status"])
    assert all(counts[e.name] for e in StreamError), counts
    ran = programs[ref.tables["status"]["error"] == StreamError.OK]
    assert set(ran["op"].tolist()) == {int(op) for op in StreamOp}
    assert idle_fraction(programs["cycle"]) >= 0.5


def test_rtl_checks_in_the_documented_order(tmp_path):
    """Directed programs the random ones never make (c misaligned or out of range for the one-source ops, two
    flaws at once, arrays touching each other or the top of the address space): the RTL's statuses and image
    are the reference's, its cycles the model's."""
    p, mem = FAST
    top = 1 << p.byte_addr_bits
    copy, scale, add, triad = (int(op) for op in StreamOp)
    rows = [dict(op=5, a=0, b=64, c=128, n=0),            # BAD_OP before ZERO_LENGTH
            dict(op=7, a=1, b=2, c=3, n=4),               # BAD_OP before MISALIGNED
            dict(op=copy, a=1, b=2, n=0),                 # ZERO_LENGTH before MISALIGNED
            dict(op=copy, a=top - 2, b=0, n=4),           # MISALIGNED before OUT_OF_RANGE
            dict(op=copy, a=64, b=66, n=4),               # MISALIGNED before OVERLAP
            dict(op=copy, a=top - 8, b=top - 8, n=4),     # OUT_OF_RANGE before OVERLAP
            dict(op=copy, a=0, b=64, c=3, n=4),           # c misaligned: ignored by COPY ...
            dict(op=scale, a=256, b=320, c=top - 4, n=4),  # ... c out of range: ignored by SCALE
            dict(op=scale, a=384, b=0, c=384, n=4),       # ... c overlapping a: ignored by SCALE
            dict(op=add, a=512, b=0, c=130, n=4),         # ... but not by ADD / TRIAD
            dict(op=triad, a=512, b=0, c=top - 12, n=4),
            dict(op=triad, a=512, b=0, c=520, n=4),
            dict(op=add, a=512, b=0, c=500, n=4),
            dict(op=add, a=640, b=700, c=700, n=8),       # b and c may overlap (here: the same array)
            dict(op=triad, a=768, b=752, c=784, n=4),     # a touching b's end and c's start
            dict(op=copy, a=top - 16, b=top - 32, n=4),   # arrays ending exactly at the top
            dict(op=add, a=900, b=top - 16, c=top - 32, n=4),
            dict(op=copy, a=top - 12, b=0, n=4),          # one word past the top
            dict(op=triad, a=1024, b=1088, c=top - 12, n=4),
            dict(op=copy, a=2048, b=2060, n=4)]           # b starting in a's last word
    want = [1, 1, 2, 3, 3, 4, 0, 0, 0, 3, 4, 5, 5, 0, 0, 0, 0, 4, 4, 5]
    programs = _programs([{**r, "q": 0xC0A00000, "cycle": 2 * i} for i, r in enumerate(rows)])
    stim = _trace(programs, random_words(np.random.default_rng(4), 1 << mem.size_log2), mem)
    ref = _all_three(stim, p, ex.Stalls(9, 0.5), tmp_path)
    assert ref.tables["status"]["error"].tolist() == want


def test_rtl_final_image_includes_writes_still_queued_in_the_memory(tmp_path):
    """The case the model gets wrong (last writes still in the memory's queue when the unit goes idle): the RTL
    has the reference's image, and the model's status cycles."""
    p, mem = SLOW
    image = np.arange(1 << mem.size_log2, dtype=np.uint32)
    stim = _trace(_programs([dict(op=StreamOp.COPY, a=0, b=512, n=24)]), image, mem)
    rtl = ex.run("stream", stim, "rtl", p, work=tmp_path)
    assert ex.agree(rtl, ex.run("stream", stim, "reference", p)).data_mismatches == 0
    assert rtl.tables["memory"]["data"][:24].tolist() == list(range(128, 152))
    assert ex.agree(rtl, ex.run("stream", stim, "model", p)).cycle_mismatches == 0


def test_reset_in_the_middle_of_a_run(tmp_path):
    """A reset while a program streams (taken, not finished): the unit comes out idle with no status, and the
    whole replay run again from a fresh preload is exact (statuses and cycles as the model, image as the
    reference)."""
    p, mem = FAST
    rng = np.random.default_rng(7)
    words = 1 << mem.size_log2
    programs = random_programs(p, rng, 20, 1024, max_n=64, bad=0.2, idle_prob=0.5)
    image = random_words(rng, words)
    stim = _trace(programs, image, mem)
    ref = ex.run("stream", stim, "reference", p)
    ok = np.flatnonzero(ref.tables["status"]["error"] == StreamError.OK)
    model, _ = run_stream(p, mem, programs, image, ex.Stalls(3, 0.4).ready(0))
    # in the middle of the 4th program that runs: between its arrival (it is waited for) and its status
    k = ok[3]
    long = int(programs["n"][k]) * (1 + StreamOp(int(programs["op"][k])).sources)
    reset_at = int(model.status[k, 0]) - long // 2
    assert reset_at > int(programs["cycle"][k]) + 2 and long >= 20
    ready = ex.Stalls(3, 0.4).ready(0)
    res = run_stream_rtl(p, mem, programs, image, tmp_path, status_seed=ready.seed, status_bp=ready.prob,
                         reset_at=reset_at)
    assert res["busy_before_reset"] and res["idle_after_reset"] == 1 and res["status_valid_after_reset"] == 0
    assert 3 <= res["cut_statuses"] < len(programs)
    rows = np.asarray(res["status"], dtype=np.int64).reshape(-1, 4)
    assert rows.tolist() == model.status.tolist() and res["cycles"] == model.cycles
    assert res["status_ok"] and res["word_mismatches"] == 0 and res["model_mismatches"] == 0
    assert np.array_equal(res["memory"], ref.tables["memory"]["data"])


# Subnormal products whose exact value is just above a tie (guard bit set, the 23 bits below it clear, a set bit
# only further down, among the bits the shift into the subnormal range pushes out): they round up only if those
# shifted-out bits reach the sticky bit. Random operands almost never make one (23 zero bits); these were found by
# an exhaustive search over two-bit mantissas. (scalar q, operands b)
STICKY_TIES = {0x1F800001: [0x14800001, 0x14800002, 0x15400000, 0x1F000003, 0x1F800001, 0x1F800005, 0x20000002],
               0x1F800003: [0x1E800005, 0x1F000001],
               0x1FC00001: [0x1E00000A, 0x1F000002, 0x1F800006]}


def _exact(word: int) -> Fraction:
    e, m = (word >> 23) & 0xFF, word & 0x7FFFFF
    v = Fraction(m | (1 << 23) if e else m, 1 << 23) * Fraction(2) ** ((e if e else 1) - 127)
    return -v if word >> 31 else v


def test_fp32_datapath_sweep_is_bit_exact(tmp_path):
    """SCALE, ADD, TRIAD (and COPY) over random_words operands and scalars that overflow, underflow into
    subnormals and hit NaNs and infinities, plus directed subnormal near-ties: the RTL's image equals numpy
    float32 (canonical NaN) bit for bit."""
    p, mem = FAST
    rng = np.random.default_rng(12)
    n = 480  # b: words 0..479, c: 480..959, six destinations of 480 after them, the directed cases at 3840
    image = np.zeros(1 << mem.size_log2, dtype=np.uint32)
    image[:2 * n] = random_words(rng, 2 * n)
    image[rng.choice(n, 8, replace=False)] = [0x7F800001, 0xFF800001, 0x7FBFFFFF, 0xFFFFFFFF, 0x7FC00001,
                                              0xFFC00000, 0x7FD2A5A5, 0xFFA5A5A5]  # NaN payloads in b
    ops = [(StreamOp.SCALE, 0x7E800000),  # 2**126: most products overflow
           (StreamOp.SCALE, 0x00C00000),  # 1.5 * 2**-126: products underflow into subnormals
           (StreamOp.ADD, 0),
           (StreamOp.TRIAD, 0x3FB504F3),  # sqrt 2: rounding of products and sums near 1
           (StreamOp.TRIAD, 0xFF000000),  # -2**127: overflowing products cancelled or not by b
           (StreamOp.COPY, 0)]
    rows = [dict(op=op, a=(2 + i) * n * 4, b=0, c=n * 4, n=n, q=q, cycle=3 * i) for i, (op, q) in enumerate(ops)]
    src, dst = 3840, 3904
    for q, ties in STICKY_TIES.items():
        both = np.array(ties + [t | 0x80000000 for t in ties], dtype=np.uint32)
        image[src:src + len(both)] = both
        rows.append(dict(op=StreamOp.SCALE, a=dst * 4, b=src * 4, n=len(both), q=q, cycle=20))
        src, dst = src + len(both), dst + len(both)
    stim = _trace(_programs(rows), image, mem)
    ref = _all_three(stim, p, ex.Stalls(5, 0.2), tmp_path)
    out = ref.tables["memory"]["data"]
    assert (ref.tables["status"]["error"] == StreamError.OK).all()
    # independent expectations (numpy float32, NaN canonical) and what the operands reach
    b, c = image[:n].view(np.float32), image[n:2 * n].view(np.float32)
    with np.errstate(all="ignore"):
        for i, (op, q) in enumerate(ops):
            qf = np.uint32(q).view(np.float32)
            want = {StreamOp.SCALE: qf * b, StreamOp.ADD: b + c, StreamOp.TRIAD: b + qf * c,
                    StreamOp.COPY: b}[op]
            w = want.view(np.uint32).copy()
            if op is not StreamOp.COPY:
                w[np.isnan(want)] = NAN
            assert np.array_equal(out[(2 + i) * n:(3 + i) * n], w), op
        res = out[2 * n:7 * n]
        fin_b = np.isfinite(b)
        assert np.count_nonzero(np.isinf(out[2 * n:3 * n].view(np.float32)) & fin_b) > 50  # overflow
        sub = out[3 * n:4 * n]
        assert np.count_nonzero(((sub & 0x7F800000) == 0) & ((sub & 0x7FFFFF) != 0)) > 20  # subnormal results
        assert np.count_nonzero(res == NAN) > 10 and np.count_nonzero(res == 0x80000000) > 0
    assert np.count_nonzero((image[:n] & 0x7FFFFFFF) > 0x7F800000) >= 8  # NaN operands (COPY keeps their bits)
    # the directed cases: exact products just above a tie in the subnormal range, rounded up (away from zero)
    dst = 3904
    for q, ties in STICKY_TIES.items():
        for k, t in enumerate(ties):
            units = abs(_exact(t) * _exact(q)) * 2 ** 149  # in smallest subnormals
            whole = units.numerator // units.denominator
            assert units < 2 ** 23 and Fraction(1, 2) < units - whole < Fraction(1, 2) + Fraction(1, 1 << 22)
            assert int(out[dst + k]) == whole + 1 and int(out[dst + len(ties) + k]) == (whole + 1) | 0x80000000
        dst += 2 * len(ties)
