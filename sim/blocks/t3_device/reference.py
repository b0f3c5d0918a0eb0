"""Functional (untimed) reference of `hw.t3_device.T3Device`: what the device must produce for a stimulus.

Built from the blocks' functional references, not from any cycle model: the reducer's arithmetic
(`sim.blocks.reducer.reference.packet_results`), the tracker's counting rules
(`sim.blocks.tracker.reference.tracker_triggers`), and the DMA's descriptor checks and copy written out here from
`hw.dma`'s contract. Under the stimulus contract (`sim.blocks.t3_device.stimulus`) the answer does not depend on
timing, so the packets of both streams are applied in arrival order (``produce`` first on a tie), every
triggered descriptor reads final words, and the ``link_out`` and ``statuses`` tables are compared as multisets.
"""

from __future__ import annotations

import numpy as np

from hw.dma import DmaError, DmaOp
from hw.t3_device import BYTES_PER_WORD, T3DeviceParams
from sim.blocks.reducer.reference import PACKET_DTYPE, packet_results
from sim.blocks.t3_device.stimulus import check_stimulus, memory_params, readback_addrs
from sim.blocks.tracker.reference import tracker_triggers
from sim.core import trace


def _data(kind: str, rows: list[tuple]) -> np.ndarray:
    names = [n for n in trace.TABLE_KINDS[kind].names if n != "cycle"]
    dt = np.dtype([(n, trace.TABLE_KINDS[kind][n]) for n in names])
    return np.array(rows, dtype=dt) if rows else np.zeros(0, dt)


def _dma_check(d: dict[str, int] | None, num_devices: int, length_bits: int) -> int:
    """The status error of starting descriptor ``d`` (``hw.dma``: checks in this order, first failure wins)."""
    if d is None or not d["valid"]:
        return DmaError.UNPROGRAMMED
    if d["op"] == DmaOp.NOTIFY:
        return DmaError.OK
    if d["op"] > DmaOp.NOTIFY:
        return DmaError.BAD_OP
    if d["length"] % (1 << length_bits) == 0:
        return DmaError.ZERO_LENGTH
    if d["dst_device"] >= num_devices:
        return DmaError.BAD_DEVICE
    if d["src_addr"] % 4 or d["dst_addr"] % 4 or d["length"] % 4:
        return DmaError.MISALIGNED
    return DmaError.OK


def device_reference(p: T3DeviceParams, stim: trace.Trace) -> dict[str, np.ndarray]:
    """The result tables (without ``cycle`` columns) of ``stim``; raises ``ValueError`` on a stimulus whose
    answer would depend on timing (`check_stimulus`)."""
    check_stimulus(stim)
    mem_p = memory_params(stim)
    mask = (1 << mem_p.size_log2) - 1
    mem = np.zeros(1 << mem_p.size_log2, np.uint32)
    pre = stim["preload"]
    mem[pre["addr"].astype(np.int64) & mask] = pre["data"]

    # compute: its own words, in order
    reads = []
    for addr, write, data in zip(stim["compute"]["addr"].tolist(), stim["compute"]["write"].tolist(),
                                 stim["compute"]["data"].tolist(), strict=True):
        if write:
            mem[addr & mask] = data
        else:
            reads.append((int(mem[addr & mask]),))

    # packets: both streams in arrival order, through the reducer's arithmetic
    streams = [stim["produce"], stim["link_in"]]
    both = np.zeros(sum(len(s) for s in streams), PACKET_DTYPE)
    for name in PACKET_DTYPE.names:
        both[name] = np.concatenate([s[name] for s in streams])
    both = both[np.argsort(both["cycle"], kind="stable")]
    both["addr"] &= mask
    mem, _ = packet_results(mem, both)

    # tracker: every committed packet counts 4 bytes against its tag
    tag_mask = p.tracker.entries - 1
    requests = np.zeros(len(both), dtype=[("tag", "<u4"), ("size", "<u4")])
    requests["tag"] = both["tag"] & tag_mask
    requests["size"] = BYTES_PER_WORD
    tr = tracker_triggers(stim["program"], requests, p.tracker)

    # DMA: each trigger starts its descriptor (table fields as wide as the RTL's)
    dp = p.dma
    field_mask = {"src_addr": (1 << dp.byte_addr_bits) - 1, "dst_device": (1 << dp.device_bits) - 1,
                  "dst_addr": (1 << dp.byte_addr_bits) - 1, "length": (1 << dp.length_bits) - 1, "op": 7,
                  "tag": (1 << dp.tag_bits) - 1, "valid": 1}
    table = {int(r["index"]) & (dp.descriptors - 1): {k: int(r[k]) & m for k, m in field_mask.items()}
             for r in stim["descriptors"]}
    num_devices = int(stim.meta["num_devices"])
    addr_mask = (1 << dp.addr_bits) - 1
    statuses, link_out = [], []
    for desc, _ in tr.sequence:
        d = table.get(desc & (dp.descriptors - 1))
        err = _dma_check(d, num_devices, dp.length_bits)
        statuses.append((desc, d["tag"] if d else 0, int(err)))
        if err == DmaError.OK and d["op"] != DmaOp.NOTIFY:
            src, dst = d["src_addr"] >> 2, d["dst_addr"] >> 2
            for i in range(d["length"] // BYTES_PER_WORD):
                link_out.append((d["dst_device"], (dst + i) & addr_mask, d["op"] & 3,
                                 int(mem[(src + i) & addr_mask & mask]), d["tag"]))

    addrs = readback_addrs(stim)
    errors = int(tr.unprogrammed > 0) | (int(tr.overflow > 0) << 1)
    return {
        "link_out": _data("t3_link_out", link_out),
        "statuses": _data("t3_status", statuses),
        "compute_rsp": _data("t3_compute_rsp", reads),
        "memory": _data("mem_words", list(zip(addrs.tolist(), mem[addrs].tolist(), strict=True))),
        "tracker": _data("t3_tracker_stats", [(errors, tr.unprogrammed, tr.overflow, len(tr.sequence),
                                               len(both))]),
    }
