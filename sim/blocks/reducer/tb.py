"""cocotb testbenches for the near-memory reducer (run through `sim.blocks.reducer.rtl`).

The job (JSON named by ``LLMARCH_TB_JOB``) names the initial memory image and the packet table (``.npy``), the
parameters and the stall settings. Every test checks its scoreboard, compares every commit's cycle with the
timing model (`sim.blocks.reducer.model`) and writes its observations to ``job["result"]``:

* every packet's write (address and word, in packet order) equals
  `sim.blocks.reducer.reference.packet_results`, and the final memory image equals the reference's bit for bit;
* every packet is committed exactly once, in packet order, with its tag and address;
* ``model_mismatches``, ``model_max_abs_err``, ``model_last_err``: commit cycles against the model (the test
  asserts nothing on them; the pytest side decides the bound).

Tests: ``replay_harness`` (top ``reducer_replay``: preload, replay and read-back from files, Python waits for
``done`` only) and ``replay_driven`` (top ``reducer_harness``: Python drives every cycle with the shared drivers,
`sim.rtl.drivers`, optionally resetting in the middle of the trace and then replaying it again from a fresh
preload).
"""

from __future__ import annotations

import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, RisingEdge, with_timeout

from hw.memory import MemoryParams
from hw.reducer import ReducerParams
from sim.blocks.reducer.model import model_commits
from sim.blocks.reducer.reference import packet_results
from sim.core.stimulus import ReadyPattern
from sim.rtl.drivers import MemPortDriver, StreamSink, StreamSource, act, idle
from sim.rtl.tb_common import clear, read_job, start_clock, write_result


def _inputs(job: dict) -> tuple[ReducerParams, MemoryParams, np.ndarray, np.ndarray]:
    return (ReducerParams(**job["params"]), MemoryParams(**job["mem"]), np.load(job["memory0"]),
            np.load(job["packets"]))


def scoreboard(params: ReducerParams, mem: MemoryParams, memory0: np.ndarray, packets: np.ndarray,
               commits: np.ndarray, writes: np.ndarray, image: np.ndarray, ready) -> dict:
    """Data and commit checks, and the commit cycles against the model. ``commits``: (n, 3) cycle, tag, addr;
    ``writes``: (n, 2) addr, data of the reducer's write commands in order."""
    expect, written = packet_results(memory0, packets)
    writes = np.asarray(writes, dtype=np.int64).reshape(-1, 2)
    want_w = np.stack([packets["addr"].astype(np.int64), written.astype(np.int64)], axis=1)
    m = min(len(writes), len(packets))
    write_mismatches = int(np.count_nonzero(np.any(writes[:m] != want_w[:m], axis=1))) + abs(len(writes)
                                                                                             - len(packets))
    if write_mismatches:
        bad = np.flatnonzero(np.any(writes[:m] != want_w[:m], axis=1))[:4]
        cocotb.log.error("scoreboard: %d writes differ; first (packet, op, RTL addr/data, expected): %s",
                         write_mismatches, [(int(i), int(packets["op"][i]), [hex(int(v)) for v in writes[i]],
                                             [hex(int(v)) for v in want_w[i]]) for i in bad])
    image = np.asarray(image, dtype=np.uint32)
    mem_ok = image.shape == expect.shape and bool(np.array_equal(image, expect))
    if not mem_ok:
        bad = np.flatnonzero(image != expect) if image.shape == expect.shape else []
        cocotb.log.error("scoreboard: %d words differ, first %s", len(bad),
                         [(int(a), hex(int(image[a])), hex(int(expect[a]))) for a in bad[:4]])
    commits = np.asarray(commits, dtype=np.int64).reshape(-1, 3)
    want = np.stack([packets["tag"].astype(np.int64), packets["addr"].astype(np.int64)], axis=1)
    commits_ok = commits.shape[0] == len(packets) and bool(np.array_equal(commits[:, 1:], want))
    if not commits_ok:
        n = min(len(commits), len(packets))
        first = next((i for i in range(n) if tuple(commits[i, 1:]) != tuple(want[i])), n)
        cocotb.log.error("scoreboard: commit %d differs or is missing (%d commits for %d packets)", first,
                         len(commits), len(packets))
    result = {"memory_ok": mem_ok, "commits_ok": commits_ok, "writes_ok": write_mismatches == 0,
              "write_mismatches": write_mismatches, "packets": len(packets), "commits": len(commits)}
    tl = model_commits(params, mem, packets, ready)
    if commits_ok and len(packets):
        err = commits[:, 0] - tl.commit
        result.update(model_mismatches=int(np.count_nonzero(err)), model_max_abs_err=int(np.abs(err).max()),
                      model_last_err=int(err[-1]), model_last_commit=tl.last_commit,
                      rtl_last_commit=int(commits[-1, 0]))
    return result


@cocotb.test()
async def replay_harness(dut) -> None:
    from sim.blocks.reducer.rtl import read_commits, read_readback, read_writes

    job = read_job()
    params, mem, memory0, packets = _inputs(job)
    t0 = time.perf_counter()  # the harness makes its own clock (2 ns) and reset
    await with_timeout(RisingEdge(dut.done), job["max_cycles"] * 2 + 100, "ns")
    wall = time.perf_counter() - t0
    commits = read_commits(Path(job["commits_file"]))
    image = read_readback(Path(job["readback_file"]))
    writes = read_writes(Path(job["writes_file"]))  # cycle, addr, data
    ready = ReadyPattern(job["bp_seed"], job["bp_prob"]).as_model_ready()
    result = {"cycles": int(dut.cycle.value), "wall_s": wall, "accepted": int(dut.n_pkt.value),
              "applied": int(dut.applied.value), "commit_cycles": commits[:, 0].tolist()}
    result.update(scoreboard(params, mem, memory0, packets, commits, writes[:, 1:], image, ready))
    write_result(job, result)
    assert result["accepted"] == len(packets) == result["applied"], "not every packet was accepted and applied"
    assert result["writes_ok"], "some packet wrote a word that differs from the reference"
    assert result["memory_ok"], "final memory image differs from the reference"
    assert result["commits_ok"], "commit stream differs from the packets"


_INPUTS = ("pkt__valid", "commit__ready", "tb__cmd__valid")


async def _reset(dut, cycles: int = 3) -> None:
    """Reset at a falling edge, inputs idle, for ``cycles`` cycles."""
    await FallingEdge(dut.clk)
    dut.rst.value = 1
    clear(dut, *_INPUTS)
    for _ in range(cycles):
        await FallingEdge(dut.clk)
    dut.rst.value = 0


async def _replay(dut, params: ReducerParams, packets: np.ndarray, ready, max_cycles: int,
                  stop_at: int | None = None) -> tuple[list, list]:
    """Present packets at their cycles; return commits (cycle, tag, addr) and writes (addr, data). Cycle 0 is
    the next falling edge. Stops when every packet is in and the block is idle, at ``stop_at``, or after
    ``max_cycles``; the inputs go idle at the falling edge after that."""
    cols = (packets[f].tolist() for f in ("cycle", "addr", "op", "data", "tag"))
    pkt = StreamSource(dut, "pkt", params.packet_layout()).extend(
        (c, {"addr": a, "op": op, "data": d, "tag": t}) for c, a, op, d, t in zip(*cols, strict=True))
    commit = StreamSink(dut, "commit", ready, params.commit_layout())
    writes = []
    for k in range(max_cycles):
        await FallingEdge(dut.clk)
        if k == stop_at or (pkt.done and int(dut.idle.value)):
            break
        await act(k, (pkt, commit))  # pkt.ready depends on the packet presented
        if int(dut.wr_valid.value):
            writes.append((int(dut.wr_addr.value), int(dut.wr_data.value)))
    await FallingEdge(dut.clk)
    idle(pkt, commit)
    return commit.rows("tag", "addr"), writes


@cocotb.test()
async def replay_driven(dut) -> None:
    job = read_job()
    params, mem, memory0, packets = _inputs(job)
    start_clock(dut)
    clear(dut, *_INPUTS, "tb__rsp__ready")
    dut.tb_sel.value = 1
    await _reset(dut)
    port = MemPortDriver(dut, "tb", mem.addr_bits)
    image0 = list(enumerate(memory0.tolist()))
    ready = ReadyPattern(job["bp_seed"], job["bp_prob"]).as_model_ready()
    result: dict = {}
    reset_at = job.get("reset_at")
    if reset_at is not None:
        # A reset in the middle of the trace: packets in flight, commits waiting under backpressure.
        await port.preload(image0, settle=mem.interval)
        cut, _ = await _replay(dut, params, packets, ready, job["max_cycles"], stop_at=reset_at)
        busy = int(dut.idle.value) == 0
        await _reset(dut)
        await FallingEdge(dut.clk)
        result.update(cut_commits=len(cut), busy_before_reset=busy, idle_after_reset=int(dut.idle.value),
                      commit_valid_after_reset=int(dut.commit__valid.value),
                      applied_after_reset=int(dut.applied.value))
    await port.preload(image0, settle=mem.interval)
    t0 = time.perf_counter()
    got, writes = await _replay(dut, params, packets, ready, job["max_cycles"])
    wall = time.perf_counter() - t0
    port.select()
    image = np.array(await port.read(range(len(memory0))), dtype=np.uint32)
    result.update(wall_s=wall, applied=int(dut.applied.value), commit_cycles=[c for c, _, _ in got])
    result.update(scoreboard(params, mem, memory0, packets, np.array(got, dtype=np.int64),
                             np.array(writes, dtype=np.int64), image, ready))
    write_result(job, result)
    assert result["writes_ok"], "some packet wrote a word that differs from the reference"
    assert result["memory_ok"], "final memory image differs from the reference"
    assert result["commits_ok"], "commit stream differs from the packets"
    assert result["applied"] == len(packets)
    if reset_at is not None:
        assert result["busy_before_reset"], "the reset should hit the block while it is busy"
        assert result["idle_after_reset"] == 1 and result["commit_valid_after_reset"] == 0
        assert result["applied_after_reset"] == 0
