"""Functional (untimed) references: what the answer is, against which RTL data is scoreboarded."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hw.tracker import TrackerParams


@dataclass
class TrackerReference:
    sequence: list[tuple[int, int]] = field(default_factory=list)  # (desc, entry) in firing order
    unprogrammed: int = 0
    overflow: int = 0


def tracker_triggers(program: np.ndarray, requests: np.ndarray, params: TrackerParams) -> TrackerReference:
    """The trigger sequence a correct tracker emits for ``requests`` (in order) after ``program``.

    Each request adds its size to its entry; an entry whose count reaches its threshold fires once, then
    restarts from zero (re-arm) or is disabled. Requests to disabled entries are dropped; a sum beyond the
    counter saturates and counts as an overflow.
    """
    max_count = (1 << params.count_bits) - 1
    thr = np.zeros(params.entries, np.int64)
    desc = np.zeros(params.entries, np.int64)
    en = np.zeros(params.entries, bool)
    rearm = np.zeros(params.entries, bool)
    count = np.zeros(params.entries, np.int64)
    for row in program:
        e = int(row["entry"])
        thr[e], desc[e], en[e], rearm[e], count[e] = row["threshold"], row["desc"], row["enable"], row["rearm"], 0
    ref = TrackerReference()
    for tag, size in zip(requests["tag"].tolist(), requests["size"].tolist(), strict=True):
        if not en[tag]:
            ref.unprogrammed += 1
            continue
        total = int(count[tag]) + size
        if total > max_count:
            total = max_count
            ref.overflow += 1
        if total >= thr[tag]:
            ref.sequence.append((int(desc[tag]), tag))
            count[tag] = 0
            en[tag] = rearm[tag]
        else:
            count[tag] = total
    return ref
