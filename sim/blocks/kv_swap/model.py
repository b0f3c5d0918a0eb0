"""Models of the KV swap controller (`hw.kv_swap.KvSwapController`) and of its host-link stand-in.

* `KvSwapModel`: cycle-exact, stepped one cycle at a time; it mirrors the RTL's registers (request tables, run
  FIFOs, engine segment/burst registers, header FIFO, status FIFO, pending error/abort registers). Every
  decision uses the state at the start of the cycle; FIFO pushes become visible the next cycle.
* `HostLinkModel`: cycle-exact model of `sim.blocks.kv_swap.rtl.HostLink` + `hw.memory.SimpleMemory`: the first
  command of each burst waits ``overhead_cycles`` cycles of being offered before the memory sees it.
* `swap_cycles`: a transaction-level estimate for serving simulators (no cycle stepping), see its docstring.

Port objects given to the model have ``offer(addr, write, data, burst) -> bool`` (the command is valid this
cycle; returns whether it was accepted), ``rsp_valid``, ``rsp_data``, ``pop_rsp`` and ``step``: use
`SimpleMemoryModel` for the device side and `HostLinkModel` for the host side; the caller steps them after the
controller each cycle.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from hw.kv_swap import BAD_ABORT_BITS, KvSwapParams, SwapDir, SwapError
from hw.memory import MemoryParams
from sim.blocks.memory.model import SimpleMemoryModel


@dataclass(frozen=True)
class Run:
    """One run record: ``count`` blocks from ``src`` to ``dst``; ``last`` closes the request."""

    tag: int
    direction: int
    src: int
    dst: int
    count: int
    last: bool


class HostLinkModel(SimpleMemoryModel):
    """The host link (per-burst overhead gate) in front of a `SimpleMemoryModel` (the host memory)."""

    def __init__(self, params: MemoryParams, overhead_cycles: int, storage: dict[int, int] | None = None) -> None:
        super().__init__(params, storage)
        self.overhead = overhead_cycles
        self.count = 0
        self.charged = False
        self._tick = False
        self._fire = False

    def offer(self, addr: int, write: int, data: int, burst: int = 0) -> bool:
        if self.overhead and burst and not self.charged:
            self._tick = True
            return False
        if super().offer(addr, write, data):
            self._fire = True
            return True
        return False

    def step(self) -> None:
        if self._tick:
            if self.count == self.overhead - 1:
                self.charged, self.count = True, 0
            else:
                self.count += 1
        if self._fire:
            self.charged = False
        self._tick = self._fire = False
        super().step()


@dataclass
class _Slot:
    tag: int
    complete: bool = False
    dead: bool = False
    nruns: int = 0


@dataclass
class SwapRun:
    """What a replay produced: statuses ``(cycle, tag, error)``, accepted device commands
    ``(cycle, addr, write, data)`` and host commands ``(cycle, addr, write, data, burst)``."""

    statuses: list[tuple[int, int, int]] = field(default_factory=list)
    dev_cmds: list[tuple[int, int, int, int]] = field(default_factory=list)
    host_cmds: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    cycles: int = 0
    bad_aborts: int = 0
    run_accepts: list[int] = field(default_factory=list)  # cycle each run was accepted (model only)


class KvSwapModel:
    """Cycle-exact model of `hw.kv_swap.KvSwapController` (see the RTL's docstring for the contract)."""

    def __init__(self, params: KvSwapParams) -> None:
        self.p = p = params
        qd = p.queue_depth
        self.slots: list[list[_Slot | None]] = [[None] * qd, [None] * qd]
        self.head = [0, 0]
        self.tail = [0, 0]
        self.count = [0, 0]
        self.runs: list[deque[tuple[int, int, int, bool]]] = [deque(), deque()]
        self.headers: deque[tuple[int, int, bool, int, int]] = deque()  # dst, burst, last, tag, dir
        self.statuses: deque[tuple[int, int]] = deque()
        # engine
        self.active = False
        self.e_dir = 0
        self.e_dead = False
        self.e_tag = 0
        self.e_runs = 0
        self.seg = [0, 0, 0, False]  # src, dst, left, last
        self.b_left = self.b_len = self.b_src = self.b_dst = 0
        self.b_first = self.b_final = False
        self.last_dir = 0
        # ingest
        self.in_req = False
        self.cur_dir = self.cur_slot = self.cur_tag = self.cur_err = self.cur_nruns = 0
        self.err_pending: tuple[int, int] | None = None
        # aborts
        self.abort_pending: int | None = None
        self.abort_err = False
        self.bad_aborts = 0

    def idle(self) -> bool:
        return (not self.in_req and self.count == [0, 0] and not self.active and not self.headers
                and not self.statuses and self.err_pending is None and self.abort_pending is None)

    def _range_error(self, d: int, r: Run) -> int:
        p = self.p
        src_pool, dst_pool = (p.dev_blocks, p.host_blocks) if d == SwapDir.OUT else (p.host_blocks, p.dev_blocks)
        if r.count == 0:
            return SwapError.ZERO_COUNT
        if r.src + r.count > src_pool or r.dst + r.count > dst_pool:
            return SwapError.OUT_OF_RANGE
        return SwapError.OK

    def cycle(self, t: int, dev, host, run: Run | None, abort: int | None, status_ready: bool,
              out: SwapRun) -> tuple[bool, bool]:
        """Advance one cycle with ``run``/``abort`` offered (or None); return whether each was taken."""
        p = self.p
        qd = p.queue_depth
        n_statuses, n_headers = len(self.statuses), len(self.headers)
        n_runs = [len(self.runs[0]), len(self.runs[1])]
        count0 = list(self.count)
        err_pending0, abort_pending0 = self.err_pending is not None, self.abort_pending is not None
        pushes: list[tuple[int, int]] = []

        # Status output.
        if n_statuses and status_ready:
            tag, err = self.statuses.popleft()
            out.statuses.append((t, tag, err))

        # Write side.
        ports = {SwapDir.OUT: dev, SwapDir.IN: host}
        wrote_port = None
        push_done = False
        if n_headers:
            dst, burst, last, tag, hdir = self.headers[0]
            rsp, wr = (host, dev) if hdir == SwapDir.IN else (dev, host)
            if rsp.rsp_valid() and (not last or n_statuses < p.status_depth):
                data = rsp.rsp_data()
                wrote_port = wr
                if wr.offer(dst, 1, data, burst):
                    rsp.pop_rsp()
                    self.headers.popleft()
                    self._log(out, t, wr is host, dst, 1, data, burst)
                    if last:
                        push_done = True
                        pushes.append((tag, int(SwapError.OK)))
        push_err = self.err_pending is not None and not push_done and n_statuses < p.status_depth
        if push_err:
            pushes.append(self.err_pending)
            self.err_pending = None
        if self.abort_pending is not None and not push_done and not push_err and n_statuses < p.status_depth:
            pushes.append((self.abort_pending, int(SwapError.ABORTED)))
            self.abort_pending = None

        # Engine start decision (needed by the abort search).
        runnable = [self.count[d] != 0 and self.slots[d][self.head[d]].complete for d in (0, 1)]
        pick = SwapDir.IN if runnable[SwapDir.IN] else SwapDir.OUT
        start = not self.active and any(runnable) and (n_headers == 0 or pick == self.last_dir)

        # Aborts (start-of-cycle table).
        abort_taken = abort is not None and not abort_pending0
        if abort_taken:
            hit = None
            for d in (SwapDir.IN, SwapDir.OUT):
                for s in range(qd):
                    e = self.slots[d][s]
                    owned = s == self.head[d] and ((self.active and self.e_dir == d) or (start and pick == d))
                    if e is not None and e.complete and not e.dead and not owned and e.tag == abort:
                        hit = (d, s)
                        break
                if hit:
                    break
            if hit is None:
                self.abort_err = True
                self.bad_aborts = min(self.bad_aborts + 1, (1 << BAD_ABORT_BITS) - 1)
            else:
                self.slots[hit[0]][hit[1]].dead = True
                self.abort_pending = abort

        # Engine.
        new_header = None
        if start:
            e = self.slots[pick][self.head[pick]]
            self.active, self.e_dir, self.last_dir = True, int(pick), int(pick)
            self.e_dead, self.e_tag, self.e_runs = e.dead, e.tag, e.nruns
            self.seg = [0, 0, 0, False]
            self.b_left = 0
        elif self.active:
            d = self.e_dir
            fifo = self.runs[d]
            if self.e_dead:
                if n_runs[d]:
                    fifo.popleft()
                    self.e_runs -= 1
                    if self.e_runs == 0:
                        self._finish()
            elif self.b_left:
                if n_headers < p.outstanding:
                    port = ports[d]
                    assert port is not wrote_port, "a port was read and written in one cycle"
                    burst = self.b_len if self.b_first else 0
                    if port.offer(self.b_src, 0, 0, burst):
                        last = self.b_final and self.b_left == 1
                        new_header = (self.b_dst, burst, last, self.e_tag, d)
                        self._log(out, t, port is host, self.b_src, 0, 0, burst)
                        self.b_src += 1
                        self.b_dst += 1
                        self.b_left -= 1
                        self.b_first = False
                        if last:
                            self._finish()
            else:
                src, dst, left, seg_last = self.seg
                mb = p.max_burst_blocks
                if left == 0:
                    if n_runs[d]:
                        self.seg = list(fifo.popleft())
                elif left < mb and not seg_last and n_runs[d] and fifo[0][0] == src + left and \
                        fifo[0][1] == dst + left:
                    r = fifo.popleft()
                    self.seg = [src, dst, left + r[2], r[3]]
                else:
                    n = min(left, mb)
                    sh = p.word_shift
                    self.b_left = self.b_len = n << sh
                    self.b_src, self.b_dst = src << sh, dst << sh
                    self.b_first, self.b_final = True, seg_last and left <= mb
                    self.seg = [src + n, dst + n, left - n, seg_last]

        # Ingest.
        run_taken = False
        if run is not None:
            d = self.cur_dir if self.in_req else run.direction
            store = not self.in_req or self.cur_nruns < p.run_depth
            room = n_runs[d] < p.run_depth
            run_taken = not err_pending0 and (self.in_req or count0[d] < qd) and (not store or room)
        if run_taken:
            err = self._range_error(d, run)
            if err == SwapError.OK and not store:
                err = SwapError.QUEUE_FULL
            first_err = self.cur_err if self.in_req and self.cur_err != SwapError.OK else int(err)
            nr_new = (self.cur_nruns if self.in_req else 0) + int(store)
            if store:
                self.runs[d].append((run.src, run.dst, run.count, bool(run.last)))
            if not self.in_req:
                slot = self.tail[d]
                self.slots[d][slot] = _Slot(tag=run.tag)
                self.tail[d] = (slot + 1) % qd
                self.count[d] += 1
                self.cur_dir, self.cur_slot, self.cur_tag = d, slot, run.tag
            e = self.slots[d][self.cur_slot]
            e.nruns = nr_new
            if run.last:
                e.complete, e.dead = True, first_err != SwapError.OK
                self.in_req = False
                if first_err != SwapError.OK:
                    self.err_pending = (self.cur_tag, first_err)
            else:
                self.in_req, self.cur_err, self.cur_nruns = True, first_err, nr_new

        if new_header is not None:
            self.headers.append(new_header)
        self.statuses.extend(pushes)
        return run_taken, abort_taken

    def _finish(self) -> None:
        d = self.e_dir
        self.slots[d][self.head[d]] = None
        self.head[d] = (self.head[d] + 1) % self.p.queue_depth
        self.count[d] -= 1
        self.active = False

    @staticmethod
    def _log(out: SwapRun, t: int, is_host: bool, addr: int, write: int, data: int, burst: int) -> None:
        if is_host:
            out.host_cmds.append((t, addr, write, data, burst))
        else:
            out.dev_cmds.append((t, addr, write, data))


def run_kv_swap(params: KvSwapParams, dev: SimpleMemoryModel, host: HostLinkModel,
                runs: Sequence[tuple[int, Run]], aborts: Sequence[tuple[int, int]] = (),
                status_ready: Callable[[int], bool] | None = None, max_cycles: int = 10_000_000) -> SwapRun:
    """Replay runs ``(available cycle, Run)`` and aborts ``(available cycle, tag)``, each stream in order."""
    model = KvSwapModel(params)
    out = SwapRun()
    i = j = 0
    for t in range(max_cycles):
        if i == len(runs) and j == len(aborts) and model.idle():
            out.cycles, out.bad_aborts = t, model.bad_aborts
            return out
        r = runs[i][1] if i < len(runs) and runs[i][0] <= t else None
        a = aborts[j][1] if j < len(aborts) and aborts[j][0] <= t else None
        took_run, took_abort = model.cycle(t, dev, host, r, a, status_ready is None or status_ready(t), out)
        if took_run:
            out.run_accepts.append(t)
        i += took_run
        j += took_abort
        dev.step()
        host.step()
    raise RuntimeError(f"KV swap model did not finish within {max_cycles} cycles")


# --- transaction-level estimate ------------------------------------------------------------------------------

@dataclass(frozen=True)
class LinkParams:
    """Host link for `swap_cycles`: ``overhead_cycles`` per burst, ``words_per_cycle`` streaming bandwidth."""

    overhead_cycles: int = 0
    words_per_cycle: float = 1.0


def coalesce(runs: Iterable[tuple[int, int, int]], max_burst_blocks: int) -> list[tuple[int, int, int]]:
    """Bursts ``(src, dst, blocks)`` the controller issues for one request's runs ``(src, dst, count)``.

    Same rule as the engine: runs adjacent in both source and destination join the current segment; a segment
    is cut into bursts of ``max_burst_blocks`` (the engine merges lazily, only while the remaining segment is
    shorter than a burst, which yields exactly these bursts).
    """
    bursts: list[tuple[int, int, int]] = []
    seg: list[int] | None = None
    for src, dst, n in runs:
        if seg is not None and src == seg[0] + seg[2] and dst == seg[1] + seg[2]:
            seg[2] += n
            continue
        if seg is not None:
            bursts.extend(_cut(seg, max_burst_blocks))
        seg = [src, dst, n]
    if seg is not None:
        bursts.extend(_cut(seg, max_burst_blocks))
    return bursts


def _cut(seg: list[int], mb: int) -> list[tuple[int, int, int]]:
    src, dst, left = seg
    out = []
    while left:
        n = min(left, mb)
        out.append((src, dst, n))
        src, dst, left = src + n, dst + n, left - n
    return out


def swap_cycles(runs: Iterable[tuple[int, int, int]], params: KvSwapParams, link: LinkParams) -> float:
    """Transaction-level cycles of one swap: ``sum over bursts (overhead + words / words_per_cycle)``.

    ``runs`` are one request's ``(src, dst, count)``. This is the steady-state streaming cost: it leaves out the
    fixed pipeline fill (memory latency, a few control cycles per request) and the controller's one or two
    bookkeeping cycles per burst, and assumes the device memory keeps up with the link. Against the cycle model
    with ``interval = 1`` memories it is a lower bound; see ``tests/blocks/kv_swap/test_kv_swap_model.py`` for the
    measured gap.
    """
    total = 0.0
    for _, _, n in coalesce(runs, params.max_burst_blocks):
        total += link.overhead_cycles + n * params.block_words / link.words_per_cycle
    return total


# --- stimulus shared by the tests and the execution API -------------------------------------------------------

@dataclass
class SwapWorkload:
    """Runs ``(cycle, Run)``, aborts ``(cycle, tag)``, memory preloads (word address -> data, every pool word), and
    the requests (their runs) in stream order."""

    runs: list[tuple[int, Run]]
    aborts: list[tuple[int, int]]
    dev_preload: dict[int, int]
    host_preload: dict[int, int]
    requests: list[list[Run]]


# An abort scenario's blocker moves at least this many words, far more than the cycles from its last run to the
# abort (the named request's runs, at most 9, and 1-3 cycles): see `random_swap_workload`.
BLOCKER_WORDS = 16


def _service_estimate(p: KvSwapParams, parts: Sequence[tuple[int, int, int]], bad: bool, dev: MemoryParams,
                      host: MemoryParams, overhead: int) -> int:
    """A generous bound on the cycles the controller needs for one request once it may start: 3/2 of the sum of
    a pipeline fill (both latencies and a few control cycles), per burst the link overhead and two control
    cycles, per word the slower memory's interval. Measured on the standard stimulus (10 seeds, status
    backpressure 0 to 90 %), the controller is idle for 30 to 700 cycles before each scenario with the plain sum,
    and scenarios fail to find it idle with half of it; status backpressure adds little (a request takes longer
    than its status does to leave)."""
    if bad:
        return 2 * (len(parts) + 8)
    bursts = sum(-(-n // p.max_burst_blocks) for _, _, n in parts)
    words = sum(n for _, _, n in parts) * p.block_words
    plain = 8 + dev.latency + host.latency + bursts * (overhead + 2) + words * max(dev.interval, host.interval)
    return 3 * plain // 2


def random_swap_workload(p: KvSwapParams, rng, *, n_requests: int, bad_fraction: float = 0.15,
                         abort_fraction: float = 0.2, idle_prob: float = 0.3, dev_mem: MemoryParams | None = None,
                         host_mem: MemoryParams | None = None, overhead_cycles: int = 0) -> SwapWorkload:
    """A seeded swap trace in both directions (``rng`` a numpy Generator).

    Runs are offered one a cycle at most, the stream idle in an ``idle_prob`` fraction of the cycles
    (`sim.core.stimulus.arrival_cycles` semantics; abort scenarios below add their drain gaps). Sources lie in the
    lower half of each pool and destinations in the upper half, so no swap reads what another writes, whatever
    the order of service; destinations are handed out in turn through the upper half and reused once it is full
    (each direction is served in order, so the later data wins). Each request is 1-3 extents (contiguous in
    source and destination), each split into 1-3 runs (so adjacent runs must coalesce); some extents continue
    the source but not the destination. A ``bad_fraction`` of requests carries an error (zero count, out of
    range, or more runs than ``run_depth``, in turn). Tags count up modulo ``2**tag_bits - 1``. There are
    ``n_requests`` requests plus a blocker for each abort scenario.

    Aborts are placed so that the contract alone decides them (`sim.blocks.kv_swap.reference`): an
    ``abort_fraction`` of the requests opens an *abort scenario*. It waits out a drain gap (`_service_estimate`
    of everything before, at ``dev_mem``/``host_mem``/``overhead_cycles``), so the controller is idle and takes
    the scenario's runs and abort as they are offered; then a blocker request of at least `BLOCKER_WORDS`
    words, and the request the abort names, in the blocker's direction, its runs back to back; then the abort:
    1-3 cycles after the named request's last run (a hit: that request is queued behind the blocker), or
    between its runs (a miss: still being received), or after the last run of a named request with an error (a
    miss: it is dead). Besides, a few aborts of the reserved tag ``2**tag_bits - 1`` come at runs in the middle
    of the stream (misses: no request has that tag).
    """
    mask32 = (1 << 32) - 1
    dev_mem = dev_mem or MemoryParams()
    host_mem = host_mem or MemoryParams()
    dev_words, host_words = p.dev_blocks * p.block_words, p.host_blocks * p.block_words
    dev_preload = {a: int(v) & mask32 for a, v in enumerate(rng.integers(0, 1 << 32, dev_words, dtype=np.uint64))}
    host_preload = {a: int(v) & mask32 for a, v in enumerate(rng.integers(0, 1 << 32, host_words, dtype=np.uint64))}
    pools = {SwapDir.OUT: (p.dev_blocks, p.host_blocks), SwapDir.IN: (p.host_blocks, p.dev_blocks)}
    next_dst = {d: pools[d][1] // 2 for d in SwapDir}
    max_count = (1 << p.count_bits) - 1
    unknown = (1 << p.tag_bits) - 1
    n_tags = max(1, unknown)
    runs: list[tuple[int, Run]] = []
    aborts: list[tuple[int, int]] = []
    requests: list[list[Run]] = []
    t = -1  # offer cycle of the last run
    busy = 0  # by then the controller has surely finished every request offered so far
    n_bad = 0

    def dst_for(d: SwapDir, n: int, gap: int) -> int:
        lo, hi = pools[d][1] // 2, pools[d][1]
        if next_dst[d] + gap + n > hi:
            next_dst[d] = lo
        else:
            next_dst[d] += gap
        dst = next_dst[d]
        next_dst[d] += n + int(rng.integers(0, 2))
        return dst

    def extents(d: SwapDir, count: int, max_n: int) -> list[tuple[int, int, int]]:
        src_half, dst_half = pools[d][0] // 2, pools[d][1] - pools[d][1] // 2
        parts: list[tuple[int, int, int]] = []
        for _ in range(count):
            n = int(rng.integers(1, max(1, min(max_n, max_count, src_half, dst_half)) + 1))
            if parts and rng.random() < 0.3 and parts[-1][0] + parts[-1][2] + n <= src_half:
                src, gap = parts[-1][0] + parts[-1][2], 1  # source continues, destination does not
            else:
                src, gap = int(rng.integers(0, src_half - n + 1)), 0
            dst = dst_for(d, n, gap)
            cuts = sorted({int(c) for c in rng.integers(1, n, int(rng.integers(0, 3)))}) if n > 1 else []
            edges = [0, *cuts, n]
            parts.extend((src + a, dst + a, b - a) for a, b in zip(edges, edges[1:], strict=False))
        return parts

    def make_bad(d: SwapDir, parts: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
        nonlocal n_bad
        kind = n_bad % 3  # every kind of error, in turn
        n_bad += 1
        if kind == 0:
            i = int(rng.integers(0, len(parts)))
            return [*parts[:i], (parts[i][0], parts[i][1], 0), *parts[i + 1:]]
        if kind == 1:
            return [*parts, (pools[d][0] - 1, 0, 2)]
        return [(i, 0, 1) for i in range(p.run_depth + 2)]

    def emit(d: SwapDir, parts: list[tuple[int, int, int]], bad: bool, *, back_to_back: bool = False) -> list[int]:
        """Offer one request; return its runs' offer cycles."""
        nonlocal t, busy
        tag = len(requests) % n_tags
        req = [Run(tag, int(d), s, ds, n, i == len(parts) - 1) for i, (s, ds, n) in enumerate(parts)]
        cycles = []
        for r in req:
            t += 1 + (0 if back_to_back or idle_prob <= 0 else int(rng.geometric(1.0 - idle_prob)) - 1)
            runs.append((t, r))
            cycles.append(t)
        requests.append(req)
        busy = max(busy, t) + _service_estimate(p, parts, bad, dev_mem, host_mem, overhead_cycles)
        return cycles

    scenario_ok = p.queue_depth >= 2 and p.run_depth >= 2
    for _ in range(n_requests):
        d = SwapDir(int(rng.integers(0, 2)))
        if not (scenario_ok and rng.random() < abort_fraction):
            parts = extents(d, int(rng.integers(1, 4)), 5)
            bad = rng.random() < bad_fraction
            cycles = emit(d, make_bad(d, parts) if bad else parts, bad)
            if rng.random() < 0.02:
                aborts.append((cycles[0], unknown))
            continue
        # Abort scenario: drain, blocker, named request, abort.
        t = max(t, busy)
        blocks = min(-(-BLOCKER_WORDS // p.block_words), pools[d][0] // 2, pools[d][1] - pools[d][1] // 2)
        src, dst = int(rng.integers(0, pools[d][0] // 2 - blocks + 1)), dst_for(d, blocks, 0)
        blocker = []  # one extent, cut into runs of at most max_count blocks (they coalesce again)
        for a in range(0, blocks, max_count):
            blocker.append((src + a, dst + a, min(max_count, blocks - a)))
        if len(blocker) >= p.run_depth:  # leave run-FIFO room for the named request
            blocker = blocker[:p.run_depth - 1]
        emit(d, blocker, False, back_to_back=True)
        kind = int(rng.integers(0, 3))  # 0 hit, 1 still being received, 2 dead (an error); -1 no abort
        parts = extents(d, int(rng.integers(1, 4)), 5)
        # A hit needs the named request's runs taken as offered (run-FIFO room beside the blocker's) and the
        # abort (at most 3 cycles after them) before the request can start (4 + the blocker's words after the
        # blocker's last run: `sim.blocks.kv_swap.reference.abort_targets`).
        hit_ok = (len(parts) + len(blocker) <= p.run_depth
                  and len(parts) + 3 < 4 + sum(n for _, _, n in blocker) * p.block_words)
        if kind == 2:
            parts = make_bad(d, parts)
        elif kind == 0 and not hit_ok:
            kind = 1
        if kind == 1 and len(parts) < 2:
            kind = 0 if hit_ok else -1
        cycles = emit(d, parts, kind == 2, back_to_back=True)
        tag = requests[-1][0].tag
        if kind == 0:
            aborts.append((cycles[-1] + int(rng.integers(1, 4)), tag))
        elif kind == 1:
            aborts.append((cycles[0] + int(rng.integers(0, len(cycles) - 1)), tag))
        elif kind == 2:
            aborts.append((cycles[-1] + int(rng.integers(0, 4)), tag))
    if not any(tag == unknown for _, tag in aborts):
        aborts.append((runs[len(runs) // 2][0] if runs else 0, unknown))
    aborts.sort(key=lambda a: a[0])
    return SwapWorkload(runs, aborts, dev_preload, host_preload, requests)


def place_aborts(w: SwapWorkload, first_pass: SwapRun, rng, fraction: float) -> SwapWorkload:
    """Aborts for a ``fraction`` of ``w``'s requests, 1-3 cycles after their last run was accepted in
    ``first_pass`` (a model run of ``w`` without aborts), so that most of them find the request queued; plus the
    workload's own aborts (the unknown tag)."""
    aborts = list(w.aborts)
    for (_, r), t in zip(w.runs, first_pass.run_accepts, strict=True):
        if r.last and rng.random() < fraction:
            aborts.append((t + int(rng.integers(1, 4)), r.tag))
    aborts.sort(key=lambda a: a[0])
    return dataclasses.replace(w, aborts=aborts)
