"""Functional reference of the KV swap controller (`hw.kv_swap.KvSwapController`): the status each request gets,
the words written to each memory (in order) and the final memories, from the contract in `hw.kv_swap` alone.

Nothing here steps cycles or uses the cycle model (`sim.blocks.kv_swap.model`). The stream of runs is cut into
requests (a request ends at its ``last`` run; its tag and direction are its first run's). Then:

* **Errors** (`request_error`): the first error among a request's runs, in run order: ``ZERO_COUNT`` (0 blocks),
  ``OUT_OF_RANGE`` (source or destination block + count past its pool: device pool for the device side, host
  pool for the host side), ``QUEUE_FULL`` (a run beyond the first ``run_depth``).
* **Aborts** (`abort_targets`): an abort hits only a request that is complete (last run accepted) and not yet
  started, so its outcome depends on when things happen. The reference decides it from the offer cycles and
  from the contract's hard *lower* bounds on time, under two assumptions the stimulus must make true:

  (A1) an abort, and the runs of the request it names, are taken in the cycle they are offered (the controller
       is not backpressuring them then);
  (A2) an older request with the same tag is out of the controller when the abort comes. The reference proves
       it from the per-direction slot queues (one slot a request, freed in order) or raises `AmbiguousAbort`:
       at least ``queue_depth`` later requests of the older one's direction, up to the named one, took a slot
       before the abort (by A1, the named one's first run was taken by then, and so were all runs before it).

  With those, for an abort offered at *a* naming tag *T*, and *X* the latest request with tag *T* whose first run
  is offered at or before *a*: no such *X* -> miss (unknown tag); *X* has an error or an earlier abort hit it ->
  miss (it is dead); *X*'s last run offered at or after *a* -> miss (still being received: complete only the
  cycle after its last run); otherwise *X* is complete, and it cannot have started before the earliest start the
  contract allows: after every earlier request *Y* of its direction that moves data has finished, and *Y* needs
  one cycle to start, one to load a run, one to start a burst and one per word read, from the cycle after its
  last run was taken (so *X* starts at ``Y.last_offer + 4 + words(Y)`` at the earliest). An abort before that
  hits; one at or after it may find *X* started or not, which the reference cannot tell: it raises
  `AmbiguousAbort` rather than guess (the standard stimulus never does this; see
  `sim.blocks.kv_swap.model.random_swap_workload`). A hit reports ``ABORTED`` for *X* (which then moves no data);
  a miss reports nothing and counts in ``bad_aborts`` (8 bits, saturating).
* **Data**: every request without error or abort copies its runs' blocks word by word (``block * block_words +
  i``) from the source memory to the destination memory. Each direction is served in arrival order and its
  writes follow in that order (swap-ins write the device memory, swap-outs the host memory), so each memory's
  writes, in order, are those of its direction's requests in stream order, run by run, word by word. The order
  between the two directions is timing: a stimulus in which one direction reads a word the other writes raises
  ``ValueError``.

`scoreboard` checks a replay that may hold aborts of unknown outcome (placed by timing, `place_aborts`): it takes
each request's status from the replay, checks it against the errors above, and checks the data for that outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hw.kv_swap import BAD_ABORT_BITS, KvSwapParams, SwapDir, SwapError

# Stimulus table columns (`sim.blocks.kv_swap` registers these kinds).
RUN_DTYPE = np.dtype([("cycle", "<u8"), ("tag", "<u2"), ("direction", "u1"), ("src", "<u4"), ("dst", "<u4"),
                      ("count", "<u2"), ("last", "u1")])
ABORT_DTYPE = np.dtype([("cycle", "<u8"), ("tag", "<u2")])

# Start to first read: start, load a run, start a burst; then one read a cycle (`abort_targets`).
START_TO_FIRST_READ = 3


class AmbiguousAbort(ValueError):
    """An abort whose outcome depends on the controller's timing (see the module docstring)."""


@dataclass(frozen=True)
class Request:
    """One request of the run stream: its runs ``(src, dst, count)`` and the offer cycles of its first and last."""

    index: int
    tag: int
    direction: int
    runs: tuple[tuple[int, int, int], ...]
    first_offer: int
    last_offer: int

    @property
    def blocks(self) -> int:
        return sum(n for _, _, n in self.runs)


def pools(p: KvSwapParams, direction: int) -> tuple[int, int]:
    """(source pool, destination pool) in blocks for a direction."""
    return (p.dev_blocks, p.host_blocks) if direction == SwapDir.OUT else (p.host_blocks, p.dev_blocks)


def request_error(p: KvSwapParams, direction: int, runs: Sequence[tuple[int, int, int]]) -> SwapError:
    """The contract's error of a request with these runs ``(src, dst, count)`` (``OK`` if none)."""
    src_pool, dst_pool = pools(p, direction)
    for i, (src, dst, n) in enumerate(runs):
        if n == 0:
            return SwapError.ZERO_COUNT
        if src + n > src_pool or dst + n > dst_pool:
            return SwapError.OUT_OF_RANGE
        if i >= p.run_depth:
            return SwapError.QUEUE_FULL
    return SwapError.OK


def split_requests(p: KvSwapParams, runs: np.ndarray) -> list[Request]:
    """The requests of a run table (`RUN_DTYPE`, stream order); every request must end with a ``last`` run."""
    for col, bits in (("tag", p.tag_bits), ("src", p.block_bits), ("dst", p.block_bits), ("count", p.count_bits)):
        if len(runs) and int(runs[col].max()) >> bits:
            raise ValueError(f"run column {col!r} holds a value wider than {bits} bits")
    out: list[Request] = []
    rows = runs.tolist()
    start = 0
    for i, (cycle, _, _, _, _, _, last) in enumerate(rows):
        if last:
            head = rows[start]
            out.append(Request(len(out), head[1], head[2], tuple((r[3], r[4], r[5]) for r in rows[start:i + 1]),
                               head[0], cycle))
            start = i + 1
    if start != len(rows):
        raise ValueError("the run stream ends inside a request (its last run is missing)")
    return out


def abort_targets(p: KvSwapParams, requests: Sequence[Request], aborts: np.ndarray) -> list[int | None]:
    """For each abort (`ABORT_DTYPE`, in order), the index of the request it kills, or None for a miss.

    Rules and assumptions in the module docstring; raises `AmbiguousAbort` where the outcome depends on timing.
    """
    errors = [request_error(p, r.direction, r.runs) for r in requests]
    by_tag: dict[int, list[int]] = {}
    for r in requests:
        by_tag.setdefault(r.tag, []).append(r.index)
    dir_count = np.zeros((2, len(requests) + 1), dtype=np.int64)  # requests of each direction before index i
    for r in requests:
        dir_count[:, r.index + 1] = dir_count[:, r.index]
        dir_count[r.direction, r.index + 1] += 1
    # The request each abort names: the latest with its tag offered by then (older ones provably gone, A2).
    named: list[int | None] = []
    for k, (a, tag) in enumerate(aborts.tolist()):
        cands = [i for i in by_tag.get(tag, ()) if requests[i].first_offer <= a]
        for z in cands[:-1]:
            d = requests[z].direction
            if dir_count[d, cands[-1] + 1] - dir_count[d, z + 1] < p.queue_depth:
                raise AmbiguousAbort(f"abort {k} (cycle {a}, tag {tag}): request {z} with the same tag may still "
                                     f"be in the controller")
        named.append(cands[-1] if cands else None)
    # Earliest start of each request: after every earlier request of its direction that surely moves data (no
    # error, and no abort names it).
    may_die = set(named)
    earliest = [0] * len(requests)
    bound = [0, 0]
    for r in requests:
        earliest[r.index] = bound[r.direction]
        if errors[r.index] == SwapError.OK and r.index not in may_die:
            words = r.blocks * p.block_words
            bound[r.direction] = max(bound[r.direction], r.last_offer + 1 + START_TO_FIRST_READ + words)
    killed: set[int] = set()
    out: list[int | None] = []
    for k, ((a, tag), x) in enumerate(zip(aborts.tolist(), named, strict=True)):
        if x is None or errors[x] != SwapError.OK or x in killed or requests[x].last_offer >= a:
            out.append(None)
        elif a < earliest[x]:
            killed.add(x)
            out.append(x)
        else:
            raise AmbiguousAbort(f"abort {k} (cycle {a}, tag {tag}) comes when request {x} may have started "
                                 f"(at cycle {earliest[x]} at the earliest)")
    return out


@dataclass
class SwapOutcome:
    """What the contract says a stimulus produces."""

    statuses: list[tuple[int, int]]          # (tag, error), one per request, in request order
    dev_writes: tuple[np.ndarray, np.ndarray]  # (word addresses, data) written to the device memory, in order
    host_writes: tuple[np.ndarray, np.ndarray]
    dev_memory: np.ndarray                   # final pool images (words 0 .. blocks * block_words - 1)
    host_memory: np.ndarray
    bad_aborts: int


def _copies(p: KvSwapParams, reqs: Sequence[Request]) -> tuple[np.ndarray, np.ndarray]:
    """(source words, destination words) of ``reqs``' runs, in order."""
    runs = np.array([run for r in reqs for run in r.runs], dtype=np.int64).reshape(-1, 3)
    words = runs[:, 2] * p.block_words
    total = int(words.sum())
    offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(words) - words, words)
    src = np.repeat(runs[:, 0] * p.block_words, words) + offset
    dst = np.repeat(runs[:, 1] * p.block_words, words) + offset
    return src, dst


def _apply(image: np.ndarray, addr: np.ndarray, data: np.ndarray) -> np.ndarray:
    out = image.copy()
    if len(addr):
        last = len(addr) - 1 - np.unique(addr[::-1], return_index=True)[1]  # the last write of each word wins
        out[addr[last]] = data[last]
    return out


def swap_outcome(p: KvSwapParams, runs: np.ndarray, aborts: np.ndarray, dev_image: np.ndarray,
                 host_image: np.ndarray) -> SwapOutcome:
    """The statuses, writes and final memories of a stimulus (rules in the module docstring).

    ``dev_image``/``host_image`` are the pools' preloads (``blocks * block_words`` words each).
    """
    requests = split_requests(p, runs)
    hits = abort_targets(p, requests, aborts)
    killed = {i for i in hits if i is not None}
    statuses = []
    moving: list[list[Request]] = [[], []]
    for r in requests:
        err = request_error(p, r.direction, r.runs)
        if err == SwapError.OK and r.index in killed:
            err = SwapError.ABORTED
        statuses.append((r.tag, int(err)))
        if err == SwapError.OK:
            moving[r.direction].append(r)
    out_src, out_dst = _copies(p, moving[SwapDir.OUT])  # device -> host
    in_src, in_dst = _copies(p, moving[SwapDir.IN])  # host -> device
    if np.intersect1d(out_src, in_dst).size or np.intersect1d(in_src, out_dst).size:
        raise ValueError("a swap reads words the other direction writes: the result depends on the service order")
    host_data = dev_image[out_src]
    dev_data = host_image[in_src]
    misses = sum(h is None for h in hits)
    return SwapOutcome(statuses, (in_dst, dev_data), (out_dst, host_data), _apply(dev_image, in_dst, dev_data),
                       _apply(host_image, out_dst, host_data), min(misses, (1 << BAD_ABORT_BITS) - 1))


# --- scoreboard for replays with timing-placed aborts ---------------------------------------------------------------

def scoreboard(p: KvSwapParams, w, res, dev_mem: Mapping[int, int] | None = None,
               host_mem: Mapping[int, int] | None = None) -> None:
    """Check a replay functionally when aborts may have hit or missed: one status per request; a request with an
    error gets that error; any other gets ``OK`` or ``ABORTED``; the device and host writes, in order, are the
    ``OK`` requests' words in stream order, nothing else; the final memories (if given: word address -> data) are
    the preloads with those writes applied.

    ``w``: a `sim.blocks.kv_swap.model.SwapWorkload` (requests with distinct tags, preloads), ``res``: a
    `sim.blocks.kv_swap.model.SwapRun` (statuses, device and host commands).
    """
    tags = [req[0].tag for req in w.requests]
    assert len(set(tags)) == len(tags), "the scoreboard needs distinct tags"
    assert sorted(t for _, t, _ in res.statuses) == sorted(tags), "one status per request"
    status = {t: e for _, t, e in res.statuses}
    expect: dict[int, list[tuple[int, int]]] = {SwapDir.IN: [], SwapDir.OUT: []}  # writes by direction
    bw = p.block_words
    for req in w.requests:
        tag, d = req[0].tag, req[0].direction
        first = request_error(p, d, [(r.src, r.dst, r.count) for r in req])
        if first != SwapError.OK:
            assert status[tag] == first, (tag, status[tag], first)
            continue
        assert status[tag] in (SwapError.OK, SwapError.ABORTED), (tag, status[tag])
        if status[tag] != SwapError.OK:
            continue
        src_mem = w.dev_preload if d == SwapDir.OUT else w.host_preload
        for r in req:
            expect[d].extend((r.dst * bw + i, src_mem[r.src * bw + i]) for i in range(r.count * bw))
    for cmds, d in ((res.dev_cmds, SwapDir.IN), (res.host_cmds, SwapDir.OUT)):
        assert [(c[1], c[3]) for c in cmds if c[2]] == expect[d], "the writes, in order, are the OK requests' words"
    for final, pre, d in ((dev_mem, w.dev_preload, SwapDir.IN), (host_mem, w.host_preload, SwapDir.OUT)):
        if final is not None:
            assert final == {**pre, **dict(expect[d])}
