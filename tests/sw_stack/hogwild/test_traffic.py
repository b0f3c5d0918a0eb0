"""The ``hogwild_traffic`` trace kind: the rows a shared cache records, per-step sums, rotation costs."""

from __future__ import annotations

import numpy as np
import pytest

from sim.core import trace
from sim.core.config import DecoderShape
from sw_stack.hogwild.cache import SharedCache
from sw_stack.hogwild.traffic import NO_WORKER, TRAFFIC_DTYPE, TRAFFIC_KIND, Rec, Traffic, rotation_costs, summarise

SHAPE = DecoderShape("tiny", layers=2, hidden=16, heads=4, kv_heads=2, head_dim=4, intermediate=8, vocab=8)
TOKEN = 2 * 8 * 2  # K and V of one token in one layer: kv_dim 8, fp16
NW = NO_WORKER


def _run(traffic: Traffic) -> SharedCache:
    """Combined, 2 workers: prefill 3 tokens (step 0); step 1, then worker 0 commits; step 2."""
    cache = SharedCache(SHAPE, 2, "combined", "fp16", traffic=traffic)
    rng = np.random.default_rng(0)
    for layer in range(2):
        cache.append_common(layer, rng.normal(size=(3, 2, 4)), rng.normal(size=(3, 2, 4)))
        cache.attend_common(layer, rng.normal(size=(3, 4, 4)))
    for step in (1, 2):
        traffic.next_step()
        for layer in range(2):
            cache.append(layer, rng.normal(size=(2, 2, 4)), rng.normal(size=(2, 2, 4)))
            cache.attend(layer, rng.normal(size=(2, 4, 4)))
        if step == 1:
            cache.commit(0)
    return cache


def _expected() -> list[tuple[int, ...]]:
    """(step, layer, worker, kind, block, offset, tokens, bytes) of `_run`, written out."""
    R = Rec
    rows = []
    for layer in range(2):
        rows += [(0, layer, NW, R.COMMON_WRITE, 0, 0, 3, 3 * TOKEN), (0, layer, NW, R.KV_READ, 0, 0, 3, 3 * TOKEN),
                 (0, layer, NW, R.QUERY_ROTATE, 0, 0, 12, 0)]
    # step 1: lengths [3, 1, 1]; views w0 [0, 2, 1] and w1 [0, 1, 2], both with lengths [3, 1, 1], starts
    # [0, 3, 4], P = 4; then worker 0 commits to common offset 3
    # step 2: lengths [4, 1, 2]; w0 view [0, 2, 1] lengths [4, 2, 1] starts [0, 4, 6]; w1 [0, 1, 2] [4, 1, 2]
    # starts [0, 4, 5]; P = 6 for both
    steps = {1: ((0, 0), ((0, (0, 2, 1), (0, 3, 4), (3, 1, 1)), (1, (0, 1, 2), (0, 3, 4), (3, 1, 1))), 4),
             2: ((0, 1), ((0, (0, 2, 1), (0, 4, 6), (4, 2, 1)), (1, (0, 1, 2), (0, 4, 5), (4, 1, 2))), 6)}
    for step, (written, reads, pos) in steps.items():
        for layer in range(2):
            rows += [(step, layer, w, R.KV_WRITE, 1 + w, written[w], 1, TOKEN) for w in (0, 1)]
            for w, view, starts, lens in reads:
                rows += [(step, layer, w, R.KV_READ, view[i], starts[i], lens[i], lens[i] * TOKEN) for i in range(3)]
            for w, view, starts, _ in reads:
                rows += [(step, layer, w, R.QUERY_ROTATE, view[i], pos - starts[i], 4, 0) for i in range(3)]
        if step == 1:
            rows += [(1, layer, 0, R.COMMIT_MOVE, 1, 3, 1, TOKEN) for layer in range(2)]
    return rows


def test_rows_of_a_small_run():
    traffic = Traffic()
    _run(traffic)
    table = traffic.table()
    assert table.dtype == TRAFFIC_DTYPE and len(traffic) == len(table)
    assert [tuple(int(x) for x in row) for row in table.tolist()] == [tuple(map(int, r)) for r in _expected()]


def test_kind_is_registered_and_a_trace_round_trips(tmp_path):
    traffic = Traffic()
    _run(traffic)
    assert trace.TABLE_KINDS[TRAFFIC_KIND] == TRAFFIC_DTYPE
    assert [TRAFFIC_DTYPE[n].str for n in TRAFFIC_DTYPE.names] == ["<u4", "<u2", "<u2", "|u1", "<u2", "<u4", "<u4",
                                                                   "<u8"]
    t = trace.Trace(clock_hz=1.0, producer="sw_stack.hogwild.cache")
    t.add("traffic", TRAFFIC_KIND, traffic.table())
    back = trace.read(trace.write(t, tmp_path / "hogwild.npz"))
    assert np.array_equal(back["traffic"], traffic.table())


def test_per_step_sums_and_folding_agree():
    """Folding rows into per-step sums (keep_rows=False, tiny chunks) gives the sums of the kept table."""
    kept, folded = Traffic(), Traffic(keep_rows=False, chunk=5)
    _run(kept)
    _run(folded)
    steps = kept.per_step()
    assert np.array_equal(steps, summarise(kept.table()))
    assert np.array_equal(folded.per_step(), steps) and len(folded) == len(kept)
    assert kept.bytes_by_kind() == folded.bytes_by_kind() == {
        "kv_read": 2 * (3 + 2 * 5 + 2 * 7) * TOKEN, "kv_write": 8 * TOKEN, "commit_move": 2 * TOKEN,
        "query_rotate": 0, "common_write": 6 * TOKEN}
    assert list(steps["kv_write_tokens"]) == [0, 4, 4]
    assert list(steps["rerotate_tokens"]) == [0, 8, 12] and list(steps["decode_attends"]) == [0, 4, 4]
    with pytest.raises(RuntimeError):
        folded.table()


def test_rotation_costs_by_hand():
    """heads 4, head_dim 4, kv_dim 8, fp16; 3 FLOPs per rotated element."""
    traffic = Traffic()
    _run(traffic)
    costs = rotation_costs(traffic.per_step(), SHAPE, "fp16")
    # step 0: prefill, 2 layers x 3 queries x 4 heads rotated once in both schemes
    # step 1: 2 layers x 2 workers x 3 blocks x 4 heads = 48 query heads, + 2 committed keys (1 per layer);
    #   naive: 4 attends x 4 heads, 8 keys re-rotated (the 2 one-token blocks after common, per worker and layer)
    # step 2: 48 query heads; naive: 4 attends, 12 keys (blocks of 2 + 1 tokens after common)
    assert list(costs["query_flops"]) == [3 * 24 * 4, 3 * (48 * 4 + 2 * 8), 3 * 48 * 4]
    assert list(costs["naive_flops"]) == [3 * 24 * 4, 3 * (16 * 4 + 8 * 8), 3 * (16 * 4 + 12 * 8)]
    assert list(costs["naive_bytes"]) == [0, 2 * 8 * 8 * 2, 2 * 12 * 8 * 2]
    assert list(costs["rerotated_keys"]) == [0, 8, 12]


def test_buffers_grow_without_losing_rows():
    traffic = Traffic()
    for i in range(10):
        traffic.add(Rec.KV_READ, i % 3, np.arange(1000) % 7, 1, np.arange(1000), i, 5)
        traffic.next_step()
    table = traffic.table()
    assert len(table) == 10_000 and np.array_equal(table["offset"], np.tile(np.arange(1000), 10))
    assert np.array_equal(table["step"], np.repeat(np.arange(10), 1000))
    assert np.array_equal(table["tokens"], np.repeat(np.arange(10), 1000))
