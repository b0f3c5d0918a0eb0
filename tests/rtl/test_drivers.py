"""The stream drivers' per-cycle behaviour (`sim.rtl.drivers`), on stand-in signal handles.

The drivers' timing against real designs is checked by the blocks' model/RTL agreement tests (exact to the
cycle); these tests pin the offer/take rules those rely on without a simulator.
"""

from __future__ import annotations

import heapq
import random
from types import SimpleNamespace

from amaranth.lib import data

from hw.pack import pack
from sim.core.stimulus import ReadyPattern
from sim.rtl.drivers import StreamSink, StreamSource

LAYOUT = data.StructLayout({"addr": 8, "tag": 4})


class _Sig:
    """A handle: ``value`` as cocotb's, counting writes."""

    def __init__(self, value: int = 0) -> None:
        self.value, self.writes = value, 0

    def __setattr__(self, name: str, v) -> None:
        if name == "value" and hasattr(self, "writes"):
            object.__setattr__(self, "writes", self.writes + 1)
        object.__setattr__(self, name, v)


def _port(prefix: str) -> SimpleNamespace:
    return SimpleNamespace(**{f"{prefix}__{n}": _Sig() for n in ("valid", "ready", "payload")})


def _run_source(src: StreamSource, dut, ready, cycles: int, each=None) -> list[tuple[int, int]]:
    """Cycles of a consumer taking whatever is valid when ``ready(k)``; returns (cycle, payload) taken."""
    taken = []
    for k in range(cycles):
        src.drive(k)
        dut.s__ready.value = int(ready(k))
        if dut.s__valid.value and dut.s__ready.value:
            taken.append((k, dut.s__payload.value))
        src.sample(k)
        if each:
            each(k, src)
    return taken


def test_source_offers_each_item_from_its_cycle_after_the_previous_one_is_taken():
    dut = _port("s")
    cycles = [0, 0, 5, 6, 6, 20]
    src = StreamSource(dut, "s", LAYOUT).extend((c, {"addr": i, "tag": i % 16}) for i, c in enumerate(cycles))
    ready = ReadyPattern(7, 0.5)
    taken = _run_source(src, dut, ready, 100)
    expect, t = [], -1
    for c in cycles:  # first cycle >= max(availability, previous take + 1) in which the consumer is ready
        t = max(c, t + 1)
        while not ready(t):
            t += 1
        expect.append(t)
    assert src.accepted == [k for k, _ in taken] == expect
    assert [p for _, p in taken] == [pack(LAYOUT, addr=i, tag=i % 16) for i in range(len(cycles))]
    assert src.done and dut.s__valid.value == 0
    assert dut.s__payload.writes == len(cycles)  # written once per item, held while idle


def test_source_takes_raw_integer_items_and_idle_withdraws_the_offer():
    dut = _port("s")
    src = StreamSource(dut, "s").extend([(0, 0x5A)])
    src.drive(0)
    assert (dut.s__valid.value, dut.s__payload.value) == (1, 0x5A)
    src.idle()
    dut.s__ready.value = 1
    assert not src.sample(0) and dut.s__valid.value == 0 and src.waiting == 1


def test_inserted_items_come_out_in_heap_order_and_an_offered_item_stays_first():
    rng = random.Random(3)
    dut = _port("s")
    src = StreamSource(dut, "s")
    heap: list[tuple[int, int, int]] = []
    seq = 0

    def push(cycle: int) -> None:
        nonlocal seq
        src.insert(cycle, seq)
        heapq.heappush(heap, (cycle, seq, seq))
        seq += 1

    for _ in range(30):
        push(rng.randrange(0, 60))
    ready = ReadyPattern(11, 0.6)
    order = []

    def each(k: int, s: StreamSource) -> None:
        for _ in range(rng.randrange(0, 3)):  # replies arriving later, some tied with waiting items
            push(k + rng.randrange(1, 6))

    taken = _run_source(src, dut, ready, 400, each)
    while heap:
        order.append(heapq.heappop(heap)[2])
    assert [p for _, p in taken] == order[:len(taken)] and len(taken) > 100

    dut = _port("s")
    src = StreamSource(dut, "s").extend([(5, 1)])
    src.drive(5)
    src.insert(2, 2)  # available earlier, but item 1 is on the port already
    dut.s__ready.value = 1
    src.sample(5)
    src.drive(6)
    assert dut.s__payload.value == 2 and src.accepted == [5]


def test_sink_is_ready_by_its_pattern_and_records_transfers():
    dut = _port("m")
    pattern = ReadyPattern(5, 0.4)
    sink = StreamSink(dut, "m", pattern, LAYOUT)
    got = []
    for k in range(200):
        sink.drive(k)
        assert dut.m__ready.value == int(pattern(k))
        dut.m__valid.value = k % 3 != 0
        dut.m__payload.value = pack(LAYOUT, addr=k, tag=k % 16)
        if sink.sample(k):
            got.append(k)
    assert got == [k for k in range(200) if k % 3 and pattern(k)]
    assert sink.rows("addr") == [[k, k] for k in got]
    always = StreamSink(dut, "m")
    always.drive(0)
    dut.m__valid.value, dut.m__payload.value = 1, 77
    assert always.sample(0) == (0, 77) and always.rows() == [[0, 77]]
    always.idle()
    assert dut.m__ready.value == 0 and always.sample(1) is None
