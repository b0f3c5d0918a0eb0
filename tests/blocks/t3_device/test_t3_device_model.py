"""The device model (`sim.blocks.t3_device.model`): its stepped reducer follows the reducer block's rules, its tracker
is the tracker block's model (count saturation included), and its data equal the functional reference."""

from __future__ import annotations

import numpy as np
import pytest

import sim.exec as ex
from hw.arbiter import ArbiterMode
from hw.memory import MemoryParams
from hw.reducer import ReducerParams
from sim.blocks.memory.model import SimpleMemoryModel
from sim.blocks.reducer.model import ReducerModel
from sim.blocks.reducer.reference import packet_results, random_packets
from sim.blocks.t3_device.model import ReducerStep
from sim.blocks.t3_device.stimulus import saturating_stimulus
from sim.blocks.tracker.reference import tracker_triggers
from sim.core.stimulus import ReadyPattern
from sim.exec.api import data_view


def _step_reducer(params: ReducerParams, mem_p: MemoryParams, memory0: np.ndarray, packets: np.ndarray,
                  ready: ReadyPattern) -> tuple[dict[str, list[int]], SimpleMemoryModel]:
    """`ReducerStep` alone in front of the memory model, as the reducer's own harness runs the RTL."""
    mem = SimpleMemoryModel(mem_p, {a: int(v) for a, v in enumerate(memory0.tolist())})
    red = ReducerStep(params)
    rows = [(int(c), int(a), int(o), int(d), int(t)) for c, a, o, d, t in packets.tolist()]
    ev: dict[str, list[int]] = {"accept": [], "write": [], "commit": []}
    i, t = 0, 0
    while len(ev["commit"]) < len(rows):
        assert t < 100 * len(rows) + 1000, "stepped reducer stuck"
        pkt = rows[i][1:] if i < len(rows) and rows[i][0] <= t else None
        offer = red.offer(pkt)
        granted = offer is not None and mem.cmd_ready()
        if granted:
            mem.push_cmd(*offer)
            if offer[1]:
                ev["write"].append(t)
        word = None
        if mem.rsp_valid():
            word = mem.rsp_data()
            mem.pop_rsp()
        commit_ready = ready(t)
        if commit_ready and red.commit_head() is not None:
            ev["commit"].append(t)
        if red.cycle(pkt, granted, word, commit_ready):
            ev["accept"].append(t)
            i += 1
        mem.step()
        t += 1
    while mem.queue or mem.pipe:
        mem.step()
    return ev, mem


@pytest.mark.parametrize("inflight,commit_depth,latency,queue,interval,bp,seed", [
    (4, 8, 6, 8, 1, 0.0, 1),
    (1, 2, 3, 2, 1, 0.5, 2),
    (8, 2, 9, 16, 2, 0.3, 3),
    (3, 4, 6, 4, 3, 0.8, 4),
])
def test_stepped_reducer_follows_the_reducer_model(inflight, commit_depth, latency, queue, interval, bp, seed):
    """Every accept, write and commit cycle equals `ReducerModel`'s; every word equals the reducer's reference."""
    params = ReducerParams(addr_bits=12, tag_bits=8, inflight=inflight, commit_depth=commit_depth)
    mem_p = MemoryParams(addr_bits=12, size_log2=12, latency=latency, queue_depth=queue, interval=interval)
    memory0, packets = random_packets(np.random.default_rng(seed), 1500, 64)
    ready = ReadyPattern(seed, bp)
    ev, mem = _step_reducer(params, mem_p, memory0, packets, ready)
    tl = ReducerModel(params, mem_p, ready.as_model_ready()).run(packets["cycle"], packets["addr"], packets["op"])
    assert ev["accept"] == tl.accept.tolist()
    assert ev["write"] == tl.write.tolist()
    assert ev["commit"] == tl.commit.tolist()
    final, _ = packet_results(memory0, packets)
    assert [mem.read_word(a) for a in range(len(final))] == final.tolist()


def test_device_tracker_saturates_its_count():
    """The device's tracker counts as the tracker block does: a count that passes 2**count_bits - 1 saturates,
    fires and counts an overflow (the re-implemented tracker this model used to carry did not)."""
    p = ex.get("t3_device").small_params()
    stim = saturating_stimulus(p)
    res = ex.run("t3_device", stim, "model", p)
    requests = np.zeros(len(stim["produce"]) + len(stim["link_in"]), dtype=[("tag", "<u4"), ("size", "<u4")])
    requests["tag"] = np.concatenate([stim["produce"]["tag"], stim["link_in"]["tag"]])
    requests["size"] = 4
    ref = tracker_triggers(stim["program"], requests, p.tracker)
    row = res.tables["tracker"][0]
    assert ref.overflow == 3 and int(row["overflow"]) == 3
    assert int(row["errors"]) == 0b11 and int(row["triggers"]) == len(ref.sequence)


@pytest.mark.parametrize("mode", [ArbiterMode.MCA, ArbiterMode.ROUND_ROBIN])
@pytest.mark.parametrize("backpressure", [0.0, 0.7])
def test_model_data_equal_the_reference(mode, backpressure):
    blk = ex.get("t3_device")
    p = blk.small_params()
    stim = blk.standard_stimulus(p, 3, 400)
    stim.meta.update(arb_mode=int(mode), arb_threshold=2, arb_starvation=8)
    model = ex.run(blk.name, stim, "model", p, ex.Stalls(seed=11, backpressure=backpressure))
    ref = ex.run(blk.name, stim, "reference", p)
    for name, spec in blk.results.items():
        got = data_view(spec.kind, model.tables[name])
        want = ref.tables[name]
        if not spec.ordered:
            got, want = np.sort(got), np.sort(want)
        assert np.array_equal(got, want), name
    assert len(ref.tables["link_out"]) and len(ref.tables["statuses"]) and ref.tables["tracker"]["overflow"][0] == 1


def test_reference_refuses_a_timing_dependent_stimulus():
    p = ex.get("t3_device").small_params()
    stim = saturating_stimulus(p)
    ex.run("t3_device", stim, "reference", p)  # well-formed: both streams add int32 to the same words
    link = stim["link_in"].copy()
    link["op"][0] = 0  # a STORE racing the other stream's adds on the same word
    stim.add("link_in", "t3_packets", link)
    with pytest.raises(ValueError, match="both streams"):
        ex.run("t3_device", stim, "reference", p)
    stim = saturating_stimulus(p)
    stim.add("compute", "t3_compute", np.array([(0, int(stim["produce"]["addr"][0]), 0, 0)],
                                               dtype=stim["compute"].dtype))
    with pytest.raises(ValueError, match="compute uses"):
        ex.run("t3_device", stim, "reference", p)
