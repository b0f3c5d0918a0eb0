"""The word-wide memory port every T3 block uses, and the parameters of the memory behind it.

Port contract (`mem_port_signature`, from the requester's side):

``cmd`` (out)
    ``addr`` (word address), ``write`` (1 = write ``data``, 0 = read), ``data`` (32 bits).
``rsp`` (in)
    One 32-bit word per read, in the order the reads were accepted. Writes have no response.

Commands are executed in acceptance order, so a read accepted after a write to the same address returns the
written data. Words are 32 bits: one int32/fp32 element or two bf16 elements (low half first).

`sim.rtl.gateware.SimpleMemory` stands in for a DRAM controller and its DRAM in testbenches and co-simulation (it is
synthesizable, but it is a model, not a deliverable block): a command queue of ``queue_depth`` whose level is
the ``occupancy`` output (what T3's memory arbiter watches), one command served every ``interval`` cycles, and
reads answered ``latency + 1`` cycles after service through a response FIFO of ``rsp_depth`` words; a command
is served only while the response FIFO is sure to have room for it.
"""

from __future__ import annotations

import dataclasses

from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.params import BlockParams, param

WORD_BITS = 32


def mem_cmd_layout(addr_bits: int) -> data.StructLayout:
    return data.StructLayout({"addr": addr_bits, "write": 1, "data": WORD_BITS})


def mem_port_signature(addr_bits: int) -> wiring.Signature:
    """The memory port seen from a requester (flip it for the memory side)."""
    return wiring.Signature({
        "cmd": Out(stream.Signature(mem_cmd_layout(addr_bits))),
        "rsp": In(stream.Signature(WORD_BITS)),
    })


@dataclasses.dataclass(frozen=True, kw_only=True)
class MemoryParams(BlockParams):
    """Parameters of `SimpleMemory`; ``size_log2`` words are backed by storage (addresses wrap)."""

    addr_bits: int = param(24, 1, 64)
    size_log2: int = param(14, 1, 30)
    latency: int = param(8, 1, 1024)
    queue_depth: int = param(16, 2, 4096)
    interval: int = param(1, 1, 1024)
    rsp_depth: int = param(16, 2, 4096)

    def _check(self) -> None:
        self._require(self.size_log2 <= self.addr_bits, "size_log2", f"at most addr_bits ({self.addr_bits})")
