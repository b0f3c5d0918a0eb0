"""The reducer's timing model: latencies, hazards, overlap, backpressure; and exact agreement with the RTL (and
the RTL's data with the reference) in Amaranth's own simulator, on a few hundred packets (no Verilator)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hw.memory import MemoryParams, mem_cmd_layout
from hw.pack import pack, unpack
from hw.reducer import ReducerParams, reduce_word
from sim.blocks.reducer.model import ReducerModel, model_commits
from sim.blocks.reducer.reference import (
    ADD_BF16,
    ADD_F32,
    ADD_I32,
    BF16_SPECIALS,
    F32_SPECIALS,
    STORE,
    as_packets,
    packet_results,
    random_packets,
    reduce_words,
)
from sim.blocks.reducer.rtl import ReducerHarness
from sim.core.stimulus import ReadyPattern

P = ReducerParams()
MEM = MemoryParams(latency=6, interval=1)


def _timeline(rows, params=P, mem=MEM, ready=None):
    return model_commits(params, mem, as_packets(rows), ready)


# --- model sanity -------------------------------------------------------------------------------------------

def test_latency_of_a_store_and_of_an_add():
    tl = _timeline([(5, 1, STORE, 0, 0)])
    assert (tl.accept[0], tl.write[0], tl.commit[0]) == (5, 7, 8)
    tl = _timeline([(5, 1, ADD_F32, 0, 0)])
    lat = MEM.latency
    assert (tl.accept[0], tl.pop[0], tl.write[0], tl.commit[0]) == (5, 5 + lat + 2, 5 + lat + 3, 5 + lat + 4)


def test_back_to_back_updates_of_one_word_wait_for_the_write():
    tl = _timeline([(0, 9, ADD_I32, 1, i) for i in range(5)])
    step = MEM.latency + 4  # accept after the previous write (L + 3 after its accept)
    assert np.diff(tl.accept).tolist() == [step] * 4
    # A store to the same word does not wait for the pending update (writes leave in order) ...
    tl = _timeline([(0, 9, ADD_I32, 1, 0), (0, 9, STORE, 1, 1)])
    assert tl.accept.tolist() == [0, 1]
    # ... but an update after a store waits for the store's write.
    tl = _timeline([(0, 9, STORE, 1, 0), (0, 9, ADD_I32, 1, 1)])
    assert tl.accept.tolist() == [0, 3]


def test_updates_of_different_words_overlap_up_to_inflight():
    n = 40
    rows = [(0, i, ADD_F32, 0, 0) for i in range(n)]
    rate = {}
    for k in (1, 2, 4, 8):
        tl = _timeline(rows, params=ReducerParams(inflight=k))
        rate[k] = n / (tl.commit[-1] - tl.accept[0])
    # One in flight: one update per round trip (L + 3 cycles) plus the cycle its write takes on the port, where
    # the next read would go; more overlap until the port (two commands per update) is the limit.
    assert rate[1] == pytest.approx(1 / (MEM.latency + 4))
    assert rate[1] < rate[2] < rate[4] <= rate[8] <= 0.5 + 1e-9
    assert rate[4] > 3 * rate[1]


def test_backpressure_stalls_without_losing_commits():
    n = 30
    rows = [(0, i, STORE, i, i) for i in range(n)]
    tl = _timeline(rows, params=ReducerParams(commit_depth=2), ready=lambda c: c >= 100)
    assert len(tl.commit) == n and tl.commit[0] == 100
    assert np.all(np.diff(tl.commit) == 1)
    assert tl.stall_cycles > 80  # the commit FIFO and the queue filled, then the input stalled
    assert np.all(tl.write[2:] > tl.commit[:-2])  # never more than commit_depth commits buffered


def test_slow_memory_fills_its_queue_and_the_model_accounts_for_it():
    mem = MemoryParams(latency=6, interval=4, queue_depth=4)
    tl = _timeline([(0, i, STORE, i, 0) for i in range(50)], mem=mem)
    assert np.diff(tl.write)[-10:].tolist() == [4] * 10  # writes paced by the memory's service rate


def test_model_rejects_inflight_beyond_the_response_fifo():
    with pytest.raises(ValueError):
        ReducerModel(ReducerParams(inflight=16), MemoryParams(rsp_depth=16))


# --- Amaranth simulator: RTL vs model and reference ----------------------------------------------------------

def _amaranth_replay(params, mem, memory0, packets, ready):
    """Preload through the tb port, replay with the stalls, read back; return (commits, writes, memory image)."""
    dut = ReducerHarness(params, mem)
    cl, pl, cmd_l = params.commit_layout(), params.packet_layout(), mem_cmd_layout(mem.addr_bits)
    commits: list[tuple[int, int, int]] = []
    writes: list[tuple[int, int]] = []
    image: list[int] = []

    async def bench(ctx):
        ctx.set(dut.tb_sel, 1)
        ctx.set(dut.tb.rsp.ready, 1)
        for a, word in enumerate(memory0.tolist()):
            ctx.set(dut.tb.cmd.payload.as_value(), pack(cmd_l, addr=a, write=1, data=word))
            ctx.set(dut.tb.cmd.valid, 1)
            await ctx.tick().until(dut.tb.cmd.ready)
        ctx.set(dut.tb.cmd.valid, 0)
        await ctx.tick().until(dut.occupancy == 0)
        await ctx.tick().repeat(mem.interval)  # the memory is empty and idle: replay cycle 0 comes next
        ctx.set(dut.tb_sel, 0)
        rows = packets.tolist()
        i, k = 0, 0
        while True:
            if i == len(rows) and ctx.get(dut.idle):
                break
            if i < len(rows) and rows[i][0] <= k:
                _, addr, op, data, tag = rows[i]
                ctx.set(dut.pkt.payload.as_value(), pack(pl, addr=addr, op=op, data=data, tag=tag))
                ctx.set(dut.pkt.valid, 1)
                if ctx.get(dut.pkt.ready):
                    i += 1
            else:
                ctx.set(dut.pkt.valid, 0)
            r = ready is None or ready(k)
            ctx.set(dut.commit.ready, r)
            if r and ctx.get(dut.commit.valid):
                f = unpack(cl, ctx.get(dut.commit.payload.as_value()))
                commits.append((k, f["tag"], f["addr"]))
            if ctx.get(dut.wr_valid):
                writes.append((ctx.get(dut.wr_addr), ctx.get(dut.wr_data)))
            await ctx.tick()
            k += 1
        ctx.set(dut.pkt.valid, 0)
        ctx.set(dut.commit.ready, 0)
        ctx.set(dut.tb_sel, 1)
        issued = 0
        while len(image) < len(memory0):
            ctx.set(dut.tb.cmd.valid, issued < len(memory0))
            ctx.set(dut.tb.cmd.payload.as_value(), pack(cmd_l, addr=issued, write=0))
            if ctx.get(dut.tb.rsp.valid):
                image.append(ctx.get(dut.tb.rsp.payload))
            if issued < len(memory0) and ctx.get(dut.tb.cmd.ready):
                issued += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return commits, writes, np.array(image, dtype=np.uint32)


@pytest.mark.parametrize("seed,interval,bp,inflight,depth,queue", [
    (1, 1, 0.0, 3, 3, 16), (2, 2, 0.5, 3, 3, 16), (3, 1, 0.85, 3, 3, 16),
    (4, 3, 0.5, 4, 2, 2),  # a slow memory with a 2-deep queue: cmd.ready backpressure on reads and writes
    (5, 1, 0.3, 1, 2, 16),  # one read-modify-write at a time
])
def test_model_is_cycle_exact_against_the_rtl_in_amaranth_sim(seed, interval, bp, inflight, depth, queue):
    params = ReducerParams(inflight=inflight, commit_depth=depth)
    mem = MemoryParams(latency=6, interval=interval, size_log2=6, queue_depth=queue)
    rng = np.random.default_rng(seed)
    memory0, packets = random_packets(rng, 250, 48, idle_prob=0.3, hot=3)
    ready = ReadyPattern(seed, bp).as_model_ready()
    commits, writes, image = _amaranth_replay(params, mem, memory0, packets, ready)
    final, written = packet_results(memory0, packets)
    assert writes == list(zip(packets["addr"].tolist(), written.tolist(), strict=True))
    assert image.tolist() == final.tolist()
    assert [(t, a) for _, t, a in commits] == list(zip(packets["tag"].tolist(), packets["addr"].tolist(),
                                                       strict=True))
    tl = model_commits(params, mem, packets, ready)
    assert [c for c, _, _ in commits] == tl.commit.tolist()


class _ReduceWord(wiring.Component):
    def __init__(self) -> None:
        super().__init__({"op": In(2), "old": In(32), "new": In(32), "out": Out(32)})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.d.comb += self.out.eq(reduce_word(m, self.op, self.old, self.new))
        return m


def test_rtl_arithmetic_matches_the_reference_on_specials():
    """The RTL's adders on every pair of special values (fp32), lane pairs (bf16) and random words."""
    rng = np.random.default_rng(0)
    f = np.array(F32_SPECIALS, dtype=np.uint32)
    b = np.array(BF16_SPECIALS, dtype=np.uint32)
    bf_a = np.repeat(b, len(b))
    bf_b = np.tile(b, len(b))
    cases = {
        ADD_F32: (np.repeat(f, len(f)), np.tile(f, len(f))),
        ADD_BF16: (bf_a | (bf_b << 16), bf_b | (np.roll(bf_a, 7) << 16)),
        ADD_I32: (rng.integers(0, 1 << 32, 200, dtype=np.uint64).astype(np.uint32),
                  rng.integers(0, 1 << 32, 200, dtype=np.uint64).astype(np.uint32)),
        STORE: (np.arange(5, dtype=np.uint32), np.arange(5, dtype=np.uint32) * 7),
    }
    dut = _ReduceWord()
    bad = []

    async def bench(ctx):
        for op, (old, new) in cases.items():
            expect = reduce_words(op, old, new).tolist()
            ctx.set(dut.op, op)
            for x, y, e in zip(old.tolist(), new.tolist(), expect, strict=True):
                ctx.set(dut.old, x)
                ctx.set(dut.new, y)
                got = ctx.get(dut.out)
                if got != e:
                    bad.append((op, hex(x), hex(y), hex(got), hex(e)))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert not bad, bad[:5]
