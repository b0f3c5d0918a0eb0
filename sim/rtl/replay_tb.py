"""A generic cocotb test for self-clocked replay tops: wait for ``done``, report some of the top's ports.

A replay top (e.g. `sim.blocks.tracker.harness`) makes its own clock, reads its stimulus and writes its results
itself, so all Python does is wait. The job (`sim.rtl.runner.run_cocotb`) gives ``time_limit_ns`` (simulated
time after which the test fails) and ``report`` (names of top-level ports whose final values go in the result,
as integers); the result also holds ``wall_s``, the wall time from the start of the test to ``done``.

This module imports nothing of the project but `sim.rtl.tb_common`: the simulator embeds a fresh Python, and
importing a block package would import every block (and Amaranth), which costs seconds per run.
"""

from __future__ import annotations

import time

import cocotb
from cocotb.triggers import RisingEdge, with_timeout

from sim.rtl.tb_common import read_job, write_result


@cocotb.test()
async def replay_done(dut) -> None:
    job = read_job()
    t0 = time.perf_counter()
    await with_timeout(RisingEdge(dut.done), job["time_limit_ns"], "ns")
    wall = time.perf_counter() - t0
    write_result(job, {name: int(getattr(dut, name).value) for name in job["report"]} | {"wall_s": wall})
