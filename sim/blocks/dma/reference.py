"""Functional reference of the DMA engine, from `hw.dma`'s documented contract alone (no timing, no model).

Per trigger of descriptor *i*:

* the error code: ``UNPROGRAMMED`` if *i* is not programmed; else ``OK`` for a ``NOTIFY`` (only checked for
  being programmed); else the first failing check of ``BAD_OP`` (op above ``NOTIFY``), ``ZERO_LENGTH``,
  ``BAD_DEVICE`` (``dst_device >= num_devices``), ``MISALIGNED`` (source, destination or length not a multiple
  of 4), in that order; else ``OK``;
* one status ``(desc, tag, error)``; an unprogrammed index reports tag 0 (the table's contents after power-up);
* for an ``OK`` data op, one link packet per word *k* < ``length / 4``: ``dst_device``, word address
  ``dst_addr / 4 + k`` (modulo ``2**addr_bits``: the address field wraps), ``op``, the memory word at
  ``src_addr / 4 + k`` (the memory wraps at ``2**size_log2`` words; words not preloaded read 0) and ``tag``.

Rows come in trigger order, packets of one descriptor in word order. Neither order is the engine's: channels
interleave packets, and a short descriptor completes (and reports) before a long one triggered earlier, so
both tables are multisets (`sim.exec.ResultTable.ordered` is False for both).
"""

from __future__ import annotations

import numpy as np

from hw.dma import DmaError, DmaOp, DmaParams
from hw.memory import MemoryParams

LINK_DTYPE = np.dtype([("dst_device", "<u2"), ("addr", "<u8"), ("op", "u1"), ("data", "<u4"), ("tag", "<u4")])
STATUS_DTYPE = np.dtype([("desc", "<u4"), ("tag", "<u4"), ("error", "u1")])


def descriptor_errors(descriptors: np.ndarray, num_devices: int) -> np.ndarray:
    """The error code of each row of a ``dma_descriptors`` table (all rows are programmed)."""
    d = descriptors
    op, length = d["op"].astype(np.int64), d["length"].astype(np.int64)
    misaligned = ((d["src_addr"] | d["dst_addr"]) % 4 != 0) | (length % 4 != 0)
    checks = [  # first match wins, in the documented order
        (op == DmaOp.NOTIFY, DmaError.OK),
        (op > DmaOp.NOTIFY, DmaError.BAD_OP),
        (length == 0, DmaError.ZERO_LENGTH),
        (d["dst_device"].astype(np.int64) >= num_devices, DmaError.BAD_DEVICE),
        (misaligned, DmaError.MISALIGNED),
    ]
    return np.select([c for c, _ in checks], [int(e) for _, e in checks], int(DmaError.OK)).astype(np.uint8)


def dma_reference(params: DmaParams, mem: MemoryParams, num_devices: int, descriptors: np.ndarray,
                  preload: np.ndarray, triggers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(link packets, statuses)`` for ``triggers`` (module docstring), as `LINK_DTYPE` / `STATUS_DTYPE` rows."""
    n = params.descriptors
    row = np.full(n, -1, np.int64)  # table row of each index, -1: unprogrammed
    row[descriptors["index"].astype(np.int64)] = np.arange(len(descriptors))
    errors = descriptor_errors(descriptors, num_devices)

    desc = triggers["desc"].astype(np.int64)
    r = row[desc]
    programmed = r >= 0
    d = descriptors[np.where(programmed, r, 0)] if len(descriptors) else np.zeros(len(desc), descriptors.dtype)
    err = np.where(programmed, errors[np.where(programmed, r, 0)] if len(descriptors) else 0,
                   int(DmaError.UNPROGRAMMED))
    status = np.zeros(len(triggers), STATUS_DTYPE)
    status["desc"] = desc
    status["tag"] = np.where(programmed, d["dst_tag"], 0)
    status["error"] = err

    src = d[programmed & (err == DmaError.OK) & (d["op"] != DmaOp.NOTIFY)]
    words = src["length"].astype(np.int64) // 4
    k = np.arange(int(words.sum())) - np.repeat(np.cumsum(words) - words, words)  # word index in its descriptor
    each = np.repeat(np.arange(len(src)), words)
    link = np.zeros(len(k), LINK_DTYPE)
    link["dst_device"] = src["dst_device"][each]
    link["addr"] = ((src["dst_addr"][each].astype(np.int64) >> 2) + k) & ((1 << params.addr_bits) - 1)
    link["op"] = src["op"][each]
    link["data"] = _read(preload, ((src["src_addr"][each].astype(np.int64) >> 2) + k) & ((1 << mem.size_log2) - 1))
    link["tag"] = src["dst_tag"][each]
    return link, status


def _read(preload: np.ndarray, addrs: np.ndarray) -> np.ndarray:
    """The preloaded word at each address (0 where none was preloaded)."""
    order = np.argsort(preload["addr"], kind="stable")
    keys, vals = preload["addr"][order].astype(np.int64), preload["data"][order]
    i = np.minimum(np.searchsorted(keys, addrs), max(len(keys) - 1, 0))
    hit = (keys[i] == addrs) if len(keys) else np.zeros(len(addrs), bool)
    return np.where(hit, vals[i] if len(keys) else 0, 0).astype(np.uint32)
