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

One source of truth, two ways to run it. The rules are written once, as the ``arb_*`` functions
(`numba.extending.register_jitable`) over a state vector (``A_*`` slots, the parameters included) and the owner
FIFO ring:

* `run_arbiter_fast` (the block's ``model`` runner) runs them compiled, with the memory's rules
  (`sim.blocks.memory.model`, ``mem_*``), in one jitted loop over both streams and the read-back
  (`arbiter_kernel`), with the response backpressure of `sim.core.stimulus.ReadyPattern`
  (`sim.core.fast.ready_nb`).
* `ArbiterModel`, the class the device model composes (`sim.blocks.t3_device.model`, two of them), calls the
  *same* functions uncompiled on Python lists (a jitted call per cycle from Python costs more than the
  interpreted rule); `run_arbiter` steps it on a `SimpleMemoryModel` with any ready callables and records more
  (grant occupancy, grant order). ``tests/blocks/arbiter/test_arbiter_fast.py`` runs both ways on the same stimuli.

Request streams are arrays of `CMD_DTYPE`: ``cycle`` is the first cycle a command may be offered (a requester
offers its commands in order, each from ``max(cycle, previous grant + 1)``), then ``addr``, ``write``, ``data``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numba
import numpy as np
from numba.extending import register_jitable

from hw.arbiter import ArbiterMode, ArbiterParams, Requester
from sim.blocks.memory.model import (
    M_QN,
    SimpleMemoryModel,
    mem_cmd_ready,
    mem_pop,
    mem_push,
    mem_rsp_data,
    mem_rsp_valid,
    mem_state,
    mem_step,
)
from sim.core.fast import ready_nb
from sim.core.stimulus import arrival_cycles

CMD_DTYPE = np.dtype([("cycle", "<u8"), ("addr", "<u8"), ("write", "u1"), ("data", "<u4")])

Command = tuple[int, int, int]  # addr, write, data
Ready = Callable[[int], bool] | None

# The state vector: the held selection (-1: none), the last grant, the starvation counter, the statistics, the
# owner FIFO ring (``owners``: one requester per read in flight, ``max_reads`` slots) and the parameters.
A_LOCK, A_LAST, A_COUNT, A_WAIT, A_STARV, A_OHEAD, A_ON = range(7)
A_MODE, A_THRESHOLD, A_LIMIT, A_MAXREADS, A_COUNT_MAX = range(7, 12)
A_N = 12
_COMPUTE, _COMM, _MCA = int(Requester.COMPUTE), int(Requester.COMM), int(ArbiterMode.MCA)
_M32 = 0xFFFFFFFF


def arb_state(params: ArbiterParams, mode: ArbiterMode, threshold: int, starvation_limit: int) -> list[int]:
    """A reset state vector (a list; ``np.array(..., np.int64)`` of it for a kernel)."""
    st = [0] * A_N
    st[A_LOCK], st[A_LAST] = -1, _COMM
    st[A_MODE], st[A_THRESHOLD], st[A_LIMIT] = int(mode), threshold, starvation_limit
    st[A_MAXREADS], st[A_COUNT_MAX] = params.max_reads, (1 << params.limit_bits) - 1
    return st


# The rules ---------------------------------------------------------------------------------------------------

@register_jitable
def arb_starving(st):
    return st[A_LIMIT] != 0 and st[A_COUNT] >= st[A_LIMIT]


@register_jitable
def arb_select(st, c_valid, c_write, m_valid, m_write, occupancy):
    """The requester driving ``mem.cmd`` this cycle (-1: none), from the state at the start of the cycle: a held
    selection, else (MCA) starving comm > compute > comm below the threshold, else (round robin) alternation. A
    read needs room in the owner FIFO."""
    room = st[A_ON] < st[A_MAXREADS]
    compute = c_valid and (c_write != 0 or room)
    comm = m_valid and (m_write != 0 or room)
    lock = st[A_LOCK]
    if lock >= 0:
        ok = compute if lock == _COMPUTE else comm
        return lock if ok else -1
    if st[A_MODE] == _MCA:
        if comm and arb_starving(st):
            return _COMM
        if compute:
            return _COMPUTE
        if comm and occupancy < st[A_THRESHOLD]:
            return _COMM
        return -1
    if compute and comm:
        return 1 - st[A_LAST]
    if compute:
        return _COMPUTE
    if comm:
        return _COMM
    return -1


@register_jitable
def arb_owner_head(st, owners):
    """The requester owed the oldest read in flight, -1 if none."""
    return owners[st[A_OHEAD]] if st[A_ON] > 0 else -1


@register_jitable
def arb_step(st, owners, c_valid, c_write, m_valid, m_write, occupancy, cmd_ready, rsp_valid, ready0, ready1):
    """One clock; the memory's ``occupancy``, ``cmd.ready``, ``rsp.valid`` and each requester's ``rsp.ready``.
    Returns (granted requester, requester the response on ``rsp`` is delivered to), -1 for none."""
    sel = arb_select(st, c_valid, c_write, m_valid, m_write, occupancy)
    granted = sel if sel >= 0 and cmd_ready else -1
    st[A_LOCK] = sel if sel >= 0 and granted < 0 else -1

    delivered = -1
    if rsp_valid and st[A_ON] > 0:
        h = st[A_OHEAD]
        who = owners[h]
        if (ready0 if who == _COMPUTE else ready1):
            delivered = who
            h += 1
            st[A_OHEAD] = 0 if h == st[A_MAXREADS] else h
            st[A_ON] -= 1

    comm_grant = granted == _COMM
    if comm_grant and arb_starving(st) and st[A_MODE] == _MCA:
        st[A_STARV] = (st[A_STARV] + 1) & _M32
    if m_valid and not comm_grant:
        st[A_WAIT] = (st[A_WAIT] + 1) & _M32
    if comm_grant:
        st[A_COUNT] = 0
    elif m_valid and st[A_COUNT] != st[A_COUNT_MAX]:
        st[A_COUNT] += 1
    if granted >= 0:
        st[A_LAST] = granted
        if not (c_write if granted == _COMPUTE else m_write):
            tail = st[A_OHEAD] + st[A_ON]
            if tail >= st[A_MAXREADS]:
                tail -= st[A_MAXREADS]
            owners[tail] = granted
            st[A_ON] += 1
    return granted, delivered


# The compiled run ---------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def arbiter_kernel(st, owners, ms, q, pipe, rsp, words, ccyc, caddr, cwrite, cdata, mcyc, maddr, mwrite, mdata,
                   seed0, thr0, seed1, thr1, readback_words, max_cycles, grants0, grants1, reads0, reads1, readback):
    """`run_arbiter` compiled: grant cycles into ``grants0/1``, (cycle, word) read rows into ``reads0/1`` and
    ``readback``. Returns (reads of compute, reads of comm, cycles), cycles -1 if the run or its read-back did
    not finish within ``max_cycles``."""
    n0 = len(ccyc)
    n1 = len(mcyc)
    i0 = 0
    i1 = 0
    r0 = 0
    r1 = 0
    cycles = -1
    for t in range(max_cycles):
        if i0 == n0 and i1 == n1 and st[A_ON] == 0:
            cycles = t
            break
        cv = i0 < n0 and ccyc[i0] <= t
        mv = i1 < n1 and mcyc[i1] <= t
        cw = cwrite[i0] if cv else 0
        mw = mwrite[i1] if mv else 0
        rdy0 = thr0 == 0 or ready_nb(t, seed0, thr0)
        rdy1 = thr1 == 0 or ready_nb(t, seed1, thr1)
        granted, delivered = arb_step(st, owners, cv, cw, mv, mw, ms[M_QN], mem_cmd_ready(ms), mem_rsp_valid(ms),
                                      rdy0, rdy1)
        if granted == _COMPUTE:
            mem_push(ms, caddr[i0], cw, cdata[i0])
            grants0[i0] = t
            i0 += 1
        elif granted == _COMM:
            mem_push(ms, maddr[i1], mw, mdata[i1])
            grants1[i1] = t
            i1 += 1
        if delivered == _COMPUTE:
            reads0[r0, 0], reads0[r0, 1] = t, mem_rsp_data(ms, rsp)
            r0 += 1
            mem_pop(ms)
        elif delivered == _COMM:
            reads1[r1, 0], reads1[r1, 1] = t, mem_rsp_data(ms, rsp)
            r1 += 1
            mem_pop(ms)
        mem_step(ms, q, pipe, rsp, words)
    if cycles < 0:
        return r0, r1, -1
    # The harness's read-back: nothing offered in cycle ``cycles``; then compute reads 0.. in order.
    addr = 0
    k = 0
    for t in range(cycles, max_cycles):
        if k == readback_words:
            return r0, r1, cycles
        cv = t > cycles and addr < readback_words
        granted, delivered = arb_step(st, owners, cv, 0, False, 0, ms[M_QN], mem_cmd_ready(ms), mem_rsp_valid(ms),
                                      True, True)
        if granted == _COMPUTE:
            mem_push(ms, addr, 0, 0)
            addr += 1
        if delivered >= 0:
            readback[k, 0], readback[k, 1] = t, mem_rsp_data(ms, rsp)
            k += 1
            mem_pop(ms)
        mem_step(ms, q, pipe, rsp, words)
    return r0, r1, -1


@dataclass
class FastArbiterRun:
    """What `run_arbiter_fast` returns: per requester the grant cycles and the (cycle, word) read rows, the
    read-back (cycle, word) rows (int64 arrays), the run's cycles (`ArbiterRun.cycles`) and the statistics
    counters at the end of the run (read-back included)."""

    grants: tuple[np.ndarray, np.ndarray]
    reads: tuple[np.ndarray, np.ndarray]
    readback: np.ndarray
    cycles: int
    comm_wait_cycles: int = 0
    starvation_grants: int = 0


MAX_FAST_MEMORY_LOG2 = 26  # the kernel keeps the memory as an array of 2**size_log2 words


def run_arbiter_fast(params: ArbiterParams, mem, compute: np.ndarray, comm: np.ndarray, *, mode: ArbiterMode,
                     threshold: int, starvation_limit: int = 0, compute_ready=None, comm_ready=None,
                     readback_words: int = 0, max_cycles: int | None = None) -> FastArbiterRun:
    """`run_arbiter` compiled, on a zeroed memory of `hw.memory.MemoryParams` ``mem``; the readies are
    `sim.core.stimulus.ReadyPattern` or None (always ready). ``max_cycles`` (run and read-back; default: 10 M
    plus the last arrival plus 1000 per command) bounds a run that never ends (e.g. MCA with threshold 0 and no
    starvation limit never grants comm)."""
    for r in (compute_ready, comm_ready):
        if r is not None and not (hasattr(r, "seed") and hasattr(r, "threshold")):
            raise TypeError("run_arbiter_fast takes ReadyPattern readies (or None); use run_arbiter otherwise")
    if mem.size_log2 > MAX_FAST_MEMORY_LOG2:
        raise ValueError(f"run_arbiter_fast keeps at most 2**{MAX_FAST_MEMORY_LOG2} words (use run_arbiter)")
    ArbiterModel(params, mode, threshold, starvation_limit)  # the same checks
    st = np.array(arb_state(params, mode, threshold, starvation_limit), np.int64)
    cols = [[s[k].astype(np.int64) for k in ("cycle", "addr", "write", "data")] for s in (compute, comm)]
    n0, n1 = len(compute), len(comm)
    grants = (np.zeros(n0, np.int64), np.zeros(n1, np.int64))
    reads = (np.zeros((n0 - int(cols[0][2].sum()), 2), np.int64), np.zeros((n1 - int(cols[1][2].sum()), 2), np.int64))
    readback = np.zeros((readback_words, 2), np.int64)
    seeds = [(0, 0) if r is None else (int(r.seed), int(r.threshold)) for r in (compute_ready, comm_ready)]
    if max_cycles is None:  # as `run_arbiter`'s limit, plus room for long streams
        last = max([0, *(int(c[0].max()) for c in cols if len(c[0]))])
        max_cycles = 10_000_000 + last + 1000 * (n0 + n1 + readback_words)
    r0, r1, cycles = arbiter_kernel(
        st, np.zeros(params.max_reads, np.int64), np.array(mem_state(mem), np.int64),
        np.zeros(3 * mem.queue_depth, np.int64), np.zeros(2 * mem.rsp_depth, np.int64),
        np.zeros(mem.rsp_depth, np.int64), np.zeros(1 << mem.size_log2, np.int64), *cols[0], *cols[1],
        seeds[0][0], seeds[0][1], seeds[1][0], seeds[1][1], readback_words, max_cycles, grants[0], grants[1],
        reads[0], reads[1], readback)
    if cycles < 0:
        raise RuntimeError(f"arbiter model did not finish within {max_cycles} cycles")
    return FastArbiterRun(grants, (reads[0][:r0], reads[1][:r1]), readback, int(cycles), int(st[A_WAIT]),
                          int(st[A_STARV]))


# The stepped class ---------------------------------------------------------------------------------------------

class ArbiterModel:
    """The arbiter's registers (the module's shared rules on Python lists); `cycle` advances them by one clock
    (the caller steps the memory after it)."""

    def __init__(self, params: ArbiterParams, mode: ArbiterMode, threshold: int, starvation_limit: int = 0) -> None:
        if not 0 <= threshold < 1 << params.occupancy_bits:
            raise ValueError(f"threshold {threshold} does not fit in {params.occupancy_bits} bits")
        if not 0 <= starvation_limit < 1 << params.limit_bits:
            raise ValueError(f"starvation_limit {starvation_limit} does not fit in {params.limit_bits} bits")
        self.p = params
        self.mode = ArbiterMode(mode)
        self.threshold = threshold
        self.limit = starvation_limit
        self._st = arb_state(params, mode, threshold, starvation_limit)
        self._owners = [0] * params.max_reads

    # --- views of the registers ----------------------------------------------------------------------------------
    @property
    def owners(self) -> deque[int]:
        """The owner FIFO (a copy), oldest read first."""
        st, depth = self._st, self.p.max_reads
        return deque(self._owners[(st[A_OHEAD] + k) % depth] for k in range(st[A_ON]))

    def owner_head(self) -> int | None:
        """The requester owed the oldest read in flight, or None."""
        who = arb_owner_head(self._st, self._owners)
        return None if who < 0 else who

    def push_owner(self, who: int) -> None:
        """Put a read of ``who`` in flight (tests: fill the owner FIFO)."""
        st, depth = self._st, self.p.max_reads
        if st[A_ON] == depth:
            raise ValueError("the owner FIFO is full")
        self._owners[(st[A_OHEAD] + st[A_ON]) % depth] = who
        st[A_ON] += 1

    @property
    def lock(self) -> int | None:
        return None if self._st[A_LOCK] < 0 else self._st[A_LOCK]

    @lock.setter
    def lock(self, who: int | None) -> None:
        self._st[A_LOCK] = -1 if who is None else int(who)

    @property
    def count(self) -> int:
        return self._st[A_COUNT]

    @count.setter
    def count(self, value: int) -> None:
        self._st[A_COUNT] = value

    @property
    def last(self) -> int:
        return self._st[A_LAST]

    @property
    def comm_wait_cycles(self) -> int:
        return self._st[A_WAIT]

    @property
    def starvation_grants(self) -> int:
        return self._st[A_STARV]

    def starving(self) -> bool:
        return arb_starving(self._st)

    # --- one cycle -----------------------------------------------------------------------------------------------
    def select(self, offers: Sequence[Command | None], occupancy: int) -> int | None:
        """The requester driving ``mem.cmd`` this cycle (or None), from the state at the start of the cycle."""
        c, m = offers[_COMPUTE], offers[_COMM]
        sel = arb_select(self._st, c is not None, c is not None and c[1], m is not None, m is not None and m[1],
                         occupancy)
        return None if sel < 0 else sel

    def cycle(self, mem: SimpleMemoryModel, offers: Sequence[Command | None],
              rsp_ready: Sequence[bool]) -> tuple[int | None, tuple[int, int] | None]:
        """One clock: returns the granted requester (or None) and the response delivered as (owner, data)."""
        c, m = offers[_COMPUTE], offers[_COMM]
        granted, delivered = arb_step(self._st, self._owners, c is not None, c is not None and c[1], m is not None,
                                      m is not None and m[1], mem.occupancy(), mem.cmd_ready(), mem.rsp_valid(),
                                      rsp_ready[0], rsp_ready[1])
        if granted >= 0:
            mem.push_cmd(*offers[granted])
        if delivered < 0:
            return (None if granted < 0 else granted), None
        word = mem.rsp_data()
        mem.pop_rsp()
        return (None if granted < 0 else granted), (delivered, word)


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
        if idx == n and model.owner_head() is None:
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
