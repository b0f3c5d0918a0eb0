"""cocotb testbenches for the track-and-trigger unit (run through `sim.rtl.runner.run_cocotb`).

The job (JSON named by ``LLMARCH_TB_JOB``) names a stimulus trace (tables ``program`` and ``requests``) and the
stall settings; every test writes its observations to ``job["result"]`` and asserts its scoreboard. The
full-speed replay (top ``tracker_replay``, `sim.blocks.tracker.harness`) needs no testbench here: Python only
waits for its ``done`` (`sim.rtl.replay_tb`).

* ``replay_driven`` (top ``track_trigger``): Python drives every cycle with the same stalls.
* ``config_port`` (top ``track_trigger``): programming, status reads, error flags, clear, reset mid-stream.
"""

from __future__ import annotations

import time

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge

from hw.tracker import CfgOp, ErrorBit, StatusReg, TrackerParams
from sim.blocks.tracker import reference
from sim.core import trace
from sim.core.stimulus import ReadyPattern
from sim.rtl.drivers import StreamSink, StreamSource, act, idle, offer
from sim.rtl.tb_common import clear, read_job, reset, start_clock, write_result


def _scoreboard(program, requests, params: TrackerParams, got: list[tuple[int, int, int]]) -> dict:
    ref = reference.tracker_triggers(program, requests, params)
    got_seq = [(d, e) for _, d, e in got]
    ok = got_seq == ref.sequence
    if not ok:
        first = next((i for i, (a, b) in enumerate(zip(got_seq, ref.sequence, strict=False)) if a != b),
                     min(len(got_seq), len(ref.sequence)))
        cocotb.log.error("scoreboard: trigger %d differs (RTL %s, reference %s); %d vs %d triggers", first,
                         got_seq[first:first + 1], ref.sequence[first:first + 1], len(got_seq), len(ref.sequence))
    return {"scoreboard_ok": ok, "expected_triggers": len(ref.sequence)}


class _Driver:
    """Drives ``track_trigger`` through the shared stream drivers (`sim.rtl.drivers`)."""

    def __init__(self, dut, params: TrackerParams) -> None:
        self.dut, self.p = dut, params
        clear(dut, "cfg__valid", "req__valid", "trigger__ready", "cfg_rsp__ready")

    async def command(self, op: CfgOp, index: int = 0, threshold: int = 0, desc: int = 0, enable: int = 0,
                      rearm: int = 0) -> int | None:
        """Issue one ``cfg`` command; for ``READ`` return the response word."""
        dut = self.dut
        fields = {"op": op, "index": index, "threshold": threshold, "desc": desc, "enable": enable, "rearm": rearm}
        await offer(dut, StreamSource(dut, "cfg", self.p.cfg_layout()).extend([(0, fields)]))
        if op != CfgOp.READ:
            return None
        rsp = StreamSink(dut, "cfg_rsp")
        k = 0
        while not rsp.transfers:
            await act(k, (rsp,))
            await FallingEdge(dut.clk)
            k += 1
        idle(rsp)
        return rsp.transfers[0][1]

    async def program(self, program) -> None:
        for row in program:
            await self.command(CfgOp.PROGRAM, int(row["entry"]), int(row["threshold"]), int(row["desc"]),
                               int(row["enable"]), int(row["rearm"]))

    async def replay(self, requests, ready, max_cycles: int) -> list:
        """Present ``requests`` at their cycles; return triggers as (cycle, desc, entry). Cycle 0 is the next
        falling edge. Stops when every request is in and the unit is idle, or after ``max_cycles``."""
        dut = self.dut
        cols = [requests[c].tolist() for c in ("cycle", "tag", "addr", "kind", "size")]
        src = StreamSource(dut, "req", self.p.request_layout()).extend(
            (c, {"tag": tag, "addr": a, "kind": kind, "size": s}) for c, tag, a, kind, s in zip(*cols, strict=True))
        sink = StreamSink(dut, "trigger", ready, self.p.trigger_layout())
        for k in range(max_cycles):
            await FallingEdge(dut.clk)
            if src.done and int(dut.idle.value):
                break
            await act(k, (src, sink))
        else:
            await FallingEdge(dut.clk)  # leave the read-only phase before lowering the handshakes
        idle(src, sink)
        return [tuple(r) for r in sink.rows("desc", "entry")]


@cocotb.test()
async def replay_driven(dut) -> None:
    job = read_job()
    params = TrackerParams(**job["params"])
    stim = trace.read(job["stimulus"])
    start_clock(dut)
    drv = _Driver(dut, params)
    await reset(dut)
    await drv.program(stim["program"])
    ready = ReadyPattern(job["bp_seed"], job["bp_prob"]).as_model_ready()
    t0 = time.perf_counter()
    got = await drv.replay(stim["requests"], ready, job["max_cycles"])
    result = {"wall_s": time.perf_counter() - t0, "triggers": got, "requests": len(stim["requests"])}
    result.update(_scoreboard(stim["program"], stim["requests"], params, got))
    write_result(job, result)
    assert result["scoreboard_ok"], "trigger sequence differs from the reference"


@cocotb.test()
async def config_port(dut) -> None:
    """Status registers, sticky errors and their clearing, and a reset in the middle of a replay."""
    job = read_job()
    params = TrackerParams(**job["params"])
    start_clock(dut)
    drv = _Driver(dut, params)
    await reset(dut)
    top = (1 << params.count_bits) - 1
    # Entry 0: threshold 100 bytes. Entry 1: disabled. Entry 2: threshold = counter max, fed past the counter's
    # range (overflow). Entry 3: re-arming, threshold 10.
    program = np.array([(0, 100, 7, 1, 0), (1, 10, 8, 0, 0), (2, top, 9, 1, 0), (3, 10, 11, 1, 1)],
                       dtype=trace.TABLE_KINDS["tracker_program"])
    await drv.program(program)
    big = min((1 << params.size_bits) - 1, top)
    rows = [(0, 0, 0, 1, 60, 0), (0, 1, 0, 1, 5, 0), (0, 0, 0, 1, 40, 0), (0, 0, 0, 1, 1, 0)]
    rows += [(0, 2, 0, 1, big, 0)] * (top // big + 2)
    rows += [(0, 3, 0, 1, 10, 0)] * 3
    reqs = np.array(rows, dtype=trace.TABLE_KINDS["tracker_requests"])
    ref = reference.tracker_triggers(program, reqs, params)
    got = await drv.replay(reqs, None, 10_000)
    regs = {r.name: await drv.command(CfgOp.READ, r) for r in StatusReg}
    await drv.command(CfgOp.CLEAR_ERRORS)
    cleared = await drv.command(CfgOp.READ, StatusReg.ERRORS)

    # Reset in the middle of a stream, with a count half-way and a trigger stuck in the FIFO by backpressure:
    # afterwards nothing stale comes out, and the unit works again once reprogrammed.
    dt = trace.TABLE_KINDS["tracker_requests"]
    await drv.command(CfgOp.PROGRAM, 5, threshold=64, desc=21, enable=1)
    await drv.command(CfgOp.PROGRAM, 6, threshold=16, desc=22, enable=1)
    await drv.replay(np.array([(0, 5, 0, 1, 16, 0), (1, 5, 0, 1, 16, 0), (2, 6, 0, 1, 16, 0)], dtype=dt),
                     lambda k: False, 20)
    stuck = int(dut.trigger__valid.value)
    await reset(dut)
    await drv.command(CfgOp.PROGRAM, 5, threshold=64, desc=21, enable=1)
    after = await drv.replay(np.array([(k, 5, 0, 1, 16, 0) for k in range(4)], dtype=dt), None, 100)
    result = {"triggers": got, "regs": regs, "cleared_errors": cleared, "after_reset": after,
              "errors_pin": int(dut.errors.value)}
    write_result(job, result)
    assert ref.overflow >= 1 and ref.unprogrammed >= 2, "the stimulus must exercise both error paths"
    assert regs["ERRORS"] == (1 << ErrorBit.UNPROGRAMMED) | (1 << ErrorBit.OVERFLOW), regs
    assert regs["UNPROGRAMMED_COUNT"] == ref.unprogrammed, regs
    assert regs["OVERFLOW_COUNT"] == ref.overflow, regs
    assert regs["TRIGGER_COUNT"] == len(ref.sequence), regs
    assert regs["REQUEST_COUNT"] == len(rows), regs
    assert cleared == 0
    assert [(d, e) for _, d, e in got] == ref.sequence == [(7, 0), (9, 2), (11, 3), (11, 3), (11, 3)], got
    assert stuck == 1, "the backpressured trigger should have been waiting in the FIFO"
    assert [d for _, d, _ in after] == [21], after
