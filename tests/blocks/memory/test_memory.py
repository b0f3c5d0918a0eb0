"""SimpleMemory (the testbench memory): ordering, latency, interval, against its timing model."""

from __future__ import annotations

from amaranth.sim import Simulator

from hw.memory import MemoryParams, mem_cmd_layout
from hw.pack import pack
from sim.blocks.memory.model import MemoryTiming
from sim.rtl.gateware import SimpleMemory


def test_order_latency_interval_and_model():
    p = MemoryParams(latency=3, interval=2)
    dut = SimpleMemory(p)
    lay = mem_cmd_layout(p.addr_bits)
    cmds = [(5, 1, 111), (6, 1, 222), (5, 0, 0), (6, 0, 0), (5, 1, 333), (5, 0, 0)]
    accepted, rsp = [], []

    async def bench(ctx):
        i = 0
        ctx.set(dut.port.rsp.ready, 1)
        for k in range(40):
            if i < len(cmds):
                a, w, d = cmds[i]
                ctx.set(dut.port.cmd.payload.as_value(), pack(lay, addr=a, write=w, data=d))
                ctx.set(dut.port.cmd.valid, 1)
                if ctx.get(dut.port.cmd.ready):
                    accepted.append(k)
                    i += 1
            else:
                ctx.set(dut.port.cmd.valid, 0)
            if ctx.get(dut.port.rsp.valid):
                rsp.append((k, ctx.get(dut.port.rsp.payload)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert [d for _, d in rsp] == [111, 222, 333]
    model = MemoryTiming(p)
    expect = []
    for (_, w, _), a in zip(cmds, accepted, strict=True):
        if w:
            model.serve(a)
        else:
            expect.append(model.read_response(a))
    assert [k for k, _ in rsp] == expect
