"""T3's memory-controller arbiter (MCA): compute and communication traffic sharing one memory port.

In T3 a GEMM's own memory traffic (``compute``) and the reduce-scatter's traffic (``comm``: DMA reads and
near-memory read-modify-writes) reach the same memory controller. Left alone, bursts of communication requests
fill the controller's queue and the GEMM's reads wait behind them. MCA gives compute priority and lets a
communication request in only while the controller's queue level is below a threshold (set from the GEMM's
measured memory intensity); a starvation limit makes sure communication always progresses.

Ports (`hw.memory.mem_port_signature` streams; payloads packed LSB first):

``compute``, ``comm`` (memory side of two requester ports)
    ``cmd`` in (``addr``, ``write``, ``data``), ``rsp`` out (one word per read, in that requester's order).
``mem`` (towards the memory)
    The merged command stream and the memory's in-order read responses.
``occupancy`` (in)
    The memory's queue level (`hw.memory.SimpleMemory.occupancy`). It must not depend combinationally on
    ``mem.cmd`` (SimpleMemory's is a register), or the arbiter's choice would form a loop.
``mode``, ``threshold``, ``starvation_limit`` (in, static while running)
    `ArbiterMode`; comm is admitted by occupancy only while ``occupancy < threshold``; after
    ``starvation_limit`` cycles of waiting comm is forced through (0 disables the limit).
``comm_wait_cycles``, ``starvation_grants`` (out)
    Cycles comm had a valid command that was not taken; comm commands taken while the starvation counter was
    at its limit in MCA mode. Both wrap at 2**32 and are cleared by reset.

Timing: commands pass through combinationally. A command *selected* in cycle *t* is *granted* (transferred to
the memory, and its requester's ``cmd.ready`` is high) in cycle *t* if ``mem.cmd.ready`` is high: the arbiter adds
no cycle. Responses are routed combinationally too: a word offered on ``mem.rsp`` in cycle *t* is offered on
its owner's ``rsp`` in cycle *t*. Combinational paths: ``mem.cmd.valid``/``payload`` from the requesters'
``cmd`` and ``occupancy``; a requester's ``cmd.ready`` from those and ``mem.cmd.ready``; ``mem.rsp.ready`` from
the requesters' ``rsp.ready``. No ``valid`` depends on a ``ready``.

Selection in cycle *t* (from this cycle's inputs and the registers as they were at its start). A requester
is *eligible* when its ``cmd.valid`` is high and its command is a write or the owner FIFO (reads outstanding,
``max_reads`` deep) has room. Then:

1. If last cycle's selection was not accepted (``mem.cmd.valid & ~mem.cmd.ready``), the same requester stays
   selected, so ``mem.cmd`` keeps its valid and payload until the transfer, as the stream rules require.
2. ``MCA``: comm if the starvation counter is at the limit (``limit != 0 and count >= limit``) and comm is
   eligible; else compute if eligible; else comm if eligible and ``occupancy < threshold``; else nothing.
3. ``ROUND_ROBIN`` (T3 without MCA): if both are eligible, the one not granted most recently (compute first
   after reset); else whichever is eligible. Occupancy is ignored.

The starvation counter (``limit_bits``, saturating) counts cycles in which ``comm.cmd.valid`` is high and comm
is not granted, in both modes; a comm grant clears it. With ``threshold = 0`` and the limit disabled, MCA never
admits comm. Reads record their owner in an in-order FIFO; each response goes to the FIFO head's owner, and the
memory's ``rsp.ready`` is that owner's ``rsp.ready``. Writes have no response.
"""

from __future__ import annotations

import dataclasses
import enum

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hw.memory import mem_port_signature
from hw.params import BlockParams, param


class ArbiterMode(enum.IntEnum):
    """Arbitration policy (value of the ``mode`` input)."""

    ROUND_ROBIN = 0
    MCA = 1


class Requester(enum.IntEnum):
    """Owner codes: the value kept in the owner FIFO and the ``sel`` encoding."""

    COMPUTE = 0
    COMM = 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArbiterParams(BlockParams):
    """Parameters shared by the arbiter RTL, its cycle model and testbenches.

    Parameters
    ----------
    addr_bits : width of a word address on all three ports.
    occupancy_bits : width of ``occupancy`` and ``threshold``.
    max_reads : reads outstanding at most (depth of the owner FIFO that routes responses).
    limit_bits : width of ``starvation_limit`` and of the starvation counter.
    """

    addr_bits: int = param(24, 1, 64)
    occupancy_bits: int = param(6, 1, 16)
    max_reads: int = param(16, 1, 4096)
    limit_bits: int = param(16, 1, 32)


class MemoryArbiter(wiring.Component):
    """Two requesters onto one memory port, round robin or MCA (see the module docstring)."""

    def __init__(self, params: ArbiterParams | None = None) -> None:
        self.params = p = params or ArbiterParams()
        super().__init__({
            "compute": In(mem_port_signature(p.addr_bits)),
            "comm": In(mem_port_signature(p.addr_bits)),
            "mem": Out(mem_port_signature(p.addr_bits)),
            "occupancy": In(p.occupancy_bits),
            "mode": In(1),
            "threshold": In(p.occupancy_bits),
            "starvation_limit": In(p.limit_bits),
            "comm_wait_cycles": Out(32),
            "starvation_grants": Out(32),
        })

    def elaborate(self, platform) -> Module:
        p = self.params
        m = Module()
        m.submodules.owners = owners = SyncFIFO(width=1, depth=p.max_reads)

        cc, kc = self.compute.cmd, self.comm.cmd
        c_ok, k_ok = Signal(), Signal()
        m.d.comb += [
            c_ok.eq(cc.valid & (cc.payload.write | owners.w_rdy)),
            k_ok.eq(kc.valid & (kc.payload.write | owners.w_rdy)),
        ]

        lock = Signal()  # last cycle's selection was not accepted: hold it
        lock_sel = Signal()
        last = Signal(init=Requester.COMM)  # requester granted most recently (round robin)
        count = Signal(p.limit_bits)  # starvation counter
        starve = Signal()
        m.d.comb += starve.eq((self.starvation_limit != 0) & (count >= self.starvation_limit))

        sel_valid, sel = Signal(), Signal()
        with m.If(lock):
            m.d.comb += [sel.eq(lock_sel), sel_valid.eq(Mux(lock_sel, k_ok, c_ok))]
        with m.Elif(self.mode == ArbiterMode.MCA):
            with m.If(starve & k_ok):
                m.d.comb += [sel.eq(Requester.COMM), sel_valid.eq(1)]
            with m.Elif(c_ok):
                m.d.comb += [sel.eq(Requester.COMPUTE), sel_valid.eq(1)]
            with m.Elif(k_ok & (self.occupancy < self.threshold)):
                m.d.comb += [sel.eq(Requester.COMM), sel_valid.eq(1)]
        with m.Else():
            with m.If(c_ok & k_ok):
                m.d.comb += [sel.eq(~last), sel_valid.eq(1)]
            with m.Elif(c_ok | k_ok):
                m.d.comb += [sel.eq(k_ok), sel_valid.eq(1)]

        mc = self.mem.cmd
        m.d.comb += [
            mc.valid.eq(sel_valid),
            mc.payload.eq(Mux(sel, kc.payload.as_value(), cc.payload.as_value())),
            cc.ready.eq(sel_valid & (sel == Requester.COMPUTE) & mc.ready),
            kc.ready.eq(sel_valid & (sel == Requester.COMM) & mc.ready),
        ]
        grant = Signal()
        comm_grant = Signal()
        m.d.comb += [grant.eq(mc.valid & mc.ready), comm_grant.eq(grant & (sel == Requester.COMM))]
        m.d.sync += [lock.eq(mc.valid & ~mc.ready), lock_sel.eq(sel)]
        with m.If(grant):
            m.d.sync += last.eq(sel)
        m.d.comb += [owners.w_en.eq(grant & ~mc.payload.write), owners.w_data.eq(sel)]

        # Starvation counter and statistics.
        wait_cycles, starve_grants = Signal(32), Signal(32)
        with m.If(comm_grant):
            m.d.sync += count.eq(0)
        with m.Elif(kc.valid & (count != (1 << p.limit_bits) - 1)):
            m.d.sync += count.eq(count + 1)
        with m.If(kc.valid & ~comm_grant):
            m.d.sync += wait_cycles.eq(wait_cycles + 1)
        with m.If(comm_grant & starve & (self.mode == ArbiterMode.MCA)):
            m.d.sync += starve_grants.eq(starve_grants + 1)
        m.d.comb += [self.comm_wait_cycles.eq(wait_cycles), self.starvation_grants.eq(starve_grants)]

        # Responses: in order, to the owner at the head of the FIFO.
        mr = self.mem.rsp
        head = owners.r_data[0]
        m.d.comb += [
            self.compute.rsp.payload.eq(mr.payload),
            self.comm.rsp.payload.eq(mr.payload),
            self.compute.rsp.valid.eq(mr.valid & owners.r_rdy & (head == Requester.COMPUTE)),
            self.comm.rsp.valid.eq(mr.valid & owners.r_rdy & (head == Requester.COMM)),
            mr.ready.eq(owners.r_rdy & Mux(head, self.comm.rsp.ready, self.compute.rsp.ready)),
            owners.r_en.eq(mr.valid & mr.ready),
        ]
        return m
