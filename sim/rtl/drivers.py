"""Shared cocotb drivers for the project's port conventions: stream sources and sinks, testbench memory ports.

Conventions (those of every testbench here):

* an Amaranth ``lib.stream`` port ``p`` is flattened to the Verilog ports ``p__valid``, ``p__ready`` and
  ``p__payload``; a struct payload is packed LSB first (`hw.pack.pack` / `hw.pack.unpack`);
* the design changes state at the rising edge of ``clk``; the testbench sets its inputs after the falling edge
  and reads the handshakes once those inputs have settled (``ReadOnly``): a ``ready`` may depend
  combinationally on the ``valid`` or the payload offered (an arbiter's grant), and a transfer happens at the
  next rising edge when both are high at that point;
* cycle ``k`` of a phase is the ``k``-th falling edge counted by the testbench (``0``: the first one it awaits).

Timing contract of a driver, per cycle ``k``: ``drive(k)`` right after the falling edge sets its inputs,
``sample(k)`` in the read-only phase of the same cycle records the transfer that the next rising edge makes.
A testbench's per-cycle loop is therefore::

    for k in range(limit):
        await FallingEdge(dut.clk)
        ...                            # end conditions that look at the state before cycle k's inputs
        await act(k, drivers)          # drive(k) for each, ReadOnly, sample(k) for each

and the drivers stay in step with the cycle models: `StreamSource` offers item ``i`` from the cycle given with
it (the stimulus' input idles) once items ``0 .. i-1`` are taken, `StreamSink` is ready exactly when its
pattern says so (`sim.core.stimulus.ReadyPattern`, the hash the models and the Verilog replay tops use).

This module imports nothing of the project but `hw.pack` and `hw.memory` (the simulator embeds a fresh Python
and every import costs start-up time).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from cocotb.triggers import FallingEdge, ReadOnly

from hw.memory import mem_cmd_layout
from hw.pack import pack, unpack

Item = Mapping[str, int] | int
"""A stream item: field values packed with the driver's layout, or the payload as an integer."""


class Driver(Protocol):
    def drive(self, k: int) -> None: ...
    def sample(self, k: int) -> Any: ...
    def idle(self) -> None: ...


async def act(k: int, drivers: Sequence[Driver]) -> None:
    """Cycle ``k`` after its falling edge: every driver drives, the inputs settle, every driver samples.

    Returns in the read-only phase of cycle ``k``: the testbench may read signals but sets nothing before the
    next falling edge."""
    for d in drivers:
        d.drive(k)
    await ReadOnly()
    for d in drivers:
        d.sample(k)


def idle(*drivers: Driver) -> None:
    """Lower every driver's ``valid`` / ``ready`` (call after a falling edge, before the next rising one)."""
    for d in drivers:
        d.idle()


async def offer(dut, *sources: StreamSource, now: bool = False, settle: bool = True) -> int:
    """Run ``sources`` until every item is taken; return the number of cycles this took.

    Cycle 0 is the next falling edge, or the current one with ``now`` (the caller has just awaited it and set
    nothing that conflicts). Returns right after the falling edge that follows the last transfer, with every
    ``valid`` low and the signals still writable, so the next phase can start in that same cycle
    (``offer(..., now=True)``).

    ``settle=False`` reads the readies right after the falling edge instead of in the read-only phase: the same
    transfers, one simulator callback less per cycle, but only for readies that are register outputs (they
    cannot depend on what is driven in the cycle), such as a memory's command queue.
    """
    k = 0
    if not now:
        await FallingEdge(dut.clk)
    while True:
        for s in sources:
            s.drive(k)  # a source with nothing left lowers its valid
        if all(s.done for s in sources):
            return k
        if settle:
            await ReadOnly()
        for s in sources:
            s.sample(k)
        k += 1
        await FallingEdge(dut.clk)


class StreamSource:
    """Offers items on the input stream ``<prefix>__{valid,ready,payload}``, in order, each from its cycle.

    Item ``i`` is offered (``valid`` high, its payload set) in every cycle ``k >= cycle_i`` once items ``0 ..
    i-1`` are taken, and is taken in the first such cycle in which ``ready`` is high; ``accepted[i]`` records
    that cycle. The payload is written when an item is first offered and otherwise left as it is (an idle
    input keeps the last payload). ``layout`` packs mapping items; without it items are integers.
    """

    def __init__(self, dut, prefix: str, layout=None) -> None:
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.layout = layout
        self.accepted: list[int] = []
        self._cycles: list[int] = []
        self._items: list[Item] = []
        self._index = 0  # the next item to offer
        self._presented = -1  # the item whose payload is on the port
        self._offered = False

    def add(self, cycle: int, item: Item) -> None:
        """Append an item available from ``cycle`` (offered after every item added before it)."""
        self._cycles.append(int(cycle))
        self._items.append(item)

    def extend(self, items: Iterable[tuple[int, Item]]) -> StreamSource:
        """Append ``(cycle, item)`` pairs; returns the source."""
        for cycle, item in items:
            self.add(cycle, item)
        return self

    def insert(self, cycle: int, item: Item) -> None:
        """Queue an item by availability: after every waiting item available at or before ``cycle``.

        For sources fed while they run (replies to the design's outputs): with every item queued this way the
        waiting items are offered in order of availability, ties in order of insertion (the order of a heap of
        ``(cycle, insertion number)``). An item already offered stays first until taken, as a stream requires;
        an item inserted in cycle ``k`` for a cycle after ``k`` never needs to pass it anyway."""
        lo = self._index + (self._presented == self._index)
        pos = bisect.bisect_right(self._cycles, int(cycle), lo=lo)
        self._cycles.insert(pos, int(cycle))
        self._items.insert(pos, item)

    @property
    def index(self) -> int:
        """Number of items taken."""
        return self._index

    @property
    def done(self) -> bool:
        """Every item added so far was taken."""
        return self._index == len(self._items)

    @property
    def waiting(self) -> int:
        """Items not taken yet."""
        return len(self._items) - self._index

    def drive(self, k: int) -> None:
        i = self._index
        on = i < len(self._items) and self._cycles[i] <= k
        if on and self._presented != i:
            item = self._items[i]
            self.payload.value = pack(self.layout, **item) if isinstance(item, Mapping) else int(item)
            self._presented = i
        self.valid.value = int(on)
        self._offered = on

    def sample(self, k: int) -> bool:
        """Record the transfer of cycle ``k``; True if the offered item was taken."""
        if self._offered and int(self.ready.value):
            self.accepted.append(k)
            self._index += 1
            self._offered = False
            return True
        return False

    def idle(self) -> None:
        self.valid.value = 0
        self._offered = False


class StreamSink:
    """Takes the output stream ``<prefix>__{valid,ready,payload}`` under backpressure ``ready(cycle)``.

    ``ready`` is a stateless pattern of the cycle number (`sim.core.stimulus.ReadyPattern`, the same hash on
    every target), any ``cycle -> bool`` callable, or ``None`` for always ready. ``transfers`` records
    ``(cycle, fields)`` of every transfer (``fields``: the payload unpacked with ``layout``, or the integer).
    """

    def __init__(self, dut, prefix: str, ready: Callable[[int], bool] | None = None, layout=None) -> None:
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.pattern = ready
        self.layout = layout
        self.transfers: list[tuple[int, Any]] = []
        self._ready = False

    def drive(self, k: int) -> None:
        self._ready = True if self.pattern is None else bool(self.pattern(k))
        self.ready.value = int(self._ready)

    def sample(self, k: int) -> tuple[int, Any] | None:
        """Record the transfer of cycle ``k``; return it (``(k, fields)``) or ``None``."""
        if self._ready and int(self.valid.value):
            word = int(self.payload.value)
            t = (k, word if self.layout is None else unpack(self.layout, word))
            self.transfers.append(t)
            return t
        return None

    def idle(self) -> None:
        self.ready.value = 0
        self._ready = False

    def rows(self, *fields: str) -> list[list[int]]:
        """The transfers as ``[cycle, field, ...]`` rows (``[cycle, payload]`` without ``fields``)."""
        if not fields:
            return [[k, f] for k, f in self.transfers]
        return [[k, *(f[name] for name in fields)] for k, f in self.transfers]


class MemPortDriver:
    """The testbench side of a memory port ``<prefix>__cmd`` / ``<prefix>__rsp`` (`hw.memory.mem_port_signature`).

    In the harnesses it is the ``tb`` port of a `sim.rtl.gateware.MemPortMux`, which connects the memory to the
    testbench while ``sel`` (``tb_sel``) is high; ``occupancy`` names the memory's command-queue level output.
    Pass ``sel=None`` / ``occupancy=None`` for a port without them (a block's own memory port).
    """

    def __init__(self, dut, prefix: str, addr_bits: int, *, sel: str | None = "tb_sel",
                 occupancy: str | None = "occupancy") -> None:
        self.dut, self.prefix = dut, prefix
        self.layout = mem_cmd_layout(addr_bits)
        self.sel = None if sel is None else getattr(dut, sel)
        self.occupancy = None if occupancy is None else getattr(dut, occupancy)
        self.cmd_valid = getattr(dut, f"{prefix}__cmd__valid")
        self.rsp_ready = getattr(dut, f"{prefix}__rsp__ready")

    def select(self, on: bool = True) -> None:
        """Connect the memory to this port (``sel``); switch only while the memory and the block are idle."""
        self.sel.value = int(on)

    def idle(self) -> None:
        self.cmd_valid.value = 0
        self.rsp_ready.value = 0

    async def write(self, words: Iterable[tuple[int, int]], *, now: bool = False) -> int:
        """Write ``(addr, word)`` pairs back to back, each offered until taken (`offer`: cycle 0 is the next
        falling edge; returns after the falling edge that follows the last transfer, ``valid`` low).

        ``cmd.ready`` is read without waiting for the read-only phase when the port has a ``sel``: behind a
        `sim.rtl.gateware.MemPortMux` it is the memory queue's not-full flag, a register output."""
        src = StreamSource(self.dut, f"{self.prefix}__cmd", self.layout)
        src.extend((0, {"addr": a, "write": 1, "data": w}) for a, w in words)
        return await offer(self.dut, src, now=now, settle=self.sel is None)

    async def drain(self, settle: int) -> None:
        """Wait (falling edges) until the command queue is empty, then ``settle`` more cycles: long enough for
        the last command to leave the memory's pipeline (``interval + latency`` and some margin)."""
        while int(self.occupancy.value):
            await FallingEdge(self.dut.clk)
        for _ in range(settle):
            await FallingEdge(self.dut.clk)

    async def preload(self, words: Iterable[tuple[int, int]], settle: int) -> None:
        """Select the port, write ``words``, `drain`, deselect: the memory is idle and the block owns it."""
        self.select()
        await self.write(words)
        await self.drain(settle)
        self.select(False)

    async def read(self, addrs: Sequence[int], max_cycles: int | None = None) -> list[int]:
        """Read the words at ``addrs``, pipelined: a command per cycle while taken, responses always taken.

        Cycle 0 is the next falling edge; returns after the falling edge that follows the last response, with
        the command ``valid`` and the response ``ready`` low. The caller selects the port if it has a ``sel``.
        Fails after ``max_cycles`` cycles without every response.
        """
        cmd = StreamSource(self.dut, f"{self.prefix}__cmd", self.layout)
        cmd.extend((0, {"addr": a, "write": 0, "data": 0}) for a in addrs)
        rsp = StreamSink(self.dut, f"{self.prefix}__rsp")
        k = 0
        while True:
            await FallingEdge(self.dut.clk)
            if len(rsp.transfers) == len(addrs):
                break
            if max_cycles is not None and k == max_cycles:
                raise AssertionError(f"{len(rsp.transfers)} of {len(addrs)} words read after {k} cycles")
            await act(k, (cmd, rsp))
            k += 1
        idle(cmd, rsp)
        return [w for _, w in rsp.transfers]
