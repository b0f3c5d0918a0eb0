"""Timing model of `sim.rtl.gateware.SimpleMemory` for the transaction-level block models.

A command accepted at cycle *a* is served at ``max(a + 1, previous service + interval)``; a read's word is
visible on ``rsp`` at ``service + latency + 1``. The queue and response-FIFO limits are not modelled (block
models keep their own outstanding-read limits), which is why models built on this are cycle-approximate.
"""

from __future__ import annotations

from typing import Protocol

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



class MemPort(Protocol):
    """The one memory-port protocol of the cycle models (the model side of `hw.memory.mem_port_signature`).

    Within a cycle a block model asks ``cmd_ready()`` / ``rsp_valid()`` / ``rsp_data()``, makes that cycle's
    handshakes with ``offer`` (a command is valid this cycle; returns whether it was accepted; ``burst`` marks
    the first command of a burst, for ports that charge per burst) or ``push_cmd`` (after ``cmd_ready()``) and
    ``pop_rsp``; then its owner calls ``step()``. Decisions use the state at the start of the cycle, as the
    registers do.
    """

    def cmd_ready(self) -> bool: ...
    def offer(self, addr: int, write: int, data: int, burst: int = 0) -> bool: ...
    def push_cmd(self, addr: int, write: int, data: int) -> None: ...
    def rsp_valid(self) -> bool: ...
    def rsp_data(self) -> int: ...
    def pop_rsp(self) -> None: ...
    def step(self) -> None: ...
    def idle(self) -> bool: ...


class SimpleMemoryModel:
    """Cycle-exact model of `sim.rtl.gateware.SimpleMemory` behind the `MemPort` protocol."""

    def __init__(self, params: MemoryParams, storage: dict[int, int] | None = None) -> None:
        from collections import deque

        self.p = params
        self.mask = (1 << params.size_log2) - 1
        self.mem: dict[int, int] = storage if storage is not None else {}
        self.queue: deque[tuple[int, int, int]] = deque()
        self.pipe: deque[tuple[int, int]] = deque()  # (cycle the word enters the response FIFO, data)
        self.rsp: deque[int] = deque()
        self.wait = 0
        self.cycle = 0
        self._cmd: tuple[int, int, int] | None = None
        self._pop = False

    def cmd_ready(self) -> bool:
        return len(self.queue) < self.p.queue_depth

    def occupancy(self) -> int:
        return len(self.queue)

    def rsp_valid(self) -> bool:
        return bool(self.rsp)

    def rsp_data(self) -> int:
        return self.rsp[0]

    def push_cmd(self, addr: int, write: int, data: int) -> None:
        self._cmd = (addr, write, data)

    def offer(self, addr: int, write: int, data: int, burst: int = 0) -> bool:
        if not self.cmd_ready():
            return False
        self.push_cmd(addr, write, data)
        return True

    def idle(self) -> bool:
        return not (self.queue or self.pipe or self.rsp)

    def pop_rsp(self) -> None:
        self._pop = True

    def read_word(self, addr: int) -> int:
        return self.mem.get(addr & self.mask, 0)

    def write_word(self, addr: int, data: int) -> None:
        self.mem[addr & self.mask] = data & 0xFFFFFFFF

    def step(self) -> None:
        t, p = self.cycle, self.p
        in_flight = len(self.pipe)
        if self.queue and self.wait == 0 and len(self.rsp) + in_flight < p.rsp_depth:
            addr, write, data = self.queue.popleft()
            if write:
                self.write_word(addr, data)
            else:
                self.pipe.append((t + p.latency, self.read_word(addr)))
            self.wait = p.interval - 1
        elif self.wait:
            self.wait -= 1
        if self._pop:
            self.rsp.popleft()
            self._pop = False
        if self.pipe and self.pipe[0][0] == t:
            self.rsp.append(self.pipe.popleft()[1])
        if self._cmd is not None:
            self.queue.append(self._cmd)
            self._cmd = None
        self.cycle = t + 1
