"""Flow-level model of an LLM-training cluster network: a Clos fabric of dual-port NICs, ECMP, max-min rates.

The foundation of the C4 study (Alibaba's C4, HPCA 2025: communication-driven fault detection and path
planning). Collective traffic in LLM training is a few large, long-lived flows, so a flow-level model (rates,
not packets) captures what C4 is about: ECMP hashing several flows onto one uplink (two 100 Gbps flows on one
uplink each get 50 Gbps, the C4 paper's example), a dead or slow link, and a planner that assigns paths.

**Topology** (`ClosTopology`, built from a `ClusterConfig`). Nodes of ``gpus_per_node`` GPUs joined by
NVLink (modelled as one link each way between every GPU and its node's switch, ``nvlink_gbps`` GB/s each way)
and ``gpus_per_node`` NICs of ``ports_per_nic`` ports (the C4 testbed: 8 H800 GPUs, 8 NICs of 2x200 Gbps per
node). GPU ``r`` uses its node's NIC ``r % gpus_per_node``. Port ``j`` of every NIC goes to a leaf of plane
``j``, so the two ports of one NIC sit on two different leaves (the C4 testbed's dual-port NICs on two
leaves). NIC ``i`` (numbered across the cluster, ``node * gpus_per_node + local``) is in leaf group
``i // leaf_down_ports``; leaf ``2 * group + j`` takes port ``j`` of the group's NICs. A leaf has
``leaf_down_ports`` ports down and ``U`` uplinks of total capacity ``leaf_down_ports x port / oversubscription``
(``U = round(leaf_down_ports / oversubscription)`` unless given). Two tiers: every leaf has one uplink to each
of ``U`` spines. Three tiers: leaves form pods of ``pod_leaves``; spine ``u`` of a pod has one link to each of
the ``K`` cores of plane ``u`` with the spine's whole down capacity split evenly, so the spines (and the
fabric) are 1:1 and only the leaves are oversubscribed. Every link is directed: a cable is two links, each
with the full capacity in its direction. Capacities are in bytes per second.

Link ids are laid out by kind (`ClosTopology.kind_range`): port up (port -> leaf), port down, leaf up
(``leaf * U + u``), leaf down, spine up (``spine * K + k``, three tiers), spine down, NVLink up (GPU ->
switch), NVLink down. ``link_src`` and ``link_dst`` give each link's endpoint devices; device ids are laid out
GPUs, ports, leaves, spines, cores, NVLink switches (`ClosTopology.device_range`).

**Paths.** Between two ports on one leaf there is one path (up, down); through a spine, ``U`` paths (one per
spine); across pods, ``U x K`` paths (spine ``u`` of the source pod, core ``(u, k)``, spine ``u`` of the
destination pod). A GPU-to-GPU flow across nodes has the paths of the 4 (source port, destination port) pairs;
inside a node it has one path, the two NVLink links. Paths are rows of ``MAX_HOPS`` link ids, padded with -1.

**ECMP** (`ClosTopology.ecmp_paths`): the 64-bit SplitMix64 finaliser is applied in turn to the seed, the
source rank, the destination rank and the flow key (an NCCL channel or a flow id), each combined by XOR with
the running hash; bit 0 of the result picks the source port, bit 1 the destination port and ``(h >> 2) mod
n_paths`` the fabric path. It is numpy integer arithmetic, the same for a seed on every run and independent of
Python's hash randomisation (as SimAI's ECMP hashes the flow's addresses and ports, seeded per node).

**Rates** (`FlowSim`): max-min fair (progressive filling) over the active flows, recomputed only when a flow
starts or finishes or a capacity changes. A link set to capacity 0 stalls its flows at rate 0 until they are
rerouted (`FlowSim.reroute`) or the link recovers. Time advances from event to event; a flow's finish time is
exact for its piecewise-constant rate. Max-min allocations of separate connected components of the flow-link
graph are independent, so after a start, finish or capacity change only the component(s) of the touched links
are refilled (`FlowSim(incremental=False)` refills every active flow each time; the two agree, see the tests).
A full pass is taken when the component exceeds a quarter of the active flows or after a generic `FlowSim.at`
action. Every pass counts as one recomputation in `SimStats`.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

MAX_HOPS = 6  # port up, leaf up, spine up, spine down, leaf down, port down
LINK_KINDS = ("port_up", "port_down", "leaf_up", "leaf_down", "spine_up", "spine_down", "nvlink_up", "nvlink_down")
DEVICE_KINDS = ("gpu", "port", "leaf", "spine", "core", "nvswitch")
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class ClusterConfig:
    """A cluster's shape. Defaults follow the C4 testbed (8 GPUs and 8 NICs of 2x200 Gbps per node, 1:1 fabric).

    ``nvlink_gbps`` is GB/s per GPU each way (assumed: H800's NVLink, 400 GB/s both ways together).
    ``leaf_uplinks`` (``U``) defaults to ``round(leaf_down_ports / oversubscription)``; ``cores_per_plane``
    (``K``, three tiers) defaults to ``pod_leaves``.
    """

    gpus: int = 1024
    gpus_per_node: int = 8
    ports_per_nic: int = 2
    port_gbps: float = 200.0  # Gb/s per NIC port, each way
    nvlink_gbps: float = 200.0  # GB/s per GPU, each way
    leaf_down_ports: int = 64
    oversubscription: float = 1.0
    tiers: int = 2
    leaf_uplinks: int | None = None
    pod_leaves: int = 16  # three tiers: leaves per pod (both planes)
    cores_per_plane: int | None = None

    def __post_init__(self) -> None:
        if self.gpus_per_node < 1 or self.gpus < 2 * self.gpus_per_node or self.gpus % self.gpus_per_node:
            raise ValueError(f"gpus must be a multiple of gpus_per_node and at least two nodes, got {self.gpus}")
        if self.ports_per_nic != 2:
            raise ValueError("the model has dual-port NICs (ports_per_nic = 2)")
        if self.tiers not in (2, 3):
            raise ValueError(f"tiers must be 2 or 3, got {self.tiers}")
        if self.leaf_down_ports < 1 or self.oversubscription <= 0 or self.port_gbps <= 0 or self.nvlink_gbps <= 0:
            raise ValueError("leaf_down_ports, oversubscription, port_gbps and nvlink_gbps must be positive")
        if self.tiers == 3 and (self.pod_leaves < 2 or self.pod_leaves % 2):
            raise ValueError(f"pod_leaves must be even and >= 2 (a pod holds both planes), got {self.pod_leaves}")


def _mix(h: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 (wrapping arithmetic)."""
    h = h + np.uint64(0x9E3779B97F4A7C15)
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def ecmp_hash(seed: int, src: np.ndarray, dst: np.ndarray, key: np.ndarray) -> np.ndarray:
    """The 64-bit flow hash (see the module docstring): ``mix(mix(mix(mix(seed) ^ src) ^ dst) ^ key)``."""
    with np.errstate(over="ignore"):
        h = _mix(np.full(np.shape(src), np.uint64(seed & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64))
        for v in (src, dst, key):
            h = _mix(h ^ (np.asarray(v, dtype=np.int64).astype(np.uint64) & _M64))
    return h


class ClosTopology:
    """The directed-link graph of a `ClusterConfig` as numpy arrays; builds 4096 GPUs in milliseconds."""

    def __init__(self, cfg: ClusterConfig) -> None:
        self.cfg = cfg
        g = self.gpus_per_node = cfg.gpus_per_node
        self.n_gpus = cfg.gpus
        self.n_nodes = cfg.gpus // g
        self.n_nics = self.n_nodes * g
        self.n_ports = 2 * self.n_nics
        d = cfg.leaf_down_ports
        groups = -(-self.n_nics // d)
        if cfg.tiers == 3:
            groups = -(-groups // (cfg.pod_leaves // 2)) * (cfg.pod_leaves // 2)  # whole pods
        self.n_leaves = 2 * groups
        self.uplinks = cfg.leaf_uplinks or max(1, round(d / cfg.oversubscription))
        self.port_capacity = cfg.port_gbps * 1e9 / 8
        self.nvlink_capacity = cfg.nvlink_gbps * 1e9
        self.leaf_up_capacity = d * self.port_capacity / cfg.oversubscription / self.uplinks
        if cfg.tiers == 2:
            self.n_pods, self.pod_leaves, self.cores_per_plane = 1, self.n_leaves, 0
        else:
            self.pod_leaves = cfg.pod_leaves
            self.n_pods = self.n_leaves // cfg.pod_leaves
            self.cores_per_plane = cfg.cores_per_plane or cfg.pod_leaves
        u, k = self.uplinks, self.cores_per_plane
        self.n_spines = self.n_pods * u
        self.n_cores = u * k
        self.spine_up_capacity = self.pod_leaves * self.leaf_up_capacity / k if k else 0.0

        counts = {"port_up": self.n_ports, "port_down": self.n_ports, "leaf_up": self.n_leaves * u,
                  "leaf_down": self.n_leaves * u, "spine_up": self.n_spines * k, "spine_down": self.n_spines * k,
                  "nvlink_up": self.n_gpus, "nvlink_down": self.n_gpus}
        self.link_base: dict[str, int] = {}
        pos = 0
        for name in LINK_KINDS:
            self.link_base[name] = pos
            pos += counts[name]
        self.n_links = pos
        dcounts = {"gpu": self.n_gpus, "port": self.n_ports, "leaf": self.n_leaves, "spine": self.n_spines,
                   "core": self.n_cores, "nvswitch": self.n_nodes}
        self.device_base: dict[str, int] = {}
        pos = 0
        for name in DEVICE_KINDS:
            self.device_base[name] = pos
            pos += dcounts[name]
        self.n_devices = pos

        ports = np.arange(self.n_ports, dtype=np.int64)
        self.port_leaf = (ports // 2 // d) * 2 + ports % 2
        leaves = np.repeat(np.arange(self.n_leaves, dtype=np.int64), u)
        lspine = (leaves // self.pod_leaves) * u + np.tile(np.arange(u, dtype=np.int64), self.n_leaves)
        spines = np.repeat(np.arange(self.n_spines, dtype=np.int64), k)
        score = (spines % u) * k + np.tile(np.arange(k, dtype=np.int64), self.n_spines)
        gpus = np.arange(self.n_gpus, dtype=np.int64)
        db = self.device_base
        p_dev, l_dev = ports + db["port"], self.port_leaf + db["leaf"]
        lf_dev, sp_dev = leaves + db["leaf"], lspine + db["spine"]
        s_dev, c_dev = spines + db["spine"], score + db["core"]
        g_dev, n_dev = gpus + db["gpu"], gpus // g + db["nvswitch"]
        self.link_src = np.concatenate([p_dev, l_dev, lf_dev, sp_dev, s_dev, c_dev, g_dev, n_dev])
        self.link_dst = np.concatenate([l_dev, p_dev, sp_dev, lf_dev, c_dev, s_dev, n_dev, g_dev])
        self.link_kind = np.repeat(np.arange(len(LINK_KINDS), dtype=np.int8), [counts[n] for n in LINK_KINDS])
        self.capacity = np.concatenate([
            np.full(2 * self.n_ports, self.port_capacity), np.full(2 * self.n_leaves * u, self.leaf_up_capacity),
            np.full(2 * self.n_spines * k, self.spine_up_capacity), np.full(2 * self.n_gpus, self.nvlink_capacity)])

    # -- ids ------------------------------------------------------------------------------------------------
    def kind_range(self, kind: str) -> range:
        """The link ids of one kind (one of `LINK_KINDS`)."""
        i = LINK_KINDS.index(kind)
        end = self.link_base[LINK_KINDS[i + 1]] if i + 1 < len(LINK_KINDS) else self.n_links
        return range(self.link_base[kind], end)

    def device_range(self, kind: str) -> range:
        """The device ids of one kind (one of `DEVICE_KINDS`)."""
        i = DEVICE_KINDS.index(kind)
        end = self.device_base[DEVICE_KINDS[i + 1]] if i + 1 < len(DEVICE_KINDS) else self.n_devices
        return range(self.device_base[kind], end)

    def gpu_port(self, rank: np.ndarray | int, j: np.ndarray | int) -> np.ndarray:
        """Port ``j`` (0 or 1) of GPU ``rank``'s NIC (the node's NIC ``rank % gpus_per_node``)."""
        return np.asarray(rank, dtype=np.int64) * 2 + np.asarray(j, dtype=np.int64)

    def node_of(self, rank: np.ndarray | int) -> np.ndarray:
        """The node of GPU ``rank``."""
        return np.asarray(rank, dtype=np.int64) // self.gpus_per_node

    # -- paths ----------------------------------------------------------------------------------------------
    def n_fabric_paths(self, src_port: np.ndarray, dst_port: np.ndarray) -> np.ndarray:
        """Number of equal-cost paths between ports: 1 on one leaf, ``U`` in one pod, ``U x K`` across pods."""
        ls, ld = self.port_leaf[src_port], self.port_leaf[dst_port]
        n = np.where(ls == ld, 1, self.uplinks)
        if self.cfg.tiers == 3:
            n = np.where((ls // self.pod_leaves != ld // self.pod_leaves), self.uplinks * self.cores_per_plane, n)
        return n

    def fabric_path(self, src_port: np.ndarray, dst_port: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Path ``index`` (``u`` or ``u * K + k``) between port pairs, as rows of `MAX_HOPS` link ids (-1 pad)."""
        ps, pd = np.atleast_1d(np.asarray(src_port, dtype=np.int64)), np.atleast_1d(np.asarray(dst_port, np.int64))
        idx = np.broadcast_to(np.asarray(index, dtype=np.int64), ps.shape)
        ls, ld = self.port_leaf[ps], self.port_leaf[pd]
        u_n, k_n, b = self.uplinks, max(self.cores_per_plane, 1), self.link_base
        same_leaf = ls == ld
        cross_pod = (ls // self.pod_leaves != ld // self.pod_leaves) if self.cfg.tiers == 3 else np.zeros_like(ls, bool)
        u = np.where(cross_pod, idx // k_n, idx)
        kk = idx % k_n
        out = np.full((len(ps), MAX_HOPS), -1, dtype=np.int64)
        out[:, 0] = b["port_up"] + ps
        lu, ldn = b["leaf_up"] + ls * u_n + u, b["leaf_down"] + ld * u_n + u
        sps, spd = (ls // self.pod_leaves) * u_n + u, (ld // self.pod_leaves) * u_n + u
        su, sd = b["spine_up"] + sps * k_n + kk, b["spine_down"] + spd * k_n + kk
        pdn = b["port_down"] + pd
        out[:, 1] = np.where(same_leaf, pdn, lu)
        out[:, 2] = np.where(same_leaf, -1, np.where(cross_pod, su, ldn))
        out[:, 3] = np.where(same_leaf, -1, np.where(cross_pod, sd, pdn))
        out[:, 4] = np.where(cross_pod, ldn, -1)
        out[:, 5] = np.where(cross_pod, pdn, -1)
        return out

    def paths(self, src: int, dst: int) -> np.ndarray:
        """All equal-cost paths from GPU ``src`` to GPU ``dst``: (source port, destination port, fabric path)
        in lexicographic order across nodes, the NVLink pair inside a node. Rows of `MAX_HOPS` link ids."""
        if src == dst:
            raise ValueError("a flow needs two different GPUs")
        if self.node_of(src) == self.node_of(dst):
            return self._nvlink_path(np.array([src]), np.array([dst]))
        rows = []
        for js in (0, 1):
            for jd in (0, 1):
                ps, pd = int(self.gpu_port(src, js)), int(self.gpu_port(dst, jd))
                n = int(self.n_fabric_paths(np.array([ps]), np.array([pd]))[0])
                rows.append(self.fabric_path(np.full(n, ps), np.full(n, pd), np.arange(n)))
        return np.concatenate(rows)

    def _nvlink_path(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        out = np.full((len(src), MAX_HOPS), -1, dtype=np.int64)
        out[:, 0] = self.link_base["nvlink_up"] + src
        out[:, 1] = self.link_base["nvlink_down"] + dst
        return out

    def ecmp_paths(self, src: np.ndarray, dst: np.ndarray, key: np.ndarray, seed: int = 0) -> np.ndarray:
        """The ECMP path of each flow ``(src, dst, key)`` for ``seed`` (hash in the module docstring)."""
        src = np.atleast_1d(np.asarray(src, dtype=np.int64))
        dst = np.atleast_1d(np.asarray(dst, dtype=np.int64))
        key = np.broadcast_to(np.asarray(key, dtype=np.int64), src.shape)
        if np.any(src == dst) or np.any((src < 0) | (src >= self.n_gpus) | (dst < 0) | (dst >= self.n_gpus)):
            raise ValueError("flows need two different GPUs of the cluster")
        h = ecmp_hash(seed, src, dst, key)
        ps = self.gpu_port(src, (h & np.uint64(1)).astype(np.int64))
        pd = self.gpu_port(dst, ((h >> np.uint64(1)) & np.uint64(1)).astype(np.int64))
        n = self.n_fabric_paths(ps, pd)
        idx = ((h >> np.uint64(2)) % n.astype(np.uint64)).astype(np.int64)
        out = self.fabric_path(ps, pd, idx)
        intra = self.node_of(src) == self.node_of(dst)
        if intra.any():
            out[intra] = self._nvlink_path(src[intra], dst[intra])
        return out


def greedy_paths(topo: ClosTopology, src: np.ndarray, dst: np.ndarray, load: np.ndarray | None = None) -> np.ndarray:
    """A simple global planner: each flow in turn takes the equal-cost path whose busiest link carries the
    fewest flows so far (ties: fewest flows summed along it, then the first). Not C4P's algorithm (the paper
    does not publish it); a stand-in that balances ports and uplinks for equal flows. ``load`` (flows per
    link, updated in place) lets several calls share one assignment."""
    load = np.zeros(topo.n_links, dtype=np.int64) if load is None else load
    out = np.full((len(src), MAX_HOPS), -1, dtype=np.int64)
    cache: dict[tuple[int, int], np.ndarray] = {}
    for i, (s, d) in enumerate(zip(np.asarray(src).tolist(), np.asarray(dst).tolist(), strict=True)):
        cand = cache.get((s, d))
        if cand is None:
            cand = cache[(s, d)] = topo.paths(s, d)
        loads = np.where(cand >= 0, load[np.maximum(cand, 0)], 0)
        score = loads.max(axis=1) * (MAX_HOPS * (len(src) + 1)) + loads.sum(axis=1)
        best = cand[int(np.argmin(score))]
        out[i] = best
        load[best[best >= 0]] += 1
    return out


@dataclass
class SimStats:
    """Counters of one `FlowSim.run`: rate recomputations, events handled, wall time (s)."""

    recomputations: int = 0
    events: int = 0
    wall_seconds: float = 0.0
    max_active: int = 0
    flows_recomputed: int = 0  # summed over recomputations (incremental ones cover a component only)

    @property
    def recomputations_per_second(self) -> float:
        return self.recomputations / self.wall_seconds if self.wall_seconds > 0 else math.inf


FinishHook = Callable[[np.ndarray, float], None]


@dataclass(order=True)
class _Timed:
    time: float
    seq: int
    action: Callable[[], None] = field(compare=False)


class FlowSim:
    """Event-driven max-min fair flow simulator on a topology's links.

    Flows are added with `add_flow` / `add_flows` (before or during `run`, e.g. from a finish hook; a start
    time earlier than the current time is an error). Finish hooks (`on_finish`) get the ids of the flows that
    finished at one instant, and that instant; flows they add with ``start == now`` join at once. Capacity
    changes (`set_capacity`, `scale_capacity`, `restore_capacity`) and other actions (`at`) are scheduled at
    times. `finish` holds each flow's finish time (NaN while unfinished); `finish_times` gives None instead.
    """

    def __init__(self, topo: ClosTopology, seed: int = 0, rel_tol: float = 1e-12, incremental: bool = True) -> None:
        self.topo = topo
        self.seed = seed
        self.rel_tol = rel_tol
        self.incremental = incremental
        self.capacity = topo.capacity.astype(np.float64).copy()
        self.now = 0.0
        self.stats = SimStats()
        self._n = 0
        self._path = np.full((1024, MAX_HOPS), -1, dtype=np.int64)
        self._size = np.zeros(1024)
        self._start = np.zeros(1024)
        self.remaining = np.zeros(1024)
        self.rate = np.zeros(1024)
        self.finish = np.full(1024, np.nan)
        self._active = np.zeros(0, dtype=np.int64)
        self._starts: list[tuple[float, int]] = []
        self._timed: list[_Timed] = []
        self._seq = 0
        self._hooks: list[FinishHook] = []
        self._dirty = False
        self._full = True  # the next recomputation covers every active flow
        self._touched: set[int] = set()  # links whose flows or capacity changed since the last recomputation
        self._link_flows: dict[int, set[int]] = {}  # link -> active flows on it
        self._plist: dict[int, list[int]] = {}  # active flow -> its links

    # -- flows ----------------------------------------------------------------------------------------------
    @property
    def n_flows(self) -> int:
        return self._n

    def path(self, fid: int) -> np.ndarray:
        """Flow ``fid``'s link ids."""
        p = self._path[fid]
        return p[p >= 0].copy()

    def _grow(self, need: int) -> None:
        cap = len(self._size)
        if need <= cap:
            return
        new = max(need, 2 * cap)
        self._path = np.vstack([self._path, np.full((new - cap, MAX_HOPS), -1, dtype=np.int64)])
        for name, fill in (("_size", 0.0), ("_start", 0.0), ("remaining", 0.0), ("rate", 0.0), ("finish", np.nan)):
            setattr(self, name, np.concatenate([getattr(self, name), np.full(new - cap, fill)]))

    def add_flows(self, src: np.ndarray, dst: np.ndarray, size: np.ndarray, start: np.ndarray,
                  key: np.ndarray | int = 0, paths: np.ndarray | None = None) -> np.ndarray:
        """Add flows (GPU rank -> GPU rank, bytes, start time s); ECMP paths from ``(src, dst, key)`` and the
        simulator's seed unless ``paths`` (rows of link ids, -1 padded) is given. Returns the flow ids."""
        src = np.atleast_1d(np.asarray(src, dtype=np.int64))
        m = len(src)
        size = np.broadcast_to(np.asarray(size, dtype=np.float64), (m,))
        start = np.broadcast_to(np.asarray(start, dtype=np.float64), (m,))
        if np.any(size <= 0):
            raise ValueError("flow sizes must be positive")
        if m and start.min() < self.now:
            raise ValueError(f"a flow cannot start in the past ({start.min()} < {self.now})")
        if paths is None:
            paths = self.topo.ecmp_paths(src, dst, key, self.seed)
        paths = np.asarray(paths, dtype=np.int64)
        if paths.ndim == 1:
            paths = paths[None, :]
        if paths.shape[1] < MAX_HOPS:
            paths = np.hstack([paths, np.full((len(paths), MAX_HOPS - paths.shape[1]), -1, dtype=np.int64)])
        paths = np.broadcast_to(paths, (m, MAX_HOPS))
        if np.any(paths >= self.topo.n_links) or np.any((paths < 0).all(axis=1)):
            raise ValueError("every flow needs a non-empty path of valid link ids")
        ids = np.arange(self._n, self._n + m)
        self._grow(self._n + m)
        self._path[ids] = paths
        self._size[ids] = size
        self._start[ids] = start
        self.remaining[ids] = size
        self._n += m
        for t, f in zip(start.tolist(), ids.tolist(), strict=True):
            heapq.heappush(self._starts, (t, f))
        return ids

    def add_flow(self, src: int, dst: int, size: float, start: float = 0.0, key: int = 0,
                 path: np.ndarray | list[int] | None = None) -> int:
        """Add one flow; see `add_flows`. ``path`` is an explicit list of link ids (a planner's choice)."""
        paths = None if path is None else np.asarray(path, dtype=np.int64)[None, :]
        return int(self.add_flows(np.array([src]), np.array([dst]), size, start, key, paths)[0])

    def reroute(self, fid: int, path: np.ndarray | list[int]) -> None:
        """Move an unfinished flow onto ``path`` now; its remaining bytes continue there."""
        p = np.asarray(path, dtype=np.int64)
        if len(p) == 0 or len(p) > MAX_HOPS or np.any((p < 0) | (p >= self.topo.n_links)):
            raise ValueError("invalid path")
        if fid in self._plist:
            self._deactivate([fid])
            self._path[fid] = -1
            self._path[fid, : len(p)] = p
            self._activate([fid])
        else:
            self._path[fid] = -1
            self._path[fid, : len(p)] = p
        self._dirty = True

    def on_finish(self, hook: FinishHook) -> None:
        """Call ``hook(flow_ids, time)`` for every batch of flows finishing at one instant."""
        self._hooks.append(hook)

    # -- timed actions --------------------------------------------------------------------------------------
    def at(self, t: float, action: Callable[[], None]) -> None:
        """Run ``action()`` at time ``t``; all rates are recomputed after it (it may change anything, e.g.
        `capacity` directly or `reroute`)."""
        def act() -> None:
            action()
            self._full = True
        self._at(t, act)

    def _at(self, t: float, action: Callable[[], None]) -> None:
        if t < self.now:
            raise ValueError("cannot schedule in the past")
        self._seq += 1
        heapq.heappush(self._timed, _Timed(t, self._seq, action))

    def set_capacity(self, t: float, link: int, capacity: float) -> None:
        """At ``t`` set ``link``'s capacity (bytes/s; 0 = down: its flows stall)."""
        def act() -> None:
            self.capacity[link] = capacity
            self._touched.add(int(link))
        self._at(t, act)

    def scale_capacity(self, t: float, link: int, factor: float) -> None:
        """At ``t`` multiply ``link``'s capacity by ``factor`` (a slowdown)."""
        def act() -> None:
            self.capacity[link] *= factor
            self._touched.add(int(link))
        self._at(t, act)

    def restore_capacity(self, t: float, link: int) -> None:
        """At ``t`` give ``link`` its built capacity back."""
        self.set_capacity(t, link, float(self.topo.capacity[link]))

    def finish_times(self) -> list[float | None]:
        """Each flow's finish time (s), None for a flow that has not finished (stalled, or not yet run)."""
        return [None if math.isnan(x) else float(x) for x in self.finish[: self._n]]

    # -- max-min rates --------------------------------------------------------------------------------------
    def _activate(self, fids: list[int]) -> None:
        rows = self._path[fids].tolist()
        for f, row in zip(fids, rows, strict=True):
            links = [x for x in row if x >= 0]
            self._plist[f] = links
            for x in links:
                self._link_flows.setdefault(x, set()).add(f)
            self._touched.update(links)

    def _deactivate(self, fids: list[int]) -> None:
        for f in fids:
            links = self._plist.pop(f)
            for x in links:
                self._link_flows[x].discard(f)
            self._touched.update(links)

    def _component(self) -> np.ndarray | None:
        """The active flows whose rates may have changed: the connected component(s), in the flow-link graph,
        of the touched links. None when it grows past a quarter of the active flows (a full pass is cheaper)."""
        limit = max(64, len(self._plist) // 4)
        comp: set[int] = set()
        seen: set[int] = set()
        stack = list(self._touched)
        while stack:
            x = stack.pop()
            if x in seen:
                continue
            seen.add(x)
            for f in self._link_flows.get(x, ()):
                if f not in comp:
                    comp.add(f)
                    if len(comp) > limit:
                        return None
                    stack.extend(y for y in self._plist[f] if y not in seen)
        return np.fromiter(comp, dtype=np.int64, count=len(comp))

    def _recompute(self) -> None:
        """Max-min rates of the flows a change can affect (its component; all active flows after a generic
        action or when the component is large): max-min allocations of separate components are independent."""
        self.stats.recomputations += 1
        act = None if (self._full or not self.incremental) else self._component()
        self._full = False
        self._touched.clear()
        self._waterfill(self._active if act is None else act)

    def _waterfill(self, act: np.ndarray) -> None:
        """Progressive filling: raise all unfrozen flows' rates together until a link saturates, freeze the
        flows crossing saturated links, repeat. Vectorised over (flow, link) incidence pairs. ``act`` must be
        closed: every active flow on a link of ``act`` is in ``act``."""
        self.stats.flows_recomputed += len(act)
        if len(act) == 0:
            return
        p = self._path[act]
        rows, cols = np.nonzero(p >= 0)
        ulinks, inv = np.unique(p[rows, cols], return_inverse=True)
        cap0 = self.capacity[ulinks]
        cap = cap0.copy()
        rate = np.zeros(len(act))
        frozen = np.zeros(len(act), dtype=bool)
        live = np.ones(len(rows), dtype=bool)
        nl = len(ulinks)
        while live.any():
            cnt = np.bincount(inv[live], minlength=nl)
            used = cnt > 0
            share = np.full(nl, np.inf)
            share[used] = np.maximum(cap[used], 0.0) / cnt[used]
            inc = float(share.min())
            rate[~frozen] += inc
            cap -= inc * cnt
            sat = used & ((share <= inc * (1 + 1e-12)) | (cap <= 1e-12 * cap0))
            frozen[rows[sat[inv] & live]] = True
            live = ~frozen[rows]
        self.rate[act] = rate

    # -- the event loop -------------------------------------------------------------------------------------
    def run(self, until: float = math.inf) -> SimStats:
        """Advance to ``until`` (or until nothing can happen: no pending start or action and every active flow
        stalled or done). Returns the counters; finish times are in `finish` / `finish_times`."""
        t0 = time.perf_counter()
        while True:
            act = self._active
            t_fin = math.inf
            proj = None
            if len(act):
                r = self.rate[act]
                with np.errstate(divide="ignore"):
                    proj = np.where(r > 0, self.now + self.remaining[act] / np.where(r > 0, r, 1.0), np.inf)
                t_fin = float(proj.min())
            t_start = self._starts[0][0] if self._starts else math.inf
            t_act = self._timed[0].time if self._timed else math.inf
            t = min(t_fin, t_start, t_act)
            if t == math.inf or t > until:
                break
            self.stats.events += 1
            if len(act):
                self.remaining[act] -= self.rate[act] * (t - self.now)
            self.now = t
            done = np.zeros(0, dtype=np.int64)
            if proj is not None and t_fin <= t:
                hit = proj <= t + self.rel_tol * max(abs(t), 1e-30)
                done = act[hit]
                self.finish[done] = t
                self.remaining[done] = 0.0
                self.rate[done] = 0.0
                self._active = act[~hit]
                self._deactivate(done.tolist())
                self._dirty = True
            while self._timed and self._timed[0].time <= t:
                heapq.heappop(self._timed).action()
                self._dirty = True
            if len(done):
                for hook in self._hooks:
                    hook(done, t)
            new = []
            while self._starts and self._starts[0][0] <= t:
                new.append(heapq.heappop(self._starts)[1])
            if new:
                self._active = np.concatenate([self._active, np.array(new, dtype=np.int64)])
                self._activate(new)
                self._dirty = True
            if self._dirty:
                self._dirty = False
                self.stats.max_active = max(self.stats.max_active, len(self._active))
                self._recompute()
        self.stats.wall_seconds += time.perf_counter() - t0
        return self.stats
