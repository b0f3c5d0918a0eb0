"""The STREAM unit's cycle model (`sim.blocks.stream.model`) through the execution API: its data against the
reference over parameter sets, memories and status backpressure the generic agreement test does not use, and
timing properties derived by hand from the `hw.stream` contract (check/status cycles, port-bound throughput,
status FIFO room, no hang on bad programs)."""

from __future__ import annotations

import numpy as np
import pytest

import sim.exec as ex
from hw.memory import MemoryParams
from hw.stream import StreamError, StreamOp, StreamParams
from sim.blocks.stream import error_counts, make_stimulus, random_programs, random_words
from sim.core import trace
from sim.core.stimulus import idle_fraction

E = StreamError
ADDR = 12
TOP = 1 << (ADDR + 2)  # one past the last byte address
BAD = [dict(op=5, a=0, b=64, n=4), dict(op=StreamOp.ADD, a=0, b=64, c=128, n=0),  # BAD_OP, ZERO_LENGTH
       dict(op=StreamOp.COPY, a=1, b=64, n=4), dict(op=StreamOp.SCALE, a=TOP - 4, b=64, n=2),  # MISALIGNED, RANGE
       dict(op=StreamOp.TRIAD, a=64, b=0, c=68, n=4)]  # OVERLAP
BAD_CODES = [E.BAD_OP, E.ZERO_LENGTH, E.MISALIGNED, E.OUT_OF_RANGE, E.OVERLAP]


def _params(inflight: int = 8, status_depth: int = 4) -> StreamParams:
    return StreamParams(addr_bits=ADDR, length_bits=12, tag_bits=8, inflight=inflight, status_depth=status_depth)


def _mem(latency: int = 4, interval: int = 1, queue_depth: int = 16, size_log2: int = ADDR) -> MemoryParams:
    return MemoryParams(addr_bits=ADDR, size_log2=size_log2, latency=latency, interval=interval,
                        queue_depth=queue_depth)


def _trace(programs: np.ndarray, memory: np.ndarray, mem: MemoryParams) -> trace.Trace:
    return make_stimulus(programs, np.asarray(memory, dtype=np.uint32), mem, producer="test")


def _programs(rows: list[dict]) -> np.ndarray:
    progs = trace.empty("stream_programs", len(rows))
    for i, row in enumerate(rows):
        for k, v in {"cycle": 0, "c": 0, "q": 0x3FC00000, "tag": i & 0xFF, **row}.items():
            progs[k][i] = v
    return progs


def _status_cycles(p: StreamParams, mem: MemoryParams, rows: list[dict], bp: float = 0.0, seed: int = 0
                   ) -> tuple[np.ndarray, int, ex.Result]:
    stim = _trace(_programs(rows), np.zeros(1 << mem.size_log2, np.uint32), mem)
    res = ex.run("stream", stim, "model", p, ex.Stalls(seed, bp))
    return res.tables["status"]["cycle"].astype(np.int64), res.cycles, res


# --- model data == reference, over parameters, memories and backpressure ---------------------------------------

def test_final_image_includes_writes_still_queued_in_the_memory():
    """COPY of 4 words with a memory serving a command every 3 cycles: the unit issues its last write into the
    memory's queue and goes idle before the memory has performed it; the final image must hold it all the same
    (the RTL testbench reads the image back through the same port, behind the queued writes)."""
    mem = _mem(latency=4, interval=3, size_log2=6)
    image = np.arange(64, dtype=np.uint32)
    stim = _trace(_programs([dict(op=StreamOp.COPY, a=0, b=128, n=4)]), image, mem)
    ref = ex.run("stream", stim, "reference", _params())
    assert ref.tables["memory"]["data"][:4].tolist() == [32, 33, 34, 35]
    model = ex.run("stream", stim, "model", _params())
    assert model.tables["memory"]["data"][:4].tolist() == [32, 33, 34, 35]


CASES = [  # inflight, status_depth, latency, interval, queue_depth
    (1, 2, 1, 1, 16), (1, 8, 20, 3, 2), (2, 2, 20, 1, 2), (2, 8, 1, 3, 16),
    (8, 2, 20, 1, 16), (8, 8, 1, 1, 2), (8, 2, 1, 3, 2), (8, 8, 20, 3, 16),
]


@pytest.mark.parametrize("bp", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("inflight,status_depth,latency,interval,queue_depth", CASES)
def test_model_data_equals_reference(inflight, status_depth, latency, interval, queue_depth, bp):
    p = _params(inflight, status_depth)
    mem = _mem(latency, interval, queue_depth, size_log2=10)
    seed = inflight * 100 + status_depth * 10 + latency + interval
    rng = np.random.default_rng(seed)
    programs = random_programs(p, rng, 100, 384, max_n=40, bad=0.35, idle_prob=0.9)  # overlaps occur
    stim = _trace(programs, random_words(rng, 1 << 10), mem)
    ref = ex.run("stream", stim, "reference", p)
    model = ex.run("stream", stim, "model", p, ex.Stalls(seed, bp))
    agreement = ex.agree(model, ref)
    assert agreement.rows == 100 + (1 << 10) and agreement.data_mismatches == 0, agreement.per_table
    # the stimulus is what it claims: every error class, programs that run, input idles
    counts = error_counts(ref.tables["status"])
    assert all(counts[e.name] for e in StreamError), counts
    assert idle_fraction(programs["cycle"]) >= 0.5
    st = model.tables["status"]
    assert np.all(np.diff(st["cycle"].astype(np.int64)) >= 1), "one status a cycle, in program order"
    ready = ex.Stalls(seed, bp).ready(0)
    assert all(ready(int(c)) for c in st["cycle"]), "a status leaves only in a cycle where status is ready"
    if bp:
        assert not all(ready(c) for c in range(int(st["cycle"][-1]))), "the backpressure pattern stalls"


# --- timing derived from the contract -------------------------------------------------------------------------


def test_a_bad_program_status_is_offered_two_cycles_after_it_is_taken():
    p, mem = _params(), _mem()
    for row in BAD:
        cycles, end, res = _status_cycles(p, mem, [row])
        assert cycles.tolist() == [2]  # taken in 0, checked in 1, offered (and taken: always ready) in 2
        assert end == 3  # idle once the status FIFO is empty again
    # back to back: the unit is idle again in the cycle the status is offered, and takes the next program
    cycles, end, res = _status_cycles(p, mem, BAD * 3)
    assert cycles.tolist() == [2 + 2 * i for i in range(15)] and end == 31
    assert res.tables["status"]["error"].tolist() == BAD_CODES * 3
    # arriving later: offered two cycles after the arrival
    rows = [{**BAD[0], "cycle": 7}, {**BAD[4], "cycle": 100}]
    assert _status_cycles(p, mem, rows)[0].tolist() == [9, 102]


def test_a_program_waits_for_the_running_one_then_is_checked():
    """The unit is idle the cycle after the last write's status is pushed; a waiting bad program is taken then."""
    p, mem = _params(), _mem()
    for op in StreamOp:
        rows = [dict(op=op, a=0, b=1024, c=2048, n=37), BAD[1]]
        cycles, end, _ = _status_cycles(p, mem, rows)
        assert cycles[1] == cycles[0] + 2 and end == cycles[1] + 1


def _run_cycle(p: StreamParams, mem: MemoryParams, op: StreamOp, n: int) -> int:
    return int(_status_cycles(p, mem, [dict(op=op, a=0, b=4 * 1024, c=8 * 1024, n=n)])[0][0])


@pytest.mark.parametrize("inflight,latency", [(16, 4), (8, 1), (8, 8)])
@pytest.mark.parametrize("op", list(StreamOp))
def test_port_bound_throughput_with_enough_inflight(op, inflight, latency):
    """Interval-1 memory, always-ready status, enough elements in flight: the port carries a command every cycle
    (2 per COPY/SCALE element, 3 per ADD/TRIAD element) after a bounded start-up.

    The status of a program taken in 0 can come no earlier than 2 + words (the first command in cycle 2, the
    last write's status offered the cycle after it); the start-up beyond that depends on where the last burst
    of reads falls (n modulo a few elements), so the exact growth is checked window against window: over 40
    consecutive lengths and the same lengths + 100, the extra cycles span the same range. (The bound on the
    start-up, latency + 12, is this test's reading of "the memory's latency and the pipeline".)"""
    p, mem = _params(inflight), _mem(latency)
    k = 1 + op.sources
    lo, hi = 300, 340
    extra = np.array([_run_cycle(p, mem, op, n) - k * n for n in range(lo, hi)])
    extra100 = np.array([_run_cycle(p, mem, op, n + 100) - k * (n + 100) for n in range(lo, hi)])
    assert extra.min() >= 2 and extra100.min() >= 2, "faster than the port"
    assert extra.max() <= latency + 12, "start-up beyond the memory's latency and the pipeline"
    assert (extra.min(), extra.max()) == (extra100.min(), extra100.max()), (extra, extra100)
    assert np.abs(extra100 - extra).max() <= latency + 10  # status(n + 100) - status(n) = 100 k + bounded


@pytest.mark.parametrize("op", list(StreamOp))
def test_one_element_in_flight_is_latency_bound(op):
    """With inflight 1 every element waits for its own round trip: well below the port's rate."""
    p, mem = _params(inflight=1), _mem(latency=6)
    k = 1 + op.sources
    grow = _run_cycle(p, mem, op, 200) - _run_cycle(p, mem, op, 100)
    assert grow >= 100 * (mem.latency + k)


def test_slow_memory_sets_the_rate():
    """Interval 3: one command every three cycles, the port busy all the same (3 x the words)."""
    p, mem = _params(inflight=16), _mem(latency=2, interval=3)
    for op in StreamOp:
        k = 1 + op.sources
        grow = _run_cycle(p, mem, op, 400) - _run_cycle(p, mem, op, 300)
        assert abs(grow - 300 * k) <= 3 * k, (op, grow)


def test_a_long_run_of_bad_programs_terminates_and_reports_every_code():
    p, mem = _params(status_depth=2), _mem()
    rng = np.random.default_rng(5)
    pick = rng.integers(0, len(BAD), 1000)
    rows = [BAD[i] for i in pick]
    for bp in (0.0, 0.6):
        cycles, end, res = _status_cycles(p, mem, rows, bp=bp, seed=3)
        ref = ex.run("stream", _trace(_programs(rows), np.zeros(1 << mem.size_log2, np.uint32), mem), "reference", p)
        assert ex.agree(res, ref).data_mismatches == 0
        assert res.tables["status"]["error"].tolist() == [BAD_CODES[i] for i in pick]
        assert len(cycles) == 1000 and end == cycles[-1] + 1
        if bp == 0.0:
            assert cycles.tolist() == list(range(2, 2002, 2))


@pytest.mark.parametrize("depth", [2, 8])
def test_status_backpressure_fills_the_fifo_and_the_unit_finishes(depth):
    """90 % backpressure on status: programs are taken only while the status FIFO has room, so the status of
    program i + depth is offered at least 3 cycles after program i's left (room the next cycle, then taken,
    checked, offered); the run still finishes, with the reference's data."""
    p, mem = _params(inflight=4, status_depth=depth), _mem(latency=5)
    rng = np.random.default_rng(depth)
    programs = random_programs(p, rng, 400, 64, max_n=8, idle_prob=0.3)
    stim = _trace(programs, random_words(rng, 1 << ADDR), mem)
    stalls = ex.Stalls(11, 0.9)
    model = ex.run("stream", stim, "model", p, stalls)
    ref = ex.run("stream", stim, "reference", p)
    assert ex.agree(model, ref).data_mismatches == 0
    counts = error_counts(ref.tables["status"])
    assert all(counts[e.name] for e in StreamError), counts
    s = model.tables["status"]["cycle"].astype(np.int64)
    gaps = s[depth:] - s[:-depth]
    assert gaps.min() >= 3
    if depth == 2:
        assert gaps.min() == 3  # the bound is reached: the FIFO really was full
    free = ex.run("stream", stim, "model", p, ex.Stalls(11, 0.0))
    late = model.tables["status"]["cycle"].astype(np.int64) - free.tables["status"]["cycle"].astype(np.int64)
    assert model.cycles > free.cycles and np.count_nonzero(late > 10) > 100, "the backpressure throttled the unit"
