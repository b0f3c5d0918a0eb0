"""Transaction-level timing model of the near-memory reducer (`hw.reducer.NearMemoryReducer`) in front of
`hw.memory.SimpleMemory`.

The model does not step cycles. It computes, packet by packet, the cycles of the four handshakes the RTL makes
for each packet, from closed-form constraints:

* accept ``t[i]``: at or after the packet's arrival and ``t[i-1] + 1``; a free queue slot (the packet
  ``inflight`` earlier has left the queue: ``t[i] > p[i-K]``); for an ``ADD_*``, no earlier packet to the same
  address unwritten (``t[i] > w[h]``), the memory's command queue not full, and the command port not claimed by
  the write-back register (writes have priority);
* pop ``p[i]`` (queue head to write-back register, the read word consumed):
  ``max(t[i] + 1, w[i-1], rsp[i])`` where ``rsp[i]`` is when the read word is on ``rsp``
  (`sim.blocks.memory.model.MemoryTiming`);
* write ``w[i]``: ``max(p[i] + 1, c[i-D] + 1, command queue has room)`` (``D`` = ``commit_depth``: the commit
  FIFO has room once the entry ``D`` earlier has left);
* commit ``c[i]``: the first cycle at or after ``max(w[i] + 1, c[i-1] + 1)`` at which the consumer is ready.

Reads and writes share the memory's command port and its queue, so the packets are not independent: the model
sweeps the accepts and the writes in time order, always taking the earlier of the next accept and the next
write, which is what makes the queue occupancy and the port arbitration exact. The memory is modelled with
`sim.blocks.memory.model.MemoryTiming`'s rule (served in order, one command per ``interval``) plus the
queue-depth limit on ``cmd.ready``; its response-FIFO limit never binds because at most ``inflight`` <
``rsp_depth`` reads are outstanding.

The sweep is one compiled kernel (`reducer_timeline`, numba): its arrays are the only statement of these rules;
`ReducerModel` and `model_commits` call it. The consumer's ``ready`` is evaluated inside the kernel: a
`sim.core.stimulus.ReadyPattern` by its hash rule (`sim.core.fast.ready_nb`), any other callable from a table of
its values that the caller fills and extends as far as the kernel asks.

Agreement with the RTL: exact. Every packet's commit cycle equals the RTL's (checked in Amaranth's simulator
and on Verilator, up to 200 000 packets, memory interval 1 to 4, queue depth 2 to 16, inflight 1 to 8, commit
depth 2 to 16, 0 to 90 % commit backpressure). This holds under the conditions the testbenches create: the
reducer and the memory are empty and idle at cycle 0, nobody else uses the memory port, ``inflight`` <
``rsp_depth``, and each packet is offered from its arrival cycle until accepted. Behind a shared port (an
arbiter in front of the memory) the model knows nothing of the other requesters and is optimistic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from hw.memory import MemoryParams
from hw.reducer import ReduceOp, ReducerParams
from sim.core.fast import ready_nb
from sim.core.stimulus import ReadyPattern

NEVER = -(1 << 62)
READY_ALWAYS, READY_HASH, READY_TABLE = 0, 1, 2  # how `reducer_timeline` evaluates the commit consumer's ready


@dataclass
class ReducerTimeline:
    """Per-packet handshake cycles (packet order) and summary figures."""

    accept: np.ndarray  # pkt handshake (and, for ADD_*, the read command)
    pop: np.ndarray  # read word consumed / packet moved to the write-back register
    write: np.ndarray  # write command accepted: the packet is committed to memory order
    commit: np.ndarray  # commit entry leaves on ``commit``
    stall_cycles: int  # cycles a packet was available but not accepted

    @property
    def last_commit(self) -> int:
        return int(self.commit[-1]) if len(self.commit) else -1


@numba.njit(cache=True)
def reducer_timeline(arr: np.ndarray, addr: np.ndarray, is_add: np.ndarray, inflight: int, commit_depth: int,
                     queue_depth: int, latency: int, interval: int, ready_mode: int, ready_seed: int,
                     ready_threshold: int, ready_table: np.ndarray, t: np.ndarray, p: np.ndarray, w: np.ndarray,
                     c: np.ndarray) -> tuple[int, int]:
    """The sweep of the module docstring: fills accept ``t``, pop ``p``, write ``w`` and commit ``c`` (int64,
    one per packet) for packets arriving at ``arr`` (non-decreasing) with word addresses ``addr`` and ``is_add``
    (1 for ``ADD_*``). Returns ``(status, stall cycles)``: status 0 done, 1 stuck (a bug), 2 ``ready_table``
    (``READY_TABLE`` mode: ``ready`` of cycles ``0 .. len - 1``) is too short: extend it and call again.
    """
    n = len(arr)
    k, d = inflight, commit_depth
    rsp = np.empty(n, dtype=np.int64)
    last_same = np.full(addr.max() + 1 if n else 1, -1, dtype=np.int64)
    recent = np.zeros(queue_depth, dtype=np.int64)  # service cycles of the last queue_depth commands (a ring)
    n_recent = 0
    head = 0  # the oldest entry of ``recent`` once it is full; the next one to overwrite
    next_service = 0
    i = j = 0  # next packet to accept, next packet to write
    last_cmd = -1
    stalls = 0
    while j < n:
        # First cycle (after the last command) at which the memory's command queue has room.
        queue_from = recent[head] + 1 if n_recent == queue_depth else NEVER
        # The write-back register holds packet j from p[j] + 1 on (once j is accepted).
        write_at = NEVER
        if j < i:
            write_at = max(p[j] + 1, queue_from)
            if j >= d:
                write_at = max(write_at, c[j - d] + 1)
        accept_at = NEVER
        if i < n:
            a0 = arr[i]
            if i:
                a0 = max(a0, t[i - 1] + 1)
            blocked = False
            if i >= k:  # needs packet i-k out of the queue
                if i - k - 1 >= j:
                    blocked = True
                else:
                    a0 = max(a0, p[i - k] + 1)
            if is_add[i] and not blocked:
                h = last_same[addr[i]]
                if h >= 0:
                    if h >= j:
                        blocked = True
                    else:
                        a0 = max(a0, w[h] + 1)
                a0 = max(a0, last_cmd + 1, queue_from)
                if not blocked and j < i:
                    # The write-back register claims the port from max(p[j], c[j-d]) + 1 on.
                    free_until = p[j]
                    if j >= d:
                        free_until = max(free_until, c[j - d])
                    if a0 > free_until:
                        blocked = True
            if not blocked:
                accept_at = a0
        if accept_at != NEVER and (write_at == NEVER or accept_at <= write_at):
            t[i] = accept_at
            stalls += accept_at - (max(arr[i], t[i - 1] + 1) if i else arr[i])
            if is_add[i]:
                s = max(accept_at + 1, next_service)  # MemoryTiming.serve
                next_service = s + interval
                recent[head] = s
                head = (head + 1) % queue_depth
                n_recent = min(n_recent + 1, queue_depth)
                rsp[i] = s + latency + 1
                last_cmd = accept_at
            else:
                rsp[i] = NEVER
            last_same[addr[i]] = i
            i += 1
            if i - 1 == j:
                p[j] = max(t[j] + 1, rsp[j], w[j - 1]) if j else max(t[j] + 1, rsp[j])
            continue
        if write_at == NEVER:
            return 1, stalls
        w[j] = write_at
        s = max(write_at + 1, next_service)
        next_service = s + interval
        recent[head] = s
        head = (head + 1) % queue_depth
        n_recent = min(n_recent + 1, queue_depth)
        last_cmd = write_at
        x = max(write_at + 1, c[j - 1] + 1) if j else write_at + 1
        if ready_mode == READY_HASH:
            while not ready_nb(x, ready_seed, ready_threshold):
                x += 1
        elif ready_mode == READY_TABLE:
            while x < len(ready_table) and not ready_table[x]:
                x += 1
            if x >= len(ready_table):
                return 2, stalls
        c[j] = x
        j += 1
        if j < i:
            p[j] = max(t[j] + 1, rsp[j], w[j - 1])
    return 0, stalls


class ReducerModel:
    """Predicts the reducer's handshake cycles for a packet trace.

    Parameters
    ----------
    params : the reducer's parameters (as built in RTL).
    mem : the memory behind it (`hw.memory.SimpleMemory` parameters).
    ready : ``ready(cycle) -> bool`` of the commit consumer; ``None`` means always ready. A
        `sim.core.stimulus.ReadyPattern` is evaluated by its rule inside the kernel (fast); any other callable is
        tabulated first (one Python call per cycle).
    """

    def __init__(self, params: ReducerParams, mem: MemoryParams,
                 ready: Callable[[int], bool] | None = None) -> None:
        if params.inflight >= mem.rsp_depth:
            raise ValueError(f"the model needs inflight ({params.inflight}) < the memory's rsp_depth "
                             f"({mem.rsp_depth})")
        self.params, self.mem, self.ready = params, mem, ready

    def run(self, cycles: np.ndarray, addrs: np.ndarray, ops: np.ndarray) -> ReducerTimeline:
        """Timeline of packets arriving at ``cycles`` (non-decreasing) with word addresses and ops."""
        arr = np.asarray(cycles, dtype=np.int64)
        addr = np.asarray(addrs, dtype=np.int64)
        is_add = (np.asarray(ops, dtype=np.int64) != ReduceOp.STORE).astype(np.int64)
        n = len(arr)
        t, p, w, c = (np.zeros(n, dtype=np.int64) for _ in range(4))
        ready, table = self.ready, np.zeros(0, dtype=np.bool_)
        mode, seed, threshold = READY_ALWAYS, 0, 0
        if isinstance(ready, ReadyPattern):
            mode, seed, threshold = READY_HASH, ready.seed, ready.threshold
        elif ready is not None:
            mode = READY_TABLE
            horizon = (int(arr[-1]) if n else 0) + 16 * n + 1024
            table = np.array([bool(ready(x)) for x in range(horizon)], dtype=np.bool_)
        mp, rp = self.mem, self.params
        while True:
            status, stalls = reducer_timeline(arr, addr, is_add, rp.inflight, rp.commit_depth, mp.queue_depth,
                                              mp.latency, mp.interval, mode, seed, threshold, table, t, p, w, c)
            if status != 2:
                break
            table = np.concatenate([table, np.array([bool(ready(x)) for x in range(len(table), 2 * len(table))],
                                                    dtype=np.bool_)])
        if status == 1:
            raise RuntimeError("reducer model stuck")  # pragma: no cover
        return ReducerTimeline(accept=t, pop=p, write=w, commit=c, stall_cycles=int(stalls))


def model_commits(params: ReducerParams, mem: MemoryParams, packets: np.ndarray,
                  ready: Callable[[int], bool] | None = None) -> ReducerTimeline:
    """Convenience: the timeline of a `sim.blocks.reducer.reference.PACKET_DTYPE` table."""
    return ReducerModel(params, mem, ready).run(packets["cycle"], packets["addr"], packets["op"])
