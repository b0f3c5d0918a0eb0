"""The compiled replay (`sim.blocks.kv_swap.model.replay_arrays`, what `run_kv_swap` and the block's model runner
use) against `KvSwapModel` stepped with `SimpleMemoryModel` / `HostLinkModel` port objects, cycle by cycle: the
rules are shared (`kv_cycle`, `link_*`, the memory's ``mem_*``), so this checks the kernel's loop (offers, port
stepping order, drain) and the state and storage it hands back to the port objects."""

from __future__ import annotations

import numpy as np
import pytest

import sim.exec as ex
from hw.kv_swap import KvSwapParams
from sim.blocks.kv_swap import standard_environment
from sim.blocks.kv_swap.model import HostLinkModel, SimpleMemoryModel, random_swap_workload, run_kv_swap
from sim.core.stimulus import ReadyPattern

FIELDS = ("statuses", "dev_cmds", "host_cmds", "cycles", "bad_aborts", "run_accepts")


def _replay(p, dev_p, host_p, overhead, w, ready, stepped: bool):
    dev = SimpleMemoryModel(dev_p, dict(w.dev_preload))
    host = HostLinkModel(host_p, overhead, dict(w.host_preload))
    # A plain callable is not compiled: run_kv_swap steps KvSwapModel with the port objects.
    sr = (lambda c: ready is None or ready(c)) if stepped else ready
    res = run_kv_swap(p, dev, host, w.runs, w.aborts, sr)
    settle = 0
    while not (dev.idle() and host.idle()):  # the ports carry on from the state the replay left
        dev.step()
        host.step()
        settle += 1
    words = [[m.read_word(a) for a in range(n * p.block_words)] for m, n in ((dev, p.dev_blocks),
                                                                            (host, p.host_blocks))]
    return res, words, settle


@pytest.mark.parametrize("seed", range(6))
def test_compiled_replay_equals_the_stepped_model(seed):
    rng = np.random.default_rng(seed)
    p = ex.get("kv_swap").small_params()
    dev_p, host_p, _ = standard_environment(p)
    overhead = (0, 1, 5)[seed % 3]
    w = random_swap_workload(p, rng, n_requests=60, bad_fraction=0.2, abort_fraction=0.2,
                             idle_prob=(0.0, 0.3, 0.7)[seed % 3], dev_mem=dev_p, host_mem=host_p,
                             overhead_cycles=overhead)
    ready = ReadyPattern(seed, (0.0, 0.3, 0.8)[seed // 2 % 3]).as_model_ready()
    fast, fast_words, fast_settle = _replay(p, dev_p, host_p, overhead, w, ready, stepped=False)
    slow, slow_words, slow_settle = _replay(p, dev_p, host_p, overhead, w, ready, stepped=True)
    for f in FIELDS:
        assert getattr(fast, f) == getattr(slow, f), f
    assert fast_words == slow_words
    assert fast_settle == slow_settle
    assert slow.bad_aborts and any(e for _, _, e in slow.statuses)  # errors and aborts were exercised


def test_block_model_runner_equals_the_stepped_model():
    """The block's model target (arrays straight from the stimulus, drained) against the stepped classes."""
    blk = ex.get("kv_swap")
    p = blk.small_params()
    stim = blk.standard_stimulus(p, 3, 80)
    stalls = ex.Stalls(seed=2, backpressure=0.3)
    res = ex.run("kv_swap", stim, "model", p, stalls)
    dev_p, host_p, overhead = standard_environment(p)
    dev = SimpleMemoryModel(dev_p, dict(enumerate(stim["dev_memory"]["data"].tolist())))
    host = HostLinkModel(host_p, overhead, dict(enumerate(stim["host_memory"]["data"].tolist())))
    from sim.blocks.kv_swap import _replay_inputs

    runs, aborts = _replay_inputs(stim)
    ready = stalls.ready(0)
    slow = run_kv_swap(p, dev, host, runs, aborts, lambda c: ready(c))
    while not (dev.idle() and host.idle()):
        dev.step()
        host.step()
    assert res.cycles == slow.cycles
    assert res.tables["statuses"].tolist() == slow.statuses
    assert res.tables["dev_writes"].tolist() == [(c, a, d) for c, a, wr, d in slow.dev_cmds if wr]
    assert res.tables["host_writes"].tolist() == [(c, a, d) for c, a, wr, d, _ in slow.host_cmds if wr]
    assert res.tables["dev_memory"]["data"].tolist() == [dev.read_word(a) for a in range(len(stim["dev_memory"]))]
    assert res.tables["host_memory"]["data"].tolist() == [host.read_word(a)
                                                          for a in range(len(stim["host_memory"]))]
    assert res.tables["counters"].tolist() == [(slow.bad_aborts, int(slow.bad_aborts > 0))]


def test_no_runs_and_no_aborts():
    p = KvSwapParams(block_words=4, dev_blocks=64, host_blocks=64)
    dev_p, host_p, _ = standard_environment(p)
    res = run_kv_swap(p, SimpleMemoryModel(dev_p), HostLinkModel(host_p, 3), [], [])
    assert (res.cycles, res.statuses, res.dev_cmds, res.host_cmds) == (0, [], [], [])
