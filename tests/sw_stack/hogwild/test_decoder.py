from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tiny_checkpoint import TINY_SHAPE

from sim.core.config import STORAGE_DTYPES, DecoderShape
from sw_stack.hogwild import rope
from sw_stack.hogwild.decoder import SMALL_BATCH, Decoder, _linear, random_weights, round_to_storage


class DenseCache:
    """A plain KV cache per worker, at absolute positions: the common prompt, then the worker's own tokens. Workers
    do not see each other, so a batched step must equal W separate single-worker runs. Written independently of the
    decoder's own attention (einsum, repeated KV heads)."""

    def __init__(self, shape: DecoderShape, workers: int = 1) -> None:
        self.shape, self.workers = shape, workers
        empty = np.zeros((0, shape.kv_heads, shape.head_dim), np.float32)
        self.ck = [empty] * shape.layers
        self.cv = [empty] * shape.layers
        self.k = [[empty] * workers for _ in range(shape.layers)]
        self.v = [[empty] * workers for _ in range(shape.layers)]

    def _rot(self, x: np.ndarray, positions: np.ndarray) -> np.ndarray:
        cos, sin = rope.cos_sin(positions, self.shape.head_dim, self.shape.rope_base)
        return rope.rotate(x, cos[:, None], sin[:, None])

    def _attend(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, visible: np.ndarray) -> np.ndarray:
        group = self.shape.heads // self.shape.kv_heads
        k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
        s = np.einsum("nhd,thd->hnt", q, k) / np.sqrt(self.shape.head_dim)
        s = np.where(visible, s, -np.inf)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        return np.einsum("hnt,thd->nhd", p, v).astype(np.float32)

    def append_common(self, layer: int, k: np.ndarray, v: np.ndarray) -> None:
        pos = len(self.ck[layer]) + np.arange(len(k))
        self.ck[layer] = np.concatenate([self.ck[layer], self._rot(k, pos)])
        self.cv[layer] = np.concatenate([self.cv[layer], v])

    def attend_common(self, layer: int, q: np.ndarray) -> np.ndarray:
        total = len(self.ck[layer])
        pos = total - len(q) + np.arange(len(q))
        visible = np.arange(total)[None, :] <= pos[:, None]
        return self._attend(self._rot(q, pos), self.ck[layer], self.cv[layer], visible)

    def append(self, layer: int, k: np.ndarray, v: np.ndarray) -> None:
        for w in range(self.workers):
            pos = np.array([len(self.ck[layer]) + len(self.k[layer][w])])
            self.k[layer][w] = np.concatenate([self.k[layer][w], self._rot(k[w:w + 1], pos)])
            self.v[layer][w] = np.concatenate([self.v[layer][w], v[w:w + 1]])

    def attend(self, layer: int, q: np.ndarray) -> np.ndarray:
        out = []
        for w in range(self.workers):
            k = np.concatenate([self.ck[layer], self.k[layer][w]])
            v = np.concatenate([self.cv[layer], self.v[layer][w]])
            qw = self._rot(q[w:w + 1], np.array([len(k) - 1]))
            out.append(self._attend(qw, k, v, np.ones((1, len(k)), bool)))
        return np.concatenate(out)


def _close(got: np.ndarray, ref: np.ndarray, rel: float = 1e-4) -> None:
    np.testing.assert_allclose(got, ref, rtol=rel, atol=rel * np.abs(ref).max())


def _shape(**changes) -> DecoderShape:
    return dataclasses.replace(TINY_SHAPE, **changes)


@pytest.mark.parametrize("kv_heads", [4, 2, 1], ids=["mha", "gqa", "mqa"])
@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "qkvbias"])
def test_cache_path_reproduces_forward_sequence(kv_heads: int, tied: bool, bias: bool) -> None:
    """W = 1: prefill then one step per token gives forward_sequence's logits at every position."""
    shape = _shape(kv_heads=kv_heads, tie_embeddings=tied, qkv_bias=bias)
    dec = Decoder(shape, random_weights(shape, 7))
    tokens = np.random.default_rng(0).integers(0, shape.vocab, 20)
    ref = dec.forward_sequence(tokens)
    cache = DenseCache(shape)
    _close(dec.prefill(tokens[:8], cache), ref[7])
    for i in range(8, len(tokens)):
        _close(dec.step(tokens[i:i + 1], cache)[0], ref[i])


def test_chunked_prefill_matches_one_pass() -> None:
    shape = _shape(qkv_bias=True)
    dec = Decoder(shape, random_weights(shape, 1))
    tokens = np.random.default_rng(1).integers(0, shape.vocab, 13)
    ref = dec.forward_sequence(tokens)
    whole, chunked = DenseCache(shape), DenseCache(shape)
    _close(dec.prefill(tokens, whole), ref[-1])
    _close(dec.prefill(tokens, chunked, chunk=4), ref[-1])
    nxt = np.array([5])
    _close(dec.step(nxt, chunked)[0], dec.step(nxt, whole)[0])


def test_batched_step_keeps_workers_apart() -> None:
    """One batched step over W workers: identical inputs give identical rows; different inputs give, row by row,
    what each worker alone would get."""
    shape, W = _shape(), 5  # the kernel's block of four rows and a tail
    dec = Decoder(shape, random_weights(shape, 2))
    rng = np.random.default_rng(2)
    prompt, own = rng.integers(0, shape.vocab, 6), rng.integers(0, shape.vocab, (3, W))
    same = DenseCache(shape, W)
    dec.prefill(prompt, same)
    for t in own[:, 0]:
        rows = dec.step(np.full(W, t), same)
    assert rows.shape == (W, shape.vocab)
    for w in range(1, W):
        np.testing.assert_allclose(rows[w], rows[0], rtol=1e-6, atol=1e-6)
    batched = DenseCache(shape, W)
    dec.prefill(prompt, batched)
    for t in own:
        rows = dec.step(t, batched)
    for w in range(W):
        alone = DenseCache(shape, 1)
        dec.prefill(prompt, alone)
        for t in own[:, w]:
            row = dec.step(np.array([t]), alone)[0]
        _close(rows[w], row, 1e-5)


@pytest.mark.parametrize("rows", [1, 3, 4, 6, 9, SMALL_BATCH, SMALL_BATCH + 1])
def test_linear_matches_float64_on_both_paths(rows: int) -> None:
    """``x @ w.T``: the small-batch kernel (blocks of four rows, then a tail) and BLAS beyond SMALL_BATCH rows."""
    rng = np.random.default_rng(rows)
    x, w = rng.standard_normal((rows, 70), dtype=np.float32), rng.standard_normal((33, 70), dtype=np.float32)
    got = _linear(x, w)
    assert got.shape == (rows, 33) and got.dtype == np.float32
    _close(got, x.astype(np.float64) @ w.T.astype(np.float64), 1e-5)


def test_bf16_rounds_to_nearest_even() -> None:
    one = 1.0
    cases = {one + 2**-8: one, one + 3 * 2**-8: one + 2**-6, one + 2**-8 + 2**-20: one + 2**-7,
             -(one + 2**-8 + 2**-20): -(one + 2**-7), 3.4e38: np.inf, 2.0**-130: 2.0**-130}
    got = round_to_storage(np.array(list(cases), np.float32), "bf16")
    np.testing.assert_array_equal(got, np.array(list(cases.values()), np.float32))
    assert np.isnan(round_to_storage(np.array([np.nan], np.float32), "bf16")).all()
    x = np.random.default_rng(3).standard_normal(10000).astype(np.float32)
    r = round_to_storage(x, "bf16")
    assert r.dtype == np.float32 and not (r.view(np.uint32) & 0xFFFF).any()
    assert (np.abs(r - x) <= np.abs(x) * 2.0**-8).all()


@pytest.mark.parametrize("storage", ["fp16", "bf16"])
def test_storage_weights_are_representable(storage: str) -> None:
    shape = _shape(qkv_bias=True)
    w32, w = random_weights(shape, 4), random_weights(shape, 4, storage)
    for (name, a), (_, b) in zip(w.arrays(), w32.arrays(), strict=True):
        assert a.dtype == np.float32, name
        if storage == "fp16":
            np.testing.assert_array_equal(a.astype(np.float16).astype(np.float32), a)
        else:
            assert not (a.view(np.uint32) & 0xFFFF).any(), name
        np.testing.assert_array_equal(a, round_to_storage(b, storage))
        assert not np.array_equal(a, b), name  # the rounding did something


def test_random_weights_are_deterministic() -> None:
    shape = _shape(qkv_bias=True)
    a, b, c = random_weights(shape, 5), random_weights(shape, 5), random_weights(shape, 6)
    for (name, x), (_, y), (_, z) in zip(a.arrays(), b.arrays(), c.arrays(), strict=True):
        np.testing.assert_array_equal(x, y, err_msg=name)
        assert not np.array_equal(x, z), name


def test_activations_stay_order_one_when_deep() -> None:
    shape = _shape(layers=48, hidden=32, heads=2, kv_heads=1, intermediate=64)
    dec = Decoder(shape, random_weights(shape, 8))
    tokens = np.arange(16)
    rms = np.sqrt((dec._hidden_sequence(tokens) ** 2).mean())
    assert 0.3 < rms < 3, rms
    assert 0.3 < dec.forward_sequence(tokens).std() < 3


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_weight_bytes_counts_every_weight_once(tied: bool, bias: bool) -> None:
    shape = _shape(tie_embeddings=tied, qkv_bias=bias)
    dec = Decoder(shape, random_weights(shape, 0))
    for storage, size in STORAGE_DTYPES.items():
        assert dec.weight_bytes(storage) == shape.params() * size
        embed = 0 if tied else shape.vocab * shape.hidden * size
        assert dec.step_bytes(storage) == dec.weight_bytes(storage) - embed


def test_bad_inputs_are_refused() -> None:
    shape = _shape()
    dec = Decoder(shape, random_weights(shape, 0))
    with pytest.raises(ValueError, match="one token per worker"):
        dec.step(np.array([1, 2]), DenseCache(shape, 3))
    with pytest.raises(ValueError, match=r"0\.\.319, got 320"):
        dec.forward_sequence(np.array([1, shape.vocab]))
    with pytest.raises(ValueError, match="integer token ids"):
        dec.prefill(np.array([1.0]), DenseCache(shape))
    with pytest.raises(ValueError, match=r"layers\.0\.bqkv: missing"):
        Decoder(_shape(qkv_bias=True), random_weights(shape, 0))
    with pytest.raises(ValueError, match="head: not part"):
        Decoder(_shape(tie_embeddings=True), random_weights(shape, 0))
    with pytest.raises(ValueError, match=r"layers\.0\.wqkv: expected float32 \(96, 48\)"):
        Decoder(_shape(kv_heads=1), random_weights(shape, 0))


def test_swiglu_saturates_without_warnings() -> None:
    """A very negative gate (exp overflow) gives silu = -0, not a warning (warnings are errors here) or NaN."""
    shape = _shape()
    weights = random_weights(shape, 0)
    weights.layers[0].w_gate_up *= 1e4
    out = Decoder(shape, weights).forward_sequence(np.arange(4))
    assert np.isfinite(out).all()
