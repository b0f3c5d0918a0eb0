"""Memory traffic of Hogwild!'s shared KV cache, as the ``hogwild_traffic`` trace kind.

`sw_stack.hogwild.cache.SharedCache` adds one row per event below (every row is ONE layer; ``bytes`` counts K
and V at the cache's storage type, ``kv_dim * 2 * storage bytes`` per token, unless said otherwise). Blocks:
0 is the common block, ``1 + w`` worker ``w``'s. ``worker`` is `NO_WORKER` for the prefill. ``step`` is the
`Traffic.step` counter when the row was added (the caller advances it with `Traffic.next_step`).

``KV_READ``
    An attention reads a whole block's K and V: ``tokens`` = the block's length, ``offset`` = the block's start
    ``s_wf`` in the reader's view (0 for the common block and the prefill). Empty blocks are not read (no row).
``KV_WRITE``
    A decode token's K and V written to its worker's block: ``tokens`` 1, ``offset`` = its local position.
``COMMIT_MOVE``
    A commit moves a worker block into the common block, one row per layer: ``block`` = the source worker block,
    ``offset`` = the destination offset in the common block, ``tokens`` moved, ``bytes`` = their K and V in that
    layer (read once and written once; the keys are re-rotated on the way).
``QUERY_ROTATE``
    One per (layer, worker, non-empty block of the view): ``tokens`` = query heads rotated, ``offset`` = the
    rotation ``P_w - s_wf``; for the prefill one row per call, ``tokens`` = queries x heads and ``offset`` = the
    first query's position. ``bytes`` 0: the query stays on chip (rotations are compute, see `rotation_costs`).
``COMMON_WRITE``
    Prefill: ``tokens`` prompt tokens' K and V written to the common block at ``offset``.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from sim.core.config import STORAGE_DTYPES, DecoderShape
from sim.core.trace import register_kind

TRAFFIC_KIND = "hogwild_traffic"
TRAFFIC_DTYPE = register_kind(TRAFFIC_KIND, [("step", "<u4"), ("layer", "<u2"), ("worker", "<u2"), ("kind", "u1"),
                                             ("block", "<u2"), ("offset", "<u4"), ("tokens", "<u4"),
                                             ("bytes", "<u8")])
NO_WORKER = 0xFFFF  # the ``worker`` of prefill rows
ROTATE_FLOPS_PER_ELEMENT = 3  # x * cos + rotate_half(x) * sin: 2 multiplies and 1 add (6 per pair of dimensions)


class Rec(IntEnum):
    """The ``kind`` column of a ``hogwild_traffic`` row."""

    KV_READ = 0
    KV_WRITE = 1
    COMMIT_MOVE = 2
    QUERY_ROTATE = 3
    COMMON_WRITE = 4


_EXTRA = ("rerotate_tokens", "decode_attends", "prefill_query_heads")
STEP_DTYPE = np.dtype([("step", "<u4")] + [(f"{k.name.lower()}_{c}", "<u8") for k in Rec for c in ("bytes", "tokens")]
                      + [(name, "<u8") for name in _EXTRA])
"""Columns of `Traffic.per_step`: bytes and tokens of each kind, then, for `rotation_costs`: ``rerotate_tokens``
(decode ``KV_READ`` tokens at ``offset`` != 0: the keys a re-rotating cache rotates again), ``decode_attends``
(decode attentions of one worker in one layer: ``KV_READ`` rows of the reader's own block) and
``prefill_query_heads`` (``QUERY_ROTATE`` tokens of prefill rows)."""


def summarise(rows: np.ndarray, steps: int | None = None) -> np.ndarray:
    """`STEP_DTYPE` rows 0 .. ``steps - 1`` (default: the last step in ``rows``) summing ``rows`` per step."""
    n = int(rows["step"].max()) + 1 if len(rows) else 0
    steps = n if steps is None else max(steps, n)
    out = np.zeros(steps, dtype=STEP_DTYPE)
    out["step"] = np.arange(steps)
    if not len(rows):
        return out
    step, kind = rows["step"].astype(np.intp), rows["kind"]
    decode_read = (kind == Rec.KV_READ) & (rows["worker"] != NO_WORKER)
    prefill_rot = (kind == Rec.QUERY_ROTATE) & (rows["worker"] == NO_WORKER)
    own_read = decode_read & (rows["block"].astype(np.int64) == rows["worker"].astype(np.int64) + 1)
    sums = {f"{k.name.lower()}_{c}": (kind == k, c) for k in Rec for c in ("bytes", "tokens")}
    sums["rerotate_tokens"] = (decode_read & (rows["offset"] != 0), "tokens")
    sums["decode_attends"] = (own_read, None)
    sums["prefill_query_heads"] = (prefill_rot, "tokens")
    for name, (mask, column) in sums.items():
        weights = None if column is None else rows[column][mask].astype(np.float64)
        total = np.bincount(step[mask], weights=weights, minlength=steps)
        if total.size and total.max() >= 2 ** 53:  # float64 sums are exact below this
            raise OverflowError(f"per-step {name} exceeds 2**53")
        out[name] = total.astype(np.uint64)
    return out


class Traffic:
    """Rows of the ``hogwild_traffic`` kind, collected into growing numpy buffers (vectorised per call).

    With ``keep_rows=False`` the buffer is folded into per-step sums (`per_step`) whenever it holds ``chunk`` rows,
    so memory stays bounded for long runs; `table` is then unavailable. Contract: `per_step` and `bytes_by_kind`
    are the same in both modes for the same rows.
    """

    def __init__(self, keep_rows: bool = True, chunk: int = 1 << 20) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, not {chunk}")
        self.keep_rows, self.chunk = keep_rows, chunk
        self.step = 0
        self._buf = np.zeros(min(chunk, 4096), dtype=TRAFFIC_DTYPE)
        self._n = 0  # rows in the buffer
        self._total = 0  # rows added, folded ones included
        self._folded = np.zeros(0, dtype=STEP_DTYPE)

    def next_step(self) -> int:
        """Advance the step counter the following rows carry; returns the new step."""
        self.step += 1
        return self.step

    def add(self, kind: Rec, layer: int | np.ndarray, worker: int | np.ndarray, block: int | np.ndarray,
            offset: int | np.ndarray, tokens: int | np.ndarray, nbytes: int | np.ndarray) -> None:
        """Append rows of one ``kind`` at the current step: scalars, or 1-D arrays of one length (one value a row)."""
        cols = (layer, worker, block, offset, tokens, nbytes)
        sizes = {c.size for c in cols if isinstance(c, np.ndarray) and c.ndim}
        if len(sizes) > 1:
            raise ValueError(f"columns of different lengths {sorted(sizes)}")
        n = sizes.pop() if sizes else 1
        if n == 0:
            return
        if self._n + n > len(self._buf):
            if not self.keep_rows and self._n:
                self._fold()
            if self._n + n > len(self._buf):
                grown = np.zeros(max(2 * len(self._buf), self._n + n), dtype=TRAFFIC_DTYPE)
                grown[:self._n] = self._buf[:self._n]
                self._buf = grown
        rows = self._buf[self._n:self._n + n]
        rows["step"], rows["kind"] = self.step, kind
        for name, col in zip(("layer", "worker", "block", "offset", "tokens", "bytes"), cols, strict=True):
            rows[name] = col
        self._n += n
        self._total += n

    def _fold(self) -> None:
        part = summarise(self._buf[:self._n], len(self._folded))
        if len(part) > len(self._folded):
            grown = np.zeros(len(part), dtype=STEP_DTYPE)
            grown["step"] = np.arange(len(part))
            grown[:len(self._folded)] = self._folded
            self._folded = grown
        for name in STEP_DTYPE.names[1:]:
            self._folded[name] += part[name]
        self._n = 0

    def __len__(self) -> int:
        """Rows added so far (folded ones included)."""
        return self._total

    def table(self) -> np.ndarray:
        """Every row, in the order added (a copy), as the trace kind's structured array."""
        if not self.keep_rows:
            raise RuntimeError("this Traffic folds its rows into per-step sums (keep_rows=False): no table")
        return self._buf[:self._n].copy()

    def per_step(self) -> np.ndarray:
        """`STEP_DTYPE` sums for steps 0 .. the current step."""
        out = summarise(self._buf[:self._n], max(self.step + 1, len(self._folded)))
        for name in STEP_DTYPE.names[1:]:
            out[name][:len(self._folded)] += self._folded[name]
        return out

    def bytes_by_kind(self) -> dict[str, int]:
        """Total bytes of each kind over all steps, keyed by the lower-case kind name."""
        steps = self.per_step()
        return {k.name.lower(): int(steps[f"{k.name.lower()}_bytes"].sum()) for k in Rec}


COST_DTYPE = np.dtype([("step", "<u4"), ("query_flops", "<u8"), ("naive_flops", "<u8"), ("naive_bytes", "<u8"),
                       ("rerotated_keys", "<u8")])


def rotation_costs(steps: np.ndarray, shape: DecoderShape, storage: str) -> np.ndarray:
    """Per step, the rotation work of the query-rotation cache against a cache that re-rotates keys instead.

    ``steps`` is `Traffic.per_step` (`STEP_DTYPE`); returns `COST_DTYPE` rows. A rotated element costs
    `ROTATE_FLOPS_PER_ELEMENT` FLOPs (cos/sin come from tables). Both schemes rotate each key once when it is
    written (not counted).

    ``query_flops`` (this cache)
        ``3 * (QUERY_ROTATE tokens * head_dim + COMMIT_MOVE tokens * kv_dim)``: every query head rotated once
        per non-empty block of its view (the prefill's queries once, at their positions), plus the one
        re-rotation of each committed key (per layer). No extra bytes: the query stays on chip and the
        commit rotates keys while moving them (its bytes are the ``COMMIT_MOVE`` traffic both schemes share).
    ``naive_flops``, ``naive_bytes`` (re-rotating keys)
        Each query is rotated once, at ``P_w`` (``heads * head_dim`` elements per decode attend, and the
        prefill's as above), and before every decode attention every stored key of every block of the
        worker's view that does not start at position 0 (all but the common block, in general) is read,
        rotated by its block's start ``s_wf`` to its absolute position, and written back to a scratch copy the
        attention then reads, each worker and layer separately, every step (the starts move every step):
        ``rerotated_keys = sum over those reads of tokens``; ``naive_flops = 3 * ((prefill query heads +
        decode_attends * heads) * head_dim + rerotated_keys * kv_dim)``;
        ``naive_bytes = 2 * rerotated_keys * kv_dim * storage bytes`` (the extra K read and K write; the values
        are untouched). Commits need no rotation there.
    """
    sb = STORAGE_DTYPES[storage]
    hd, kv_dim = shape.head_dim, shape.kv_dim
    out = np.zeros(len(steps), dtype=COST_DTYPE)
    out["step"] = steps["step"]
    flops = ROTATE_FLOPS_PER_ELEMENT
    out["query_flops"] = flops * (steps["query_rotate_tokens"] * hd + steps["commit_move_tokens"] * kv_dim)
    queries = steps["prefill_query_heads"] + steps["decode_attends"] * shape.heads
    out["naive_flops"] = flops * (queries * hd + steps["rerotate_tokens"] * kv_dim)
    out["naive_bytes"] = 2 * steps["rerotate_tokens"] * kv_dim * sb
    out["rerotated_keys"] = steps["rerotate_tokens"]
    return out
