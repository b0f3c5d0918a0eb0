"""Verilog pieces shared by the generated replay tops (trace-fed harnesses that run at Verilator speed).

A replay top makes its own clock and reset, so Python only waits for its ``done``; it needs ``--timing``
(`REPLAY_BUILD_ARGS`). Its stall patterns use `MIX32`, the same hash as `sim.core.stimulus.ReadyPattern`, so a
model sees exactly the stalls the RTL saw.
"""

from __future__ import annotations

from sim.rtl.runner import BUILD_ARGS

REPLAY_BUILD_ARGS = (*BUILD_ARGS, "--timing", "--timescale", "1ns/1ps")

CLOCK_AND_RESET = """\
  // The clock and reset live here, not in Python, so Verilator runs at its own speed (needs --timing).
  initial begin
    clk = 1'b0;
    rst = 1'b1;
    #7 rst = 1'b0;
  end
  always #1 clk = ~clk;
"""

MIX32 = """\
  // sim.core.stimulus.mix32 (lowbias32): the stall patterns' hash, identical on the Python side.
  function automatic [31:0] mix32(input [31:0] x);
    reg [31:0] y;
    begin
      y = x ^ (x >> 16);
      y = y * 32'h7feb352d;
      y = y ^ (y >> 15);
      y = y * 32'h846ca68b;
      y = y ^ (y >> 16);
      mix32 = y;
    end
  endfunction
"""
