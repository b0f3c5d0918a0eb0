"""Ring collectives (all-reduce, reduce-scatter, all-gather) as per-step flows on the cluster flow model.

The ring of ``n`` ranks ``ranks[0] -> ranks[1] -> ... -> ranks[n-1] -> ranks[0]`` runs on ``C`` NCCL-like
channels: each channel carries ``1/C`` of the message over the same ring order, and a (source, destination,
channel) connection keeps one path for the whole collective (ECMP hashes ``(src, dst, channel)``, or a planner
gives the path), as an NCCL connection keeps its queue pair. Every ring step is one flow per rank to its ring
successor per channel, of ``S / (n C)`` bytes; step ``k + 1`` of a channel leaves a rank ``alpha`` seconds after
step ``k``'s incoming flow has arrived at that rank (step 0 leaves ``alpha`` after the start). All-reduce is
``2(n-1)`` steps (reduce-scatter then all-gather), reduce-scatter and all-gather ``n-1``. With one flow per link
of bandwidth ``B`` a ring all-reduce therefore takes ``2(n-1) alpha + 2(n-1)/n S/B``, the textbook ring time.

``S`` follows nccl-tests: the all-reduce's buffer per rank, the reduce-scatter's input and the all-gather's
output per rank (``n`` chunks of ``S / n``). Bandwidths are as nccl-tests reports them: ``algbw = S / t``; for
all-reduce ``busbw = algbw x 2(n-1)/n``; for reduce-scatter and all-gather ``busbw = algbw x (n-1)/n``.

The result also holds what C4D's per-node agents read: each connection's completion time (its last flow's
arrival) and the steps it has delivered, so a hung or slow connection shows as a missing or late entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from sim.systems.cluster import MAX_HOPS, FlowSim, SimStats

OPS = ("all_reduce", "reduce_scatter", "all_gather")
PathFn = Callable[[int, int, int], Sequence[int] | np.ndarray]


def ring_steps(op: str, n: int) -> int:
    """Ring steps of ``op`` over ``n`` ranks: ``2(n-1)`` for all-reduce, ``n-1`` otherwise."""
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")
    return 2 * (n - 1) if op == "all_reduce" else n - 1


def bus_factor(op: str, n: int) -> float:
    """nccl-tests' busbw / algbw: ``2(n-1)/n`` for all-reduce, ``(n-1)/n`` for reduce-scatter and all-gather."""
    return ring_steps(op, n) / n


@dataclass
class CollectiveResult:
    """A ring collective's outcome. Times are seconds from the collective's start; None = never finished."""

    op: str
    ranks: tuple[int, ...]
    size_bytes: float
    channels: int
    time: float | None
    connection_finish: dict[tuple[int, int], float | None]  # (src, dst) -> last arrival over its channels
    channel_finish: np.ndarray  # (channels, n): connection ranks[i] -> ranks[i+1] of channel c; NaN = unfinished
    steps_done: np.ndarray  # (channels, n): steps delivered on each connection
    flows: int
    stats: SimStats | None = field(default=None)

    @property
    def algbw(self) -> float | None:
        """nccl-tests' algorithm bandwidth ``S / t`` (bytes/s)."""
        return None if self.time is None else self.size_bytes / self.time

    @property
    def busbw(self) -> float | None:
        """nccl-tests' bus bandwidth (bytes/s)."""
        a = self.algbw
        return None if a is None else a * bus_factor(self.op, len(self.ranks))


class RingCollective:
    """One ring collective launched on a `FlowSim`; it advances through the simulator's finish hook.

    ``paths`` gives the connections' paths instead of ECMP: a ``(channels * n, MAX_HOPS)`` array (row
    ``c * n + i`` for ``ranks[i] -> ranks[i+1]`` on channel ``c``, -1 padded) or a function ``(src, dst,
    channel) -> link ids``. Several collectives may share one simulator.
    """

    def __init__(self, sim: FlowSim, op: str, ranks: Sequence[int], size_bytes: float, channels: int = 1,
                 alpha: float = 0.0, start: float = 0.0, paths: np.ndarray | PathFn | None = None) -> None:
        n = len(ranks)
        if n < 2 or len(set(ranks)) != n:
            raise ValueError("a ring needs at least two distinct ranks")
        if channels < 1 or size_bytes <= 0 or alpha < 0:
            raise ValueError("channels >= 1, size_bytes > 0 and alpha >= 0 are required")
        self.sim, self.op, self.n, self.channels = sim, op, n, channels
        self.ranks = np.asarray(ranks, dtype=np.int64)
        self.size_bytes, self.alpha, self.start = float(size_bytes), float(alpha), float(start)
        self.steps = ring_steps(op, n)
        self.chunk = self.size_bytes / (n * channels)
        conns = np.arange(channels * n)
        self.conn_src = self.ranks[conns % n]
        self.conn_dst = self.ranks[(conns % n + 1) % n]
        self.conn_channel = conns // n
        if paths is None:
            self.conn_paths = sim.topo.ecmp_paths(self.conn_src, self.conn_dst, self.conn_channel, sim.seed)
        elif callable(paths):
            self.conn_paths = np.full((len(conns), MAX_HOPS), -1, dtype=np.int64)
            for c in conns.tolist():
                p = np.asarray(paths(int(self.conn_src[c]), int(self.conn_dst[c]), int(self.conn_channel[c])))
                self.conn_paths[c, : len(p)] = p
        else:
            self.conn_paths = np.asarray(paths, dtype=np.int64)
            if self.conn_paths.shape != (len(conns), MAX_HOPS):
                raise ValueError(f"paths must have shape {(len(conns), MAX_HOPS)}")
        self.finish = np.full(len(conns), np.nan)
        self.done = np.zeros(len(conns), dtype=np.int64)
        self._conn_of = np.full(0, -1, dtype=np.int64)
        self._step_of = np.zeros(0, dtype=np.int64)
        self.flows = 0
        sim.on_finish(self._hook)
        self._launch(conns, np.zeros(len(conns), dtype=np.int64), self.start + self.alpha)

    def _launch(self, conns: np.ndarray, steps: np.ndarray, t: float) -> None:
        ids = self.sim.add_flows(self.conn_src[conns], self.conn_dst[conns], self.chunk, t,
                                 paths=self.conn_paths[conns])
        need = int(ids[-1]) + 1
        if need > len(self._conn_of):
            grow = max(need, 2 * len(self._conn_of)) - len(self._conn_of)
            self._conn_of = np.concatenate([self._conn_of, np.full(grow, -1, dtype=np.int64)])
            self._step_of = np.concatenate([self._step_of, np.zeros(grow, dtype=np.int64)])
        self._conn_of[ids] = conns
        self._step_of[ids] = steps
        self.flows += len(ids)

    def _hook(self, fids: np.ndarray, t: float) -> None:
        fids = fids[fids < len(self._conn_of)]
        conns = self._conn_of[fids]
        mine = conns >= 0
        conns, steps = conns[mine], self._step_of[fids[mine]]
        if len(conns) == 0:
            return
        self.done[conns] += 1
        last = steps == self.steps - 1
        self.finish[conns[last]] = t
        conns, steps = conns[~last], steps[~last]
        if len(conns):
            nxt = (conns // self.n) * self.n + (conns % self.n + 1) % self.n  # the receiver's outgoing conn
            self._launch(nxt, steps + 1, t + self.alpha)

    def result(self) -> CollectiveResult:
        """The collective's state now (run the simulator first)."""
        n, c = self.n, self.channels
        ch = (self.finish - self.start).reshape(c, n)
        per: dict[tuple[int, int], float | None] = {}
        for i in range(n):
            col = ch[:, i]
            per[(int(self.ranks[i]), int(self.ranks[(i + 1) % n]))] = (
                None if np.isnan(col).any() else float(col.max()))
        t = None if np.isnan(ch).any() else float(ch.max())
        return CollectiveResult(self.op, tuple(int(r) for r in self.ranks), self.size_bytes, c, t, per, ch,
                                self.done.reshape(c, n).copy(), self.flows, self.sim.stats)


def run_ring(sim: FlowSim, op: str, ranks: Sequence[int], size_bytes: float, channels: int = 1,
             alpha: float = 0.0, start: float = 0.0, paths: np.ndarray | PathFn | None = None,
             until: float = math.inf) -> CollectiveResult:
    """Launch a `RingCollective` on ``sim``, run the simulator to ``until`` and return the result."""
    coll = RingCollective(sim, op, ranks, size_bytes, channels, alpha, start, paths)
    sim.run(until)
    return coll.result()


def all_reduce(sim: FlowSim, ranks: Sequence[int], size_bytes: float, channels: int = 1, alpha: float = 0.0,
               start: float = 0.0, paths: np.ndarray | PathFn | None = None,
               until: float = math.inf) -> CollectiveResult:
    """Ring all-reduce of ``size_bytes`` per rank; see `run_ring`."""
    return run_ring(sim, "all_reduce", ranks, size_bytes, channels, alpha, start, paths, until)


def reduce_scatter(sim: FlowSim, ranks: Sequence[int], size_bytes: float, channels: int = 1, alpha: float = 0.0,
                   start: float = 0.0, paths: np.ndarray | PathFn | None = None,
                   until: float = math.inf) -> CollectiveResult:
    """Ring reduce-scatter of a ``size_bytes`` input per rank; see `run_ring`."""
    return run_ring(sim, "reduce_scatter", ranks, size_bytes, channels, alpha, start, paths, until)


def all_gather(sim: FlowSim, ranks: Sequence[int], size_bytes: float, channels: int = 1, alpha: float = 0.0,
               start: float = 0.0, paths: np.ndarray | PathFn | None = None,
               until: float = math.inf) -> CollectiveResult:
    """Ring all-gather of a ``size_bytes`` output per rank; see `run_ring`."""
    return run_ring(sim, "all_gather", ranks, size_bytes, channels, alpha, start, paths, until)
