"""The KV swap controller's functional reference (`sim.blocks.kv_swap.reference`): errors, abort outcomes, data;
and the stimulus it is run on (`random_swap_workload`): real idles, abort outcomes the contract decides."""

from __future__ import annotations

import numpy as np
import pytest

import sim.exec as ex
from hw.kv_swap import KvSwapParams, SwapDir, SwapError
from hw.memory import MemoryParams
from sim.blocks.kv_swap.model import HostLinkModel, Run, random_swap_workload, run_kv_swap
from sim.blocks.kv_swap.reference import (
    ABORT_DTYPE,
    RUN_DTYPE,
    AmbiguousAbort,
    abort_targets,
    request_error,
    split_requests,
    swap_outcome,
)
from sim.blocks.memory.model import SimpleMemoryModel
from sim.core.stimulus import idle_fraction
from sim.exec.api import compare_tables

P = KvSwapParams(block_words=4, max_burst_blocks=4, dev_blocks=64, host_blocks=32, block_bits=8, count_bits=4,
                 dev_addr_bits=9, host_addr_bits=9, queue_depth=2, run_depth=3, outstanding=6, tag_bits=6)
MEM = MemoryParams(addr_bits=9, size_log2=9, latency=1, interval=1, queue_depth=4, rsp_depth=4)
OUT, IN = int(SwapDir.OUT), int(SwapDir.IN)


def _runs(*rows) -> np.ndarray:
    """Runs ``(cycle, tag, direction, src, dst, count, last)``."""
    return np.array(list(rows), dtype=RUN_DTYPE)


def _aborts(*rows) -> np.ndarray:
    return np.array(list(rows), dtype=ABORT_DTYPE)


@pytest.mark.parametrize("direction,runs,error", [
    (OUT, [(0, 20, 4)], SwapError.OK),
    (OUT, [(60, 28, 4)], SwapError.OK),  # both ends exactly at the pools' ends
    (OUT, [(61, 0, 4)], SwapError.OUT_OF_RANGE),  # device source past the device pool (64)
    (OUT, [(0, 29, 4)], SwapError.OUT_OF_RANGE),  # host destination past the host pool (32)
    (IN, [(0, 60, 4)], SwapError.OK),  # host -> device: the pools swap roles
    (IN, [(29, 0, 4)], SwapError.OUT_OF_RANGE),
    (OUT, [(0, 0, 1), (1, 1, 0), (99, 0, 1)], SwapError.ZERO_COUNT),  # the first error in run order wins
    (OUT, [(0, 0, 1), (99, 0, 1), (1, 1, 0)], SwapError.OUT_OF_RANGE),
    (OUT, [(i, 0, 1) for i in range(3)], SwapError.OK),  # run_depth runs fit
    (OUT, [(i, 0, 1) for i in range(4)], SwapError.QUEUE_FULL),
    (OUT, [(0, 0, 1), (1, 0, 1), (2, 0, 1), (3, 0, 0)], SwapError.ZERO_COUNT),  # checked before QUEUE_FULL
])
def test_request_errors_follow_the_contract(direction, runs, error):
    assert request_error(P, direction, runs) == error


def test_requests_are_cut_at_last_runs_and_take_their_first_runs_tag_and_direction():
    reqs = split_requests(P, _runs((0, 5, OUT, 0, 32, 1, 0), (1, 9, IN, 1, 33, 1, 1), (3, 6, IN, 0, 40, 2, 1)))
    assert [(r.tag, r.direction, r.runs, r.first_offer, r.last_offer) for r in reqs] == [
        (5, OUT, ((0, 32, 1), (1, 33, 1)), 0, 1), (6, IN, ((0, 40, 2),), 3, 3)]
    with pytest.raises(ValueError, match="last run"):
        split_requests(P, _runs((0, 5, OUT, 0, 32, 1, 0)))
    with pytest.raises(ValueError, match="wider"):
        split_requests(P, _runs((0, 64, OUT, 0, 32, 1, 1)))


def test_abort_outcomes_from_the_offer_cycles():
    # Y (tag 1, 8 words, last run at 0) blocks X (tag 2) until cycle 0 + 4 + 8 = 12 at the earliest.
    runs = _runs((0, 1, OUT, 0, 16, 2, 1), (1, 2, OUT, 4, 20, 1, 0), (2, 2, OUT, 5, 21, 1, 1),
                 (3, 3, OUT, 0, 99, 1, 1))  # tag 3: out of range
    reqs = split_requests(P, runs)
    cases = {
        (2, 2): None,  # X's last run offered in the abort's cycle: still being received
        (3, 2): 1,  # complete, cannot have started: hit
        (11, 2): 1,  # the last cycle before its earliest start
        (5, 3): None,  # a request with an error is dead
        (5, 7): None,  # unknown tag
        (0, 3): None,  # offered before the request exists
    }
    for (cycle, tag), want in cases.items():
        assert abort_targets(P, reqs, _aborts((cycle, tag))) == [want], (cycle, tag)
    # A second abort of a request already aborted misses; the blocker itself is named, so it no longer bounds X.
    assert abort_targets(P, reqs, _aborts((3, 2), (6, 2))) == [1, None]
    with pytest.raises(AmbiguousAbort, match="may have started"):
        abort_targets(P, reqs, _aborts((12, 2)))
    with pytest.raises(AmbiguousAbort, match="may have started"):  # Y may die, so nothing bounds X's start
        abort_targets(P, reqs, _aborts((2, 1), (4, 2)))


def test_an_older_request_with_the_tag_must_be_provably_gone():
    # queue_depth (2) later requests of its direction took a slot before the abort: the old one has left.
    runs = _runs((0, 1, OUT, 0, 16, 1, 1), (1, 2, OUT, 1, 17, 1, 1), (2, 3, IN, 0, 40, 1, 1),
                 (3, 4, OUT, 2, 18, 4, 1), (4, 1, OUT, 3, 24, 1, 1))
    assert abort_targets(P, split_requests(P, runs), _aborts((6, 1))) == [4]
    with pytest.raises(AmbiguousAbort, match="same tag"):  # only the new tag-1 request took an OUT slot since
        abort_targets(P, split_requests(P, np.delete(runs, [1, 3])), _aborts((6, 1)))


def _model_statuses(runs: np.ndarray, aborts: np.ndarray) -> dict[int, int]:
    trace = [(c, Run(t, d, s, ds, n, bool(last))) for c, t, d, s, ds, n, last in runs.tolist()]
    res = run_kv_swap(P, SimpleMemoryModel(MEM), HostLinkModel(MEM, 0), trace, [tuple(a) for a in aborts.tolist()])
    return {t: e for _, t, e in res.statuses}


@pytest.mark.parametrize("direction", list(SwapDir))
def test_the_earliest_start_is_where_the_model_starts_a_request_behind_a_one_burst_blocker(direction):
    """The reference's lower bound (start, load, burst start, one read a word) is tight: one cycle later the model
    has started the request, so a bound off by one either way fails here."""
    d = int(direction)
    runs = _runs((0, 1, d, 0, 20, 4, 1), (1, 2, d, 10, 28, 1, 1))  # 16 words, one burst
    earliest = 0 + 4 + 16
    assert abort_targets(P, split_requests(P, runs), _aborts((earliest - 1, 2))) == [1]
    assert _model_statuses(runs, _aborts((earliest - 1, 2)))[2] == SwapError.ABORTED
    with pytest.raises(AmbiguousAbort):
        abort_targets(P, split_requests(P, runs), _aborts((earliest, 2)))
    assert _model_statuses(runs, _aborts((earliest, 2)))[2] == SwapError.OK


def test_outcome_writes_in_stream_order_per_direction_and_the_last_write_wins():
    dev = np.arange(64 * 4, dtype=np.uint32) + 1000
    host = np.arange(32 * 4, dtype=np.uint32) + 5000
    runs = _runs((0, 1, OUT, 2, 20, 1, 1),  # dev block 2 -> host block 20
                 (1, 2, IN, 3, 40, 2, 1),  # host blocks 3, 4 -> dev blocks 40, 41
                 (2, 3, OUT, 5, 20, 1, 1),  # dev block 5 -> host block 20 again: the later data wins
                 (3, 4, IN, 0, 50, 0, 1),  # zero count: moves nothing
                 (4, 5, IN, 8, 60, 1, 1))  # aborted below: moves nothing
    o = swap_outcome(P, runs, _aborts((6, 5), (7, 63)), dev, host)
    assert o.statuses == [(1, 0), (2, 0), (3, 0), (4, SwapError.ZERO_COUNT), (5, SwapError.ABORTED)]
    words = np.arange(4)
    assert o.host_writes[0].tolist() == [*(80 + words), *(80 + words)]
    assert o.host_writes[1].tolist() == [*(dev[8 + words]), *(dev[20 + words])]
    assert o.dev_writes[0].tolist() == list(160 + np.arange(8))
    assert o.dev_writes[1].tolist() == list(host[12 + np.arange(8)])
    assert o.host_memory[80:84].tolist() == dev[20:24].tolist()
    assert np.array_equal(np.delete(o.host_memory, np.arange(80, 84)), np.delete(host, np.arange(80, 84)))
    assert o.dev_memory[160:168].tolist() == host[12:20].tolist()
    assert o.dev_memory[240:244].tolist() == dev[240:244].tolist()  # the aborted swap-in's destination
    assert o.bad_aborts == 1


def test_bad_aborts_saturate_at_eight_bits():
    runs = _runs((0, 1, OUT, 0, 20, 1, 1))
    o = swap_outcome(P, runs, _aborts(*[(i, 63) for i in range(300)]), np.zeros(256, np.uint32),
                     np.zeros(128, np.uint32))
    assert o.bad_aborts == 255


def test_a_swap_reading_what_the_other_direction_writes_is_rejected():
    runs = _runs((0, 1, OUT, 40, 20, 1, 1), (1, 2, IN, 3, 40, 1, 1))  # OUT reads dev block 40, IN writes it
    with pytest.raises(ValueError, match="service order"):
        swap_outcome(P, runs, _aborts(), np.zeros(256, np.uint32), np.zeros(128, np.uint32))


# --- the stimulus -----------------------------------------------------------------------------------------------

SMALL = KvSwapParams(block_words=4, max_burst_blocks=4, dev_blocks=256, host_blocks=256, block_bits=8, count_bits=4,
                     dev_addr_bits=10, host_addr_bits=10, queue_depth=3, run_depth=6, outstanding=6, tag_bits=8)


@pytest.mark.parametrize("idle_prob", [0.0, 0.3, 0.6])
def test_random_swap_workload_idles_are_real(idle_prob):
    w = random_swap_workload(SMALL, np.random.default_rng(3), n_requests=1500, abort_fraction=0.0,
                             idle_prob=idle_prob)
    cycles = np.array([c for c, _ in w.runs])
    # One run a cycle at most (the ingest takes one a cycle), idle in the configured fraction of the cycles.
    assert np.all(np.diff(cycles) >= 1)
    assert idle_fraction(cycles) == pytest.approx(idle_prob, abs=0.02)


def _agree_untimed(name: str, a: ex.Result, b: ex.Result) -> dict[str, int]:
    blk = ex.get(name)
    return {t: compare_tables(spec.kind, a.tables[t], b.tables[t], ordered=spec.ordered, timed=False)[1]
            for t, spec in blk.results.items()}


@pytest.mark.parametrize("seed", [1, 2])
def test_standard_stimulus_aborts_are_decided_by_the_contract_under_any_backpressure(seed):
    blk = ex.get("kv_swap")
    params = blk.small_params()
    stim = blk.standard_stimulus(params, seed, 120)
    ref = ex.run("kv_swap", stim, "reference", params)
    errors = np.bincount(ref.tables["statuses"]["error"], minlength=len(SwapError))
    assert np.all(errors > 0), errors  # every status, ABORTED included
    unknown = int(np.count_nonzero(stim["aborts"]["tag"] == (1 << params.tag_bits) - 1))
    assert ref.tables["counters"]["bad_aborts"][0] > unknown  # misses of named requests too
    for bp in (0.0, 0.6, 0.9):
        model = ex.run("kv_swap", stim, "model", params, ex.Stalls(seed, bp))
        assert not any(_agree_untimed("kv_swap", model, ref).values()), bp
