"""Functional reference of the memory arbiter in front of a memory, from `hw.arbiter`'s contract alone.

The arbiter grants every command exactly once, each requester's in its order, and routes every read's word back
to its requester in that requester's order; the memory executes commands in grant order. What it does not fix
is how the two streams interleave: that is timing (and policy). So the data are timing-independent exactly
when the streams do not conflict: no address written by one requester is read or written by the other. Then:

* grants: requester *r*'s commands ``0, 1, ...`` in order;
* read data: each read of *r* returns the last earlier write of *r* to that word, else 0 (the memory starts
  zeroed);
* read-back: the final contents of words ``0 .. readback_words-1``, the last write of whichever requester
  wrote the word.

Addresses wrap at ``2**size_log2`` words (the memory's storage). Conflicting streams raise ``ValueError``: their
data can only be checked against an observed grant order (`sim.blocks.arbiter.model.expected_data`, the
testbench scoreboard's replay).
"""

from __future__ import annotations

import numpy as np


def conflicts(compute: np.ndarray, comm: np.ndarray, size_log2: int) -> np.ndarray:
    """Words (after wrapping) one requester writes and the other reads or writes."""
    mask = (1 << size_log2) - 1
    c_all, m_all = compute["addr"] & mask, comm["addr"] & mask
    c_w, m_w = c_all[compute["write"] != 0], m_all[comm["write"] != 0]
    return np.union1d(np.intersect1d(c_w, m_all), np.intersect1d(m_w, c_all))


def _replay(cmds: np.ndarray, mask: int) -> tuple[list[int], dict[int, int]]:
    mem: dict[int, int] = {}
    reads = []
    for addr, write, data in zip((cmds["addr"] & mask).tolist(), cmds["write"].tolist(), cmds["data"].tolist(),
                                 strict=True):
        if write:
            mem[addr] = data
        else:
            reads.append(mem.get(addr, 0))
    return reads, mem


def arbiter_reference(compute: np.ndarray, comm: np.ndarray, size_log2: int, readback_words: int
                      ) -> tuple[list[list[int]], list[int]]:
    """``([compute reads, comm reads], read-back words)`` for conflict-free streams (module docstring)."""
    bad = conflicts(compute, comm, size_log2)
    if len(bad):
        raise ValueError(f"the streams conflict on {len(bad)} words (first {bad[:4].tolist()}): their data depend "
                         "on the arbitration order, which only a timed target fixes")
    mask = (1 << size_log2) - 1
    (c_reads, c_mem), (m_reads, m_mem) = _replay(compute, mask), _replay(comm, mask)
    final = c_mem | m_mem  # disjoint: no word is written by both
    return [c_reads, m_reads], [final.get(a & mask, 0) for a in range(readback_words)]
