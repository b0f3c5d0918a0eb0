"""Ring collectives on the cluster flow model: the ring-time formula, nccl-tests busbw, hangs, scale."""

from __future__ import annotations

import time

import numpy as np
import pytest

from sim.systems.cluster import ClosTopology, ClusterConfig, FlowSim, greedy_paths
from sim.systems.collectives import (
    RingCollective,
    all_gather,
    all_reduce,
    bus_factor,
    reduce_scatter,
    ring_steps,
)


def test_step_counts_and_bus_factors() -> None:
    assert ring_steps("all_reduce", 8) == 14 and ring_steps("all_gather", 8) == 7
    assert bus_factor("all_reduce", 4) == 1.5 and bus_factor("reduce_scatter", 4) == 0.75
    with pytest.raises(ValueError):
        ring_steps("broadcast", 4)


@pytest.mark.parametrize("channels", [1, 2])
def test_ring_time_formula_one_flow_per_link(channels: int) -> None:
    topo = ClosTopology(ClusterConfig(gpus=16))
    b, s, alpha, p = topo.nvlink_capacity, 3e8, 7e-6, 8
    ranks = [3, 1, 4, 0, 5, 2, 6, 7]  # one node: each ring edge has its own NVLink pair
    r = all_reduce(FlowSim(topo), ranks, s, channels=channels, alpha=alpha)
    expect = 2 * (p - 1) * alpha + 2 * (p - 1) / p * s / b
    assert abs(r.time - expect) / expect < 1e-9
    assert r.flows == 2 * (p - 1) * p * channels
    assert r.busbw == pytest.approx(s / expect * 2 * (p - 1) / p)
    for fn in (reduce_scatter, all_gather):
        r = fn(FlowSim(topo), ranks, s, channels=channels, alpha=alpha)
        expect = (p - 1) * alpha + (p - 1) / p * s / b
        assert abs(r.time - expect) / expect < 1e-9
        assert r.busbw == pytest.approx(s / expect * (p - 1) / p)
    assert set(r.connection_finish) == {(ranks[i], ranks[(i + 1) % p]) for i in range(p)}
    assert np.all(r.steps_done == p - 1)


@pytest.mark.parametrize("channels", [1, 2])
def test_busbw_approaches_port_bandwidth_with_planned_paths(channels: int) -> None:
    topo = ClosTopology(ClusterConfig(gpus=256, leaf_down_ports=16))
    ranks = np.arange(0, 256, 8)  # the first GPU of each of 32 nodes, all on NIC 0
    n = len(ranks)
    paths = greedy_paths(topo, np.tile(ranks, channels), np.tile(np.roll(ranks, -1), channels))
    assert np.bincount(paths[paths >= 0]).max() == 1, "non-colliding paths"
    r = all_reduce(FlowSim(topo), ranks.tolist(), 4 * 2**30, channels=channels, alpha=2e-6, paths=paths)
    # each channel has a port of its own: busbw tends to channels x the port bandwidth
    assert 0.99 < r.busbw / (channels * topo.port_capacity) <= 1.0
    assert r.flows == 2 * (n - 1) * n * channels


def test_ecmp_collisions_cost_bandwidth() -> None:
    topo = ClosTopology(ClusterConfig(gpus=256, leaf_down_ports=16))
    ranks = list(range(0, 256, 8))
    size = 2**28
    ecmp = all_reduce(FlowSim(topo, seed=4), ranks, size, channels=2)
    src = np.tile(ranks, 2)
    plan = greedy_paths(topo, src, np.tile(np.roll(ranks, -1), 2))
    planned = all_reduce(FlowSim(topo, seed=4), ranks, size, channels=2, paths=plan)
    assert ecmp.busbw < 0.9 * planned.busbw


def test_dead_link_hangs_the_ring_and_shows_in_connection_times() -> None:
    topo = ClosTopology(ClusterConfig(gpus=64, leaf_down_ports=8))
    ranks = [0, 8, 16, 24, 32, 40, 48, 56]
    sim = FlowSim(topo, seed=1)
    coll = RingCollective(sim, "all_reduce", ranks, 2**26)
    bad = int(coll.conn_paths[3][0])  # the uplink of 24 -> 32's source port
    sim.set_capacity(1e-4, bad, 0.0)
    sim.run()
    r = coll.result()
    assert r.time is None
    assert r.connection_finish[(24, 32)] is None
    # the ring drains up to the dead connection: progress falls to its minimum there (what C4D's master sees)
    assert r.steps_done[0].tolist() == [5, 6, 7, 0, 1, 2, 3, 4]
    # the link comes back: the ring completes, later than a healthy ring
    sim.restore_capacity(0.5, bad)
    sim.run()
    r = coll.result()
    healthy = all_reduce(FlowSim(topo, seed=1), ranks, 2**26)
    assert r.time is not None and r.time > healthy.time + 0.4
    assert all(v is not None for v in r.connection_finish.values())


def test_4096_gpus_ring_over_512_nodes() -> None:
    t = time.perf_counter()
    topo = ClosTopology(ClusterConfig(gpus=4096))
    ranks = np.arange(0, 4096, 8)
    paths = greedy_paths(topo, ranks, np.roll(ranks, -1))
    sim = FlowSim(topo)
    r = all_reduce(sim, ranks.tolist(), 2**30, alpha=5e-6, paths=paths)
    wall = time.perf_counter() - t
    print(f"4096-GPU build + plan + 512-rank ring all-reduce: {wall:.2f} s wall, "
          f"{sim.stats.recomputations} recomputations, busbw {r.busbw / 1e9:.2f} GB/s")
    assert r.time is not None and r.flows == 2 * 511 * 512
    assert r.busbw == pytest.approx(topo.port_capacity * (r.size_bytes / 512 / topo.port_capacity) /
                                    (r.size_bytes / 512 / topo.port_capacity + 5e-6), rel=1e-6)
