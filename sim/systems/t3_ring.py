"""Ring of T3 devices at the tracker level: producers, trackers, DMA-over-link and the resulting traces.

Each device's producer stores come from the planner. Local stores reach the device's tracker at their cycle;
stage 0's remote stores and the DMA updates that fired trackers send cross the one-way link to the next device
(serialised at the link's per-direction bandwidth, then the link latency) and reach that device's tracker.
The DMA engine is modelled only as "packets leave back to back at link rate"; the full DMA engine, reducer and
memory arbitration come with the T3 system model.

The run returns, per device, the tracker's input in the order it accepted it (trace kind ``tracker_requests``):
that is the stimulus the RTL replays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hw.dma import DmaOp
from hw.tracker import RequestKind
from sim.blocks.tracker import triggers_table
from sim.blocks.tracker.model import TrackerModel, program_tracker
from sim.core import trace
from sim.core.config import HardwareConfig
from sim.core.events import EventLoop
from sw_stack.t3.planner import T3Plan

ARRIVAL_PRIORITY = 0


@dataclass
class DeviceResult:
    device: int
    tracker_input: np.ndarray          # tracker_requests, in acceptance order
    triggers: np.ndarray               # triggers
    notify_cycles: list[int] = field(default_factory=list)
    compute_end_cycle: int = 0
    stall_cycles: int = 0


@dataclass
class RingResult:
    devices: list[DeviceResult]
    link_bytes: int
    events: int

    @property
    def last_notify_cycle(self) -> int:
        return max(max(d.notify_cycles, default=-1) for d in self.devices)


class _Link:
    """One direction of a ring link: FIFO serialisation at ``bytes_per_cycle`` plus ``latency`` cycles."""

    def __init__(self, bytes_per_cycle: float, latency: int) -> None:
        self.bpc = bytes_per_cycle
        self.latency = latency
        self.free_at = 0
        self.bytes = 0

    def send(self, now: int, nbytes: int) -> int:
        start = max(now, self.free_at)
        self.free_at = start + max(1, math.ceil(nbytes / self.bpc))
        self.bytes += nbytes
        return self.free_at + self.latency


def accepted_table(model: TrackerModel) -> np.ndarray:
    assert model.accepted is not None
    out = trace.empty("tracker_requests", len(model.accepted))
    if model.accepted:
        a = np.array(model.accepted, dtype=np.uint64)
        for i, name in enumerate(("cycle", "tag", "addr", "kind", "size", "source")):
            out[name] = a[:, i]
    return out


def simulate_ring(plan: T3Plan, hw: HardwareConfig) -> RingResult:
    """Run all devices' trackers and links in one event loop."""
    n = plan.workload.devices
    loop = EventLoop()
    clock = hw.gpu.clock_ghz
    links = [_Link(hw.ring_link.bytes_per_cycle_one_way(clock), hw.ring_link.latency_cycles(clock))
             for _ in range(n)]
    packet = plan.workload.dma_packet_bytes
    params = hw.tracker
    notify: list[list[int]] = [[] for _ in range(n)]
    trackers: list[TrackerModel] = []

    def arrive(dst: int, tag: int, size: int, addr: int, kind: int) -> None:
        trackers[dst].submit(loop.now, tag, size, addr, kind, source=1)

    def send(src: int, tag: int, size: int, addr: int, kind: int) -> None:
        at = links[src].send(loop.now, size)
        loop.at(at, arrive, (src + 1) % n, tag, size, addr, kind, priority=ARRIVAL_PRIORITY)

    def fire(device: int, cycle: int, desc: int, entry: int) -> None:
        d = plan.devices[device].descriptors[desc]
        if d["op"] == DmaOp.NOTIFY:
            notify[device].append(cycle)
            return
        length, addr = int(d["length"]), int(d["src_addr"])
        for off in range(0, length, packet):
            send(device, int(d["dst_tag"]), min(packet, length - off), addr + off,
                 int(RequestKind.STORE if d["op"] == DmaOp.STORE else RequestKind.UPDATE))

    for dp in plan.devices:
        tm = TrackerModel(loop, params, record=True,
                          on_trigger=lambda c, desc, e, dev=dp.device: fire(dev, c, desc, e))
        program_tracker(tm, dp.program)
        trackers.append(tm)
    for dp in plan.devices:
        s = dp.stores
        local = s["dst_device"] == dp.device
        for row in s[local]:
            trackers[dp.device].submit(int(row["cycle"]), int(row["tag"]), int(row["size"]), int(row["addr"]),
                                       int(row["kind"]), source=0)
        for row in s[~local]:
            loop.at(int(row["cycle"]), send, dp.device, int(row["tag"]), int(row["size"]), int(row["addr"]),
                    int(row["kind"]), priority=ARRIVAL_PRIORITY)
    loop.run()

    results = []
    for dp, tm in zip(plan.devices, trackers, strict=True):
        results.append(DeviceResult(dp.device, accepted_table(tm), triggers_table(tm.triggers), notify[dp.device],
                                    dp.compute_end_cycle, tm.stats.stall_cycles))
    return RingResult(results, sum(link.bytes for link in links), loop.events_run)
