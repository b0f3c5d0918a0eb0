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
(top ``arbiter_dut``, Python drives every cycle with `sim.core.stimulus.ReadyPattern` stalls).
"""

from __future__ import annotations

import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, with_timeout

from hw.memory import MemoryParams, mem_cmd_layout
from hw.pack import pack
from sim.blocks.arbiter.rtl import read_log, scoreboard
from sim.core.stimulus import ReadyPattern
from sim.rtl.tb_common import CLOCK_NS, read_job, write_result


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


class _Driver:
    """Drives ``arbiter_dut``: inputs change at falling edges, handshakes are sampled in ``ReadOnly`` after them
    (a requester's ``cmd.ready`` depends combinationally on its ``cmd.valid``)."""

    def __init__(self, dut, addr_bits: int) -> None:
        self.dut = dut
        self.lay = mem_cmd_layout(addr_bits)
        self.ports = (("compute", dut.compute__cmd__valid, dut.compute__cmd__ready, dut.compute__cmd__payload,
                       dut.compute__rsp__valid, dut.compute__rsp__ready, dut.compute__rsp__payload),
                      ("comm", dut.comm__cmd__valid, dut.comm__cmd__ready, dut.comm__cmd__payload,
                       dut.comm__rsp__valid, dut.comm__rsp__ready, dut.comm__rsp__payload))
        for _, cv, _, _, _, rr, _ in self.ports:
            cv.value = 0
            rr.value = 0

    async def replay(self, streams, readies, obs: dict, max_cycles: int) -> int:
        """Offer each stream's commands from their arrival cycles; return the cycle at which every command is
        granted and every read answered. Cycle 0 is the first falling edge."""
        cols = [[s[k].tolist() for k in ("cycle", "addr", "write", "data")] for s in streams]
        idx, outstanding, presented = [0, 0], 0, [-1, -1]
        for k in range(max_cycles):
            await FallingEdge(self.dut.clk)
            if idx[0] == len(cols[0][0]) and idx[1] == len(cols[1][0]) and outstanding == 0:
                return k
            offered, ready = [], []
            for s, (_, cv, _, cp, _, rr, _) in enumerate(self.ports):
                i = idx[s]
                on = i < len(cols[s][0]) and cols[s][0][i] <= k
                if on and presented[s] != i:
                    cp.value = pack(self.lay, addr=cols[s][1][i], write=cols[s][2][i], data=cols[s][3][i])
                    presented[s] = i
                cv.value = int(on)
                r = readies[s](k)
                rr.value = int(r)
                offered.append(on)
                ready.append(r)
            await ReadOnly()
            for s, (name, _, cr, _, rv, _, rp) in enumerate(self.ports):
                if offered[s] and int(cr.value):
                    obs[f"{name}_grants"].append(k)
                    outstanding += not cols[s][2][idx[s]]
                    idx[s] += 1
                if ready[s] and int(rv.value):
                    obs[f"{name}_rsp"].append([k, int(rp.value)])
                    outstanding -= 1
        raise AssertionError(f"the replay did not finish within {max_cycles} cycles")

    async def read_back(self, words: int, max_cycles: int) -> list[int]:
        """Read addresses ``0 .. words-1`` through the compute port (comm idle, no stalls)."""
        _, cv, cr, cp, rv, rr, rp = self.ports[0]
        out: list[int] = []
        addr = 0
        for _ in range(max_cycles):
            await FallingEdge(self.dut.clk)
            if len(out) == words:
                break
            cv.value = int(addr < words)
            cp.value = pack(self.lay, addr=addr, write=0, data=0)
            rr.value = 1
            await ReadOnly()
            if addr < words and int(cr.value):
                addr += 1
            if int(rv.value):
                out.append(int(rp.value))
        await FallingEdge(self.dut.clk)
        cv.value = 0
        rr.value = 0
        return out


@cocotb.test()
async def replay_driven(dut) -> None:
    job = read_job()
    mem = MemoryParams(**job["mem"])
    compute, comm = _streams(job)
    dut.mode.value = job["mode"]
    dut.threshold.value = job["threshold"]
    dut.starvation_limit.value = job["starvation_limit"]
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns", impl="gpi").start())
    drv = _Driver(dut, job["arb"]["addr_bits"])
    dut.rst.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    readies = (ReadyPattern(job["c_seed"], job["c_prob"]), ReadyPattern(job["m_seed"], job["m_prob"]))
    obs: dict = {"compute_grants": [], "comm_grants": [], "compute_rsp": [], "comm_rsp": []}
    t0 = time.perf_counter()
    cycles = await drv.replay((compute, comm), readies, obs, job["max_cycles"])
    stats = {"comm_wait_cycles": int(dut.comm_wait_cycles.value),
             "starvation_grants": int(dut.starvation_grants.value)}
    obs["readback"] = await drv.read_back(job["readback_words"], 64 * job["readback_words"] + 1000)
    result = {**obs, **stats, "cycles": cycles, "wall_s": time.perf_counter() - t0}
    result.update(scoreboard(compute, comm, obs, mem.size_log2, job["readback_words"]))
    write_result(job, result)
    assert result["scoreboard_ok"], result["scoreboard_errors"]
