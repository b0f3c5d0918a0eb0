"""Helpers every cocotb testbench here shares: the job file, the result file, the clock, reset.

The per-cycle port drivers (streams, testbench memory ports) are in `sim.rtl.drivers`.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
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


def start_clock(dut) -> None:
    """Start ``clk`` with period `CLOCK_NS` (a GPI clock: the simulator toggles it without Python)."""
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns", impl="gpi").start())


def clear(dut, *names: str) -> None:
    """Set the named top-level inputs to 0 (valids and readies before the reset)."""
    for name in names:
        getattr(dut, name).value = 0


async def reset(dut, cycles: int = 3) -> None:
    """Hold ``rst`` for ``cycles`` rising edges."""
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
