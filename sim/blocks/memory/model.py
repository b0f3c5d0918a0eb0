"""Timing model of `sim.rtl.gateware.SimpleMemory` for the transaction-level block models.

A command accepted at cycle *a* is served at ``max(a + 1, previous service + interval)``; a read's word is
visible on ``rsp`` at ``service + latency + 1``. The queue and response-FIFO limits are not modelled (block
models keep their own outstanding-read limits), which is why models built on this are cycle-approximate.

`SimpleMemoryModel` is the cycle-exact one. Its rules are written once, as the ``mem_*`` functions over a state
vector (``M_*`` slots) and three rings (queue, read pipe, response FIFO): `numba.extending.register_jitable`
functions, plain Python when the class calls them on Python lists, compiled when a block's numba kernel (the DMA's,
the arbiter's) calls them on arrays with the storage as an array of words.
"""

from __future__ import annotations

from typing import Protocol

from numba.extending import register_jitable

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


# The rules of SimpleMemory ---------------------------------------------------------------------------------------
# State vector: service countdown, the three rings (head, count), this cycle's command and pop, the cycle, and the
# parameters. Rings: ``q`` 3 ints per command (addr, write, data; ``queue_depth`` slots), ``pipe`` 2 per read in
# flight (cycle the word enters the response FIFO, word; ``rsp_depth`` slots), ``rsp`` the response FIFO's words
# (``rsp_depth`` slots). ``words``: the storage, indexed by the masked word address (reads of unwritten words: 0).
M_WAIT, M_QHEAD, M_QN, M_PHEAD, M_PN, M_RHEAD, M_RN = range(7)
M_CMD, M_CADDR, M_CWRITE, M_CDATA, M_POP, M_CYCLE = range(7, 13)
M_QDEPTH, M_LATENCY, M_INTERVAL, M_RDEPTH, M_MASK = range(13, 18)
M_N = 18
_M32 = 0xFFFFFFFF


def mem_state(params: MemoryParams) -> list[int]:
    """A reset state vector (a list; ``np.array(..., np.int64)`` of it for a kernel)."""
    ms = [0] * M_N
    ms[M_QDEPTH], ms[M_LATENCY], ms[M_INTERVAL] = params.queue_depth, params.latency, params.interval
    ms[M_RDEPTH], ms[M_MASK] = params.rsp_depth, (1 << params.size_log2) - 1
    return ms


@register_jitable
def mem_cmd_ready(ms):
    return ms[M_QN] < ms[M_QDEPTH]


@register_jitable
def mem_rsp_valid(ms):
    return ms[M_RN] > 0


@register_jitable
def mem_rsp_data(ms, rsp):
    return rsp[ms[M_RHEAD]]


@register_jitable
def mem_push(ms, addr, write, data):
    """The command accepted this cycle (after `mem_cmd_ready`); it joins the queue at the end of the cycle."""
    ms[M_CMD] = 1
    ms[M_CADDR] = addr
    ms[M_CWRITE] = write
    ms[M_CDATA] = data


@register_jitable
def mem_pop(ms):
    """The response FIFO's head is taken this cycle."""
    ms[M_POP] = 1


@register_jitable
def mem_idle(ms):
    return ms[M_QN] == 0 and ms[M_PN] == 0 and ms[M_RN] == 0


@register_jitable
def mem_step(ms, q, pipe, rsp, words):
    """End of the cycle: serve the queue head (every ``interval`` cycles, if the response FIFO will have room),
    take the popped response, move a word whose latency is over into the response FIFO, queue the command."""
    t = ms[M_CYCLE]
    rdepth = ms[M_RDEPTH]
    if ms[M_QN] > 0 and ms[M_WAIT] == 0 and ms[M_RN] + ms[M_PN] < rdepth:
        h = ms[M_QHEAD]
        addr = q[3 * h] & ms[M_MASK]
        if q[3 * h + 1]:
            words[addr] = q[3 * h + 2] & _M32
        else:
            tail = ms[M_PHEAD] + ms[M_PN]
            if tail >= rdepth:
                tail -= rdepth
            pipe[2 * tail] = t + ms[M_LATENCY]
            pipe[2 * tail + 1] = words[addr]
            ms[M_PN] += 1
        h += 1
        ms[M_QHEAD] = 0 if h == ms[M_QDEPTH] else h
        ms[M_QN] -= 1
        ms[M_WAIT] = ms[M_INTERVAL] - 1
    elif ms[M_WAIT] > 0:
        ms[M_WAIT] -= 1
    if ms[M_POP]:
        h = ms[M_RHEAD] + 1
        ms[M_RHEAD] = 0 if h == rdepth else h
        ms[M_RN] -= 1
        ms[M_POP] = 0
    if ms[M_PN] > 0 and pipe[2 * ms[M_PHEAD]] == t:
        tail = ms[M_RHEAD] + ms[M_RN]
        if tail >= rdepth:
            tail -= rdepth
        rsp[tail] = pipe[2 * ms[M_PHEAD] + 1]
        ms[M_RN] += 1
        h = ms[M_PHEAD] + 1
        ms[M_PHEAD] = 0 if h == rdepth else h
        ms[M_PN] -= 1
    if ms[M_CMD]:
        if ms[M_QN] == ms[M_QDEPTH]:
            raise ValueError("a command was pushed into a full memory queue")
        tail = ms[M_QHEAD] + ms[M_QN]
        if tail >= ms[M_QDEPTH]:
            tail -= ms[M_QDEPTH]
        q[3 * tail] = ms[M_CADDR]
        q[3 * tail + 1] = ms[M_CWRITE]
        q[3 * tail + 2] = ms[M_CDATA]
        ms[M_QN] += 1
        ms[M_CMD] = 0
    ms[M_CYCLE] = t + 1


def _ring(buf: list[int], head: int, n: int, depth: int, width: int) -> list:
    return [tuple(buf[width * ((head + k) % depth) + j] for j in range(width)) if width > 1
            else buf[(head + k) % depth] for k in range(n)]


class _Words:
    """The class's storage (a dict by masked word address) as the rules index it."""

    __slots__ = ("d",)

    def __init__(self, d: dict[int, int]) -> None:
        self.d = d

    def __getitem__(self, addr: int) -> int:
        return self.d.get(addr, 0)

    def __setitem__(self, addr: int, data: int) -> None:
        self.d[addr] = data


class SimpleMemoryModel:
    """Cycle-exact model of `sim.rtl.gateware.SimpleMemory` behind the `MemPort` protocol (the ``mem_*`` rules on
    Python lists; ``mem`` is the storage dict by word address)."""

    def __init__(self, params: MemoryParams, storage: dict[int, int] | None = None) -> None:
        self.p = params
        self.mask = (1 << params.size_log2) - 1
        self.mem: dict[int, int] = storage if storage is not None else {}
        self._ms = mem_state(params)
        self._q = [0] * (3 * params.queue_depth)
        self._pipe = [0] * (2 * params.rsp_depth)
        self._rsp = [0] * params.rsp_depth
        self._words = _Words(self.mem)

    @property
    def cycle(self) -> int:
        return self._ms[M_CYCLE]

    @property
    def queue(self) -> list[tuple[int, int, int]]:
        """The queued commands ``(addr, write, data)``, oldest first."""
        ms = self._ms
        return _ring(self._q, ms[M_QHEAD], ms[M_QN], ms[M_QDEPTH], 3)

    @property
    def pipe(self) -> list[tuple[int, int]]:
        """The reads in flight ``(cycle the word enters the response FIFO, word)``, oldest first."""
        ms = self._ms
        return _ring(self._pipe, ms[M_PHEAD], ms[M_PN], ms[M_RDEPTH], 2)

    @property
    def rsp(self) -> list[int]:
        """The response FIFO's words, oldest first."""
        ms = self._ms
        return _ring(self._rsp, ms[M_RHEAD], ms[M_RN], ms[M_RDEPTH], 1)

    def cmd_ready(self) -> bool:
        return mem_cmd_ready(self._ms)

    def occupancy(self) -> int:
        return self._ms[M_QN]

    def rsp_valid(self) -> bool:
        return mem_rsp_valid(self._ms)

    def rsp_data(self) -> int:
        if not mem_rsp_valid(self._ms):
            raise IndexError("the response FIFO is empty")
        return mem_rsp_data(self._ms, self._rsp)

    def push_cmd(self, addr: int, write: int, data: int) -> None:
        mem_push(self._ms, addr, write, data)

    def offer(self, addr: int, write: int, data: int, burst: int = 0) -> bool:
        if not self.cmd_ready():
            return False
        self.push_cmd(addr, write, data)
        return True

    def idle(self) -> bool:
        return mem_idle(self._ms)

    def pop_rsp(self) -> None:
        mem_pop(self._ms)

    def read_word(self, addr: int) -> int:
        return self.mem.get(addr & self.mask, 0)

    def write_word(self, addr: int, data: int) -> None:
        self.mem[addr & self.mask] = data & 0xFFFFFFFF

    def step(self) -> None:
        mem_step(self._ms, self._q, self._pipe, self._rsp, self._words)
