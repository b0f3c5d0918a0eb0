"""A Llama/Qwen2-style decoder in numpy (fp32 compute), driven through Hogwild!'s shared cache.

RMSNorm, grouped-query attention, SwiGLU MLP (``down(silu(gate(x)) * up(x))``), a tied or untied output head and,
for Qwen2 (``shape.qkv_bias``), biases on the q, k and v projections. Weights are C-contiguous float32 matrices in
Hugging Face's Linear layout ``[out, in]`` (``y = x @ W.T``), with q/k/v and gate/up fused into one matrix each, so a
decode step costs one product per projection for all W workers together. ``storage`` rounds the values to fp16 or
bf16 ("fp32 compute with fp16/bf16 storage") but keeps float32 arrays.

A decode step is bound by reading every weight once. BLAS's sgemm with a handful of rows packs the weight matrix
and reaches well under half the memory bandwidth, so products of up to `SMALL_BATCH` rows use a compiled kernel
that streams each weight row once and takes its dot products with every input row (`_rows_by_weight`); prefill
products (many rows) use BLAS.

On the cache path (`Decoder.prefill`, `Decoder.step`) the decoder never applies RoPE: it hands unrotated q, k and v
to the cache (the ``AttentionCache`` protocol below), which rotates them at its block-local positions.
`Decoder.forward_sequence` is the plain reference: one sequence, its own causal attention, RoPE at absolute
positions, no cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numba
import numpy as np

from sim.core.config import STORAGE_DTYPES, DecoderShape
from sw_stack.hogwild import rope


class AttentionCache(Protocol):
    """The decoder <-> cache interface. All arrays float32; the decoder passes fresh arrays the cache may keep."""

    workers: int

    def append_common(self, layer: int, k: np.ndarray, v: np.ndarray) -> None:
        """Prefill: k, v ``[n, kv_heads, head_dim]``, not rotated: n prompt tokens appended to the common block."""

    def attend_common(self, layer: int, q: np.ndarray) -> np.ndarray:
        """Prefill: q ``[n, heads, head_dim]`` (not rotated) of the n tokens just appended -> ``[n, heads,
        head_dim]``: causal attention of each over the common block up to and including itself."""

    def append(self, layer: int, k: np.ndarray, v: np.ndarray) -> None:
        """Decode: k, v ``[W, kv_heads, head_dim]``, not rotated: worker w's new token appended to its own block."""

    def attend(self, layer: int, q: np.ndarray) -> np.ndarray:
        """Decode: q ``[W, heads, head_dim]`` (not rotated) -> ``[W, heads, head_dim]``: softmax(q.K^T /
        sqrt(head_dim)).V over worker w's whole view (its new token included); query head h uses KV head
        ``h // (heads // kv_heads)``."""


@dataclass
class LayerWeights:
    """One decoder layer: C-contiguous float32, matrices ``[out, in]``."""

    attn_norm: np.ndarray  # [hidden]
    wqkv: np.ndarray  # [q_dim + 2 kv_dim, hidden]: the q, k and v projections stacked
    bqkv: np.ndarray | None  # [q_dim + 2 kv_dim] (Qwen2), or None
    wo: np.ndarray  # [hidden, q_dim]
    mlp_norm: np.ndarray  # [hidden]
    w_gate_up: np.ndarray  # [2 intermediate, hidden]: gate, then up
    w_down: np.ndarray  # [hidden, intermediate]


@dataclass
class Weights:
    """Every weight of a decoder. ``head`` is None when the output head is tied to ``embed`` (logits ``x @
    embed.T``)."""

    embed: np.ndarray  # [vocab, hidden]
    layers: list[LayerWeights]
    norm: np.ndarray  # [hidden]
    head: np.ndarray | None  # [vocab, hidden], or None (tied)

    def arrays(self) -> Iterator[tuple[str, np.ndarray]]:
        """Every array once, by a dotted name (a tied head is not repeated)."""
        yield "embed", self.embed
        for i, layer in enumerate(self.layers):
            for name in ("attn_norm", "wqkv", "bqkv", "wo", "mlp_norm", "w_gate_up", "w_down"):
                a = getattr(layer, name)
                if a is not None:
                    yield f"layers.{i}.{name}", a
        yield "norm", self.norm
        if self.head is not None:
            yield "head", self.head

    def expected(self, shape: DecoderShape) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every array `shape` calls for."""
        h, qkv = shape.hidden, shape.q_dim + 2 * shape.kv_dim
        out: dict[str, tuple[int, ...]] = {"embed": (shape.vocab, h)}
        for i in range(shape.layers):
            p = f"layers.{i}."
            out |= {p + "attn_norm": (h,), p + "wqkv": (qkv, h)}
            if shape.qkv_bias:
                out[p + "bqkv"] = (qkv,)
            out |= {p + "wo": (h, shape.q_dim), p + "mlp_norm": (h,), p + "w_gate_up": (2 * shape.intermediate, h),
                    p + "w_down": (h, shape.intermediate)}
        out["norm"] = (h,)
        if not shape.tie_embeddings:
            out["head"] = (shape.vocab, h)
        return out

    def check(self, shape: DecoderShape) -> None:
        """Raise ValueError naming the first array that is missing, extra, of the wrong shape, not float32 or not
        C-contiguous."""
        want = self.expected(shape)
        have = dict(self.arrays())
        for name, dims in want.items():
            if name not in have:
                raise ValueError(f"weights: {name}: missing; expected a float32 array of shape {dims}")
            a = have[name]
            if a.shape != dims or a.dtype != np.float32:
                raise ValueError(f"weights: {name}: expected float32 {dims}, got {a.dtype} {a.shape}")
            if not a.flags.c_contiguous:
                raise ValueError(f"weights: {name}: expected a C-contiguous array (np.ascontiguousarray)")
        for name in have:
            if name not in want:
                raise ValueError(f"weights: {name}: not part of shape {shape.name!r} (tied head or qkv bias?)")


def round_to_storage(a: np.ndarray, storage: str) -> np.ndarray:
    """``a`` (float32) rounded to the nearest ``storage`` value (round to nearest even), returned as float32.

    bf16 is emulated on the float32 bits: keep the top 16, rounding on the bottom 16 (NaN stays NaN).
    """
    if storage not in STORAGE_DTYPES:
        raise ValueError(f"unknown storage {storage!r}; expected one of {', '.join(STORAGE_DTYPES)}")
    a = np.asarray(a, dtype=np.float32)
    if storage == "fp32":
        return a.copy()
    if storage == "fp16":
        with np.errstate(over="ignore"):  # beyond fp16's range: inf, as the cast of a real fp16 store
            return a.astype(np.float16).astype(np.float32)
    bits = a.view(np.uint32)
    rounded = (bits + (np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1)))) & np.uint32(0xFFFF0000)
    out = rounded.view(np.float32)
    return np.where(np.isnan(a), a, out)


def random_weights(shape: DecoderShape, seed: int, storage: str = "fp32") -> Weights:
    """Seeded random weights, rounded to ``storage`` (``fp32``, ``fp16``, ``bf16``), held as float32.

    Matrices are normal / sqrt(fan_in); the embedding too (so a tied head gives O(1) logits); the two projections
    that write into the residual stream (o, down) are further scaled by 1/sqrt(2 layers) so the residual stays O(1)
    however deep the model. Norm weights are 1 + 0.1 normal, q/k/v biases 0.1 normal (not trivial, so a test sees
    them). The same seed and shape give the same weights.
    """
    if storage not in STORAGE_DTYPES:
        raise ValueError(f"unknown storage {storage!r}; expected one of {', '.join(STORAGE_DTYPES)}")
    rng = np.random.default_rng(seed)
    h, inter = shape.hidden, shape.intermediate
    qkv = shape.q_dim + 2 * shape.kv_dim
    resid = 1.0 / np.sqrt(2 * shape.layers)

    def normal(dims: tuple[int, ...], scale: float) -> np.ndarray:
        a = rng.standard_normal(dims, dtype=np.float32)
        a *= np.float32(scale)
        return round_to_storage(a, storage) if storage != "fp32" else a

    def norm_weight() -> np.ndarray:
        return round_to_storage(1 + 0.1 * rng.standard_normal(h, dtype=np.float32), storage)

    embed = normal((shape.vocab, h), 1 / np.sqrt(h))
    layers = []
    for _ in range(shape.layers):
        layers.append(LayerWeights(
            attn_norm=norm_weight(),
            wqkv=normal((qkv, h), 1 / np.sqrt(h)),
            bqkv=normal((qkv,), 0.1) if shape.qkv_bias else None,
            wo=normal((h, shape.q_dim), resid / np.sqrt(shape.q_dim)),
            mlp_norm=norm_weight(),
            w_gate_up=normal((2 * inter, h), 1 / np.sqrt(h)),
            w_down=normal((h, inter), resid / np.sqrt(inter)),
        ))
    norm = norm_weight()
    head = None if shape.tie_embeddings else normal((shape.vocab, h), 1 / np.sqrt(h))
    return Weights(embed, layers, norm, head)


SMALL_BATCH = 16  # products of up to this many rows use `_rows_by_weight`, larger ones BLAS


@numba.njit(cache=True, fastmath=True, parallel=True)
def _rows_by_weight(x: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    """``out = x @ w.T`` for few rows: each row of ``w`` is read once from memory and dotted with every row of
    ``x`` (which stays in cache); the rows of ``w`` are shared among the cores. Each output is one thread's
    sequential sum, so the result does not depend on the number of threads. x ``[m, k]``, w ``[n, k]``, out
    ``[m, n]``, all C-contiguous float32."""
    m_rows, k_len = x.shape
    for n in numba.prange(w.shape[0]):
        for m in range(m_rows):
            acc = np.float32(0)
            for k in range(k_len):
                acc += w[n, k] * x[m, k]
            out[m, n] = acc


def _linear(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ w.T`` (x ``[m, in]``, w ``[out, in]`` C-contiguous float32) as a new ``[m, out]`` float32 array."""
    if len(x) > SMALL_BATCH:
        return x @ w.T
    out = np.empty((len(x), len(w)), dtype=np.float32)
    _rows_by_weight(np.ascontiguousarray(x, dtype=np.float32), w, out)
    return out


def _rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    ms = np.einsum("ij,ij->i", x, x) / np.float32(x.shape[-1])
    return x * (1 / np.sqrt(ms + np.float32(eps)))[:, None] * w


def _swiglu(gu: np.ndarray, inter: int) -> np.ndarray:
    """``silu(gate) * up`` of a fused ``[n, 2 intermediate]`` gate/up product."""
    g, u = gu[:, :inter], gu[:, inter:]
    with np.errstate(over="ignore"):  # exp(-g) overflows to inf for g < -88: silu -> -0, as it should
        out = np.exp(-g)
    out += 1
    np.divide(g, out, out=out)
    out *= u
    return out


def _check_tokens(tokens: np.ndarray | list[int], vocab: int, what: str) -> np.ndarray:
    t = np.asarray(tokens)
    if t.ndim != 1 or not t.size:
        raise ValueError(f"{what}: expected a non-empty 1-D array of token ids, got shape {t.shape}")
    if not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"{what}: expected integer token ids, got {t.dtype}")
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or hi >= vocab:
        raise ValueError(f"{what}: token ids must be in 0..{vocab - 1}, got {lo if lo < 0 else hi}")
    return t


class Decoder:
    """A decoder of ``shape`` with ``weights`` (checked against the shape: ValueError names a bad array)."""

    def __init__(self, shape: DecoderShape, weights: Weights) -> None:
        weights.check(shape)
        self.shape, self.weights = shape, weights
        self._head = weights.head if weights.head is not None else weights.embed
        self._q, self._kv = shape.q_dim, shape.kv_dim
        one = np.zeros((1, 1), np.float32)
        _rows_by_weight(one, one, np.empty((1, 1), np.float32))  # compile or load the kernel now, not mid-decode

    # The pieces shared by every path ------------------------------------------------------------------------

    def _qkv(self, x: np.ndarray, li: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """q ``[n, heads, d]``, k and v ``[n, kv_heads, d]`` of layer li (fresh contiguous arrays, unrotated)."""
        s, layer = self.shape, self.weights.layers[li]
        qkv = _linear(_rms_norm(x, layer.attn_norm, s.norm_eps), layer.wqkv)
        if layer.bqkv is not None:
            qkv += layer.bqkv
        n, q, kv = len(x), self._q, self._kv
        return (np.ascontiguousarray(qkv[:, :q]).reshape(n, s.heads, s.head_dim),
                np.ascontiguousarray(qkv[:, q:q + kv]).reshape(n, s.kv_heads, s.head_dim),
                np.ascontiguousarray(qkv[:, q + kv:]).reshape(n, s.kv_heads, s.head_dim))

    def _finish_layer(self, x: np.ndarray, attn: np.ndarray, li: int) -> None:
        """x += o(attn); x += mlp(x), in place."""
        s, layer = self.shape, self.weights.layers[li]
        x += _linear(attn.reshape(len(x), self._q), layer.wo)
        gu = _linear(_rms_norm(x, layer.mlp_norm, s.norm_eps), layer.w_gate_up)
        x += _linear(_swiglu(gu, s.intermediate), layer.w_down)

    def _logits(self, x: np.ndarray) -> np.ndarray:
        return _linear(_rms_norm(x, self.weights.norm, self.shape.norm_eps), self._head)

    # Through the cache ---------------------------------------------------------------------------------------

    def prefill(self, tokens: np.ndarray, cache: AttentionCache, *, chunk: int | None = None) -> np.ndarray:
        """Run the prompt ``tokens`` into the cache's common block; return the last token's logits ``[vocab]``.

        ``chunk`` bounds the tokens processed at once (activation memory grows with it); None: the whole prompt.
        A chunk's k/v enter the common block layer by layer before its queries attend, as the protocol asks.
        """
        t = _check_tokens(tokens, self.shape.vocab, "prefill tokens")
        size = len(t) if chunk is None else chunk
        if size < 1:
            raise ValueError(f"prefill chunk: expected an integer >= 1, got {chunk}")
        for start in range(0, len(t), size):
            x = self.weights.embed[t[start:start + size]]
            for li in range(self.shape.layers):
                q, k, v = self._qkv(x, li)
                cache.append_common(li, k, v)
                self._finish_layer(x, cache.attend_common(li, q), li)
        return self._logits(x[-1:])[0]

    def step(self, tokens: np.ndarray, cache: AttentionCache) -> np.ndarray:
        """One decode step: worker w's new token ``tokens[w]`` -> logits ``[W, vocab]`` (row w: worker w's next).

        Per layer, every worker's k/v are appended before anyone attends (token-wise synchrony).
        """
        t = _check_tokens(tokens, self.shape.vocab, "step tokens")
        if len(t) != cache.workers:
            raise ValueError(f"step tokens: expected one token per worker ({cache.workers}), got {len(t)}")
        x = self.weights.embed[t]
        for li in range(self.shape.layers):
            q, k, v = self._qkv(x, li)
            cache.append(li, k, v)
            self._finish_layer(x, cache.attend(li, q), li)
        return self._logits(x)

    # The plain reference -------------------------------------------------------------------------------------

    def _hidden_sequence(self, tokens: np.ndarray) -> np.ndarray:
        """The residual stream ``[n, hidden]`` after the last layer (before the final norm)."""
        s = self.shape
        t = _check_tokens(tokens, s.vocab, "sequence tokens")
        n, group = len(t), s.heads // s.kv_heads
        cos, sin = rope.cos_sin(np.arange(n), s.head_dim, s.rope_base)
        cos, sin = cos[:, None, :], sin[:, None, :]  # [n, 1, d]: one position per token, every head
        future = np.triu(np.ones((n, n), dtype=bool), 1)
        scale = np.float32(1 / np.sqrt(s.head_dim))
        x = self.weights.embed[t]
        for li in range(s.layers):
            q, k, v = self._qkv(x, li)
            q, k = rope.rotate(q, cos, sin), rope.rotate(k, cos, sin)
            qh = q.reshape(n, s.kv_heads, group, s.head_dim).transpose(1, 2, 0, 3)  # [kv, g, n, d]
            kh, vh = k.transpose(1, 0, 2)[:, None], v.transpose(1, 0, 2)[:, None]  # [kv, 1, n, d]
            scores = (qh @ kh.swapaxes(-1, -2)) * scale
            scores[..., future] = -np.inf
            scores -= scores.max(axis=-1, keepdims=True)
            p = np.exp(scores)
            p /= p.sum(axis=-1, keepdims=True)
            attn = (p @ vh).transpose(2, 0, 1, 3)  # [n, kv, g, d]: head kv * g + j
            self._finish_layer(x, np.ascontiguousarray(attn), li)
        return x

    def forward_sequence(self, tokens: np.ndarray) -> np.ndarray:
        """Logits ``[n, vocab]`` of a single sequence at absolute positions 0..n-1, without any cache."""
        return self._logits(self._hidden_sequence(tokens))

    def weight_bytes(self, storage: str) -> int:
        """Bytes of every weight held at ``storage`` (fp32, fp16, bf16); a tied head counts once."""
        if storage not in STORAGE_DTYPES:
            raise ValueError(f"unknown storage {storage!r}; expected one of {', '.join(STORAGE_DTYPES)}")
        return sum(a.size for _, a in self.weights.arrays()) * STORAGE_DTYPES[storage]

    def step_bytes(self, storage: str) -> int:
        """Weight bytes a decode step reads at ``storage``: `weight_bytes` less an untied embedding table, of which a
        step reads only the W rows it looks up (a tied table is read whole, as the output head)."""
        untied = 0 if self.shape.tie_embeddings else self.weights.embed.size * STORAGE_DTYPES[storage]
        return self.weight_bytes(storage) - untied
