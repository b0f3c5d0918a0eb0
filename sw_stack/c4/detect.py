"""C4D master: detect and localize faults from per-iteration collective timing (C4, Alibaba, HPCA 2025).

C4 (arXiv 2406.04594) observes that collective traffic in LLM training is periodic and homogeneous: every
iteration, every rank of a communicator enters the same collective and every connection moves the same bytes. Per-rank
agents timestamp collective progress per connection; a master compares ranks at each iteration's sync point and
sorts deviations into four classes (:class:`AnomalyClass`), localized with the rank x rank delay matrix.

Input format (simulator independent), one :class:`IterationObservation` per iteration of an ``n``-rank communicator:

* ``arrive[r]``: time rank ``r`` entered the collective, or :data:`NEVER` (``-1.0``) if it had not by ``deadline``.
* ``mask[i, j]``: connection ``i -> j`` is used by the collective (ring neighbours, all-to-all, ... any set).
* ``done[i, j]``: time rank ``j`` finished receiving rank ``i``'s data on connection ``i -> j``, or :data:`NEVER`.
* ``start[i, j]`` (optional): time the transfer on ``i -> j`` could start; default ``max(arrive[i], arrive[j])``.
  A connection's duration is ``done - start``: the simulator must report per-connection times that isolate that
  connection (e.g. the connection's own transfer step in a pipelined ring), not a time inherited from upstream.
* ``expected[i, j]`` (optional): the normal duration of ``i -> j``; entries ``<= 0`` mean "learn it".
* ``deadline``: the time at which the master looks (the watchdog). :data:`NEVER` at the deadline is a hang.

All times are finite floats in seconds (NaN is rejected); absent values use the sentinel :data:`NEVER`.

Classification per iteration (:meth:`C4DMaster.observe`):

* **non-communication hang**: some ranks never arrived while others did -> each missing rank (its GPU/host).
  If no rank arrived there is nothing to compare and nothing is reported.
* **communication hang**: among connections whose both ends arrived, some never completed -> localize the
  missing cells.
* **communication slow**: completed durations above ``baseline + max(z_slow * sigma, rel_slow * baseline,
  min_slow)`` -> localize the slow cells. ``baseline``/``sigma`` are the median and 1.4826 x MAD of the last
  ``window`` healthy durations of that connection (or ``expected`` when given); no verdict before ``warmup``
  healthy samples.
* **non-communication slow** (straggler): lateness ``arrive[r] - median(arrive)`` above
  ``max(z_late * sigma_late, min_late)`` where ``sigma_late`` is 1.4826 x MAD of the healthy lateness of all ranks
  over the last ``window`` iterations (needs ``warmup`` iterations of history).

Localization (:func:`localize`) explains a set of anomalous cells greedily with the fewest components: at each
step it takes the candidate covering the most still-unexplained cells, where a candidate is

* a **switch** ``L`` (needs a :class:`Topology`): at least ``switch_frac`` of the evaluable connections through
  ``L`` are anomalous and the new cells involve at least ``switch_min_ranks`` ranks;
* a **rank** ``r``: at least ``rank_frac`` of ``r``'s evaluable connections (its row and column) are anomalous and
  the new cells involve at least two distinct peers of ``r`` (a pair ``i -> j``, ``j -> i`` is a link, not a rank);

and each cell left over is a **link** (path) ``(i, j)``, directed as observed. Ties prefer the candidate with
fewer connections (the more specific one). A dual-port NIC behind two leaves sees a leaf fault on about half of
its connections, so ``rank_frac`` must stay above one half to keep a switch fault from being blamed on ranks.

Confirmation: a finding ``(class, component, culprit)`` is reported once, by the iteration at which it has been
found in ``confirm`` consecutive iterations (``confirm_hang`` for hangs); a gap resets its count. Cells and ranks
found anomalous in an iteration are kept out of the baselines. All thresholds are assumptions (the paper does not
publish them): see :class:`C4DConfig`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

NEVER = -1.0
"""Sentinel time: the event (arrival, completion) had not happened by the observation's deadline."""

_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution x 1.4826 = its standard deviation


class AnomalyClass(Enum):
    """The four C4D anomaly classes."""

    COMM_HANG = "communication hang"
    NONCOMM_HANG = "non-communication hang"
    COMM_SLOW = "communication slow"
    NONCOMM_SLOW = "non-communication slow"


class Component(Enum):
    """What a finding blames: a rank (its GPU/NIC/host), a link/path between two ranks, or a leaf switch."""

    RANK = "rank"
    LINK = "link"
    SWITCH = "switch"


Culprit = int | tuple[int, int]
Cells = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class C4DConfig:
    """Detection thresholds. Every default is an assumption (C4 publishes none); keep them adjustable.

    ``confirm``/``confirm_hang``: consecutive iterations a slow/hang finding must persist before it is reported.
    ``window``: healthy samples kept per connection (and iterations of lateness history).
    ``warmup``: healthy samples needed before a connection (or lateness) can be judged slow.
    ``z_slow``/``rel_slow``/``min_slow``: a duration is slow above ``baseline + max(z_slow * sigma,
    rel_slow * baseline, min_slow)`` (seconds for ``min_slow``).
    ``z_late``/``min_late``: a rank is late above ``max(z_late * sigma_late, min_late)`` (seconds).
    ``rank_frac``/``switch_frac``/``switch_min_ranks``: localization, see :func:`localize`.
    """

    confirm: int = 3
    confirm_hang: int = 1
    window: int = 32
    warmup: int = 5
    z_slow: float = 6.0
    rel_slow: float = 0.2
    min_slow: float = 1e-6
    z_late: float = 6.0
    min_late: float = 1e-6
    rank_frac: float = 0.75
    switch_frac: float = 0.6
    switch_min_ranks: int = 3

    def __post_init__(self) -> None:
        if self.confirm < 1 or self.confirm_hang < 1:
            raise ValueError("confirm and confirm_hang must be >= 1")
        if self.window < 1 or not 1 <= self.warmup <= self.window:
            raise ValueError("need window >= 1 and 1 <= warmup <= window")
        if min(self.z_slow, self.rel_slow, self.min_slow, self.z_late, self.min_late) < 0:
            raise ValueError("slow/late thresholds must be >= 0")
        if not 0.5 < self.rank_frac <= 1.0 or not 0.0 < self.switch_frac <= 1.0:
            raise ValueError("need 0.5 < rank_frac <= 1 and 0 < switch_frac <= 1")
        if self.switch_min_ranks < 2:
            raise ValueError("switch_min_ranks must be >= 2")


@dataclass(frozen=True)
class Topology:
    """Where ranks sit: ``rank_node[r]`` is rank ``r``'s node; connection ``i -> j`` crosses leaf switches
    ``src_leaf[i, j]`` (at the sender's NIC port) and ``dst_leaf[i, j]`` (at the receiver's), ``-1`` for none
    (e.g. an intra-node NVLink connection)."""

    rank_node: np.ndarray
    src_leaf: np.ndarray
    dst_leaf: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.rank_node)
        if self.src_leaf.shape != (n, n) or self.dst_leaf.shape != (n, n):
            raise ValueError(f"src_leaf and dst_leaf must be ({n}, {n})")
        if min(self.src_leaf.min(initial=0), self.dst_leaf.min(initial=0)) < -1:
            raise ValueError("leaf ids are >= 0, or -1 for none")

    @classmethod
    def dual_port(cls, rank_node: Sequence[int], node_leaves: np.ndarray, port: np.ndarray | None = None) -> Topology:
        """The C4 testbed layout: each node's NICs have two ports, port ``p`` of node ``k`` on leaf
        ``node_leaves[k, p]``. Connection ``i -> j`` between different nodes leaves on port ``port[i, j]`` of the
        sender and arrives on the same port index of the receiver (default ``(i + j) % 2``, an assumed
        stand-in for the bond's hash); connections inside a node cross no leaf."""
        nodes = np.asarray(rank_node, dtype=np.int64)
        leaves = np.asarray(node_leaves, dtype=np.int64)
        n = len(nodes)
        if leaves.ndim != 2 or leaves.shape[1] != 2 or nodes.max(initial=0) >= len(leaves):
            raise ValueError("node_leaves must be (nodes, 2) and cover every rank's node")
        idx = np.arange(n)
        p = (idx[:, None] + idx[None, :]) % 2 if port is None else np.asarray(port, dtype=np.int64)
        if p.shape != (n, n) or not np.isin(p, (0, 1)).all():
            raise ValueError(f"port must be ({n}, {n}) with entries 0 or 1")
        src = leaves[nodes[:, None], p]
        dst = leaves[nodes[None, :], p]
        same = nodes[:, None] == nodes[None, :]
        return cls(nodes, np.where(same, -1, src), np.where(same, -1, dst))

    def leaves(self) -> list[int]:
        """The leaf switch ids any connection crosses, sorted."""
        ids = np.union1d(self.src_leaf.ravel(), self.dst_leaf.ravel())
        return [int(x) for x in ids if x >= 0]

    def through(self, leaf: int) -> np.ndarray:
        """Boolean ``(n, n)``: the connections that cross ``leaf``."""
        return (self.src_leaf == leaf) | (self.dst_leaf == leaf)


@dataclass(frozen=True)
class IterationObservation:
    """One iteration's timing of one collective on an ``n``-rank communicator (see the module docstring).

    ``arrive`` is ``(n,)``; ``done``, ``mask`` (bool, False diagonal), and the optional ``start`` and ``expected``
    are ``(n, n)``. Times are finite, ``>= 0`` or :data:`NEVER`, and not after ``deadline``; ``done >= start``.
    """

    iteration: int
    arrive: np.ndarray
    done: np.ndarray
    mask: np.ndarray
    deadline: float
    start: np.ndarray | None = None
    expected: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.arrive.shape[0] if self.arrive.ndim == 1 else -1
        if n < 2:
            raise ValueError("arrive must be a 1-D array of n >= 2 ranks")
        for name in ("done", "mask", "start", "expected"):
            arr = getattr(self, name)
            if arr is not None and arr.shape != (n, n):
                raise ValueError(f"{name} must be ({n}, {n}), got {arr.shape}")
        if self.mask.dtype != np.bool_ or self.mask.diagonal().any():
            raise ValueError("mask must be boolean with a False diagonal")
        for name in ("arrive", "done", "start"):
            arr = getattr(self, name)
            if arr is None:
                continue
            if not np.isfinite(arr).all():
                raise ValueError(f"{name} must be finite; use NEVER (-1.0) for an event that did not happen")
            if ((arr < 0) & (arr != NEVER)).any() or (arr > self.deadline).any():
                raise ValueError(f"{name} times must be >= 0 (or NEVER) and <= deadline")
        if self.expected is not None and not np.isfinite(self.expected).all():
            raise ValueError("expected must be finite (<= 0 to learn a connection's baseline)")
        both = self.mask & (self.done != NEVER) & (self.starts() != NEVER)
        if (self.done[both] < self.starts()[both]).any():
            raise ValueError("a connection completed before it started (done < start)")

    @property
    def n(self) -> int:
        """Ranks in the communicator."""
        return int(self.arrive.shape[0])

    def starts(self) -> np.ndarray:
        """Per-connection start times: ``start`` if given, else ``max(arrive[i], arrive[j])`` (NEVER if either
        end never arrived)."""
        if self.start is not None:
            return self.start
        a = self.arrive
        s = np.maximum(a[:, None], a[None, :])
        return np.where((a[:, None] == NEVER) | (a[None, :] == NEVER), NEVER, s)


@dataclass(frozen=True)
class Anomaly:
    """A confirmed finding.

    ``culprit`` is a rank (``RANK``), a directed ``(src, dst)`` pair (``LINK``) or a leaf id (``SWITCH``).
    ``cells`` are the anomalous connections behind it (empty for arrival-based classes). ``severity`` is, for
    slow connections, the largest duration/baseline ratio; for a straggler, its lateness in seconds; for hangs,
    the seconds between the latest arrival and the deadline. ``node`` is the rank's node when a topology is known.
    """

    anomaly: AnomalyClass
    component: Component
    culprit: Culprit
    first_iteration: int
    iteration: int
    cells: Cells = ()
    severity: float = 0.0
    node: int | None = None


Finding = tuple[Component, Culprit, Cells]
_Key = tuple[AnomalyClass, Component, Culprit]
_Raw = tuple[AnomalyClass, Component, Culprit, Cells, float]


def localize(
    anomalous: np.ndarray, evaluable: np.ndarray, topology: Topology | None = None, cfg: C4DConfig | None = None
) -> list[Finding]:
    """Explain the ``True`` cells of ``anomalous`` (``(n, n)`` bool, a subset of ``evaluable``) with components.

    ``evaluable`` marks the connections that could be judged this iteration (used, both ends present, with a
    baseline). Returns ``(component, culprit, cells)`` triples, switches and ranks first in the greedy order, then
    one ``LINK`` per leftover cell. Rules in the module docstring.
    """
    cfg = cfg or C4DConfig()
    anomalous = anomalous & evaluable
    n = anomalous.shape[0]
    candidates: list[tuple[Component, int, np.ndarray]] = []
    if topology is not None:
        for leaf in topology.leaves():
            cand = topology.through(leaf) & evaluable
            if cand.any():
                candidates.append((Component.SWITCH, leaf, cand))
    for r in range(n):
        cand = np.zeros_like(evaluable)
        cand[r, :] = evaluable[r, :]
        cand[:, r] = evaluable[:, r]
        if cand.any():
            candidates.append((Component.RANK, r, cand))

    remaining = anomalous.copy()
    found: list[Finding] = []
    while remaining.any():
        best: tuple[int, int, int] | None = None  # (-new cells, candidate size, index)
        for k, (comp, ident, cand) in enumerate(candidates):
            new = remaining & cand
            n_new = int(new.sum())
            frac = cfg.rank_frac if comp is Component.RANK else cfg.switch_frac
            if n_new < 2 or (anomalous & cand).sum() < frac * cand.sum():
                continue
            ii, jj = np.nonzero(new)
            involved = set(ii.tolist()) | set(jj.tolist())
            if comp is Component.RANK and len(involved - {ident}) < 2:  # two peers, else it is a link pair
                continue
            if comp is Component.SWITCH and len(involved) < cfg.switch_min_ranks:
                continue
            key = (-n_new, int(cand.sum()), k)
            if best is None or key < best:
                best = key
        if best is None:
            break
        comp, ident, cand = candidates[best[2]]
        cells = remaining & cand
        found.append((comp, ident, _cells(cells)))
        remaining &= ~cand
    for i, j in zip(*np.nonzero(remaining), strict=True):
        found.append((Component.LINK, (int(i), int(j)), ((int(i), int(j)),)))
    return found


def _cells(m: np.ndarray) -> tuple[tuple[int, int], ...]:
    return tuple((int(i), int(j)) for i, j in zip(*np.nonzero(m), strict=True))


@dataclass
class _Streak:
    first: int
    last: int
    count: int
    reported: bool = False


@dataclass
class C4DMaster:
    """The C4D master of one communicator: per-connection baselines, lateness history and confirmation state.

    Feed one :class:`IterationObservation` per iteration, in order, to :meth:`observe`; it returns the findings
    confirmed at that iteration (each reported once per uninterrupted streak). :attr:`active` lists every finding
    confirmed and still present at the last observation.
    """

    n: int
    cfg: C4DConfig = field(default_factory=C4DConfig)
    topology: Topology | None = None
    active: list[Anomaly] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError("a communicator has n >= 2 ranks")
        if self.topology is not None and len(self.topology.rank_node) != self.n:
            raise ValueError("topology must describe the communicator's n ranks")
        w = self.cfg.window
        self._hist = np.full((w, self.n, self.n), np.nan)  # healthy durations, ring buffer per connection
        self._count = np.zeros((self.n, self.n), dtype=np.int64)
        self._late = np.full(w * self.n, np.nan)  # healthy lateness of all ranks, ring buffer
        self._late_count = 0
        self._late_iters = 0
        self._streaks: dict[_Key, _Streak] = {}
        self._last_iteration: int | None = None

    def baseline(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Learned ``(median, sigma, samples)`` per connection, NaN where there are no samples yet."""
        med = np.full((self.n, self.n), np.nan)
        sig = np.full((self.n, self.n), np.nan)
        has = self._count > 0
        if has.any():
            sub = self._hist[:, has]
            m = np.nanmedian(sub, axis=0)
            med[has] = m
            sig[has] = _MAD_TO_SIGMA * np.nanmedian(np.abs(sub - m), axis=0)
        return med, sig, np.minimum(self._count, self.cfg.window)

    def observe(self, obs: IterationObservation) -> list[Anomaly]:
        """Classify one iteration, update baselines with its healthy parts, return newly confirmed anomalies."""
        if obs.n != self.n:
            raise ValueError(f"observation has {obs.n} ranks, master expects {self.n}")
        if self._last_iteration is not None and obs.iteration <= self._last_iteration:
            raise ValueError("iterations must be observed in increasing order")
        self._last_iteration = obs.iteration
        cfg = self.cfg
        raw: list[_Raw] = []

        arrived = obs.arrive != NEVER
        latest = float(obs.arrive[arrived].max()) if arrived.any() else obs.deadline
        if arrived.any():
            for r in np.nonzero(~arrived)[0]:
                raw.append((AnomalyClass.NONCOMM_HANG, Component.RANK, int(r), (), obs.deadline - latest))

        starts = obs.starts()
        present = obs.mask & (starts != NEVER)
        missing = present & (obs.done == NEVER)
        for comp, ident, cells in localize(missing, present, self.topology, cfg):
            raw.append((AnomalyClass.COMM_HANG, comp, ident, cells, obs.deadline - latest))

        completed = present & ~missing
        dur = np.where(completed, obs.done - starts, 0.0)
        med, sig, samples = self.baseline()
        base = np.where(samples >= cfg.warmup, med, np.nan)
        sigma = np.where(samples >= cfg.warmup, sig, 0.0)
        if obs.expected is not None:
            given = obs.expected > 0
            base = np.where(given, obs.expected, base)
            sigma = np.where(given & np.isnan(sigma), 0.0, sigma)
        judged = completed & ~np.isnan(base)
        base0 = np.where(judged, base, 0.0)
        limit = base0 + np.maximum.reduce(
            [cfg.z_slow * np.where(judged, sigma, 0.0), cfg.rel_slow * base0, np.full_like(base0, cfg.min_slow)]
        )
        slow = judged & (dur > limit)
        ratio = np.where(slow & (base0 > 0), dur / np.where(base0 > 0, base0, 1.0), np.inf)
        for comp, ident, cells in localize(slow, judged, self.topology, cfg):
            sev = max(float(ratio[c]) for c in cells)
            raw.append((AnomalyClass.COMM_SLOW, comp, ident, cells, sev))

        late_ranks = np.zeros(self.n, dtype=bool)
        lateness = np.zeros(self.n)
        if arrived.sum() >= 2:
            lateness[arrived] = obs.arrive[arrived] - np.median(obs.arrive[arrived])
            if self._late_iters >= cfg.warmup:
                hist = self._late[~np.isnan(self._late)]
                s = _MAD_TO_SIGMA * float(np.median(np.abs(hist - np.median(hist))))
                late_ranks = arrived & (lateness > max(cfg.z_late * s, cfg.min_late))
                for r in np.nonzero(late_ranks)[0]:
                    raw.append((AnomalyClass.NONCOMM_SLOW, Component.RANK, int(r), (), float(lateness[r])))

        self._learn(dur, completed & ~slow, lateness, arrived & ~late_ranks)
        return self._confirm(obs.iteration, raw)

    def _learn(self, dur: np.ndarray, healthy: np.ndarray, lateness: np.ndarray, on_time: np.ndarray) -> None:
        ii, jj = np.nonzero(healthy)
        self._hist[self._count[ii, jj] % self.cfg.window, ii, jj] = dur[ii, jj]
        self._count[ii, jj] += 1
        if on_time.sum() >= 2:
            vals = lateness[on_time]
            pos = (self._late_count + np.arange(len(vals))) % len(self._late)
            self._late[pos] = vals
            self._late_count += len(vals)
            self._late_iters += 1

    def _confirm(
        self,
        iteration: int,
        raw: list[_Raw],
    ) -> list[Anomaly]:
        seen: dict[_Key, tuple[Cells, float]] = {}
        for cls, comp, ident, cells, sev in raw:
            key = (cls, comp, ident)
            streak = self._streaks.get(key)
            if streak is None:  # streaks absent from an iteration were dropped, so a hit continues its streak
                streak = _Streak(first=iteration, last=iteration, count=1)
            else:
                streak = _Streak(streak.first, iteration, streak.count + 1, streak.reported)
            self._streaks[key] = streak
            seen[key] = (cells, sev)
        self._streaks = {k: v for k, v in self._streaks.items() if k in seen}
        new: list[Anomaly] = []
        active: list[Anomaly] = []
        for key, (cells, sev) in seen.items():
            cls, comp, ident = key
            streak = self._streaks[key]
            need = (
                self.cfg.confirm_hang
                if cls in (AnomalyClass.COMM_HANG, AnomalyClass.NONCOMM_HANG)
                else self.cfg.confirm
            )
            if streak.count < need:
                continue
            node = None
            if self.topology is not None and comp is Component.RANK:
                node = int(self.topology.rank_node[int(ident)])  # type: ignore[arg-type]
            a = Anomaly(cls, comp, ident, streak.first, iteration, cells, sev, node)
            active.append(a)
            if not streak.reported:
                streak.reported = True
                new.append(a)
        self.active = active
        return new
