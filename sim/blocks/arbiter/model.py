"""Cycle model of the memory arbiter (`hw.arbiter.MemoryArbiter`) in front of `hw.memory.SimpleMemory`.

MCA's choice depends on the memory's queue level every cycle, and the queue level depends on every earlier
choice, so a transaction-level model (`sim.blocks.memory.model.MemoryTiming`) cannot predict it. This model steps the
arbiter's registers (the held selection, the round-robin pointer, the starvation counter, the owner FIFO and
the statistics) together with the cycle-exact `sim.blocks.memory.model.SimpleMemoryModel`, one cycle at a time, with
the same "decide on the state at the start of the cycle, then update" order as the registers.

Agreement with the RTL: exact (0 cycles) for every grant cycle, response cycle and word, the run length and
both statistics counters. It is exact by construction, not by calibration: every register of the arbiter has a
counterpart here, and the memory model is cycle-exact too, so there is nothing left to approximate. The tests
check it on Verilator (`tests/blocks/arbiter/test_arbiter_rtl.py`, and the generic agreement test through
`sim.exec`) and in Amaranth's simulator, including small FIFOs and queues
(`tests/blocks/arbiter/test_arbiter_model.py`). In front of a different memory, the arbiter half stays exact given that
memory's ``cmd.ready``, ``occupancy`` and ``rsp`` per cycle; the whole is then as exact as the memory's model.

Request streams are arrays of `CMD_DTYPE`: ``cycle`` is the first cycle a command may be offered (a requester
offers its commands in order, each from ``max(cycle, previous grant + 1)``), then ``addr``, ``write``, ``data``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from hw.arbiter import ArbiterMode, ArbiterParams, Requester
from sim.blocks.memory.model import SimpleMemoryModel
from sim.core.stimulus import arrival_cycles

CMD_DTYPE = np.dtype([("cycle", "<u8"), ("addr", "<u8"), ("write", "u1"), ("data", "<u4")])

Command = tuple[int, int, int]  # addr, write, data
Ready = Callable[[int], bool] | None


class ArbiterModel:
    """The arbiter's registers; `cycle` advances them by one clock (the caller steps the memory after it)."""

    def __init__(self, params: ArbiterParams, mode: ArbiterMode, threshold: int, starvation_limit: int = 0) -> None:
        if not 0 <= threshold < 1 << params.occupancy_bits:
            raise ValueError(f"threshold {threshold} does not fit in {params.occupancy_bits} bits")
        if not 0 <= starvation_limit < 1 << params.limit_bits:
            raise ValueError(f"starvation_limit {starvation_limit} does not fit in {params.limit_bits} bits")
        self.p = params
        self.mode = ArbiterMode(mode)
        self.threshold = threshold
        self.limit = starvation_limit
        self.owners: deque[int] = deque()
        self.lock: int | None = None
        self.last = int(Requester.COMM)
        self.count = 0
        self.comm_wait_cycles = 0
        self.starvation_grants = 0

    def starving(self) -> bool:
        return self.limit != 0 and self.count >= self.limit

    def select(self, offers: Sequence[Command | None], occupancy: int) -> int | None:
        """The requester driving ``mem.cmd`` this cycle (or None), from the state at the start of the cycle."""
        room = len(self.owners) < self.p.max_reads
        ok = [c is not None and (bool(c[1]) or room) for c in offers]
        if self.lock is not None:
            return self.lock if ok[self.lock] else None
        compute, comm = ok[Requester.COMPUTE], ok[Requester.COMM]
        if self.mode == ArbiterMode.MCA:
            if self.starving() and comm:
                return Requester.COMM
            if compute:
                return Requester.COMPUTE
            if comm and occupancy < self.threshold:
                return Requester.COMM
            return None
        if compute and comm:
            return 1 - self.last
        if compute or comm:
            return Requester.COMM if comm else Requester.COMPUTE
        return None

    def cycle(self, mem: SimpleMemoryModel, offers: Sequence[Command | None],
              rsp_ready: Sequence[bool]) -> tuple[int | None, tuple[int, int] | None]:
        """One clock: returns the granted requester (or None) and the response delivered as (owner, data)."""
        sel = self.select(offers, mem.occupancy())
        granted = None
        if sel is not None and mem.cmd_ready():
            granted = sel
            mem.push_cmd(*offers[sel])
        self.lock = sel if sel is not None and granted is None else None

        delivered = None
        if mem.rsp_valid() and self.owners and rsp_ready[self.owners[0]]:
            delivered = (self.owners.popleft(), mem.rsp_data())
            mem.pop_rsp()

        comm_valid = offers[Requester.COMM] is not None
        comm_grant = granted == Requester.COMM
        if comm_grant and self.starving() and self.mode == ArbiterMode.MCA:
            self.starvation_grants = (self.starvation_grants + 1) & 0xFFFFFFFF
        if comm_valid and not comm_grant:
            self.comm_wait_cycles = (self.comm_wait_cycles + 1) & 0xFFFFFFFF
        if comm_grant:
            self.count = 0
        elif comm_valid and self.count != (1 << self.p.limit_bits) - 1:
            self.count += 1
        if granted is not None:
            self.last = granted
            if not offers[granted][1]:
                self.owners.append(granted)
        return granted, delivered


@dataclass
class StreamRun:
    """One requester's observations: grant cycle per command, (cycle, data) per read response."""

    arrivals: list[int] = field(default_factory=list)
    writes: list[int] = field(default_factory=list)
    grants: list[int] = field(default_factory=list)
    grant_occupancy: list[int] = field(default_factory=list)  # memory queue level in the grant's cycle
    responses: list[tuple[int, int]] = field(default_factory=list)

    def completion(self) -> int:
        """Cycle of the stream's last event (its last grant or its last read response); -1 if empty."""
        return max([-1, *self.grants[-1:], *(c for c, _ in self.responses[-1:])])

    @property
    def read_grants(self) -> list[int]:
        return [g for g, w in zip(self.grants, self.writes, strict=False) if not w]

    def read_latencies(self) -> list[int]:
        """Cycles from each read's grant to its response."""
        return [c - g for g, (c, _) in zip(self.read_grants, self.responses, strict=False)]

    def waits(self) -> list[int]:
        """Cycles each command was offered before its grant (offered from ``max(arrival, previous grant+1)``)."""
        out, prev = [], -1
        for a, g in zip(self.arrivals, self.grants, strict=False):
            out.append(g - max(a, prev + 1))
            prev = g
        return out


@dataclass
class ArbiterRun:
    compute: StreamRun
    comm: StreamRun
    order: list[tuple[int, int]] = field(default_factory=list)  # (requester, index) in grant order
    cycles: int = 0  # first cycle with every command granted and every response delivered
    comm_wait_cycles: int = 0
    starvation_grants: int = 0
    readback: list[tuple[int, int]] = field(default_factory=list)  # (cycle, word) per address read back

    def stream(self, who: int) -> StreamRun:
        return self.comm if who == Requester.COMM else self.compute


def run_arbiter(params: ArbiterParams, memory: SimpleMemoryModel, compute: np.ndarray, comm: np.ndarray, *,
                mode: ArbiterMode, threshold: int, starvation_limit: int = 0, compute_ready: Ready = None,
                comm_ready: Ready = None, readback_words: int = 0, max_cycles: int = 10_000_000) -> ArbiterRun:
    """Replay two `CMD_DTYPE` streams through the arbiter and ``memory``; ready callables take the cycle.

    With ``readback_words``, the run then reads addresses ``0 ..`` back as the replay harness does
    (`sim.blocks.arbiter.rtl.replay_harness`): nothing is offered in cycle ``run.cycles``; from the next cycle the
    compute port reads the addresses in order, its responses always taken, comm idle (``run.readback``).
    """
    model = ArbiterModel(params, mode, threshold, starvation_limit)
    cols = [[s[k].tolist() for k in ("cycle", "addr", "write", "data")] for s in (compute, comm)]
    run = ArbiterRun(*(StreamRun(arrivals=c[0], writes=c[2]) for c in cols))
    readies = (compute_ready, comm_ready)
    idx = [0, 0]
    n = [len(compute), len(comm)]
    for t in range(max_cycles):
        if idx == n and not model.owners:
            run.cycles = t
            run.comm_wait_cycles, run.starvation_grants = model.comm_wait_cycles, model.starvation_grants
            _read_back(model, memory, run, readback_words, max_cycles)
            return run
        offers: list[Command | None] = []
        for s in (0, 1):
            i = idx[s]
            offers.append((cols[s][1][i], cols[s][2][i], cols[s][3][i]) if i < n[s] and cols[s][0][i] <= t
                          else None)
        occupancy = memory.occupancy()
        granted, delivered = model.cycle(memory, offers, [r is None or r(t) for r in readies])
        if granted is not None:
            run.stream(granted).grants.append(t)
            run.stream(granted).grant_occupancy.append(occupancy)
            run.order.append((granted, idx[granted]))
            idx[granted] += 1
        if delivered is not None:
            run.stream(delivered[0]).responses.append((t, delivered[1]))
        memory.step()
    raise RuntimeError(f"arbiter model did not finish within {max_cycles} cycles")


def _read_back(model: ArbiterModel, memory: SimpleMemoryModel, run: ArbiterRun, words: int, max_cycles: int) -> None:
    """The harness's read-back phase after the run (`run_arbiter`)."""
    addr = 0
    for t in range(run.cycles, max_cycles):
        if len(run.readback) == words:
            return
        offer = (addr, 0, 0) if t > run.cycles and addr < words else None
        granted, delivered = model.cycle(memory, [offer, None], [True, True])
        addr += granted is not None
        if delivered is not None:
            run.readback.append((t, delivered[1]))
        memory.step()
    raise RuntimeError(f"arbiter model did not finish its read-back within {max_cycles} cycles")


def expected_data(compute: np.ndarray, comm: np.ndarray, order: Sequence[tuple[int, int]],
                  size_log2: int) -> tuple[list[list[int]], dict[int, int]]:
    """Functional reference: the read data each requester must see and the final memory contents, when the
    memory executes the commands in ``order`` (grant order) on a memory that starts at zero."""
    mask = (1 << size_log2) - 1
    mem: dict[int, int] = {}
    reads: list[list[int]] = [[], []]
    streams = (compute, comm)
    for who, i in order:
        row = streams[who][i]
        addr = int(row["addr"]) & mask
        if int(row["write"]):
            mem[addr] = int(row["data"])
        else:
            reads[who].append(mem.get(addr, 0))
    return reads, mem


def random_streams(rng: np.random.Generator, *, region_words: int = 256, bursts: int = 20,
                   burst_len: tuple[int, int] = (8, 40), burst_gap: tuple[int, int] = (20, 120),
                   compute_write_frac: float = 0.2, comm_pairs: int = 400, comm_gap: tuple[int, int] = (0, 6),
                   idle_prob: float = 0.1, preload: bool = True, comm_base: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded pair of request streams: compute over words ``0 .. region_words-1``, comm over ``comm_base ..
    comm_base + region_words-1`` (the same words by default; disjoint from ``comm_base = region_words`` on).

    ``compute`` (a GEMM): optionally a preload (one write of a random word to every address of its region), then
    ``bursts`` bursts of back-to-back commands, mostly reads, each after ``burst_gap`` idle cycles. ``comm`` (the
    reduce-scatter): read-modify-write pairs (a read, then a write of the same address), each pair after
    ``comm_gap`` idle cycles. A stream offers one command per cycle at most: command *i* is available ``i``
    cycles plus every idle cycle before it after the start (`sim.core.stimulus.arrival_cycles`): the gaps above
    plus random idles, each cycle idle with probability ``idle_prob``.
    """
    caddr, cwrite, cdata, cgap = [], [], [], []
    if preload:
        caddr += range(region_words)
        cwrite += [1] * region_words
        cdata += rng.integers(0, 1 << 32, region_words).tolist()
        cgap += [0] * region_words
    for _ in range(bursts):
        length = int(rng.integers(burst_len[0], burst_len[1] + 1))
        w = rng.random(length) < compute_write_frac
        caddr += rng.integers(0, region_words, length).tolist()
        cwrite += w.astype(int).tolist()
        cdata += np.where(w, rng.integers(0, 1 << 32, length), 0).tolist()
        cgap += [int(rng.integers(burst_gap[0], burst_gap[1] + 1))] + [0] * (length - 1)
    a = (comm_base + rng.integers(0, region_words, comm_pairs)).tolist()
    d = rng.integers(0, 1 << 32, comm_pairs).tolist()
    g = rng.integers(comm_gap[0], comm_gap[1] + 1, comm_pairs).tolist()
    maddr = [x for x in a for _ in range(2)]
    mwrite = [0, 1] * comm_pairs
    mdata = [v for x in d for v in (0, x)]
    mgap = [v for x in g for v in (x, 0)]
    out = []
    for addr, write, data, gap in ((caddr, cwrite, cdata, cgap), (maddr, mwrite, mdata, mgap)):
        s = np.zeros(len(addr), dtype=CMD_DTYPE)
        s["cycle"] = arrival_cycles(len(addr), idle_prob, rng) + np.cumsum(gap, dtype=np.int64)
        s["addr"], s["write"], s["data"] = addr, write, data
        out.append(s)
    return out[0], out[1]
