"""System model of one T3 sublayer: a GEMM whose output is reduce-scattered over a ring of TP devices.

One device is simulated in the shared event core; the ring is homogeneous and every device runs the same
staggered schedule, so what arrives from the predecessor is this device's own outgoing traffic, shifted by
the link (the standard symmetry argument; it is exact for identical devices).

Components (all times in GPU cycles):

* **GEMM** on ``compute_units`` CUs: one output tile (``tile_m x tile_n``) per workgroup, K split into
  ``k_slice``-element steps. Each step loads its share of the tile's DRAM traffic (double-buffered: the load
  of step *j+1* is in flight while step *j* computes) and computes for
  ``2 tile_m tile_n k_slice / (flops_per_cu_per_cycle x gemm_efficiency)`` cycles. DRAM traffic per tile
  comes from the wave footprint: the A and B panels that a wave of ``compute_units`` consecutive tiles
  touches, read once per wave (L2 keeps a wave's panels, not more). The epilogue stores the tile (Sequential: a
  DRAM write; T3 stage 0: remote stores over the link; later stages: a near-memory update) and the CU takes its
  next tile once they are out. Load stalls and slower epilogues are what communication traffic costs the GEMM.
* **DRAM** (`Dram`): one server at HBM bandwidth plus a fixed latency. Requests are compute or
  communication class. Without MCA they are served in arrival order. With MCA (`hw.arbiter`'s policy)
  compute requests go first and a communication request enters the queue only while fewer than a threshold
  of requests are queued, or once it has waited ``mca_starvation_cycles``. As in T3, the threshold comes
  from the GEMM's measured memory intensity (`mca_threshold`).
* **Link**: the outgoing ring traffic, FIFO, plus latency; with ``rs_rings = 2`` the reduce-scatter runs as two
  rings in opposite directions, each with half the data, which the model folds into one link of twice the
  one-way bandwidth.
* **T3 (track & trigger, near-memory reduce)**: stage 0 tiles are stored straight to the next device (link,
  then a near-memory update there). Later stages update locally (near-memory read-modify-write: one DRAM read
  and one write). A tile's tracker entry fires when the local update and the incoming update are both in;
  a middle stage then DMA-reads the reduced tile and sends it on; the last stage holds the result. DMA reads
  and incoming updates are communication traffic.
* **Sequential**: the GEMM writes its output, then a ring reduce-scatter runs on the cores alone: per step a
  tile is sent (DRAM read + link), received into a buffer (write), reduced (two reads, one write).

The block-level cycle models (`sim.blocks`) give the per-request behaviour these components summarise: the
tracker fires two cycles after its last update is committed, the DMA streams a word per cycle behind memory
latency, the reducer is one read and one write per update, and the arbiter's policy is the MCA above.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sim.core.config import SUBLAYERS, HardwareConfig, T3StudyConfig
from sim.core.events import EventLoop

COMPUTE, COMM = 0, 1


@dataclass(frozen=True)
class Sublayer:
    model: str
    name: str
    tp: int
    m: int  # tokens
    n: int  # hidden
    k: int  # inner dimension on one device

    @property
    def key(self) -> str:
        return f"{self.model}/{self.name}/TP{self.tp}"


def sublayers(study: T3StudyConfig) -> list[Sublayer]:
    out = []
    for model in study.models:
        for tp in study.tp:
            for name in study.sublayers:
                k = SUBLAYERS[name][0] * model.hidden // tp
                out.append(Sublayer(model.name, name, tp, study.tokens, model.hidden, k))
    return out


@dataclass
class Traffic:
    dram_read: int = 0
    dram_write: int = 0
    link: int = 0

    @property
    def dram(self) -> int:
        return self.dram_read + self.dram_write


@dataclass
class RunResult:
    cycles: int
    gemm_end: int
    traffic: Traffic
    compute_busy_cycles: float  # summed over CUs
    gemm_stall_cycles: float  # summed over CUs: waiting for loads
    comm_after_gemm: int  # cycles from the GEMM's end to the last reduced tile
    dram_busy_cycles: float
    events: int
    extra: dict[str, float] = field(default_factory=dict)


class Dram:
    """DRAM queue + server (see the module docstring for the two policies).

    Requests wait in one FIFO queue for the server. Without MCA every request joins it at once. With MCA a
    communication request waits in the arbiter and joins only while fewer than ``threshold`` requests are
    queued; once the oldest has waited ``starvation`` cycles since it arrived or since the last
    communication grant, one request joins regardless (as `hw.arbiter`'s starvation counter does).
    """

    def __init__(self, loop: EventLoop, bytes_per_cycle: float, latency: int, *, mca: bool, threshold: int,
                 starvation: int, traffic: Traffic) -> None:
        self.loop, self.bpc, self.latency = loop, bytes_per_cycle, latency
        self.mca, self.threshold, self.starvation = mca, threshold, starvation
        self.queue: deque = deque()
        self.held: deque = deque()  # communication requests not yet admitted (MCA)
        self.last_grant = 0
        self.busy = False
        self.busy_cycles = 0.0
        self.traffic = traffic
        self._check_at: int | None = None

    def request(self, cls: int, nbytes: int, write: bool, done: Callable[[], None]) -> None:
        if write:
            self.traffic.dram_write += nbytes
        else:
            self.traffic.dram_read += nbytes
        req = (nbytes, done, self.loop.now)
        if self.mca and cls == COMM:
            self.held.append(req)
            self._admit()
        else:
            self.queue.append(req)
        self._serve()

    def _admit(self) -> None:
        now = self.loop.now
        while self.held and len(self.queue) < self.threshold:
            self.queue.append(self.held.popleft())
            self.last_grant = now
        if not self.held:
            return
        due = max(self.held[0][2], self.last_grant) + self.starvation
        if now >= due:
            self.queue.append(self.held.popleft())
            self.last_grant = now
            if self.held:
                due = now + self.starvation
        if self.held and (self._check_at is None or self._check_at > due):
            self._check_at = due
            self.loop.at(due, self._starved, due)

    def _starved(self, due: int) -> None:
        if self._check_at == due:
            self._check_at = None
        self._admit()
        self._serve()

    def _serve(self) -> None:
        if self.busy or not self.queue:
            return
        nbytes, done, _ = self.queue.popleft()
        service = nbytes / self.bpc
        self.busy = True
        self.busy_cycles += service
        end = self.loop.now + max(1, math.ceil(service))
        self.loop.at(end, self._free)
        self.loop.at(end + self.latency, done)

    def _free(self) -> None:
        self.busy = False
        if self.mca:
            self._admit()
        self._serve()


class Link:
    def __init__(self, loop: EventLoop, bytes_per_cycle: float, latency: int, traffic: Traffic) -> None:
        self.loop, self.bpc, self.latency, self.traffic = loop, bytes_per_cycle, latency, traffic
        self.free_at = 0

    def send(self, nbytes: int, arrived: Callable[[], None], sent: Callable[[], None] | None = None) -> None:
        """Queue ``nbytes``; ``sent()`` when they have left, ``arrived()`` when they reach the other end."""
        start = max(self.loop.now, self.free_at)
        self.free_at = start + max(1, math.ceil(nbytes / self.bpc))
        self.traffic.link += nbytes
        if sent is not None:
            self.loop.at(self.free_at, sent)
        self.loop.at(self.free_at + self.latency, arrived)


class _Gemm:
    """CUs working through tiles in order; ``on_tile(i, release)`` when tile i's last step has computed, and the
    CU moves on when ``release()`` is called (its output stores have left)."""

    def __init__(self, loop: EventLoop, dram: Dram, n_tiles: int, cus: int, steps: int, step_bytes: float,
                 step_cycles: float, on_tile: Callable[[int, Callable[[], None]], None]) -> None:
        self.loop, self.dram = loop, dram
        self.steps, self.step_bytes, self.step_cycles = steps, step_bytes, step_cycles
        self.on_tile = on_tile
        self.next_tile = 0
        self.n_tiles = n_tiles
        self.busy = 0.0
        self.stall = 0.0
        self.end = 0
        for cu in range(min(cus, n_tiles)):
            self._start(cu)

    def _start(self, cu: int) -> None:
        if self.next_tile >= self.n_tiles:
            return
        tile = self.next_tile
        self.next_tile += 1
        st = {"tile": tile, "loaded": [False] * self.steps, "step": 0, "computing": False,
              "wait_from": self.loop.now}
        for j in range(min(2, self.steps)):
            self._load(cu, st, j)

    def _load(self, cu: int, st: dict, j: int) -> None:
        self.dram.request(COMPUTE, max(1, int(self.step_bytes)), False, lambda: self._loaded(cu, st, j))

    def _loaded(self, cu: int, st: dict, j: int) -> None:
        st["loaded"][j] = True
        if not st["computing"] and st["step"] == j:
            self._compute(cu, st)

    def _compute(self, cu: int, st: dict) -> None:
        j = st["step"]
        self.stall += self.loop.now - st["wait_from"]
        st["computing"] = True
        if j + 2 < self.steps:
            self._load(cu, st, j + 2)
        self.busy += self.step_cycles
        self.loop.after(max(1, round(self.step_cycles)), self._computed, cu, st)

    def _released(self, cu: int, st: dict) -> None:
        self.stall += self.loop.now - st["wait_from"]
        self.end = max(self.end, self.loop.now)
        self._start(cu)

    def _computed(self, cu: int, st: dict) -> None:
        st["computing"] = False
        st["step"] += 1
        st["wait_from"] = self.loop.now
        if st["step"] == self.steps:
            # Epilogue: the workgroup stores its output tile; the CU takes its next tile once they are out.
            self.on_tile(st["tile"], lambda: self._released(cu, st))
        elif st["loaded"][st["step"]]:
            self._compute(cu, st)


@dataclass(frozen=True)
class Shape:
    """Derived per-sublayer quantities."""

    tiles_m_per_chunk: int
    tiles_n: int
    tiles_per_chunk: int
    tile_bytes: int
    steps: int
    step_bytes: float
    step_cycles: float
    dram_bpc: float
    link_bpc: float
    dram_latency: int
    link_latency: int


def shape(sl: Sublayer, hw: HardwareConfig, st: T3StudyConfig) -> Shape:
    gpu = hw.gpu
    rows = sl.m // sl.tp
    tiles_m = max(1, math.ceil(rows / st.tile_m))
    tiles_n = max(1, math.ceil(sl.n / st.tile_n))
    tile_bytes = st.tile_m * st.tile_n * st.dtype_bytes
    steps = max(1, math.ceil(sl.k / st.k_slice))
    # Wave footprint: a wave of `compute_units` consecutive (row-major) tiles touches these panels.
    wave = min(gpu.compute_units, tiles_m * tiles_n * sl.tp)
    a_panels = min(math.ceil(wave / tiles_n) + (1 if wave % tiles_n else 0), tiles_m * sl.tp)
    b_panels = min(wave, tiles_n)
    wave_bytes = (a_panels * st.tile_m + b_panels * st.tile_n) * sl.k * st.dtype_bytes
    tile_load = wave_bytes / wave
    flops_step = 2 * st.tile_m * st.tile_n * st.k_slice
    step_cycles = flops_step / (gpu.flops_per_cu_per_cycle * st.gemm_efficiency)
    return Shape(
        tiles_m_per_chunk=tiles_m, tiles_n=tiles_n, tiles_per_chunk=tiles_m * tiles_n, tile_bytes=tile_bytes,
        steps=steps, step_bytes=tile_load / steps, step_cycles=step_cycles,
        dram_bpc=gpu.hbm_gbps / gpu.clock_ghz,
        link_bpc=hw.ring_link.bytes_per_cycle_one_way(gpu.clock_ghz) * st.rs_rings,
        dram_latency=int(round(st.dram_latency_ns * gpu.clock_ghz)),
        link_latency=hw.ring_link.latency_cycles(gpu.clock_ghz),
    )


def _batched(dram: Dram, cls: int, nbytes: int, batch: int, write: bool, done: Callable[[], None]) -> None:
    """Issue ``nbytes`` as requests of at most ``batch`` bytes; ``done`` when all completed."""
    n = max(1, math.ceil(nbytes / batch))
    left = [n]

    def one() -> None:
        left[0] -= 1
        if left[0] == 0:
            done()

    for i in range(n):
        dram.request(cls, min(batch, nbytes - i * batch), write, one)


def _rmw(dram: Dram, cls: int, nbytes: int, batch: int, done: Callable[[], None]) -> None:
    """Near-memory read-modify-write: a read then a write of ``nbytes``, per batch."""
    _batched(dram, cls, nbytes, batch, False, lambda: _batched(dram, cls, nbytes, batch, True, done))


def mca_threshold(st: T3StudyConfig, gemm_dram_utilization: float) -> int:
    """T3's MCA threshold from the GEMM's measured memory intensity: the more of DRAM's time the GEMM alone
    keeps busy, the fewer queued requests communication may add to."""
    return max(1, min(st.mca_max_threshold, round(st.mca_max_threshold * (1 - gemm_dram_utilization))))


def run_t3(sl: Sublayer, hw: HardwareConfig, st: T3StudyConfig, *, mca: bool, threshold: int = 1) -> RunResult:
    """T3 (``mca=False``) or T3 + MCA with queue-occupancy ``threshold``: fused GEMM + ring reduce-scatter."""
    sh = shape(sl, hw, st)
    loop, traffic = EventLoop(), Traffic()
    dram = Dram(loop, sh.dram_bpc, sh.dram_latency, mca=mca, threshold=threshold,
                starvation=st.mca_starvation_cycles, traffic=traffic)
    link = Link(loop, sh.link_bpc, sh.link_latency, traffic)
    p, tpc, tb, batch = sl.tp, sh.tiles_per_chunk, sh.tile_bytes, st.comm_batch_bytes
    pending = {}  # (stage, tile) -> contributions still missing (local, incoming)
    finish = [0]

    def contribution(stage: int, tile: int) -> None:
        key = (stage, tile)
        pending[key] = pending.get(key, 2) - 1
        if pending[key]:
            return
        del pending[key]
        if stage == p - 1:
            finish[0] = max(finish[0], loop.now + 2)  # tracker fires two cycles after the last commit
            return
        # DMA reads the reduced tile and sends it; it arrives (by symmetry) as the incoming update of stage+1.
        _batched(dram, COMM, tb, batch, False, lambda: link.send(tb, lambda: arrive(stage + 1, tile)))

    def arrive(stage: int, tile: int) -> None:
        _rmw(dram, COMM, tb, batch, lambda: contribution(stage, tile))

    def tile_done(i: int, release: Callable[[], None]) -> None:
        stage, tile = divmod(i, tpc)
        if stage == 0:  # remote stores: the CU is done once they have left on the link
            link.send(tb, lambda: arrive(1, tile), sent=release)
        else:  # local near-memory update
            def updated() -> None:
                release()
                contribution(stage, tile)
            _rmw(dram, COMPUTE, tb, batch, updated)

    gemm = _Gemm(loop, dram, p * tpc, hw.gpu.compute_units, sh.steps, sh.step_bytes, sh.step_cycles, tile_done)
    loop.run()
    assert not pending, "every tracked tile must fire"
    return RunResult(cycles=finish[0], gemm_end=gemm.end, traffic=traffic, compute_busy_cycles=gemm.busy,
                     gemm_stall_cycles=gemm.stall, comm_after_gemm=finish[0] - gemm.end,
                     dram_busy_cycles=dram.busy_cycles, events=loop.events_run)


def run_sequential(sl: Sublayer, hw: HardwareConfig, st: T3StudyConfig) -> tuple[RunResult, int, int]:
    """GEMM (output written to DRAM), then ring reduce-scatter on the cores with nothing to compete with.

    Returns the run, the GEMM-alone time and the reduce-scatter-alone time (the latter two give Ideal).
    """
    sh = shape(sl, hw, st)
    loop, traffic = EventLoop(), Traffic()
    dram = Dram(loop, sh.dram_bpc, sh.dram_latency, mca=False, threshold=0, starvation=0, traffic=traffic)
    link = Link(loop, sh.link_bpc, sh.link_latency, traffic)
    p, tpc, tb, batch = sl.tp, sh.tiles_per_chunk, sh.tile_bytes, st.comm_batch_bytes
    written = [0]
    gemm_done = [0]
    gemm_dram_busy = [0.0]

    def tile_done(i: int, release: Callable[[], None]) -> None:
        def stored() -> None:
            release()
            written[0] += 1
            if written[0] == p * tpc:
                gemm_done[0] = loop.now
                gemm_dram_busy[0] = dram.busy_cycles
                start_rs()
        _batched(dram, COMPUTE, tb, batch, True, stored)

    gemm = _Gemm(loop, dram, p * tpc, hw.gpu.compute_units, sh.steps, sh.step_bytes, sh.step_cycles, tile_done)
    finish = [0]

    def start_rs() -> None:
        for tile in range(tpc):
            send(1, tile)

    def send(step: int, tile: int) -> None:  # read the partial (or reduced) tile and put it on the link
        _batched(dram, COMPUTE, tb, batch, False, lambda: link.send(tb, lambda: receive(step, tile)))

    def receive(step: int, tile: int) -> None:  # buffer the incoming tile, then reduce it with the local one
        def reduced() -> None:
            if step == p - 1:
                finish[0] = max(finish[0], loop.now)
            else:
                send(step + 1, tile)
        _batched(dram, COMPUTE, tb, batch, True,
                 lambda: _batched(dram, COMPUTE, 2 * tb, batch, False,
                                  lambda: _batched(dram, COMPUTE, tb, batch, True, reduced)))

    loop.run()
    t_gemm = gemm_done[0]
    t_rs = finish[0] - t_gemm
    res = RunResult(cycles=finish[0], gemm_end=t_gemm, traffic=traffic, compute_busy_cycles=gemm.busy,
                    gemm_stall_cycles=gemm.stall, comm_after_gemm=t_rs, dram_busy_cycles=dram.busy_cycles,
                    events=loop.events_run, extra={"gemm_dram_utilization": gemm_dram_busy[0] / max(1, t_gemm)})
    return res, t_gemm, t_rs
