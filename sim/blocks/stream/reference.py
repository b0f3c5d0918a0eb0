"""Functional reference of the STREAM unit (`hw.stream.StreamUnit`): numpy float32, untimed.

Written from the RTL's contract, independently of the cycle model: `check` applies the program checks in their
documented order; `run_programs` applies the programs one after another to a word image. An element's result is
numpy's float32 result (``b`` copied, ``q * b``, ``b + c``, ``b + q * c`` with its two roundings), NaN results
made canonical (``0x7FC00000``); a COPY moves the source bits unchanged, NaNs included.

Large arrays are computed in chunks that stay in the core's cache, the NaN scan included, so the reference
runs at the machine's memory bandwidth (the STREAM study runs it on arrays 4x the last-level cache).
"""

from __future__ import annotations

import numpy as np

from hw.stream import WORD_BYTES, StreamError, StreamOp, StreamParams

CANONICAL_NAN = np.uint32(0x7FC00000)
CHUNK = 1 << 18  # elements per chunk: 1 MiB of fp32 per array, within a core's L2

PROGRAM_DTYPE = np.dtype([("cycle", "<u8"), ("op", "u1"), ("a", "<u8"), ("b", "<u8"), ("c", "<u8"),
                          ("n", "<u8"), ("q", "<u4"), ("tag", "<u2")])


def check(p: StreamParams, op: int, a: int, b: int, c: int, n: int) -> StreamError:
    """The error a program gets (`hw.stream` module docstring: the checks in their order)."""
    if op > StreamOp.TRIAD:
        return StreamError.BAD_OP
    if n == 0:
        return StreamError.ZERO_LENGTH
    used = (a, b, c) if StreamOp(op).sources == 2 else (a, b)
    if any(x % WORD_BYTES for x in used):
        return StreamError.MISALIGNED
    span = n * WORD_BYTES
    if any(x + span > 1 << p.byte_addr_bits for x in used):
        return StreamError.OUT_OF_RANGE
    if any(a < x + span and x < a + span for x in used[1:]):
        return StreamError.OVERLAP
    return StreamError.OK


def errors(p: StreamParams, programs: np.ndarray) -> np.ndarray:
    """The error code of every program (uint8)."""
    cols = (programs[f].tolist() for f in ("op", "a", "b", "c", "n"))
    return np.array([check(p, *row) for row in zip(*cols, strict=True)], dtype=np.uint8)


def top_word(programs: np.ndarray, errs: np.ndarray) -> int:
    """One past the highest word any program that runs reads or writes (0 without one)."""
    top = 0
    for row, err in zip(programs, errs, strict=True):
        if err == StreamError.OK:
            used = ("a", "b", "c") if StreamOp(int(row["op"])).sources == 2 else ("a", "b")
            top = max(top, max(int(row[x]) for x in used) // WORD_BYTES + int(row["n"]))
    return top


def _canonical(out: np.ndarray) -> None:
    if np.isnan(out.max()):  # max propagates NaN: one pass, no temporary
        out.view(np.uint32)[np.isnan(out)] = CANONICAL_NAN


def kernel(op: StreamOp, q: np.float32, dst: np.ndarray, b: np.ndarray, c: np.ndarray | None) -> None:
    """``dst = op(b, c)`` on float32 arrays (views into one image; ``dst`` overlaps neither source)."""
    if op is StreamOp.COPY:
        np.copyto(dst, b)
        return
    with np.errstate(all="ignore"):
        for lo in range(0, len(dst), CHUNK):
            hi = lo + CHUNK
            out = dst[lo:hi]
            if op is StreamOp.SCALE:
                np.multiply(b[lo:hi], q, out=out)
            elif op is StreamOp.ADD:
                np.add(b[lo:hi], c[lo:hi], out=out)
            else:
                np.multiply(c[lo:hi], q, out=out)
                np.add(b[lo:hi], out, out=out)
            _canonical(out)


def run_programs(p: StreamParams, image: np.ndarray, programs: np.ndarray) -> np.ndarray:
    """Apply ``programs`` in order to ``image`` (uint32 words, updated in place); return their error codes.

    The image must hold every word a program that runs uses (`top_word`)."""
    errs = errors(p, programs)
    if len(image) < top_word(programs, errs):
        raise ValueError(f"the image has {len(image)} words, the programs use {top_word(programs, errs)}")
    f = image.view(np.float32)
    for row, err in zip(programs, errs, strict=True):
        if err != StreamError.OK:
            continue
        op, n = StreamOp(int(row["op"])), int(row["n"])
        a, b, c = (int(row[x]) // WORD_BYTES for x in "abc")
        q = np.uint32(row["q"]).view(np.float32)
        kernel(op, q, f[a:a + n], f[b:b + n], f[c:c + n] if op.sources == 2 else None)
    return errs
