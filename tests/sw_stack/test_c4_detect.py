"""C4D master on synthetic timing: no false positives on a noisy healthy cluster; each of the four anomaly
classes detected and localized (link, rank, leaf switch); confirmation delay; recall/precision over random faults."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from sw_stack.c4.detect import (
    NEVER,
    AnomalyClass,
    C4DConfig,
    C4DMaster,
    Component,
    IterationObservation,
    Topology,
    localize,
)

N = 16  # 8 nodes x 2 ranks, nodes 0-3 on leaves (0, 1), nodes 4-7 on leaves (2, 3)
PERIOD = 1.0  # seconds between iterations
COMPUTE = 0.5  # nominal arrival offset inside an iteration
ARRIVE_JITTER = 1e-3  # seconds, std of arrival noise
DUR_JITTER = 0.02  # relative std of connection durations


def ring_mask(n: int = N) -> np.ndarray:
    m = np.zeros((n, n), dtype=bool)
    m[np.arange(n), (np.arange(n) + 1) % n] = True
    return m


def mesh_mask(n: int = N) -> np.ndarray:
    return ~np.eye(n, dtype=bool)


def topology(seed: int = 7) -> Topology:
    ports = np.random.default_rng(seed).integers(0, 2, size=(N, N))
    leaves = np.array([[0, 1]] * 4 + [[2, 3]] * 4)
    return Topology.dual_port([r // 2 for r in range(N)], leaves, ports)


@dataclass
class Faults:
    """What to inject into one synthetic iteration."""

    slow: np.ndarray | None = None  # (n, n) duration multipliers
    late: dict[int, float] = field(default_factory=dict)  # rank -> extra arrival delay (s)
    absent: tuple[int, ...] = ()  # ranks that never arrive
    hung: tuple[tuple[int, int], ...] = ()  # connections that never complete


def observe(
    it: int, mask: np.ndarray, base: np.ndarray, rng: np.random.Generator, f: Faults | None = None
) -> IterationObservation:
    f = f or Faults()
    n = mask.shape[0]
    t0 = it * PERIOD
    arrive = t0 + COMPUTE + rng.normal(0.0, ARRIVE_JITTER, n)
    for r, d in f.late.items():
        arrive[r] += d
    start = np.maximum(arrive[:, None], arrive[None, :])
    dur = base * (1.0 + DUR_JITTER * rng.standard_normal((n, n)))
    if f.slow is not None:
        dur = dur * f.slow
    done = np.where(mask, start + dur, 0.0)
    for r in f.absent:
        arrive[r] = NEVER
        done[r, :] = np.where(mask[r, :], NEVER, done[r, :])
        done[:, r] = np.where(mask[:, r], NEVER, done[:, r])
    for i, j in f.hung:
        done[i, j] = NEVER
    return IterationObservation(it, arrive, done, mask, deadline=t0 + PERIOD - 1e-3)


def base_durations(rng: np.random.Generator, n: int = N) -> np.ndarray:
    return rng.uniform(0.02, 0.05, size=(n, n))  # heterogeneous per connection, learned by the master


def run(master: C4DMaster, mask, base, rng, iters: range, f: Faults | None = None) -> list:
    out = []
    for it in iters:
        out.extend(master.observe(observe(it, mask, base, rng, f)))
    return out


def test_healthy_noise_no_false_positive():
    rng = np.random.default_rng(1)
    topo = topology()
    for mask, top in ((ring_mask(), None), (mesh_mask(), topo)):
        base = base_durations(rng)
        master = C4DMaster(N, C4DConfig(confirm=1), top)  # confirm=1: every raw finding would be reported
        assert run(master, mask, base, rng, range(300)) == []
        assert master.active == []


def _single(found, cls: AnomalyClass, comp: Component, culprit) -> None:
    assert [(a.anomaly, a.component, a.culprit) for a in found] == [(cls, comp, culprit)]


@pytest.mark.parametrize("mask_kind", ["ring", "mesh"])
def test_slow_link_localized(mask_kind):
    rng = np.random.default_rng(2)
    mask = ring_mask() if mask_kind == "ring" else mesh_mask()
    base = base_durations(rng)
    master = C4DMaster(N, C4DConfig(), topology())
    assert run(master, mask, base, rng, range(10)) == []
    slow = np.ones((N, N))
    slow[5, 6] = 2.0
    found = run(master, mask, base, rng, range(10, 13), Faults(slow=slow))
    _single(found, AnomalyClass.COMM_SLOW, Component.LINK, (5, 6))
    assert found[0].cells == ((5, 6),) and found[0].severity == pytest.approx(2.0, rel=0.15)
    assert found[0].first_iteration == 10 and found[0].iteration == 12


@pytest.mark.parametrize("mask_kind", ["ring", "mesh"])
def test_slow_rank_localized(mask_kind):
    rng = np.random.default_rng(3)
    mask = ring_mask() if mask_kind == "ring" else mesh_mask()
    base = base_durations(rng)
    master = C4DMaster(N, C4DConfig(), topology())
    run(master, mask, base, rng, range(10))
    slow = np.ones((N, N))
    slow[9, :] = slow[:, 9] = 1.6  # every connection of rank 9 (its NIC/GPU)
    found = run(master, mask, base, rng, range(10, 13), Faults(slow=slow))
    _single(found, AnomalyClass.COMM_SLOW, Component.RANK, 9)
    assert found[0].node == 4
    assert set(found[0].cells) == {(i, j) for i, j in zip(*np.nonzero(mask), strict=True) if 9 in (i, j)}


def test_bidirectional_pair_is_a_link_not_a_rank():
    mask = mesh_mask(4)
    bad = np.zeros((4, 4), dtype=bool)
    bad[1, 2] = bad[2, 1] = True
    got = {(c, k) for c, k, _ in localize(bad, mask)}
    assert got == {(Component.LINK, (1, 2)), (Component.LINK, (2, 1))}


def test_straggler_localized():
    rng = np.random.default_rng(4)
    base = base_durations(rng)
    master = C4DMaster(N, C4DConfig(), topology())
    run(master, ring_mask(), base, rng, range(10))
    found = run(master, ring_mask(), base, rng, range(10, 13), Faults(late={3: 0.02}))
    _single(found, AnomalyClass.NONCOMM_SLOW, Component.RANK, 3)
    assert found[0].severity == pytest.approx(0.02, abs=5 * ARRIVE_JITTER)


def test_rank_never_arrives_is_noncomm_hang():
    rng = np.random.default_rng(5)
    base = base_durations(rng)
    master = C4DMaster(N, C4DConfig(), topology())
    run(master, mesh_mask(), base, rng, range(10))
    found = run(master, mesh_mask(), base, rng, range(10, 11), Faults(absent=(12,)))
    _single(found, AnomalyClass.NONCOMM_HANG, Component.RANK, 12)  # confirm_hang = 1: at once
    assert found[0].iteration == 10


def test_connection_never_completes_is_comm_hang():
    rng = np.random.default_rng(6)
    base = base_durations(rng)
    mask = ring_mask()
    master = C4DMaster(N, C4DConfig(), topology())
    run(master, mask, base, rng, range(10))
    found = run(master, mask, base, rng, range(10, 11), Faults(hung=((7, 8),)))
    _single(found, AnomalyClass.COMM_HANG, Component.LINK, (7, 8))
    # every connection of rank 2 stuck (a dead NIC): the rank, not two links
    found = run(master, mask, base, rng, range(11, 12), Faults(hung=((1, 2), (2, 3))))
    _single(found, AnomalyClass.COMM_HANG, Component.RANK, 2)


def test_leaf_switch_localized():
    rng = np.random.default_rng(8)
    topo = topology()
    base = base_durations(rng)
    master = C4DMaster(N, C4DConfig(), topo)
    run(master, mesh_mask(), base, rng, range(10))
    slow = np.where(topo.through(2), 1.8, 1.0)  # one port of every NIC under leaf 2
    found = run(master, mesh_mask(), base, rng, range(10, 13), Faults(slow=slow))
    _single(found, AnomalyClass.COMM_SLOW, Component.SWITCH, 2)
    # without a topology the same pattern cannot be blamed on the switch, and no rank is blamed either
    master = C4DMaster(N, C4DConfig())
    run(master, mesh_mask(), base, rng, range(10))
    found = run(master, mesh_mask(), base, rng, range(10, 13), Faults(slow=slow))
    assert found and all(a.component is Component.LINK for a in found)


@pytest.mark.parametrize("confirm", [1, 3, 5])
def test_confirmation_delays_report(confirm):
    rng = np.random.default_rng(9)
    base = base_durations(rng)
    master = C4DMaster(N, C4DConfig(confirm=confirm), topology())
    run(master, ring_mask(), base, rng, range(10))
    slow = np.ones((N, N))
    slow[0, 1] = 3.0
    for it in range(10, 10 + confirm + 3):
        found = master.observe(observe(it, ring_mask(), base, rng, Faults(slow=slow)))
        if it == 10 + confirm - 1:
            _single(found, AnomalyClass.COMM_SLOW, Component.LINK, (0, 1))
        else:
            assert found == []  # before confirmation, and once reported not again
        assert len(master.active) == (1 if it >= 10 + confirm - 1 else 0)
    # a healthy iteration resets the streak: the fault must persist `confirm` iterations again
    master.observe(observe(20, ring_mask(), base, rng))
    assert master.active == []
    found = run(master, ring_mask(), base, rng, range(21, 21 + confirm), Faults(slow=slow))
    assert len(found) == 1 and found[0].first_iteration == 21 and found[0].iteration == 20 + confirm


def test_expected_baseline_needs_no_warmup():
    rng = np.random.default_rng(10)
    base = base_durations(rng)
    master = C4DMaster(N, C4DConfig(confirm=1))
    slow = np.ones((N, N))
    slow[4, 5] = 2.0
    obs = observe(0, ring_mask(), base, rng, Faults(slow=slow))
    obs = IterationObservation(obs.iteration, obs.arrive, obs.done, obs.mask, obs.deadline, expected=base)
    _single(master.observe(obs), AnomalyClass.COMM_SLOW, Component.LINK, (4, 5))


def test_input_validation():
    arrive = np.array([0.0, 0.1])
    done = np.array([[0.0, 0.5], [0.6, 0.0]])
    mask = mesh_mask(2)
    IterationObservation(0, arrive, done, mask, 1.0)
    with pytest.raises(ValueError, match="finite"):
        IterationObservation(0, np.array([0.0, np.nan]), done, mask, 1.0)
    with pytest.raises(ValueError, match="deadline"):
        IterationObservation(0, arrive, done, mask, 0.55)
    with pytest.raises(ValueError, match="before it started"):
        IterationObservation(0, arrive, np.array([[0.0, 0.05], [0.6, 0.0]]), mask, 1.0)
    with pytest.raises(ValueError, match="False diagonal"):
        IterationObservation(0, arrive, done, np.ones((2, 2), dtype=bool), 1.0)
    with pytest.raises(ValueError, match="rank_frac"):
        C4DConfig(rank_frac=0.5)
    master = C4DMaster(2)
    master.observe(IterationObservation(3, arrive, done, mask, 1.0))
    with pytest.raises(ValueError, match="increasing"):
        master.observe(IterationObservation(3, arrive, done, mask, 1.0))


KINDS = ["slow_link", "slow_rank", "straggler", "noncomm_hang", "comm_hang", "slow_switch"]


def _random_fault(kind: str, rng: np.random.Generator, topo: Topology, mask: np.ndarray):
    """A random single fault with magnitude above the default thresholds: (faults, class, component, culprit)."""
    slow = np.ones((N, N))
    if kind == "slow_link":
        i, j = (int(x) for x in np.argwhere(mask)[rng.integers(mask.sum())])
        slow[i, j] = rng.uniform(1.4, 5.0)
        return Faults(slow=slow), AnomalyClass.COMM_SLOW, Component.LINK, (i, j)
    if kind == "slow_rank":
        r = int(rng.integers(N))
        slow[r, :] = slow[:, r] = rng.uniform(1.4, 5.0)
        return Faults(slow=slow), AnomalyClass.COMM_SLOW, Component.RANK, r
    if kind == "straggler":
        r = int(rng.integers(N))
        return Faults(late={r: rng.uniform(10, 100) * ARRIVE_JITTER}), AnomalyClass.NONCOMM_SLOW, Component.RANK, r
    if kind == "noncomm_hang":
        r = int(rng.integers(N))
        return Faults(absent=(r,)), AnomalyClass.NONCOMM_HANG, Component.RANK, r
    if kind == "comm_hang":
        i, j = (int(x) for x in np.argwhere(mask)[rng.integers(mask.sum())])
        return Faults(hung=((i, j),)), AnomalyClass.COMM_HANG, Component.LINK, (i, j)
    leaf = int(rng.integers(4))
    slow = np.where(topo.through(leaf), rng.uniform(1.4, 5.0), 1.0)
    return Faults(slow=slow), AnomalyClass.COMM_SLOW, Component.SWITCH, leaf


def recall_precision(kind: str, trials: int, seed: int) -> tuple[float, float]:
    """Fresh master per trial: 6 healthy iterations, then the fault for `confirm` iterations. Recall: share of
    trials reporting exactly the injected culprit; precision: share of all reports that name it."""
    rng = np.random.default_rng(seed)
    cfg = C4DConfig()
    hits = reports = correct = 0
    for t in range(trials):
        topo = topology(seed=1000 + t)
        mask = mesh_mask() if t % 2 or kind == "slow_switch" else ring_mask()
        base = base_durations(rng)
        master = C4DMaster(N, cfg, topo)
        found = run(master, mask, base, rng, range(cfg.warmup + 1))
        faults, cls, comp, culprit = _random_fault(kind, rng, topo, mask)
        need = cfg.confirm_hang if cls in (AnomalyClass.COMM_HANG, AnomalyClass.NONCOMM_HANG) else cfg.confirm
        found += run(master, mask, base, rng, range(cfg.warmup + 1, cfg.warmup + 1 + need), faults)
        good = [a for a in found if (a.anomaly, a.component, a.culprit) == (cls, comp, culprit)]
        hits += bool(good)
        reports += len(found)
        correct += len(good)
    return hits / trials, (correct / reports if reports else 1.0)


@pytest.mark.parametrize("kind", KINDS)
def test_recall_and_precision_random_single_faults(kind):
    recall, precision = recall_precision(kind, trials=40, seed=100 + KINDS.index(kind))
    assert recall >= 0.95
    assert precision == 1.0
