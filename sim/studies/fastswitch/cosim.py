"""Co-simulation of the KV swap controller on a window of the FastSwitch scheduler's swaps.

The serving engine (`sw_stack.serving.ServingEngine` with ``record_swaps``) logs its first swaps as
`SwapRecord`\\ s. A short window of them is replayed into `hw.kv_swap.KvSwapController` on Verilator (through
`sim.blocks.kv_swap.rtl`) and into its cycle model (`sim.blocks.kv_swap.model.KvSwapModel`) with the same offer cycles
and the same seeded backpressure on ``status``:

Scale-down
    One engine block (every layer's K and V) becomes one controller block of ``block_words`` words: the layer
    and K/V dimension is collapsed, so a copy of ``n`` engine blocks is one run of ``n`` blocks (split only at
    the run record's count limit, where the pieces stay adjacent and coalesce again). The touched block numbers
    of each pool are renumbered densely but keep their adjacency (`remap_blocks`), so the controller coalesces
    exactly what it would coalesce on the engine's numbering.
Link
    In the study (`sim.systems.swap_cost.ControllerSwapCost`) each copy is sent once per layer and K/V as bursts of at
    most ``burst_units`` copy units (one 16-token block of one layer's K or V), each burst paying the link's
    per-transfer overhead. One controller block here stands for one copy unit, so the replay uses
    ``max_burst_blocks = burst_units`` and a per-burst overhead with the study's ratio of overhead to one
    unit's transfer time (`scaled_link`)::

        overhead_cycles = round(link.overhead_cycles * link.words_per_cycle / unit_words
                                * block_words / RTL_WORDS_PER_CYCLE)

    (the RTL memories move one word per cycle). A swap's replayed duration in cycles is then the study's divided
    by ``2 * layers * unit_words / (block_words * link.words_per_cycle)``, up to the controller's few bookkeeping
    cycles per burst and the memories' latency.
Hazards
    The controller serves swap-ins before swap-outs, so a swap must not be offered before every earlier swap it
    conflicts with (one writes a block the other reads or writes, in either pool) has completed. `schedule`
    runs the model once with that gating to fix each run's offer cycle, then the model and the RTL are both
    replayed with those cycles. Runs are offered in window order, so a gated swap also holds back later ones.
Checks
    Both memories are preloaded with distinct words; numpy applies the swaps in window order (which the gating
    makes equal to any order the controller may choose) and every word of both pools read back from the RTL
    (and held by the model) is compared with it. The recorded write commands must write each destination word
    exactly as often as the window's swaps do, and nothing else. Each swap's completion (its status) on the RTL
    is compared with the model's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hw.kv_swap import KvSwapParams, SwapDir
from hw.memory import MemoryParams
from sim.blocks.kv_swap.model import HostLinkModel, KvSwapModel, Run, SimpleMemoryModel, SwapRun, run_kv_swap
from sim.core.stimulus import ReadyPattern, mix32
from sim.exec.api import completion_errors

if TYPE_CHECKING:
    from sim.systems.swap_cost import ControllerSwapCost
    from sw_stack.serving.engine import SwapRecord

WINDOW_SWAPS = 48  # swaps replayed by default: ~30k words of transfers, a few seconds on Verilator
BLOCK_WORDS = 16  # words per controller block: 27 cycles of per-burst overhead for the LLaMA/Qwen setups
CAPACITY_BLOCKS = 4096  # blocks per pool; fixed so that one Verilator build serves every window
RTL_WORDS_PER_CYCLE = 1.0  # the harness memories serve one word per cycle
TAG_BITS = 6
COUNT_BITS = 8
RUN_DEPTH = 64  # runs per direction; a swap with more runs than this is left out of the window
DEV_MEM = dict(latency=4, interval=1, queue_depth=4, rsp_depth=8)
HOST_MEM = dict(latency=8, interval=1, queue_depth=4, rsp_depth=16)
POOLS = ("gpu", "cpu")


@dataclass
class SwapWindow:
    """What `sim.studies.fastswitch.study.run_setup` records for the co-simulation: the first ``swaps`` swaps of
    ``system`` and its pool sizes (filled in by the run)."""

    swaps: int
    system: str = "fastswitch"
    records: list[SwapRecord] = field(default_factory=list)
    gpu_blocks: int = 0
    cpu_blocks: int = 0


@dataclass
class WindowPlan:
    """A scaled-down swap window, ready to replay.

    ``swaps[k]`` is the ``k``-th swap's ``(direction, runs)`` with runs ``(src, dst, count)`` in controller
    blocks; ``deps[k]`` the earlier swaps it must wait for; ``gaps`` the idle cycles drawn before each run;
    ``offers`` (set by `schedule`) each run's offer cycle; ``dev_words``/``host_words`` the pool words checked.
    """

    params: KvSwapParams
    dev_mem: MemoryParams
    host_mem: MemoryParams
    overhead_cycles: int
    swaps: list[tuple[int, list[tuple[int, int, int]]]]
    deps: list[list[int]]
    gaps: list[int]
    dev_words: int
    host_words: int
    dev_preload: np.ndarray
    host_preload: np.ndarray
    expect_dev: np.ndarray
    expect_host: np.ndarray
    status_seed: int
    status_backpressure: float
    skipped: int = 0
    offers: list[int] = field(default_factory=list)

    def runs(self) -> list[Run]:
        """The run records in offer order; swap ``k`` has tag ``k mod 2**tag_bits``."""
        out = []
        for k, (d, runs) in enumerate(self.swaps):
            tag = k % (1 << self.params.tag_bits)
            out += [Run(tag, d, s, t, n, i == len(runs) - 1) for i, (s, t, n) in enumerate(runs)]
        return out

    def timed_runs(self) -> list[tuple[int, Run]]:
        return list(zip(self.offers, self.runs(), strict=True))

    def first_run(self) -> list[int]:
        """Index (in `runs`) of each swap's first run."""
        starts, i = [], 0
        for _, runs in self.swaps:
            starts.append(i)
            i += len(runs)
        return starts

    def status_ready(self) -> ReadyPattern:
        return ReadyPattern(self.status_seed, self.status_backpressure)


# --- scale-down ------------------------------------------------------------------------------------------------

def remap_blocks(blocks: Sequence[int] | set[int]) -> tuple[dict[int, int], int]:
    """Dense renumbering of ``blocks`` that keeps adjacency: sorted, consecutive numbers stay consecutive and any
    gap becomes exactly one unused block. Returns the map and the renumbered pool size."""
    out: dict[int, int] = {}
    prev = nxt = None
    for b in sorted(set(blocks)):
        nxt = 0 if prev is None else nxt + (1 if b == prev + 1 else 2)
        out[b] = nxt
        prev = b
    return out, 0 if nxt is None else nxt + 1


def scaled_link(cost: ControllerSwapCost, unit_bytes: int, block_words: int) -> tuple[int, int]:
    """``(max_burst_blocks, overhead_cycles)`` of the replay for the study's link (see the module docstring)."""
    unit_words = unit_bytes // 4
    burst_units = max(1, min(256, cost.params.burst_words // unit_words))
    unit_cycles = unit_words / cost.link.words_per_cycle
    overhead = round(cost.link.overhead_cycles / unit_cycles * block_words / RTL_WORDS_PER_CYCLE)
    return burst_units, overhead


def _touched(rec: SwapRecord) -> tuple[set[int], set[int]]:
    """GPU-pool and CPU-pool blocks of one swap."""
    src, dst = _blocks_of(rec.copies, 0), _blocks_of(rec.copies, 1)
    return (src, dst) if rec.direction == "out" else (dst, src)


def _blocks_of(runs: Sequence[tuple[int, int, int]], side: int) -> set[int]:
    return {b for r in runs for b in range(r[side], r[side] + r[2])}


def dependencies(swaps: Sequence[tuple[int, list[tuple[int, int, int]]]]) -> list[list[int]]:
    """For each swap, the earlier swaps it conflicts with: one of the two writes a block (device or host) that the
    other reads or writes."""
    acc = []  # (reads, writes) as sets of (pool, block); pool 0 = device, 1 = host
    deps = []
    for d, runs in swaps:
        src_pool, dst_pool = (0, 1) if d == SwapDir.OUT else (1, 0)
        reads = {(src_pool, b) for b in _blocks_of(runs, 0)}
        writes = {(dst_pool, b) for b in _blocks_of(runs, 1)}
        deps.append([j for j, (r, w) in enumerate(acc) if writes & (r | w) or reads & w])
        acc.append((reads, writes))
    return deps


def pool_words(pool: int, n: int, seed: int) -> np.ndarray:
    """``n`` distinct preload words of a pool (0 device, 1 host): the `sim.core.stimulus.mix32` bijection of
    ``pool << 24 | address``, salted by the seed, so no two words of either pool are equal."""
    x = (np.arange(n, dtype=np.uint64) | np.uint64(pool << 24)) ^ np.uint64(seed & 0xFFFFFF)
    return mix32(x).astype(np.uint32)  # works on uint64 arrays elementwise


def expected_memories(swaps: Sequence[tuple[int, list[tuple[int, int, int]]]], dev: np.ndarray, host: np.ndarray,
                      block_words: int) -> tuple[np.ndarray, np.ndarray]:
    """Both pools after the swaps, applied in order (copies of the preloads ``dev``/``host``)."""
    mem = [dev.copy(), host.copy()]
    for d, runs in swaps:
        src, dst = (mem[0], mem[1]) if d == SwapDir.OUT else (mem[1], mem[0])
        for s, t, n in runs:
            dst[t * block_words:(t + n) * block_words] = src[s * block_words:(s + n) * block_words]
    return mem[0], mem[1]


def plan_window(records: Sequence[SwapRecord], gpu_blocks: int, cpu_blocks: int, cost: ControllerSwapCost,
                unit_bytes: int, *, window: int = WINDOW_SWAPS, seed: int = 1, backpressure: float = 0.3,
                idle_prob: float = 0.2, block_words: int = BLOCK_WORDS,
                capacity_blocks: int = CAPACITY_BLOCKS) -> WindowPlan:
    """Scale the first ``window`` usable swaps of ``records`` down to controller runs (see the module docstring).

    A swap is left out (counted in ``skipped``) when the renumbered pools would outgrow ``capacity_blocks`` with
    it, or when it has more runs than a direction's run FIFO holds.
    """
    max_count = (1 << COUNT_BITS) - 1
    kept: list[SwapRecord] = []
    gpu: set[int] = set()
    cpu: set[int] = set()
    skipped = 0
    for rec in records:
        if len(kept) == window:
            break
        g, c = _touched(rec)
        if any(b >= gpu_blocks for b in g) or any(b >= cpu_blocks for b in c):
            raise ValueError(f"swap of conversation {rec.conv} names blocks outside the pools")
        nruns = sum(-(-n // max_count) for _, _, n in rec.copies)
        if (nruns > RUN_DEPTH or remap_blocks(gpu | g)[1] > capacity_blocks
                or remap_blocks(cpu | c)[1] > capacity_blocks):
            skipped += 1
            continue
        kept.append(rec)
        gpu |= g
        cpu |= c
    gmap, gsize = remap_blocks(gpu)
    cmap, csize = remap_blocks(cpu)
    swaps: list[tuple[int, list[tuple[int, int, int]]]] = []
    for rec in kept:
        d = SwapDir.OUT if rec.direction == "out" else SwapDir.IN
        smap, dmap = (gmap, cmap) if d == SwapDir.OUT else (cmap, gmap)
        runs = []
        for s, t, n in rec.copies:
            for a in range(0, n, max_count):
                k = min(max_count, n - a)
                runs.append((smap[s + a], dmap[t + a], k))  # contiguous ids stay contiguous
        swaps.append((int(d), runs))

    burst, overhead = scaled_link(cost, unit_bytes, block_words)
    shift = (capacity_blocks * block_words - 1).bit_length()
    params = KvSwapParams(block_words=block_words, max_burst_blocks=burst, dev_blocks=capacity_blocks,
                          host_blocks=capacity_blocks, block_bits=max(1, (capacity_blocks - 1).bit_length()),
                          count_bits=COUNT_BITS, dev_addr_bits=shift, host_addr_bits=shift, queue_depth=4,
                          run_depth=RUN_DEPTH, outstanding=16, tag_bits=TAG_BITS, status_depth=4)
    dev_mem = MemoryParams(addr_bits=shift, size_log2=shift, **DEV_MEM)
    host_mem = MemoryParams(addr_bits=shift, size_log2=shift, **HOST_MEM)
    rng = np.random.default_rng(seed)
    nruns = sum(len(r) for _, r in swaps)
    gaps = (rng.geometric(1.0 - idle_prob, nruns) - 1).tolist() if idle_prob > 0 else [0] * nruns
    dev_words, host_words = gsize * block_words, csize * block_words
    dev_pre, host_pre = pool_words(0, dev_words, seed), pool_words(1, host_words, seed)
    exp_dev, exp_host = expected_memories(swaps, dev_pre, host_pre, block_words)
    return WindowPlan(params, dev_mem, host_mem, overhead, swaps, dependencies(swaps), [int(g) for g in gaps],
                      dev_words, host_words, dev_pre, host_pre, exp_dev, exp_host, seed + 101, backpressure,
                      skipped)


# --- replays ---------------------------------------------------------------------------------------------------

def _models(plan: WindowPlan, overhead: int) -> tuple[SimpleMemoryModel, HostLinkModel]:
    return (SimpleMemoryModel(plan.dev_mem, dict(enumerate(plan.dev_preload.tolist()))),
            HostLinkModel(plan.host_mem, overhead, dict(enumerate(plan.host_preload.tolist()))))


def schedule(plan: WindowPlan, max_cycles: int = 5_000_000) -> list[int]:
    """Fix each run's offer cycle (sets ``plan.offers``) with a gated model pass.

    A swap's first run is offered ``gap`` cycles after the later of the previous run's offer and the cycle after
    the last status of the swaps it depends on; later runs ``gap`` cycles after the previous one. Replaying the
    model with these cycles reproduces this pass exactly.
    """
    runs = plan.runs()
    starts = set(plan.first_run())
    owner = [k for k, (_, r) in enumerate(plan.swaps) for _ in r]
    model = KvSwapModel(plan.params)
    dev, host = _models(plan, plan.overhead_cycles)
    ready = plan.status_ready().as_model_ready()
    out = SwapRun()
    pending: dict[int, deque[int]] = {}
    done: dict[int, int] = {}
    offers: list[int] = []
    i = seen = 0
    for t in range(max_cycles):
        if i == len(runs) and model.idle():
            plan.offers = offers
            return offers
        if i < len(runs) and len(offers) == i:
            prev = offers[-1] if offers else 0
            k = owner[i]
            if i not in starts:
                offers.append(prev + plan.gaps[i])
            elif all(j in done for j in plan.deps[k]):
                offers.append(max([prev] + [done[j] + 1 for j in plan.deps[k]]) + plan.gaps[i])
                pending.setdefault(runs[i].tag, deque()).append(k)
        r = runs[i] if len(offers) > i and offers[i] <= t else None
        took, _ = model.cycle(t, dev, host, r, None, ready is None or ready(t), out)
        i += took
        for c, tag, _ in out.statuses[seen:]:
            done[pending[tag].popleft()] = c
        seen = len(out.statuses)
        dev.step()
        host.step()
    raise RuntimeError(f"the gated KV swap model did not finish within {max_cycles} cycles")


def replay_model(plan: WindowPlan, overhead_cycles: int | None = None) -> tuple[SwapRun, np.ndarray, np.ndarray]:
    """The model on the planned offers (``overhead_cycles`` overrides the link's, to test the checks); returns
    the replay and both memories' final words."""
    dev, host = _models(plan, plan.overhead_cycles if overhead_cycles is None else overhead_cycles)
    res = run_kv_swap(plan.params, dev, host, plan.timed_runs(), (), plan.status_ready().as_model_ready())
    while not (dev.idle() and host.idle()):  # the last writes may still sit in a memory queue
        dev.step()
        host.step()
    mems = [np.array([m.mem.get(a, 0) for a in range(n)], dtype=np.uint32)
            for m, n in ((dev, plan.dev_words), (host, plan.host_words))]
    return res, mems[0], mems[1]


def replay_rtl(plan: WindowPlan, work: Path, max_cycles: int, waves: bool = False) -> dict[str, Any]:
    """The RTL on Verilator (`sim.blocks.kv_swap.rtl.run_kv_swap_rtl`) on the planned offers, cut after
    ``max_cycles`` cycles of replay."""
    from sim.blocks.kv_swap.rtl import run_kv_swap_rtl

    return run_kv_swap_rtl(plan.params, plan.dev_mem, plan.host_mem, plan.overhead_cycles,
                           dict(enumerate(plan.dev_preload.tolist())), dict(enumerate(plan.host_preload.tolist())),
                           plan.timed_runs(), (), work, status_seed=plan.status_seed,
                           status_bp=plan.status_backpressure, readback_words=(plan.dev_words, plan.host_words),
                           max_cycles=max_cycles, waves=waves)


# --- comparison ------------------------------------------------------------------------------------------------

def completions(plan: WindowPlan, statuses: Sequence[Sequence[int]]) -> tuple[list[int | None], int]:
    """Each swap's status cycle (None if it never came) and the number of non-zero error codes."""
    by_tag: dict[int, deque[int]] = {}
    for k in range(len(plan.swaps)):
        by_tag.setdefault(k % (1 << plan.params.tag_bits), deque()).append(k)
    out: list[int | None] = [None] * len(plan.swaps)
    errors = 0
    for c, tag, err in statuses:
        errors += err != 0
        if by_tag.get(tag):
            out[by_tag[tag].popleft()] = c
    return out, errors


def write_errors(plan: WindowPlan, dev_cmds: Sequence[Sequence[int]], host_cmds: Sequence[Sequence[int]]) -> int:
    """Destination words written more or less often than the window's swaps write them (other writes count too)."""
    bw = plan.params.block_words
    expect = [np.zeros(plan.dev_words, dtype=np.int64), np.zeros(plan.host_words, dtype=np.int64)]
    for d, runs in plan.swaps:
        dst = expect[1] if d == SwapDir.OUT else expect[0]
        for _, t, n in runs:
            dst[t * bw:(t + n) * bw] += 1
    bad = 0
    for cmds, exp in ((dev_cmds, expect[0]), (host_cmds, expect[1])):
        got = np.zeros(len(exp), dtype=np.int64)
        for c in cmds:
            if c[2]:
                if c[1] < len(exp):
                    got[c[1]] += 1
                else:
                    bad += 1
        bad += int(np.abs(got - exp).sum())
    return bad


def _mismatches(got: Sequence[int] | np.ndarray, expect: np.ndarray) -> int:
    got = np.asarray(got, dtype=np.uint64)
    n = min(len(got), len(expect))
    return int(np.count_nonzero(got[:n] != expect[:n].astype(np.uint64))) + abs(len(got) - len(expect))


def compare(plan: WindowPlan, rtl: dict[str, Any], model: tuple[SwapRun, np.ndarray, np.ndarray]) -> dict[str, Any]:
    """The co-simulation figures (keys in docs/results.md, ``fastswitch.json`` → ``cosim``)."""
    mres, mdev, mhost = model
    rtl_done, rtl_errors = completions(plan, rtl["statuses"])
    model_done, model_errors = completions(plan, mres.statuses)
    blocks = sum(n for _, runs in plan.swaps for _, _, n in runs)
    words = blocks * plan.params.block_words
    rtl_cmds = [tuple(c) for c in rtl["dev_cmds"]], [tuple(c) for c in rtl["host_cmds"]]
    cmd_diff = sum(sum(a != b for a, b in zip(x, y, strict=False)) + abs(len(x) - len(y))
                   for x, y in ((rtl_cmds[0], mres.dev_cmds), (rtl_cmds[1], mres.host_cmds)))
    return {
        "swaps": len(plan.swaps),
        "swaps_out": sum(d == SwapDir.OUT for d, _ in plan.swaps),
        "swaps_in": sum(d == SwapDir.IN for d, _ in plan.swaps),
        "swaps_skipped": plan.skipped,
        "gated_swaps": sum(bool(d) for d in plan.deps),
        "runs": sum(len(r) for _, r in plan.swaps),
        "bursts": sum(1 for c in rtl["host_cmds"] if c[4]),
        "blocks_moved": blocks,
        "words_moved": words,
        "block_words": plan.params.block_words,
        "max_burst_blocks": plan.params.max_burst_blocks,
        "overhead_cycles": plan.overhead_cycles,
        "status_backpressure": plan.status_backpressure,
        "pool_blocks": {"gpu": plan.dev_words // plan.params.block_words,
                        "cpu": plan.host_words // plan.params.block_words},
        "cycles_rtl": int(rtl["cycles"]),
        "cycles_model": int(mres.cycles),
        "words_per_cycle_rtl": words / max(1, int(rtl["cycles"])),
        **completion_errors(rtl_done, model_done),
        "data_mismatches": _mismatches(rtl["dev_mem"], plan.expect_dev) + _mismatches(rtl["host_mem"],
                                                                                      plan.expect_host),
        "model_data_mismatches": _mismatches(mdev, plan.expect_dev) + _mismatches(mhost, plan.expect_host),
        "words_checked": plan.dev_words + plan.host_words,
        "write_errors": write_errors(plan, rtl["dev_cmds"], rtl["host_cmds"]),
        "model_write_errors": write_errors(plan, mres.dev_cmds, mres.host_cmds),
        "command_mismatches": cmd_diff,
        "missing_statuses": sum(r is None for r in rtl_done),
        "status_errors": rtl_errors,
        "model_status_errors": model_errors,
    }


def cosim_swap_window(records: Sequence[SwapRecord], gpu_blocks: int, cpu_blocks: int, cost: ControllerSwapCost,
                      unit_bytes: int, work: Path, *, seed: int = 1, backpressure: float = 0.3,
                      idle_prob: float = 0.2, window: int = WINDOW_SWAPS, block_words: int = BLOCK_WORDS,
                      setup: str = "", system: str = "fastswitch", waves: bool = False) -> dict[str, Any]:
    """Replay a window of ``records`` on the RTL and the model; return the figures (no assertions: the caller
    judges ``data_mismatches`` and ``max_cycle_error``)."""
    plan = plan_window(records, gpu_blocks, cpu_blocks, cost, unit_bytes, window=window, seed=seed,
                       backpressure=backpressure, idle_prob=idle_prob, block_words=block_words)
    schedule(plan)
    model = replay_model(plan)
    rtl = replay_rtl(plan, work, max_cycles=2 * model[0].cycles + 10_000, waves=waves)
    res = {"setup": setup, "system": system, "seed": seed}
    res.update(compare(plan, rtl, model))
    return res
