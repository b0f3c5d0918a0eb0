"""Timing model of `hw.memory.SimpleMemory` for the transaction-level block models.

A command accepted at cycle *a* is served at ``max(a + 1, previous service + interval)``; a read's word is
visible on ``rsp`` at ``service + latency + 1``. The queue and response-FIFO limits are not modelled (block
models keep their own outstanding-read limits), which is why models built on this are cycle-approximate.
"""

from __future__ import annotations

from hw.memory import MemoryParams


class MemoryTiming:
    def __init__(self, params: MemoryParams) -> None:
        self.params = params
        self.next_service = 0
        self.served = 0

    def serve(self, accept_cycle: int) -> int:
        """Service cycle of a command accepted at ``accept_cycle`` (commands must come in acceptance order)."""
        s = max(accept_cycle + 1, self.next_service)
        self.next_service = s + self.params.interval
        self.served += 1
        return s

    def read_response(self, accept_cycle: int) -> int:
        """Cycle the read's word is first visible on ``rsp``."""
        return self.serve(accept_cycle) + self.params.latency + 1

