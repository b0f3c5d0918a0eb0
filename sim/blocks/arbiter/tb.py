"""cocotb testbenches for the memory arbiter in front of SimpleMemory (run through `sim.rtl.runner.run_cocotb`).

The job (JSON named by ``LLMARCH_TB_JOB``, written by `sim.blocks.arbiter.rtl`) names the two command streams
(``.npy`` arrays of `sim.blocks.arbiter.model.CMD_DTYPE`), the arbiter configuration, the response stall patterns and
the number of words to read back at the end. Both tests record every grant and response with its cycle, the
read-back words and the statistics outputs in ``job["result"]``, and assert the scoreboard
(`sim.blocks.arbiter.rtl.scoreboard`):

* every command is granted exactly once, in its stream's order, never before its arrival, one per cycle;
* every read returns, to the requester that issued it and in its order, the word the memory holds when it
  executes the read in grant order (a functional replay of the observed grant order, independent of the model);
* every write lands: the words read back equal the final contents of that replay.

Tests: ``replay_harness`` (top ``arbiter_replay``, full speed, Python waits for ``done``) and ``replay_driven``
(top ``arbiter_dut``, Python drives every cycle with the shared drivers, `sim.rtl.drivers`: a `StreamSource` per
requester's commands, a `StreamSink` per requester's responses under `sim.core.stimulus.ReadyPattern` stalls).
"""

from __future__ import annotations

import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, RisingEdge, with_timeout

from hw.memory import MemoryParams, mem_cmd_layout
from sim.blocks.arbiter.rtl import read_log, scoreboard
from sim.core.stimulus import ReadyPattern
from sim.rtl.drivers import MemPortDriver, StreamSink, StreamSource, act, idle
from sim.rtl.tb_common import CLOCK_NS, read_job, reset, start_clock, write_result

REQUESTERS = ("compute", "comm")


def _streams(job: dict) -> tuple[np.ndarray, np.ndarray]:
    return np.load(job["compute"]), np.load(job["comm"])


@cocotb.test()
async def replay_harness(dut) -> None:
    job = read_job()
    mem = MemoryParams(**job["mem"])
    compute, comm = _streams(job)
    t0 = time.perf_counter()  # the harness makes its own clock (2 ns) and reset
    await with_timeout(RisingEdge(dut.done), job["max_cycles"] * CLOCK_NS + 100, "ns")
    wall = time.perf_counter() - t0
    obs = read_log(Path(job["log"]))
    result = {**obs, "cycles": int(dut.run_cycles.value), "wall_s": wall,
              "comm_wait_cycles": int(dut.comm_wait_cycles.value),
              "starvation_grants": int(dut.starvation_grants.value)}
    result.update(scoreboard(compute, comm, obs, mem.size_log2, job["readback_words"]))
    write_result(job, result)
    assert result["scoreboard_ok"], result["scoreboard_errors"]


async def _replay(dut, streams, cmds: list[StreamSource], rsps: list[StreamSink], max_cycles: int) -> int:
    """Offer each stream's commands from their arrival cycles; return the cycle at which every command is
    granted and every read answered (its command inputs already idle). Cycle 0 is the next falling edge."""
    reads = [np.concatenate(([0], np.cumsum(s["write"] == 0))).tolist() for s in streams]  # reads among the first i
    ports = (*cmds, *rsps)
    for k in range(max_cycles):
        await FallingEdge(dut.clk)
        outstanding = sum(r[c.index] for r, c in zip(reads, cmds, strict=True)) - sum(len(s.transfers) for s in rsps)
        if all(c.done for c in cmds) and outstanding == 0:
            idle(*cmds)
            return k
        await act(k, ports)  # a requester's cmd.ready depends combinationally on its cmd.valid
    raise AssertionError(f"the replay did not finish within {max_cycles} cycles")


@cocotb.test()
async def replay_driven(dut) -> None:
    job = read_job()
    mem = MemoryParams(**job["mem"])
    compute, comm = _streams(job)
    dut.mode.value = job["mode"]
    dut.threshold.value = job["threshold"]
    dut.starvation_limit.value = job["starvation_limit"]
    start_clock(dut)
    addr_bits = job["arb"]["addr_bits"]
    lay = mem_cmd_layout(addr_bits)
    cmds = [StreamSource(dut, f"{name}__cmd", lay).extend(
        (c, {"addr": a, "write": w, "data": d})
        for c, a, w, d in zip(*(s[f].tolist() for f in ("cycle", "addr", "write", "data")), strict=True))
        for name, s in zip(REQUESTERS, (compute, comm), strict=True)]
    readies = (ReadyPattern(job["c_seed"], job["c_prob"]), ReadyPattern(job["m_seed"], job["m_prob"]))
    rsps = [StreamSink(dut, f"{name}__rsp", ready) for name, ready in zip(REQUESTERS, readies, strict=True)]
    idle(*cmds, *rsps)
    await reset(dut)
    t0 = time.perf_counter()
    cycles = await _replay(dut, (compute, comm), cmds, rsps, job["max_cycles"])
    stats = {"comm_wait_cycles": int(dut.comm_wait_cycles.value),
             "starvation_grants": int(dut.starvation_grants.value)}
    obs: dict = {f"{name}_grants": c.accepted for name, c in zip(REQUESTERS, cmds, strict=True)}
    obs |= {f"{name}_rsp": r.rows() for name, r in zip(REQUESTERS, rsps, strict=True)}
    # read back through the compute port (comm idle, no stalls)
    words = job["readback_words"]
    port = MemPortDriver(dut, "compute", addr_bits, sel=None, occupancy=None)
    obs["readback"] = await port.read(range(words), max_cycles=64 * words + 1000)
    result = {**obs, **stats, "cycles": cycles, "wall_s": time.perf_counter() - t0}
    result.update(scoreboard(compute, comm, obs, mem.size_log2, job["readback_words"]))
    write_result(job, result)
    assert result["scoreboard_ok"], result["scoreboard_errors"]
