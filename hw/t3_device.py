"""``T3Device``: T3's per-GPU hardware around one memory interface.

::

    produce (GPU's tracked output stores) ──┐
                                            ├─ merge ─► reducer ─ commit ─► tracker ─ trigger ─► DMA ─► link_out
    link_in (updates from the ring) ────────┘             │                                      │   └► status
                                                          └──── comm merge (round robin) ◄───────┘
    compute (GPU's other reads/writes) ───────────────────────────► MCA arbiter ◄── occupancy
                                                                         └──► mem

* The GPU's stores to the tracked output and the ring's incoming updates are merged (round robin) into the
  near-memory reducer, which applies each as a read-modify-write. When an update's write is committed to the
  in-order memory stream, the tracker counts its 4 bytes against the packet's tag.
* When a tracked region is complete, the tracker triggers its DMA descriptor; the DMA reads the reduced words and
  sends them to the next device as update packets (or, for ``NOTIFY``, reports that the region is final).
  Because the tracker counts committed writes and memory is in order, the DMA's reads see the reduced data.
* The reducer's and the DMA's memory traffic (communication) share a port through a round-robin arbiter; the MCA
  arbiter then puts compute traffic first and lets communication in by the memory's queue occupancy.

Configuration: ``tracker_cfg``/``tracker_cfg_rsp`` (`hw.tracker`), ``dma_cfg`` (`hw.dma`), and the static inputs
``num_devices``, ``arb_mode``, ``arb_threshold``, ``arb_starvation_limit`` (`hw.arbiter`).
Link packets use `hw.dma.DmaParams.link_layout`; a packet on ``link_in`` is applied here whatever its
``dst_device`` (routing is the fabric's job).
"""

from __future__ import annotations

import dataclasses
import functools

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arbiter import ArbiterMode, ArbiterParams, MemoryArbiter
from hw.dma import DmaEngine, DmaParams
from hw.memory import mem_port_signature
from hw.params import BlockParams, param
from hw.reducer import NearMemoryReducer, ReducerParams
from hw.tracker import RequestKind, TrackerParams, TrackTrigger

BYTES_PER_WORD = 4


@dataclasses.dataclass(frozen=True, kw_only=True)
class T3DeviceParams(BlockParams):
    """Consistent parameters for the four blocks of a device.

    The tracker's tags, the reducer's tags and the DMA's link tags are one field; the tracker's descriptor
    indices are the DMA's; all memory ports share ``addr_bits``. The blocks' own parameter objects are
    ``tracker``, ``dma``, ``reducer`` and ``arbiter``.
    """

    addr_bits: int = param(20, 4, 48)
    entries: int = param(64, 2, 1 << 16)
    count_bits: int = param(20, 3, 32)
    fifo_depth: int = param(8, 2, 4096)
    channels: int = param(2, 1, 16)
    burst: int = param(8, 1, 256)
    outstanding: int = param(16, 2, 1024)
    device_bits: int = param(4, 1, 16)
    inflight: int = param(4, 1, 16)
    max_reads: int = param(16, 1, 4096)
    occupancy_bits: int = param(6, 1, 16)

    def _check(self) -> None:
        self._require(self.entries & (self.entries - 1) == 0, "entries", "a power of two >= 2")
        for name in ("tracker", "dma", "reducer", "arbiter"):
            getattr(self, name)  # the blocks' own checks

    @functools.cached_property
    def tracker(self) -> TrackerParams:
        return TrackerParams(entries=self.entries, count_bits=self.count_bits, desc_bits=_bits(self.entries),
                             addr_bits=self.addr_bits, size_bits=4, fifo_depth=self.fifo_depth)

    @functools.cached_property
    def dma(self) -> DmaParams:
        return DmaParams(addr_bits=self.addr_bits, descriptors=self.entries, device_bits=self.device_bits,
                         length_bits=self.count_bits, tag_bits=self.tracker.tag_bits, channels=self.channels,
                         burst=self.burst, outstanding=self.outstanding)

    @functools.cached_property
    def reducer(self) -> ReducerParams:
        return ReducerParams(addr_bits=self.addr_bits, tag_bits=self.tracker.tag_bits, inflight=self.inflight)

    @functools.cached_property
    def arbiter(self) -> ArbiterParams:
        return ArbiterParams(addr_bits=self.addr_bits, occupancy_bits=self.occupancy_bits, max_reads=self.max_reads)

    def blocks_dict(self) -> dict[str, dict[str, int]]:
        """The four blocks' parameters (what testbenches rebuild them from)."""
        return {"tracker": self.tracker.as_dict(), "dma": self.dma.as_dict(), "reducer": self.reducer.as_dict(),
                "arbiter": self.arbiter.as_dict()}


def _bits(n: int) -> int:
    return max(1, (n - 1).bit_length())


class T3Device(wiring.Component):
    """Tracker + DMA engine + near-memory reducer + MCA arbiter around one memory interface."""

    def __init__(self, params: T3DeviceParams | None = None) -> None:
        self.params = p = params or T3DeviceParams()
        tracker, dma = TrackTrigger(p.tracker), DmaEngine(p.dma)
        self._tracker, self._dma = tracker, dma
        self._reducer = NearMemoryReducer(p.reducer)
        self._arbiter = MemoryArbiter(p.arbiter)
        self._comm_merge = MemoryArbiter(p.arbiter)
        t, d = tracker.signature.members, dma.signature.members
        super().__init__({
            "tracker_cfg": t["cfg"],
            "tracker_cfg_rsp": t["cfg_rsp"],
            "tracker_errors": t["errors"],
            "dma_cfg": d["cfg"],
            "status": d["status"],
            "num_devices": d["num_devices"],
            "arb_mode": In(1),
            "arb_threshold": In(p.arbiter.occupancy_bits),
            "arb_starvation_limit": In(p.arbiter.limit_bits),
            "compute": In(mem_port_signature(p.addr_bits)),
            "produce": In(stream.Signature(p.reducer.packet_layout())),
            "link_in": In(stream.Signature(p.dma.link_layout())),
            "link_out": Out(stream.Signature(p.dma.link_layout())),
            "mem": Out(mem_port_signature(p.addr_bits)),
            "occupancy": In(p.arbiter.occupancy_bits),
            "applied": Out(32),
            "idle": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.tracker = tracker = self._tracker
        m.submodules.dma = dma = self._dma
        m.submodules.reducer = reducer = self._reducer
        m.submodules.arbiter = arbiter = self._arbiter
        m.submodules.comm_merge = merge = self._comm_merge

        wiring.connect(m, wiring.flipped(self.tracker_cfg), tracker.cfg)
        wiring.connect(m, tracker.cfg_rsp, wiring.flipped(self.tracker_cfg_rsp))
        wiring.connect(m, wiring.flipped(self.dma_cfg), dma.cfg)
        wiring.connect(m, dma.status, wiring.flipped(self.status))
        wiring.connect(m, dma.link, wiring.flipped(self.link_out))
        m.d.comb += [self.tracker_errors.eq(tracker.errors), dma.num_devices.eq(self.num_devices),
                     self.applied.eq(reducer.applied)]

        # Packets into the reducer: round robin between the GPU's stores and the ring's updates.
        last_link = Signal()  # the link won the last contested cycle
        pick_link = Mux(self.produce.valid & self.link_in.valid, ~last_link, self.link_in.valid)
        pkt = reducer.pkt
        m.d.comb += [
            pkt.valid.eq(self.produce.valid | self.link_in.valid),
            self.produce.ready.eq(pkt.ready & ~pick_link),
            self.link_in.ready.eq(pkt.ready & pick_link),
        ]
        with m.If(pick_link):
            m.d.comb += [pkt.payload.addr.eq(self.link_in.payload.addr), pkt.payload.op.eq(self.link_in.payload.op),
                         pkt.payload.data.eq(self.link_in.payload.data), pkt.payload.tag.eq(self.link_in.payload.tag)]
        with m.Else():
            m.d.comb += pkt.payload.eq(self.produce.payload)
        with m.If(pkt.valid & pkt.ready & self.produce.valid & self.link_in.valid):
            m.d.sync += last_link.eq(pick_link)

        # Committed updates are what the tracker counts.
        req = tracker.req
        m.d.comb += [
            req.valid.eq(reducer.commit.valid),
            req.payload.tag.eq(reducer.commit.payload.tag),
            req.payload.addr.eq(reducer.commit.payload.addr),
            req.payload.kind.eq(RequestKind.UPDATE),
            req.payload.size.eq(BYTES_PER_WORD),
            reducer.commit.ready.eq(req.ready),
        ]
        m.d.comb += [
            dma.trigger.valid.eq(tracker.trigger.valid),
            dma.trigger.payload.desc.eq(tracker.trigger.payload.desc),
            tracker.trigger.ready.eq(dma.trigger.ready),
        ]

        # Memory: reducer + DMA (communication) merged round robin, then MCA against compute.
        wiring.connect(m, reducer.mem, merge.compute)
        wiring.connect(m, dma.mem, merge.comm)
        m.d.comb += [merge.mode.eq(ArbiterMode.ROUND_ROBIN), merge.occupancy.eq(0), merge.threshold.eq(0),
                     merge.starvation_limit.eq(0)]
        wiring.connect(m, wiring.flipped(self.compute), arbiter.compute)
        wiring.connect(m, merge.mem, arbiter.comm)
        wiring.connect(m, arbiter.mem, wiring.flipped(self.mem))
        m.d.comb += [arbiter.occupancy.eq(self.occupancy), arbiter.mode.eq(self.arb_mode),
                     arbiter.threshold.eq(self.arb_threshold), arbiter.starvation_limit.eq(self.arb_starvation_limit)]

        m.d.comb += self.idle.eq(tracker.idle & dma.idle & reducer.idle & ~self.produce.valid & ~self.link_in.valid)
        return m
