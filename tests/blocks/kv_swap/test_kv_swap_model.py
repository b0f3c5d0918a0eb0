"""The KV swap controller's cycle model: functional checks, the transaction-level estimate, and a cross-check
of the model against the RTL in the Amaranth simulator."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.kv_swap import KvSwapController, KvSwapParams, SwapDir, SwapError
from hw.memory import MemoryParams
from sim.blocks.kv_swap.model import (
    HostLinkModel,
    LinkParams,
    Run,
    SimpleMemoryModel,
    SwapRun,
    SwapWorkload,
    coalesce,
    place_aborts,
    random_swap_workload,
    run_kv_swap,
    swap_cycles,
)
from sim.blocks.kv_swap.reference import scoreboard
from sim.blocks.kv_swap.rtl import KvSwapHarness, ReplayDriver
from sim.core.stimulus import ReadyPattern

SMALL = KvSwapParams(block_words=4, max_burst_blocks=4, dev_blocks=128, host_blocks=128, block_bits=8, count_bits=4,
                     dev_addr_bits=9, host_addr_bits=9, queue_depth=3, run_depth=6, outstanding=6, tag_bits=6)
DEV = MemoryParams(addr_bits=9, size_log2=9, latency=3, interval=1, queue_depth=4, rsp_depth=4)
HOST = MemoryParams(addr_bits=9, size_log2=9, latency=6, interval=2, queue_depth=4, rsp_depth=8)
OVERHEAD = 5


def _model(p: KvSwapParams, dev: MemoryParams, host: MemoryParams, overhead: int, w: SwapWorkload,
           status_ready=None) -> SwapRun:
    return run_kv_swap(p,
                       SimpleMemoryModel(dev, dict(w.dev_preload)), HostLinkModel(host, overhead, dict(w.host_preload)),
                       w.runs, w.aborts, status_ready)


def test_params_are_validated():
    with pytest.raises(ValueError, match="block_words"):
        KvSwapParams(block_words=12)
    with pytest.raises(ValueError, match="dev_blocks"):
        KvSwapParams(dev_blocks=1 << 17, block_bits=16)


def test_default_controller_converts_to_verilog():
    from hw.verilog import generate

    text = generate("kv_swap_controller", KvSwapController())
    assert "module kv_swap_controller" in text and "host__cmd__payload" in text


def test_coalesce_merges_runs_adjacent_in_source_and_destination_only():
    runs = [(0, 64, 3), (3, 67, 5), (8, 75, 4), (20, 90, 2), (22, 92, 9)]
    assert coalesce(runs, 8) == [(0, 64, 8), (8, 75, 4), (20, 90, 8), (28, 98, 3)]


@pytest.mark.parametrize("direction", list(SwapDir))
def test_single_swap_bursts_and_estimate(direction):
    p = KvSwapParams()
    mem = MemoryParams(latency=8, interval=1)
    runs = [(0, 64, 3), (3, 67, 5), (8, 75, 4), (20, 90, 2)]
    trace = [(0, Run(7, int(direction), s, d, n, i == len(runs) - 1)) for i, (s, d, n) in enumerate(runs)]
    for overhead in (0, 20, 100):
        res = run_kv_swap(p, SimpleMemoryModel(mem), HostLinkModel(mem, overhead), trace)
        assert res.statuses[-1][1:] == (7, SwapError.OK)
        assert [c[4] for c in res.host_cmds if c[4]] == [128, 64, 32]  # one burst marker per coalesced burst
        est = swap_cycles(runs, p, LinkParams(overhead, 1.0))
        assert est == 3 * overhead + 224
        # measured: the cycle model adds the pipeline fill and 1-2 control cycles per burst (19..23 here)
        assert est <= res.cycles <= est + mem.latency + 6 + 4 * 3


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_model_random_workloads_pass_the_scoreboard(seed):
    rng = np.random.default_rng(seed)
    w = random_swap_workload(SMALL, rng, n_requests=30, abort_fraction=0.0)
    sr = ReadyPattern(seed, 0.4)
    w = place_aborts(w, _model(SMALL, DEV, HOST, OVERHEAD, w, sr), rng, 0.3)
    res = _model(SMALL, DEV, HOST, OVERHEAD, w, sr)
    scoreboard(SMALL, w, res)
    assert any(e == SwapError.ABORTED for _, _, e in res.statuses) or seed == 4
    assert res.bad_aborts >= 1  # the unknown tag


def test_swap_ins_are_served_before_queued_swap_outs():
    p = KvSwapParams(block_words=4, dev_blocks=64, host_blocks=64)
    mem = MemoryParams(latency=2)
    trace = [(0, Run(1, SwapDir.OUT, 0, 32, 4, True)), (1, Run(2, SwapDir.OUT, 4, 36, 4, True)),
             (2, Run(3, SwapDir.IN, 0, 40, 4, True))]
    res = run_kv_swap(p, SimpleMemoryModel(mem), HostLinkModel(mem, 0), trace)
    assert [s[1] for s in res.statuses] == [1, 3, 2]


def _amaranth_replay(p: KvSwapParams, w: SwapWorkload, status_ready) -> SwapRun:
    h = KvSwapHarness(p, DEV, HOST, OVERHEAD)
    drv = ReplayDriver(p, DEV.addr_bits, w.runs, w.aborts, status_ready)

    def sig(name: str):
        obj = h
        for part in name.split("__"):
            obj = getattr(obj, part)
        return obj.as_value() if hasattr(obj, "as_value") else obj

    async def bench(ctx) -> None:
        ctx.set(h.tb_sel, 1)
        for port, pre in ((h.tb_dev, w.dev_preload), (h.tb_host, w.host_preload)):
            for a, v in sorted(pre.items()):
                ctx.set(port.cmd.valid, 1)
                ctx.set(port.cmd.payload, {"addr": a, "write": 1, "data": v})
                while not ctx.get(port.cmd.ready):
                    await ctx.tick()
                await ctx.tick()
            ctx.set(port.cmd.valid, 0)
        await ctx.tick().repeat(40)
        ctx.set(h.tb_sel, 0)
        for k in range(100_000):
            if drv.done() and ctx.get(h.idle):
                drv.out.cycles, drv.out.bad_aborts = k, ctx.get(h.bad_aborts)
                return
            for name, value in drv.drive(k).items():
                ctx.set(sig(name), value)
            drv.observe(k, lambda n: ctx.get(sig(n)))
            await ctx.tick()
        raise AssertionError("the controller did not go idle")

    sim = Simulator(h)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return drv.out


@pytest.mark.parametrize("seed", [5, 6])
def test_model_matches_rtl_in_the_amaranth_simulator(seed):
    p = KvSwapParams(block_words=4, max_burst_blocks=4, dev_blocks=64, host_blocks=64, block_bits=8, count_bits=4,
                     dev_addr_bits=9, host_addr_bits=9, queue_depth=3, run_depth=6, outstanding=6, tag_bits=6)
    rng = np.random.default_rng(seed)
    w = random_swap_workload(p, rng, n_requests=10, abort_fraction=0.0)
    sr = ReadyPattern(seed, 0.4)
    w = place_aborts(w, _model(p, DEV, HOST, OVERHEAD, w, sr), rng, 0.4)
    model = _model(p, DEV, HOST, OVERHEAD, w, sr)
    rtl = _amaranth_replay(p, w, sr)
    scoreboard(p, w, rtl)
    assert rtl.statuses == model.statuses
    assert rtl.dev_cmds == model.dev_cmds and rtl.host_cmds == model.host_cmds
    assert (rtl.cycles, rtl.bad_aborts) == (model.cycles, model.bad_aborts)
