"""The tracker cycle model: functional agreement with the reference, latencies, backpressure, and exact
cycle agreement with the RTL in Amaranth's own simulator (no Verilator needed for this one)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.pack import pack, unpack
from hw.tracker import CfgOp, TrackerParams, TrackTrigger
from sim.blocks.tracker import reference
from sim.blocks.tracker.model import replay_tracker
from sim.core import trace
from sim.core.stimulus import ReadyPattern, random_tracker_workload

DT = trace.TABLE_KINDS["tracker_requests"]


def _requests(rows):
    return np.array([(c, t, 0, 1, s, 0) for c, t, s in rows], dtype=DT)


def _program(rows):
    return np.array(rows, dtype=trace.TABLE_KINDS["tracker_program"])


@pytest.mark.parametrize("seed", range(5))
def test_model_matches_reference_sequence(seed):
    params = TrackerParams(entries=32, count_bits=12, size_bits=10, fifo_depth=3)
    program, requests = random_tracker_workload(params, 3000, np.random.default_rng(seed))
    program["enable"][0] = 0
    ready = ReadyPattern(seed, 0.5)
    model = replay_tracker(params, program, requests, ready)
    ref = reference.tracker_triggers(program, requests, params)
    assert [(d, e) for _, d, e in model.triggers] == ref.sequence
    assert (model.stats.unprogrammed, model.stats.overflow) == (ref.unprogrammed, ref.overflow)
    assert ref.unprogrammed > 0


def test_latency_of_one_trigger():
    params = TrackerParams(entries=4)
    model = replay_tracker(params, _program([(1, 64, 9, 1, 0)]), _requests([(10, 1, 64)]))
    # accepted at 10, entry updated and trigger pushed at 11, leaves the FIFO at 12
    assert model.triggers == [(12, 9, 1)]


def test_back_to_back_requests_to_one_entry():
    params = TrackerParams(entries=4)
    model = replay_tracker(params, _program([(0, 3, 5, 1, 1)]), _requests([(0, 0, 1)] * 9))
    assert [c for c, _, _ in model.triggers] == [4, 7, 10]


def test_backpressure_fills_the_fifo_and_stalls_input_without_losing_triggers():
    params = TrackerParams(entries=4, fifo_depth=2)
    n = 20
    model = replay_tracker(params, _program([(0, 1, 1, 1, 1)]), _requests([(0, 0, 1)] * n),
                           ready=lambda c: c >= 100)
    assert len(model.triggers) == n
    assert model.stats.stall_cycles >= 90
    cycles = [c for c, _, _ in model.triggers]
    assert cycles[0] == 100 and cycles == sorted(set(cycles))


# --- Amaranth simulator cross-check ---------------------------------------------------------------------

def _amaranth_replay(params, program, requests, ready) -> list[tuple[int, int, int]]:
    dut = TrackTrigger(params)
    got: list[tuple[int, int, int]] = []
    cyc, tags, sizes = requests["cycle"].tolist(), requests["tag"].tolist(), requests["size"].tolist()

    async def bench(ctx):
        for row in program:
            ctx.set(dut.cfg.payload.as_value(), pack(params.cfg_layout(), op=CfgOp.PROGRAM, index=int(row["entry"]),
                                          threshold=int(row["threshold"]), desc=int(row["desc"]),
                                          enable=int(row["enable"]), rearm=int(row["rearm"])))
            ctx.set(dut.cfg.valid, 1)
            while not ctx.get(dut.cfg.ready):
                await ctx.tick()
            await ctx.tick()
        ctx.set(dut.cfg.valid, 0)
        i, k = 0, 0
        while True:
            if i == len(cyc) and ctx.get(dut.idle):
                break
            if i < len(cyc) and cyc[i] <= k:
                ctx.set(dut.req.payload.as_value(), pack(params.request_layout(), tag=tags[i], size=sizes[i]))
                ctx.set(dut.req.valid, 1)
                if ctx.get(dut.req.ready):
                    i += 1
            else:
                ctx.set(dut.req.valid, 0)
            r = ready is None or ready(k)
            ctx.set(dut.trigger.ready, r)
            if r and ctx.get(dut.trigger.valid):
                f = unpack(params.trigger_layout(), ctx.get(dut.trigger.payload.as_value()))
                got.append((k, f["desc"], f["entry"]))
            await ctx.tick()
            k += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("seed,bp", [(1, 0.0), (2, 0.6), (3, 0.9)])
def test_model_is_cycle_exact_against_the_rtl_in_amaranth_sim(seed, bp):
    params = TrackerParams(entries=8, count_bits=10, size_bits=9, fifo_depth=2)
    program, requests = random_tracker_workload(params, 400, np.random.default_rng(seed), max_threshold=256)
    ready = ReadyPattern(seed, bp).as_model_ready()
    rtl = _amaranth_replay(params, program, requests, ready)
    model = replay_tracker(params, program, requests, ready)
    assert len(rtl) > 50
    assert rtl == model.triggers
