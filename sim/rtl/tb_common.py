"""Helpers every cocotb testbench here shares: the job file, the result file, reset, the clock period."""

from __future__ import annotations

import json
import os

from cocotb.triggers import RisingEdge

CLOCK_NS = 2


def read_job() -> dict:
    """The job `sim.rtl.runner.run_cocotb` wrote for this test (named by ``LLMARCH_TB_JOB``)."""
    with open(os.environ["LLMARCH_TB_JOB"]) as f:
        return json.load(f)


def write_result(job: dict, result: dict) -> None:
    """Write the test's result JSON where the job asks, atomically."""
    tmp = job["result"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, job["result"])


async def reset(dut, cycles: int = 3) -> None:
    """Hold ``rst`` for ``cycles`` rising edges."""
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
