"""Rotary position embedding (RoPE) as Llama and Qwen2 apply it (Hugging Face's ``rotate_half`` convention).

Dimension ``i < d/2`` of a head is paired with ``i + d/2``; the pair is rotated by ``p * base**(-2i/d)`` at
position ``p``. Rotations compose: ``rotate(rotate(x, a), b) == rotate(x, a + b)`` up to rounding, and
``rotate(q, P) . rotate(k, s + j) == rotate(q, P - s) . rotate(k, j)`` — the identity Hogwild!'s cache uses to
rotate a query once per block instead of re-rotating the block's keys. Angles are computed in float64 and the
rotation applied in the array's dtype.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=64)
def inv_freq(head_dim: int, base: float) -> np.ndarray:
    """The ``d/2`` angular frequencies (float64; cached, read-only)."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head dimension, not {head_dim}")
    out = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    out.flags.writeable = False
    return out


def cos_sin(positions: np.ndarray | int, head_dim: int, base: float, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """``cos`` and ``sin`` of shape ``positions.shape + (head_dim,)`` (each half repeated), for `rotate`."""
    angles = np.multiply.outer(np.asarray(positions, dtype=np.float64), inv_freq(head_dim, base))
    angles = np.concatenate([angles, angles], axis=-1)
    return np.cos(angles).astype(dtype), np.sin(angles).astype(dtype)


def rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """``x`` (``[..., head_dim]``) rotated by the angles of ``cos``/``sin`` (broadcast against ``x``)."""
    half = x.shape[-1] // 2
    turned = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + turned * sin


def rotate_at(x: np.ndarray, positions: np.ndarray | int, base: float) -> np.ndarray:
    """``x`` rotated to ``positions`` (one position per row of ``x``'s second-to-last axis, or one for all)."""
    cos, sin = cos_sin(positions, x.shape[-1], base, x.dtype)
    return rotate(x, cos, sin)
