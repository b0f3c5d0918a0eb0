"""Hogwild!'s shared cache: query rotation against dense references, views, commits, footprint, storage types."""

from __future__ import annotations

import numpy as np
import pytest

from sim.core.config import HOGWILD_LAYOUTS, DecoderShape
from sw_stack.hogwild.cache import SharedCache, round_to_storage
from sw_stack.hogwild.rope import rotate_at
from sw_stack.hogwild.traffic import Traffic

HEADS, HEAD_DIM, LAYERS = 4, 16, 2


def _shape(kv_heads: int = 2, layers: int = LAYERS) -> DecoderShape:
    return DecoderShape("tiny", layers=layers, hidden=HEADS * HEAD_DIM, heads=HEADS, kv_heads=kv_heads,
                        head_dim=HEAD_DIM, intermediate=32, vocab=16)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


class Oracle:
    """Raw (unrotated) tokens of every block, by the layouts' rules; dense attention at absolute positions."""

    def __init__(self, shape: DecoderShape, workers: int, layout: str) -> None:
        self.shape, self.workers, self.layout = shape, workers, layout
        self.k = [[[] for _ in range(1 + workers)] for _ in range(shape.layers)]
        self.v = [[[] for _ in range(1 + workers)] for _ in range(shape.layers)]

    def view(self, w: int) -> list[int]:
        others = [] if self.layout == "interleaved" else [1 + (w + i) % self.workers for i in range(1, self.workers)]
        return [0, *others, 1 + w]

    def commit(self, w: int) -> None:
        for layer in range(self.shape.layers):
            for store in (self.k, self.v):
                store[layer][0] += store[layer][1 + w]
                store[layer][1 + w] = []

    def attention(self, layer: int, blocks: list[int], q: np.ndarray, qpos: int) -> np.ndarray:
        """``q`` [heads, hd] at ``qpos`` over the tokens of ``blocks`` up to ``qpos``, head by head."""
        k = np.array([t for b in blocks for t in self.k[layer][b]], np.float64)[:qpos + 1]  # [N, kvh, hd]
        v = np.array([t for b in blocks for t in self.v[layer][b]], np.float64)[:qpos + 1]
        k = rotate_at(k.transpose(1, 0, 2), np.arange(len(k)), self.shape.rope_base)  # [kvh, N, hd]
        q = rotate_at(q.astype(np.float64), qpos, self.shape.rope_base)
        group = self.shape.heads // self.shape.kv_heads
        out = np.empty(q.shape)
        for h in range(self.shape.heads):
            s = k[h // group] @ q[h] / np.sqrt(self.shape.head_dim)
            p = np.exp(s - s.max())
            out[h] = (p / p.sum()) @ v[:, h // group]
        return out


def _drive(cache: SharedCache, oracle: Oracle | None, rng: np.random.Generator, prompt: list[int], steps: int,
           commits: bool, check: bool = True) -> list[float]:
    """Prefill ``prompt`` chunks, then ``steps`` decode steps (worker w commits after step s when (s + w) % 3 == 2);
    returns the relative errors of every attention against the cache's reference and the oracle."""
    shp, W = cache.shape, cache.workers
    kv = (shp.kv_heads, shp.head_dim)
    errors = []
    for n in prompt:
        for layer in range(shp.layers):
            k, v = rng.normal(size=(2, n, *kv))
            q = rng.normal(size=(n, shp.heads, shp.head_dim))
            cache.append_common(layer, k, v)
            out = cache.attend_common(layer, q)
            if oracle is not None:
                oracle.k[layer][0] += list(k)
                oracle.v[layer][0] += list(v)
            if check:
                errors.append(_rel(out, cache.attend_common_reference(layer, q)))
                length = len(oracle.k[layer][0])
                want = [oracle.attention(layer, [0], q[i], length - n + i) for i in range(n)]
                errors.append(_rel(out, np.array(want)))
    for step in range(steps):
        if cache.traffic is not None:
            cache.traffic.next_step()
        for layer in range(shp.layers):
            k, v = rng.normal(size=(2, W, *kv))
            q = rng.normal(size=(W, shp.heads, shp.head_dim))
            cache.append(layer, k, v)
            out = cache.attend(layer, q)
            if oracle is not None:
                for w in range(W):
                    oracle.k[layer][1 + w].append(k[w])
                    oracle.v[layer][1 + w].append(v[w])
            if check:
                errors.append(_rel(out, cache.attend_reference(layer, q)))
                want = []
                for w in range(W):
                    blocks = oracle.view(w)
                    qpos = sum(len(oracle.k[layer][b]) for b in blocks) - 1
                    want.append(oracle.attention(layer, blocks, q[w], qpos))
                errors.append(_rel(out, np.array(want)))
        if commits:
            for w in range(W):
                if (step + w) % 3 == 2:
                    moved = cache.commit(w)
                    if oracle is not None:
                        assert moved == len(oracle.k[0][1 + w])
                        oracle.commit(w)
    return errors


@pytest.mark.parametrize("kv_heads", [2, 4], ids=["gqa", "mha"])
@pytest.mark.parametrize("layout", HOGWILD_LAYOUTS)
@pytest.mark.parametrize("workers", [1, 2, 4, 8])
def test_query_rotation_matches_dense_references(workers: int, layout: str, kv_heads: int):
    """Invariant (a): block/query-rotation attention == the dense un-rotate/re-rotate reference, and == an
    independent oracle built from the raw tokens (which also checks the views, starts and commits)."""
    shape = _shape(kv_heads)
    cache = SharedCache(shape, workers, layout)
    oracle = Oracle(shape, workers, layout)
    errors = _drive(cache, oracle, np.random.default_rng(workers), [4, 3], 6, commits=layout != "contiguous")
    assert max(errors) < 1e-5
    if layout != "contiguous":  # the schedule did commit
        assert cache.lengths()[0] > 7


@pytest.mark.parametrize("layout", ["interleaved", "combined"])
def test_commit_equals_appending_at_final_positions(layout: str):
    """A commit re-rotates keys once to their common offset: the cache then matches one built by a prefill of
    the same tokens at their final positions."""
    shape, rng = _shape(), np.random.default_rng(7)
    kv = (2, shape.kv_heads, shape.head_dim)
    prompt = rng.normal(size=(LAYERS, *kv[:1], 5, *kv[1:]))  # [layer, K/V, n, kvh, hd]
    steps = rng.normal(size=(LAYERS, 3, *kv[:1], 2, *kv[1:]))  # [layer, step, K/V, worker, kvh, hd]
    a = SharedCache(shape, 2, layout)
    for layer in range(LAYERS):
        a.append_common(layer, *prompt[layer])
    for step in range(3):
        for layer in range(LAYERS):
            a.append(layer, *steps[layer, step])
    assert a.commit(1) == 3 and a.commit(0) == 3
    b = SharedCache(shape, 2, layout)
    for layer in range(LAYERS):  # common = prompt, worker 1's tokens, worker 0's tokens
        k, v = (np.concatenate([prompt[layer, i], steps[layer, :, i, 1], steps[layer, :, i, 0]]) for i in (0, 1))
        b.append_common(layer, k, v)
    assert a.lengths() == b.lengths() == [11, 0, 0]
    for layer in range(LAYERS):
        (ka, va), (kb, vb) = a.block_kv(layer, 0), b.block_kv(layer, 0)
        assert _rel(ka, kb) < 1e-6 and np.array_equal(va, vb)
        new = rng.normal(size=(2, 2, shape.kv_heads, shape.head_dim))
        q = rng.normal(size=(2, shape.heads, shape.head_dim))
        a.append(layer, *new)
        b.append(layer, *new)
        assert _rel(a.attend(layer, q), b.attend(layer, q)) < 1e-5


def _fill(cache: SharedCache, prompt: int, steps: int) -> None:
    shp = cache.shape
    for layer in range(shp.layers):
        cache.append_common(layer, np.zeros((prompt, shp.kv_heads, shp.head_dim)),
                            np.zeros((prompt, shp.kv_heads, shp.head_dim)))
    for _ in range(steps):
        for layer in range(shp.layers):
            cache.append(layer, np.zeros((cache.workers, shp.kv_heads, shp.head_dim)),
                         np.zeros((cache.workers, shp.kv_heads, shp.head_dim)))


@pytest.mark.parametrize("layout, views, lengths, starts, positions", [
    ("contiguous", [[0, 2, 3, 1], [0, 3, 1, 2], [0, 1, 2, 3]], [5, 3, 3, 3], [[0, 5, 8, 11]] * 3, [13, 13, 13]),
    ("interleaved", [[0, 1], [0, 2], [0, 3]], [7, 3, 1, 3], [[0, 7]] * 3, [9, 7, 9]),
    ("combined", [[0, 2, 3, 1], [0, 3, 1, 2], [0, 1, 2, 3]], [7, 3, 1, 3],
     [[0, 7, 8, 11], [0, 7, 10, 13], [0, 7, 10, 11]], [13, 13, 13]),
])
def test_views_and_starts_of_three_workers(layout, views, lengths, starts, positions):
    """Prompt 5, two steps, worker 1 commits (not in contiguous), one more step."""
    cache = SharedCache(_shape(), 3, layout, tensors=False)
    _fill(cache, 5, 2)
    if layout != "contiguous":
        assert cache.commit(1) == 2
    _fill(cache, 0, 1)
    assert [cache.view(w) for w in range(3)] == views
    assert cache.lengths() == lengths
    assert [cache.starts(w) for w in range(3)] == starts
    assert [cache.position(w) for w in range(3)] == positions


def test_contiguous_has_no_commits_and_commits_need_a_step_boundary():
    cache = SharedCache(_shape(), 2, "contiguous", tensors=False)
    _fill(cache, 3, 1)
    with pytest.raises(ValueError, match="no commits"):
        cache.commit(0)
    cache = SharedCache(_shape(), 2, "combined", tensors=False)
    _fill(cache, 3, 1)
    cache.append(0, np.zeros((2, 2, HEAD_DIM)), np.zeros((2, 2, HEAD_DIM)))  # layer 0 only: mid-step
    with pytest.raises(ValueError, match="middle of a step"):
        cache.commit(0)


def test_bad_calls_are_refused():
    cache = SharedCache(_shape(), 2, "combined")
    with pytest.raises(ValueError, match="shape"):
        cache.append(0, np.zeros((3, 2, HEAD_DIM)), np.zeros((3, 2, HEAD_DIM)))
    with pytest.raises(ValueError, match="before append"):
        cache.attend(0, np.zeros((2, HEADS, HEAD_DIM)))
    with pytest.raises(ValueError, match="layout"):
        SharedCache(_shape(), 2, "paged")


@pytest.mark.parametrize("layout", HOGWILD_LAYOUTS)
def test_shared_footprint_is_below_private_caches(layout: str):
    """W=4 workers sharing the prompt hold fewer bytes than four W=1 caches each holding prompt + own tokens."""
    shape = _shape(layers=4)
    shared = SharedCache(shape, 4, layout, "fp16", tensors=False)
    _fill(shared, 100, 30)
    if layout != "contiguous":
        for w in range(4):
            shared.commit(w)  # moves, the footprint stays
    private = []
    for _ in range(4):
        private.append(SharedCache(shape, 1, layout, "fp16", tensors=False))
        _fill(private[-1], 100, 30)
    per_token = shape.kv_bytes_per_token(2)
    assert shared.kv_bytes_per_token == per_token
    assert shared.footprint_bytes() == (100 + 4 * 30) * per_token
    assert sum(p.footprint_bytes() for p in private) == 4 * (100 + 30) * per_token > shared.footprint_bytes()


@pytest.mark.parametrize("layout", HOGWILD_LAYOUTS)
def test_without_tensors_the_bookkeeping_and_traffic_are_the_same(layout: str):
    runs = []
    for tensors in (True, False):
        cache = SharedCache(_shape(), 3, layout, "bf16", tensors=tensors, traffic=Traffic())
        _drive(cache, None, np.random.default_rng(3), [4, 2], 5, commits=layout != "contiguous", check=False)
        runs.append((cache.lengths(), [cache.starts(w) for w in range(3)], cache.footprint_bytes(),
                     cache.traffic.table()))
    (lengths, starts, footprint, table), (lengths2, starts2, footprint2, table2) = runs
    assert (lengths, starts, footprint) == (lengths2, starts2, footprint2)
    assert len(table) > 0 and table.dtype == table2.dtype and np.array_equal(table, table2)


@pytest.mark.parametrize("storage", ["fp16", "bf16"])
def test_stored_values_are_representable_in_the_storage_type(storage: str):
    cache = SharedCache(_shape(), 2, "combined", storage)
    _drive(cache, None, np.random.default_rng(5), [6], 4, commits=True, check=False)
    assert cache.lengths()[0] > 6  # a commit re-rotated keys into common
    for layer in range(LAYERS):
        for block in range(3):
            for x in cache.block_kv(layer, block):
                if storage == "fp16":
                    assert np.array_equal(x, x.astype(np.float16).astype(np.float32))
                else:
                    assert not np.any(x.view(np.uint32) & 0xFFFF)


def test_bf16_rounds_to_nearest_even_and_fp16_like_numpy():
    one = np.float32(1)
    x = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, -(1 + 3 * 2 ** -8), 3.4e38, np.nan, 0.0],
                 np.float32)
    got = round_to_storage(x, "bf16")
    want = [one, 1 + 2 ** -6, 1 + 2 ** -7, -(1 + 2 ** -6), np.inf]
    assert np.array_equal(got[:5], np.array(want, np.float32))
    assert np.isnan(got[5]) and got[6] == 0
    y = np.random.default_rng(0).normal(size=100).astype(np.float32) * 1e3
    assert np.array_equal(round_to_storage(y, "fp16"), y.astype(np.float16).astype(np.float32))
    assert round_to_storage(np.float32(1e6), "fp16") == np.inf
