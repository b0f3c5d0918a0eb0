"""Hogwild!'s shared KV cache: one common block and one block per worker, keys rotated at block-local positions.

Blocks: 0 is the common block (the prompt, then committed steps), ``1 + w`` worker ``w``'s block (its tokens since
its last commit). Worker ``w``'s view is ``[common] + others + [own]``, where ``others`` are the other workers'
blocks in cyclic order ``w+1, ..., W-1, 0, ..., w-1`` in the ``contiguous`` and ``combined`` layouts and empty in
``interleaved``. Block ``f`` of the view starts at ``s_wf`` (the total length of the blocks before it) and the
query of ``w``'s newest token sits at ``P_w`` (the view's last position).

Layouts (`sim.core.config.HOGWILD_LAYOUTS`):

``contiguous``
    Token-wise: every worker sees every other worker's block as it grows; no commits (each worker block grows
    for the whole generation).
``interleaved``
    Step-wise: a worker sees ``[common, own]``; the others' work appears only once committed into common.
``combined``
    Committed steps in common AND the others' in-progress blocks.

Keys are stored rotated at their block-local position ``j`` and never touched while in their block. `attend`
rotates each query once per block, by ``P_w - s_wf``, since ``R(P_w) q . R(s_wf + j) k = R(P_w - s_wf) q . R(j) k``
(`sw_stack.hogwild.rope`). `commit` moves a worker's block to the end of the common block, re-rotating each key
once by the common block's length. `attend_reference` and `attend_common_reference` compute the same attention
the expensive way (a dense copy of the view with every key at its absolute position, in float64), as the
oracle for tests.

K and V of a block and layer are float32 arrays ``[kv_heads, capacity, head_dim]`` (capacity doubles as the
block grows) holding values rounded to the storage type (`round_to_storage`). With ``tensors=False`` only the
lengths are kept: every call does the same bookkeeping and traffic records (`sw_stack.hogwild.traffic`) in
O(blocks) numpy work, reads only the shapes of its arguments, and the attention calls return zeros.
"""

from __future__ import annotations

import math

import numpy as np

from sim.core.config import HOGWILD_LAYOUTS, STORAGE_DTYPES, DecoderShape
from sw_stack.hogwild.rope import cos_sin, rotate, rotate_at
from sw_stack.hogwild.traffic import NO_WORKER, Rec, Traffic

PREFILL_CHUNK = 256  # prefill queries attended at once (bounds the score matrix to heads x chunk x length)


def round_to_storage(x: np.ndarray, storage: str) -> np.ndarray:
    """``x`` as float32 holding the nearest value of the storage type (fp16: IEEE half; bf16: round to nearest,
    ties to even, on the float32 bits). Overflow gives inf, NaN stays NaN."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if storage == "fp32":
        return x
    if storage == "fp16":
        with np.errstate(over="ignore"):
            return x.astype(np.float16).astype(np.float32)
    if storage == "bf16":
        bits = x.view(np.uint32)
        rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
        return np.where(np.isnan(x), x, rounded.view(np.float32))
    raise ValueError(f"storage must be one of {', '.join(STORAGE_DTYPES)}, not {storage!r}")


class SharedCache:
    """The shared cache of ``workers`` workers of a decoder of ``shape`` (implements the decoder's
    ``AttentionCache`` interface: `append_common`, `attend_common`, `append`, `attend`)."""

    def __init__(self, shape: DecoderShape, workers: int, layout: str, storage: str = "fp32", *,
                 tensors: bool = True, traffic: Traffic | None = None) -> None:
        if layout not in HOGWILD_LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(HOGWILD_LAYOUTS)}, not {layout!r}")
        if storage not in STORAGE_DTYPES:
            raise ValueError(f"storage must be one of {', '.join(STORAGE_DTYPES)}, not {storage!r}")
        if not 1 <= workers < NO_WORKER:
            raise ValueError(f"workers must be in 1..{NO_WORKER - 1}, not {workers}")
        self.shape, self.workers, self.layout, self.storage = shape, workers, layout, storage
        self.tensors, self.traffic = tensors, traffic
        self.blocks = 1 + workers
        self._token_bytes = shape.kv_dim * 2 * STORAGE_DTYPES[storage]  # K and V of one token in one layer
        self._len = np.zeros((shape.layers, self.blocks), dtype=np.int64)
        self._order = np.array([self._make_view(w) for w in range(workers)], dtype=np.int64)  # [W, view length]
        self._who = np.repeat(np.arange(workers), self._order.shape[1]).reshape(self._order.shape)  # reader of each
        # block -> (workers whose view holds it, its column in their views)
        self._seers = [np.nonzero(self._order == b) for b in range(self.blocks)]
        empty = (shape.kv_heads, 0, shape.head_dim)
        self._k = [[np.zeros(empty, np.float32) for _ in range(self.blocks)] for _ in range(shape.layers)]
        self._v = [[np.zeros(empty, np.float32) for _ in range(self.blocks)] for _ in range(shape.layers)]

    # --- views --------------------------------------------------------------------------------------------------

    def _make_view(self, w: int) -> list[int]:
        others = [] if self.layout == "interleaved" else [1 + (w + i) % self.workers for i in range(1, self.workers)]
        return [0] + others + [1 + w]

    def view(self, w: int) -> list[int]:
        """Block indices of worker ``w``'s view, in order (own block last)."""
        return [int(b) for b in self._order[w]]

    def starts(self, w: int, layer: int = -1) -> list[int]:
        """``s_wf`` of each block of `view` (w) in ``layer`` (default the last, complete between calls)."""
        lens = self._len[layer][self._order[w]]
        return [int(s) for s in np.cumsum(lens) - lens]

    def position(self, w: int, layer: int = -1) -> int:
        """``P_w``: the position of the last token of worker ``w``'s view (-1 for an empty view)."""
        return int(self._len[layer][self._order[w]].sum()) - 1

    def lengths(self, layer: int = -1) -> list[int]:
        """Tokens in each block (common first) in ``layer`` (default the last; all agree between steps)."""
        return [int(n) for n in self._len[layer]]

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V of one token in every layer at the storage type."""
        return self.shape.kv_bytes_per_token(STORAGE_DTYPES[self.storage])

    def footprint_bytes(self) -> int:
        """Stored K and V of every block and layer at the storage type (tokens held, not capacity)."""
        return int(self._len.sum()) * self._token_bytes

    def block_kv(self, layer: int, block: int) -> tuple[np.ndarray, np.ndarray]:
        """Copies of a block's stored K (rotated at local positions) and V, ``[kv_heads, length, head_dim]``."""
        if not self.tensors:
            raise RuntimeError("this cache keeps no tensors (tensors=False)")
        n = self._len[layer, block]
        return self._k[layer][block][:, :n].copy(), self._v[layer][block][:, :n].copy()

    def fill(self, lengths: list[int]) -> None:
        """Shape-only caches: jump to a state whose blocks (common first) hold ``lengths`` tokens in every layer,
        to cost a step at a long context without generating it."""
        if self.tensors:
            raise RuntimeError("fill sets lengths only: use a cache with tensors=False")
        if len(lengths) != self.blocks or min(lengths) < 0:
            raise ValueError(f"fill needs {self.blocks} non-negative lengths, not {lengths}")
        self._len[:] = np.asarray(lengths, dtype=np.int64)

    def decode_step(self) -> None:
        """Shape-only caches: one decode step (every worker's token appended and attended, in every layer)
        with placeholder tensors; the bookkeeping and the traffic rows are a real step's."""
        if self.tensors:
            raise RuntimeError("decode_step runs placeholder tensors: use a cache with tensors=False")
        shp = self.shape
        kv = np.broadcast_to(np.float32(0), (self.workers, shp.kv_heads, shp.head_dim))
        q = np.broadcast_to(np.float32(0), (self.workers, shp.heads, shp.head_dim))
        for layer in range(shp.layers):
            self.append(layer, kv, kv)
            self.attend(layer, q)

    # --- storage ------------------------------------------------------------------------------------------------

    def _check(self, name: str, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        a = np.asarray(a)
        if a.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, not {a.shape}")
        return a.astype(np.float32, copy=False) if self.tensors else a

    def _write(self, layer: int, block: int, k: np.ndarray, v: np.ndarray) -> None:
        """Store ``k`` (already rotated) and ``v``, ``[kv_heads, n, head_dim]``, at the block's end."""
        n0, n = int(self._len[layer, block]), k.shape[1]
        ks, vs = self._k[layer], self._v[layer]
        if n0 + n > ks[block].shape[1]:
            cap = max(16, 2 * ks[block].shape[1], n0 + n)
            for arrays in (ks, vs):
                grown = np.zeros((self.shape.kv_heads, cap, self.shape.head_dim), np.float32)
                grown[:, :n0] = arrays[block][:, :n0]
                arrays[block] = grown
        ks[block][:, n0:n0 + n] = round_to_storage(k, self.storage)
        vs[block][:, n0:n0 + n] = round_to_storage(v, self.storage)

    # --- prefill ------------------------------------------------------------------------------------------------

    def append_common(self, layer: int, k: np.ndarray, v: np.ndarray) -> None:
        """Prefill: ``k``, ``v`` ``[n, kv_heads, head_dim]`` (not rotated) appended to the common block."""
        shp = self.shape
        n = np.shape(k)[0] if np.ndim(k) else 0
        k = self._check("k", k, (n, shp.kv_heads, shp.head_dim))
        v = self._check("v", v, (n, shp.kv_heads, shp.head_dim))
        c = int(self._len[layer, 0])
        if self.tensors:
            kt = rotate_at(k.transpose(1, 0, 2), np.arange(c, c + n), shp.rope_base)
            self._write(layer, 0, kt, v.transpose(1, 0, 2))
        self._len[layer, 0] += n
        if self.traffic is not None:
            self.traffic.add(Rec.COMMON_WRITE, layer, NO_WORKER, 0, c, n, n * self._token_bytes)

    def attend_common(self, layer: int, q: np.ndarray) -> np.ndarray:
        """Prefill: ``q`` ``[n, heads, head_dim]`` (not rotated), the queries of the common block's last ``n``
        tokens -> ``[n, heads, head_dim]``, each attending causally over the common block up to itself."""
        shp = self.shape
        n = np.shape(q)[0] if np.ndim(q) else 0
        q = self._check("q", q, (n, shp.heads, shp.head_dim))
        length = int(self._len[layer, 0])
        if not 1 <= n <= length:
            raise ValueError(f"attend_common needs 1..{length} queries (the tokens just appended), not {n}")
        if self.traffic is not None:
            self.traffic.add(Rec.KV_READ, layer, NO_WORKER, 0, 0, length, length * self._token_bytes)
            self.traffic.add(Rec.QUERY_ROTATE, layer, NO_WORKER, 0, length - n, n * shp.heads, 0)
        if not self.tensors:
            return np.zeros((n, shp.heads, shp.head_dim), np.float32)
        kvh, hd = shp.kv_heads, shp.head_dim
        pos = np.arange(length - n, length)
        qg = rotate_at(q.transpose(1, 0, 2), pos, shp.rope_base) * np.float32(1 / math.sqrt(hd))
        qg = qg.reshape(kvh, shp.heads // kvh, n, hd)  # query head h -> KV head h // group
        out = np.empty_like(qg)
        for i0 in range(0, n, PREFILL_CHUNK):
            i1 = min(n, i0 + PREFILL_CHUNK)
            m = int(pos[i1 - 1]) + 1  # keys any query of the chunk sees
            keys = self._k[layer][0][:, None, :m]
            s = qg[:, :, i0:i1] @ keys.swapaxes(-1, -2)  # [kvh, group, chunk, m]
            s = np.where(np.arange(m)[None, :] > pos[i0:i1, None], -np.inf, s)
            p = np.exp(s - s.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            out[:, :, i0:i1] = p @ self._v[layer][0][:, None, :m]
        return out.reshape(shp.heads, n, hd).transpose(1, 0, 2).copy()

    # --- decode -------------------------------------------------------------------------------------------------

    def append(self, layer: int, k: np.ndarray, v: np.ndarray) -> None:
        """Decode: ``k``, ``v`` ``[W, kv_heads, head_dim]`` (not rotated): worker ``w``'s new token appended to its
        own block at local position ``len(block)``."""
        shp, W = self.shape, self.workers
        k = self._check("k", k, (W, shp.kv_heads, shp.head_dim))
        v = self._check("v", v, (W, shp.kv_heads, shp.head_dim))
        local = self._len[layer, 1:].copy()
        if self.tensors:
            cos, sin = cos_sin(local, shp.head_dim, shp.rope_base)
            kr = rotate(k, cos[:, None], sin[:, None])
            for w in range(W):
                self._write(layer, 1 + w, kr[w][:, None], v[w][:, None])
        self._len[layer, 1:] += 1
        if self.traffic is not None:
            self.traffic.add(Rec.KV_WRITE, layer, np.arange(W), np.arange(1, 1 + W), local, 1, self._token_bytes)

    def _geometry(self, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Lengths ``[W, view]`` of each worker's view blocks, their starts ``s_wf``, and ``P_w`` ``[W]``."""
        lens = self._len[layer][self._order]
        return lens, np.cumsum(lens, axis=1) - lens, lens.sum(axis=1) - 1

    def attend(self, layer: int, q: np.ndarray) -> np.ndarray:
        """Decode: ``q`` ``[W, heads, head_dim]`` (not rotated) -> ``[W, heads, head_dim]``: each worker's query
        over its whole view, rotated once per block by ``P_w - s_wf``; one softmax over all the view's blocks."""
        shp, W = self.shape, self.workers
        q = self._check("q", q, (W, shp.heads, shp.head_dim))
        lens, starts, pos = self._geometry(layer)
        if np.any(lens[:, -1] == 0):
            raise ValueError("attend before append: a worker's own block is empty")
        if self.traffic is not None:
            seen = lens > 0
            who, block, tokens = self._who[seen], self._order[seen], lens[seen]
            self.traffic.add(Rec.KV_READ, layer, who, block, starts[seen], tokens, tokens * self._token_bytes)
            self.traffic.add(Rec.QUERY_ROTATE, layer, who, block, (pos[:, None] - starts)[seen], shp.heads, 0)
        if not self.tensors:
            return np.zeros((W, shp.heads, shp.head_dim), np.float32)
        kvh, hd = shp.kv_heads, shp.head_dim
        g = shp.heads // kvh
        qg = (q * np.float32(1 / math.sqrt(hd))).reshape(W, kvh, g, hd)
        scores = []
        top = np.full((kvh, W, g), -np.inf, np.float32)
        for b in range(self.blocks):
            n = int(self._len[layer, b])
            if n == 0:
                continue
            ws, cols = self._seers[b]
            cos, sin = cos_sin(pos[ws] - starts[ws, cols], hd, shp.rope_base)
            qr = rotate(qg[ws], cos[:, None, None], sin[:, None, None])  # [seers, kvh, g, hd]
            qr = qr.transpose(1, 0, 2, 3).reshape(kvh, len(ws) * g, hd)  # one GEMM per KV head for all seers
            s = (qr @ self._k[layer][b][:, :n].swapaxes(-1, -2)).reshape(kvh, len(ws), g, n)
            top[:, ws] = np.maximum(top[:, ws], s.max(-1))
            scores.append((b, ws, s))
        out = np.zeros((kvh, W, g, hd), np.float32)
        den = np.zeros((kvh, W, g), np.float32)
        for b, ws, s in scores:
            e = np.exp(s - top[:, ws, :, None])
            den[:, ws] += e.sum(-1)
            n = s.shape[-1]
            out[:, ws] += (e.reshape(kvh, -1, n) @ self._v[layer][b][:, :n]).reshape(kvh, len(ws), g, hd)
        out /= den[..., None]
        return out.transpose(1, 0, 2, 3).reshape(W, shp.heads, hd)

    # --- commits ------------------------------------------------------------------------------------------------

    def commit(self, w: int) -> int:
        """At worker ``w``'s step boundary: its block appended to the common block in every layer, each key
        re-rotated once by the common block's length (``R(c) R(j) k = R(c + j) k``), values copied, and the worker
        block emptied. Returns the tokens moved. ``interleaved`` and ``combined`` only."""
        if self.layout == "contiguous":
            raise ValueError("the contiguous layout has no commits: worker blocks grow for the whole generation")
        if not 0 <= w < self.workers:
            raise ValueError(f"no worker {w} (workers 0..{self.workers - 1})")
        src, common = self._len[:, 1 + w], self._len[:, 0]
        if np.any(src != src[0]) or np.any(common != common[0]):
            raise ValueError("commit in the middle of a step: the layers hold different lengths")
        n, c = int(src[0]), int(common[0])
        if n == 0:
            return 0
        if self.tensors:
            cos, sin = cos_sin(c, self.shape.head_dim, self.shape.rope_base)
            for layer in range(self.shape.layers):
                k, v = self._k[layer][1 + w][:, :n], self._v[layer][1 + w][:, :n]
                self._write(layer, 0, rotate(k, cos, sin), v)
        self._len[:, 0] += n
        self._len[:, 1 + w] = 0
        if self.traffic is not None:
            self.traffic.add(Rec.COMMIT_MOVE, np.arange(self.shape.layers), w, 1 + w, c, n, n * self._token_bytes)
        return n

    # --- references ---------------------------------------------------------------------------------------------

    def _dense_view(self, layer: int, blocks: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """K (at absolute positions) and V of ``blocks`` laid end to end, float64 ``[kv_heads, N, head_dim]``:
        every key un-rotated from its local position and rotated again at ``s_wf + j``."""
        base = self.shape.rope_base
        ks, vs, s = [], [], 0
        for b in blocks:
            n = int(self._len[layer, b])
            j = np.arange(n)
            k = rotate_at(self._k[layer][b][:, :n].astype(np.float64), -j, base)
            ks.append(rotate_at(k, s + j, base))
            vs.append(self._v[layer][b][:, :n].astype(np.float64))
            s += n
        return np.concatenate(ks, axis=1), np.concatenate(vs, axis=1)

    def _dense_attention(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, last: np.ndarray) -> np.ndarray:
        """``q`` ``[nq, heads, hd]`` at absolute positions over ``k``, ``v`` ``[kv_heads, N, hd]``, query ``i``
        seeing keys ``0..last[i]``; KV heads repeated per query head (``repeat_kv``)."""
        g = self.shape.heads // self.shape.kv_heads
        k, v = np.repeat(k, g, axis=0), np.repeat(v, g, axis=0)
        s = np.einsum("qhd,hnd->hqn", q, k) / math.sqrt(self.shape.head_dim)
        s = np.where(np.arange(k.shape[1])[None, None, :] > last[None, :, None], -np.inf, s)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        return np.einsum("hqn,hnd->qhd", p, v)

    def attend_reference(self, layer: int, q: np.ndarray) -> np.ndarray:
        """`attend` computed densely in float64 (no traffic): per worker, a copy of its view with every key at
        its absolute position and the query rotated at ``P_w``."""
        shp = self.shape
        q = np.asarray(self._check("q", q, (self.workers, shp.heads, shp.head_dim)), np.float64)
        if not self.tensors:
            raise RuntimeError("this cache keeps no tensors (tensors=False)")
        out = np.empty(q.shape)
        for w in range(self.workers):
            k, v = self._dense_view(layer, self.view(w))
            p = k.shape[1] - 1
            out[w] = self._dense_attention(rotate_at(q[w:w + 1], p, shp.rope_base), k, v, np.array([p]))[0]
        return out

    def attend_common_reference(self, layer: int, q: np.ndarray) -> np.ndarray:
        """`attend_common` computed densely in float64 (no traffic)."""
        shp = self.shape
        n = np.shape(q)[0] if np.ndim(q) else 0
        q = np.asarray(self._check("q", q, (n, shp.heads, shp.head_dim)), np.float64)
        if not self.tensors:
            raise RuntimeError("this cache keeps no tensors (tensors=False)")
        k, v = self._dense_view(layer, [0])
        pos = np.arange(k.shape[1] - n, k.shape[1])
        qr = rotate_at(q.transpose(1, 0, 2), pos, shp.rope_base).transpose(1, 0, 2)
        return self._dense_attention(qr, k, v, pos)
