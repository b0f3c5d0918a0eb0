"""The memory arbiter's cycle model: policy semantics, MCA's effect, the starvation bound, the testbench
scoreboard, and exact cycle agreement with the RTL (arbiter + SimpleMemory) in Amaranth's own simulator."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.arbiter import ArbiterMode, ArbiterParams, Requester
from hw.memory import MemoryParams, mem_cmd_layout
from hw.pack import pack
from sim.blocks.arbiter.model import CMD_DTYPE, ArbiterModel, ArbiterRun, expected_data, random_streams, run_arbiter
from sim.blocks.arbiter.rtl import ArbiterDut, scoreboard
from sim.blocks.memory.model import MemoryTiming, SimpleMemoryModel
from sim.core.stimulus import ReadyPattern

ARB = ArbiterParams(max_reads=12)
MEM = MemoryParams(size_log2=10, latency=4, interval=2, queue_depth=16, rsp_depth=8)
MCA, RR = ArbiterMode.MCA, ArbiterMode.ROUND_ROBIN


def _cmds(rows) -> np.ndarray:
    return np.array(rows, dtype=CMD_DTYPE)


def _run(compute, comm, mode, threshold=63, limit=0, mem=MEM, arb=ARB, ready=(None, None)) -> ArbiterRun:
    return run_arbiter(arb, SimpleMemoryModel(mem), compute, comm, mode=mode, threshold=threshold,
                       starvation_limit=limit, compute_ready=ready[0], comm_ready=ready[1])


def _heavy_streams(seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Long compute bursts (a GEMM) against a comm stream that wants more bandwidth than the memory has."""
    return random_streams(np.random.default_rng(seed), region_words=128, bursts=12, burst_len=(40, 80),
                          burst_gap=(60, 200), comm_pairs=900, comm_gap=(0, 1), idle_prob=0.05)


def test_params_validation_and_identity():
    with pytest.raises(TypeError):
        ArbiterParams(max_reads=2.0)
    with pytest.raises(TypeError):
        ArbiterParams(limit_bits=True)
    with pytest.raises(ValueError):
        ArbiterParams(max_reads=0)
    with pytest.raises(ValueError):
        ArbiterParams(occupancy_bits=17)
    assert ArbiterParams() == ArbiterParams(addr_bits=24, occupancy_bits=6, max_reads=16, limit_bits=16)
    assert len({ArbiterParams(), ArbiterParams(), ARB}) == 2
    assert ArbiterParams(**ARB.as_dict()) == ARB
    with pytest.raises(ValueError):
        ArbiterModel(ArbiterParams(occupancy_bits=3), MCA, threshold=8)


def test_isolated_commands_pass_through_without_delay():
    """A lone command is granted in its arrival cycle; a lone read answers as SimpleMemory alone would."""
    compute = _cmds([(3, 5, 1, 77), (9, 5, 0, 0)])
    comm = _cmds([(30, 5, 0, 0)])
    run = _run(compute, comm, MCA, threshold=4)
    assert run.compute.grants == [3, 9] and run.comm.grants == [30]
    timing = MemoryTiming(MEM)
    timing.serve(3)
    assert run.compute.responses == [(timing.read_response(9), 77)]
    assert run.comm.responses == [(timing.read_response(30), 77)]
    assert run.comm_wait_cycles == 0 and run.starvation_grants == 0


def test_round_robin_alternates_and_mca_gives_compute_priority():
    compute = _cmds([(0, a, 1, a) for a in range(6)])
    comm = _cmds([(0, 100 + a, 1, a) for a in range(6)])
    mem = MemoryParams(size_log2=10, latency=2, interval=1, queue_depth=16)
    rr = _run(compute, comm, RR, mem=mem)
    assert rr.compute.grants == [0, 2, 4, 6, 8, 10] and rr.comm.grants == [1, 3, 5, 7, 9, 11]
    mca = _run(compute, comm, MCA, threshold=16, mem=mem)
    assert mca.compute.grants == list(range(6)) and mca.comm.grants == list(range(6, 12))
    assert mca.comm_wait_cycles == 6 and rr.comm_wait_cycles == 6


def test_policy_order_in_one_cycle():
    """Held selection > starvation > compute > occupancy-gated comm, read by read from `select`."""
    model = ArbiterModel(ARB, MCA, threshold=4, starvation_limit=3)
    read, write = (0, 0, 0), (0, 1, 0)
    assert model.select([read, read], occupancy=0) == Requester.COMPUTE
    assert model.select([None, read], occupancy=3) == Requester.COMM
    assert model.select([None, read], occupancy=4) is None  # gated
    model.count = 3
    assert model.select([read, read], occupancy=16) == Requester.COMM  # starving beats compute and the gate
    model.lock = Requester.COMPUTE
    assert model.select([read, read], occupancy=16) == Requester.COMPUTE  # an unaccepted selection is held
    model.lock, model.count = None, 0
    for _ in range(ARB.max_reads):  # owner FIFO full: reads wait, writes still go
        model.push_owner(Requester.COMPUTE)
    assert model.select([read, write], occupancy=0) == Requester.COMM
    assert model.select([read, read], occupancy=0) is None
    rr = ArbiterModel(ARB, RR, threshold=0)
    assert rr.select([None, read], occupancy=60) == Requester.COMM  # round robin ignores occupancy
    off = ArbiterModel(ARB, MCA, threshold=0, starvation_limit=0)
    off.count = 1000
    assert off.select([read, read], occupancy=0) == Requester.COMPUTE  # limit 0 disables starvation


@pytest.mark.parametrize("threshold", [1, 4, 10])
def test_mca_admits_comm_only_below_the_threshold(threshold):
    compute, comm = _heavy_streams(3)
    run = _run(compute, comm, MCA, threshold=threshold)
    assert all(o < threshold for o in run.comm.grant_occupancy)
    rr = _run(compute, comm, RR)
    assert max(rr.comm.grant_occupancy) >= MEM.queue_depth - 1  # without MCA comm fills the queue
    with_limit = _run(compute, comm, MCA, threshold=threshold, limit=16)
    gated_out = sum(o >= threshold for o in with_limit.comm.grant_occupancy)
    assert 0 < gated_out <= with_limit.starvation_grants


def test_mca_shortens_the_gemm_under_heavy_comm_traffic():
    compute, comm = _heavy_streams()
    alone = _run(compute, comm[:0], MCA, threshold=4)
    rr = _run(compute, comm, RR)
    mca = _run(compute, comm, MCA, threshold=4)
    c_alone, c_rr, c_mca = (r.compute.completion() for r in (alone, rr, mca))
    assert c_mca < 0.75 * c_rr
    assert c_mca <= 1.02 * c_alone
    # The GEMM's bursts still fill the queue themselves; what MCA removes is comm's share of it.
    assert np.mean(mca.compute.read_latencies()) < 0.85 * np.mean(rr.compute.read_latencies())
    assert mca.cycles == rr.cycles  # the memory is the bottleneck either way: MCA reorders, it does not waste


@pytest.mark.parametrize("limit", [1, 8, 16, 40])
def test_starvation_limit_bounds_comm_wait(limit):
    """Once comm has waited ``limit`` cycles, at most one compute command (one already offered to the memory
    and held) is granted before it. The owner FIFO is made deep enough never to fill: a comm read that finds it
    full also waits for a read response, which the limit cannot shorten."""
    arb = ArbiterParams(max_reads=32)  # > queue_depth + latency + rsp_depth: reads outstanding never reach it
    compute, comm = _heavy_streams()
    unbounded = _run(compute, comm, MCA, threshold=4, arb=arb)
    bounded = _run(compute, comm, MCA, threshold=4, limit=limit, arb=arb)
    for g, w in zip(bounded.comm.grants, bounded.comm.waits(), strict=True):
        starving_from = g - w + limit
        assert sum(starving_from <= c < g for c in bounded.compute.grants) <= 1
    # ... so the wait is at most the limit plus two service intervals of a full queue.
    assert max(bounded.comm.waits()) <= limit + 2 * MEM.interval + 1
    # Without it comm waits out whole GEMM bursts: longer than serving two of the shortest (40 commands).
    assert max(unbounded.comm.waits()) > 2 * 40 * MEM.interval
    assert bounded.starvation_grants > 0 and unbounded.starvation_grants == 0
    assert bounded.comm_wait_cycles == sum(bounded.comm.waits())


def test_model_read_data_matches_the_functional_reference():
    compute, comm = random_streams(np.random.default_rng(5), region_words=64, bursts=8, comm_pairs=200)
    run = _run(compute, comm, MCA, threshold=6, limit=20, ready=(ReadyPattern(1, 0.4), ReadyPattern(2, 0.4)))
    reads, _ = expected_data(compute, comm, run.order, MEM.size_log2)
    assert [d for _, d in run.compute.responses] == reads[0]
    assert [d for _, d in run.comm.responses] == reads[1]
    assert len(reads[0]) == int((compute["write"] == 0).sum()) and len(reads[1]) == len(comm) // 2


def _obs(run: ArbiterRun, compute, comm, words: int) -> dict:
    _, final = expected_data(compute, comm, run.order, MEM.size_log2)
    return {"compute_grants": list(run.compute.grants), "comm_grants": list(run.comm.grants),
            "compute_rsp": [list(r) for r in run.compute.responses],
            "comm_rsp": [list(r) for r in run.comm.responses], "readback": [final.get(a, 0) for a in range(words)]}


def test_scoreboard_accepts_a_good_run_and_catches_faults():
    compute, comm = random_streams(np.random.default_rng(9), region_words=32, bursts=4, comm_pairs=60)
    run = _run(compute, comm, RR, ready=(ReadyPattern(1, 0.3), ReadyPattern(2, 0.3)))
    good = _obs(run, compute, comm, 32)
    assert scoreboard(compute, comm, good, MEM.size_log2, 32)["scoreboard_ok"]

    def broken(edit) -> bool:
        obs = {k: [list(x) if isinstance(x, list) else x for x in v] for k, v in good.items()}
        edit(obs)
        return not scoreboard(compute, comm, obs, MEM.size_log2, 32)["scoreboard_ok"]

    def misroute(o):  # the first comm response handed to compute instead
        o["compute_rsp"].insert(0, o["comm_rsp"].pop(0))

    def swap_data(o):  # two responses of one stream exchanged (out of order)
        o["comm_rsp"][2][1], o["comm_rsp"][3][1] = o["comm_rsp"][3][1], o["comm_rsp"][2][1] ^ 1

    assert broken(lambda o: o["comm_rsp"].pop())  # a lost response
    assert broken(lambda o: o["compute_rsp"].append(o["compute_rsp"][-1]))  # a duplicated one
    assert broken(misroute)
    assert broken(swap_data)
    assert broken(lambda o: o["readback"].__setitem__(5, o["readback"][5] ^ 1))  # a write that did not land
    assert broken(lambda o: o["comm_grants"].pop())  # a command never granted
    assert broken(lambda o: o["comm_grants"].__setitem__(1, o["compute_grants"][1]))  # two grants in a cycle


# --- Amaranth simulator cross-check ---------------------------------------------------------------------

def _amaranth_replay(arb: ArbiterParams, mem: MemoryParams, compute, comm, mode, threshold: int, limit: int,
                     readies) -> dict:
    dut = ArbiterDut(arb, mem)
    lay = mem_cmd_layout(arb.addr_bits)
    streams, ports = (compute, comm), (dut.compute, dut.comm)
    cols = [[s[k].tolist() for k in ("cycle", "addr", "write", "data")] for s in streams]
    out: dict = {"grants": ([], []), "rsp": ([], []), "held": 0}
    mem_cmd = dut.arbiter.mem.cmd

    async def bench(ctx):
        ctx.set(dut.mode, int(mode))
        ctx.set(dut.threshold, threshold)
        ctx.set(dut.starvation_limit, limit)
        idx, outstanding, pending = [0, 0], 0, None
        for k in range(100_000):
            if idx == [len(compute), len(comm)] and outstanding == 0:
                out["cycles"] = k
                break
            offered, ready = [], []
            for s in (0, 1):
                i = idx[s]
                on = i < len(cols[s][0]) and cols[s][0][i] <= k
                if on:
                    ctx.set(ports[s].cmd.payload.as_value(),
                            pack(lay, addr=cols[s][1][i], write=cols[s][2][i], data=cols[s][3][i]))
                ctx.set(ports[s].cmd.valid, on)
                r = readies[s] is None or readies[s](k)
                ctx.set(ports[s].rsp.ready, r)
                offered.append(on)
                ready.append(r)
            # Stream rule on the memory side: an offer not taken stays offered, unchanged, until it is taken.
            cmd = (ctx.get(mem_cmd.valid), ctx.get(mem_cmd.payload.as_value()))
            if pending is not None:
                assert cmd == pending, f"cycle {k}: mem.cmd changed from {pending} to {cmd} before its transfer"
                out["held"] += 1
            pending = cmd if cmd[0] and not ctx.get(mem_cmd.ready) else None
            for s in (0, 1):
                if offered[s] and ctx.get(ports[s].cmd.ready):
                    out["grants"][s].append(k)
                    outstanding += not cols[s][2][idx[s]]
                    idx[s] += 1
                if ready[s] and ctx.get(ports[s].rsp.valid):
                    out["rsp"][s].append((k, ctx.get(ports[s].rsp.payload)))
                    outstanding -= 1
            await ctx.tick()
        out["comm_wait_cycles"] = ctx.get(dut.comm_wait_cycles)
        out["starvation_grants"] = ctx.get(dut.starvation_grants)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out


SMALL_ARB = ArbiterParams(max_reads=2, limit_bits=4, occupancy_bits=5)
SMALL_MEM = MemoryParams(size_log2=8, latency=2, interval=3, queue_depth=4, rsp_depth=2)


@pytest.mark.parametrize("arb,mem,mode,threshold,limit,bp", [
    (ARB, MEM, RR, 0, 0, 0.3),
    (ARB, MEM, MCA, 4, 0, 0.3),
    (ARB, MEM, MCA, 8, 24, 0.6),
    (ARB, MEM, MCA, 0, 6, 0.0),
    (SMALL_ARB, SMALL_MEM, MCA, 3, 5, 0.5),
    (SMALL_ARB, SMALL_MEM, RR, 0, 0, 0.8),
], ids=["rr", "mca-t4", "mca-t8-lim24", "mca-t0-lim6", "small-mca", "small-rr"])
def test_model_is_cycle_exact_against_the_rtl_in_amaranth_sim(arb, mem, mode, threshold, limit, bp):
    compute, comm = random_streams(np.random.default_rng(threshold + limit), region_words=64, bursts=6,
                                   burst_len=(8, 30), comm_pairs=90, comm_gap=(0, 2), idle_prob=0.15)
    readies = (ReadyPattern(threshold + 1, bp).as_model_ready(), ReadyPattern(limit + 2, bp).as_model_ready())
    rtl = _amaranth_replay(arb, mem, compute, comm, mode, threshold, limit, readies)
    model = _run(compute, comm, mode, threshold, limit, mem=mem, arb=arb, ready=readies)
    assert len(compute) + len(comm) > 300
    assert rtl["held"] > 0  # the memory did refuse commands, so the stream-rule check ran
    assert rtl["grants"] == (model.compute.grants, model.comm.grants)
    assert rtl["rsp"] == (model.compute.responses, model.comm.responses)
    assert rtl["cycles"] == model.cycles
    assert (rtl["comm_wait_cycles"], rtl["starvation_grants"]) == (model.comm_wait_cycles, model.starvation_grants)
    if limit and mode == MCA:
        assert model.starvation_grants > 0
