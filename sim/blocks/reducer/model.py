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
`MemoryTiming` (served in order, one command per ``interval``) plus the queue-depth limit on ``cmd.ready``; its
response-FIFO limit never binds because at most ``inflight`` < ``rsp_depth`` reads are outstanding.

Agreement with the RTL: exact. Every packet's commit cycle equals the RTL's (checked in Amaranth's simulator
and on Verilator, up to 200 000 packets, memory interval 1 to 4, queue depth 2 to 16, inflight 1 to 8, commit
depth 2 to 16, 0 to 90 % commit backpressure). This holds under the conditions the testbenches create: the
reducer and the memory are empty and idle at cycle 0, nobody else uses the memory port, ``inflight`` <
``rsp_depth``, and each packet is offered from its arrival cycle until accepted. Behind a shared port (an
arbiter in front of the memory) the model knows nothing of the other requesters and is optimistic.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hw.memory import MemoryParams
from hw.reducer import ReduceOp, ReducerParams
from sim.blocks.memory.model import MemoryTiming

NEVER = -(1 << 62)


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


class ReducerModel:
    """Predicts the reducer's handshake cycles for a packet trace.

    Parameters
    ----------
    params : the reducer's parameters (as built in RTL).
    mem : the memory behind it (`hw.memory.SimpleMemory` parameters).
    ready : ``ready(cycle) -> bool`` of the commit consumer; ``None`` means always ready.
    """

    def __init__(self, params: ReducerParams, mem: MemoryParams,
                 ready: Callable[[int], bool] | None = None) -> None:
        if params.inflight >= mem.rsp_depth:
            raise ValueError(f"the model needs inflight ({params.inflight}) < the memory's rsp_depth "
                             f"({mem.rsp_depth})")
        self.params, self.mem, self.ready = params, mem, ready

    def run(self, cycles: np.ndarray, addrs: np.ndarray, ops: np.ndarray) -> ReducerTimeline:
        """Timeline of packets arriving at ``cycles`` (non-decreasing) with word addresses and ops."""
        n = len(cycles)
        arr = [int(x) for x in cycles]
        addr = [int(x) for x in addrs]
        is_add = [int(x) != ReduceOp.STORE for x in ops]
        k, d = self.params.inflight, self.params.commit_depth
        qdepth, lat = self.mem.queue_depth, self.mem.latency
        ready = self.ready
        mem = MemoryTiming(self.mem)
        recent_service: deque[int] = deque(maxlen=qdepth)  # service cycles of the last qdepth commands

        t = [0] * n
        p = [0] * n
        w = [0] * n
        c = [0] * n
        rsp = [0] * n
        last_same: dict[int, int] = {}
        i = j = 0  # next packet to accept, next packet to write
        last_cmd = -1
        stalls = 0

        def queue_ready_from() -> int:
            """First cycle (after the last command) at which the memory's command queue has room."""
            return recent_service[0] + 1 if len(recent_service) == qdepth else NEVER

        def pop_cycle(x: int) -> int:
            q = max(t[x] + 1, rsp[x])
            return max(q, w[x - 1]) if x else q

        while j < n:
            # The write-back register holds packet j from p[j] + 1 on (once j is accepted).
            write_at = None
            if j < i:
                pj = p[j]
                room_from = c[j - d] + 1 if j >= d else NEVER
                write_at = max(pj + 1, room_from, queue_ready_from())
            accept_at = None
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
                    h = last_same.get(addr[i], -1)
                    if h >= 0:
                        if h >= j:
                            blocked = True
                        else:
                            a0 = max(a0, w[h] + 1)
                    a0 = max(a0, last_cmd + 1, queue_ready_from())
                    if not blocked and j < i:
                        # The write-back register claims the port from max(p[j], c[j-d]) + 1 on.
                        free_until = max(p[j], c[j - d] if j >= d else NEVER)
                        if a0 > free_until:
                            blocked = True
                if not blocked:
                    accept_at = a0
            if accept_at is not None and (write_at is None or accept_at <= write_at):
                t[i] = accept_at
                stalls += accept_at - max(arr[i], t[i - 1] + 1 if i else 0)
                if is_add[i]:
                    s = mem.serve(accept_at)
                    recent_service.append(s)
                    rsp[i] = s + lat + 1
                    last_cmd = accept_at
                else:
                    rsp[i] = NEVER
                last_same[addr[i]] = i
                i += 1
                if i - 1 == j:
                    p[j] = pop_cycle(j)
                continue
            if write_at is None:
                raise RuntimeError(f"reducer model stuck at packet {i} (write {j})")  # pragma: no cover
            w[j] = write_at
            recent_service.append(mem.serve(write_at))
            last_cmd = write_at
            x = max(write_at + 1, c[j - 1] + 1 if j else 0)
            if ready is not None:
                while not ready(x):
                    x += 1
            c[j] = x
            j += 1
            if j < i:
                p[j] = pop_cycle(j)
        to_np = np.array
        return ReducerTimeline(accept=to_np(t, dtype=np.int64), pop=to_np(p, dtype=np.int64),
                               write=to_np(w, dtype=np.int64), commit=to_np(c, dtype=np.int64),
                               stall_cycles=stalls)


def model_commits(params: ReducerParams, mem: MemoryParams, packets: np.ndarray,
                  ready: Callable[[int], bool] | None = None) -> ReducerTimeline:
    """Convenience: the timeline of a `sim.blocks.reducer.reference.PACKET_DTYPE` table."""
    return ReducerModel(params, mem, ready).run(packets["cycle"], packets["addr"], packets["op"])
