"""Speed of every target, side by side (``llmarch bench``): a benchmark, not a study.

`run_bench` runs each registered block's standard stimulus (``blk.standard_stimulus(blk.default_params(),
seed, size)``, ``size`` = the block's ``bench_size`` unless overridden) on the reference, the cycle model and
the RTL through `sim.exec.run`, and writes ``targets.json`` (wall-clock figures live only there):

``blocks.<block>.<target>``
    ``wall_s`` (best of ``repeats`` runs through `sim.exec.run`), ``items_per_s`` (items: rows of the
    stimulus's timed input tables, those with a ``cycle`` column), ``cycles_per_s`` (model and RTL: the
    block's own cycle count per second), ``direct_s`` (the block's runner function alone, timed inside the
    same calls) and ``api_overhead`` (time through `sim.exec.run` over the runner's time in the same call,
    minus 1, the least of the repeats: both times see the same machine load, so machine noise cancels).
``blocks.<block>.model_over_rtl``
    The model's speed over the RTL's (items per second; > 1: the model is faster).
``blocks.<block>.cycles_exact`` / ``agreement``
    `sim.exec.agree` of the RTL with the model: data and every cycle equal / the comparison's figures;
    ``reference_ok``: the model's data equal the reference's.
``blocks.<block>.api_overhead``
    The largest overhead of `sim.exec.run` over the targets.
``blocks.<block>.bare`` / ``rtl_over_bare``
    Where the block has a bare Verilator C++ loop (`BARE_LOOPS`, `sim.rtl.bare`): its ``loop_s`` (the cycle
    loop) and ``process_s`` (the whole process), best of ``repeats``, alternating with the block's cocotb
    replay timed the same way (``harness_s``: cocotb test start to ``done``, no scoreboard); ``agrees_with_rtl``
    (its results equal the RTL target's, cycles included). ``rtl_over_bare`` = ``harness_s / loop_s``, the
    harness's distance from the physical limit; ``rtl_wall_over_bare`` = RTL ``wall_s`` / bare ``process_s``,
    the same end to end (start-up, files and scoreboard included).
``event_core``
    `bench_events`: the event core against a bare ``heapq`` loop.

Each target is warmed up first on a small stimulus, so Verilator builds (cached) and one-time Verilog
generation are not in the figures. A block or target that fails is recorded as ``{"error": ...}``; the rest
still runs.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import itertools
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import sim.exec as ex
from sim.core import trace

STALLS = ex.Stalls(seed=1, backpressure=0.1)  # output backpressure of every bench run
WARMUP_SIZE = 64
Progress = Callable[[str], None]


# Bare Verilator loops ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BareLoop:
    """A block's bare Verilator C++ loop and its cocotb replay, timed the same way.

    ``bare(params, stimulus, stalls, work)`` returns ``(tables, cycles, loop_s, process_s)``;
    ``harness(params, stimulus, stalls, work)`` returns the cocotb replay's simulation seconds.
    """

    bare: Callable[[Any, trace.Trace, ex.Stalls, Path], tuple[dict[str, np.ndarray], int, float, float]]
    harness: Callable[[Any, trace.Trace, ex.Stalls, Path], float]


def _tracker_bare(p, stim: trace.Trace, stalls: ex.Stalls, work: Path):
    from sim.blocks.tracker.rtl import replay_bare

    ready = stalls.ready(0)
    res = replay_bare(p, stim["program"], stim["requests"], work, bp_seed=ready.seed, bp_prob=ready.prob)
    trig = trace.empty("triggers", len(res["triggers"]))
    trig["cycle"], trig["desc"], trig["entry"] = res["triggers"].T
    return {"triggers": trig}, res["cycles"], res["loop_s"], res["process_s"]


def _tracker_harness(p, stim: trace.Trace, stalls: ex.Stalls, work: Path) -> float:
    from sim.blocks.tracker.rtl import replay_harness

    ready = stalls.ready(0)
    res = replay_harness(p, stim["program"], stim["requests"], work, bp_seed=ready.seed, bp_prob=ready.prob,
                         scoreboard=False)
    return float(res["wall_s"])


BARE_LOOPS: dict[str, BareLoop] = {"tracker": BareLoop(_tracker_bare, _tracker_harness)}


# Blocks ----------------------------------------------------------------------------------------------------

def items_of(blk: ex.Block, stim: trace.Trace) -> int:
    """Rows of the stimulus's timed input tables (all its rows if none is timed)."""
    timed = [n for n, kind in blk.stimulus.items() if "cycle" in (trace.TABLE_KINDS[kind].names or ())]
    return sum(len(stim[n]) for n in (timed or list(blk.stimulus)))


def _timing(blk: ex.Block) -> tuple[ex.Block, list[float]]:
    """``blk`` with its runners timed: each call appends its seconds to the returned list."""
    spent: list[float] = []

    def timed(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent.append(time.perf_counter() - t0)
        return run

    return dataclasses.replace(blk, reference=timed(blk.reference), model=timed(blk.model), rtl=timed(blk.rtl)), spent


def _rate(n: float, s: float) -> float | None:
    return n / s if s > 0 else None


def _bench_target(blk: ex.Block, target: ex.Target, params, stim: trace.Trace, items: int, repeats: int,
                  work: Path) -> tuple[dict[str, Any], ex.Result]:
    """Best of ``repeats`` runs through `sim.exec.run`, each also timing the runner inside it; the last result."""
    small = blk.standard_stimulus(params, 0, WARMUP_SIZE)
    ex.run(blk, small, target, params, STALLS, work=work / "warmup")
    timed, spent = _timing(blk)
    best_api = best_direct = overhead = math.inf
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = ex.run(timed, stim, target, params, STALLS, work=work)
        api = time.perf_counter() - t0
        direct = spent.pop()
        best_api, best_direct = min(best_api, api), min(best_direct, direct)
        overhead = min(overhead, api / direct - 1.0)
    out: dict[str, Any] = {"wall_s": best_api, "items_per_s": _rate(items, best_api), "direct_s": best_direct,
                           "api_overhead": overhead}
    if result.cycles is not None:
        out["cycles"] = result.cycles
        out["cycles_per_s"] = _rate(result.cycles, best_api)
    return out, result


def _bench_bare(name: str, blk: ex.Block, params, stim: trace.Trace, items: int, rtl: ex.Result | None,
                repeats: int, work: Path) -> dict[str, Any]:
    loop = BARE_LOOPS[name]
    small = blk.standard_stimulus(params, 0, WARMUP_SIZE)
    loop.bare(params, small, STALLS, work / "warmup-bare")
    loop.harness(params, small, STALLS, work / "warmup-harness")
    best_loop = best_proc = best_harness = math.inf
    tables, cycles = None, None
    for _ in range(repeats):
        tables, cycles, loop_s, proc_s = loop.bare(params, stim, STALLS, work / "bare")
        best_loop, best_proc = min(best_loop, loop_s), min(best_proc, proc_s)
        best_harness = min(best_harness, loop.harness(params, stim, STALLS, work / "harness"))
    out: dict[str, Any] = {"loop_s": best_loop, "process_s": best_proc, "cycles": cycles,
                           "cycles_per_s": _rate(cycles, best_loop), "items_per_s": _rate(items, best_loop),
                           "harness_s": best_harness, "harness_cycles_per_s": _rate(cycles, best_harness)}
    if rtl is not None:
        bare_res = ex.Result(name, ex.Target.RTL, tables, cycles, best_loop)
        out["agrees_with_rtl"] = ex.agree(bare_res, rtl).ok()
    return out


def bench_block(name: str, *, size: int | None = None, seed: int = 1, repeats: int = 3,
                progress: Progress | None = None) -> dict[str, Any]:
    """The ``blocks.<name>`` entry of `run_bench` (see the module docstring)."""
    say = progress or (lambda msg: None)
    blk = ex.get(name)
    params = blk.default_params()
    n = size if size is not None else blk.bench_size
    stim = blk.standard_stimulus(params, seed, n)
    items = items_of(blk, stim)
    out: dict[str, Any] = {"size": n, "items": items, "seed": seed, "params": params.as_dict()}
    results: dict[ex.Target, ex.Result] = {}
    with tempfile.TemporaryDirectory(prefix=f"llmarch-bench-{name}-") as tmp:
        work = Path(tmp)
        for target in ex.Target:
            say(f"bench {name}: {target} on {items} items")
            try:
                out[str(target)], results[target] = _bench_target(blk, target, params, stim, items, repeats,
                                                                  work / str(target))
            except Exception as exc:  # noqa: BLE001 - one failing target must not stop the bench
                out[str(target)] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        model, rtl, ref = (results.get(t) for t in (ex.Target.MODEL, ex.Target.RTL, ex.Target.REFERENCE))
        speeds = {t: out[str(t)].get("items_per_s") for t in (ex.Target.MODEL, ex.Target.RTL)}
        out["model_over_rtl"] = (speeds[ex.Target.MODEL] / speeds[ex.Target.RTL]
                                 if speeds[ex.Target.MODEL] and speeds[ex.Target.RTL] else None)
        if model is not None and rtl is not None:
            agreement = ex.agree(rtl, model)
            out["cycles_exact"] = agreement.ok()
            out["agreement"] = {k: v for k, v in agreement.as_dict().items() if k != "per_table"}
        else:
            out["cycles_exact"] = None
        out["reference_ok"] = (ex.agree(model, ref).data_mismatches == 0
                               if model is not None and ref is not None else None)
        overheads = [out[str(t)]["api_overhead"] for t in ex.Target if "api_overhead" in out[str(t)]]
        out["api_overhead"] = max(overheads) if overheads else None
        out["bare"] = out["rtl_over_bare"] = out["rtl_wall_over_bare"] = None
        if name in BARE_LOOPS:
            say(f"bench {name}: bare Verilator loop and cocotb harness, side by side")
            try:
                bare = _bench_bare(name, blk, params, stim, items, rtl, repeats, work / "bare")
                out["bare"] = bare
                out["rtl_over_bare"] = bare["harness_s"] / bare["loop_s"]
                if "wall_s" in out["rtl"]:
                    out["rtl_wall_over_bare"] = out["rtl"]["wall_s"] / bare["process_s"]
            except Exception as exc:  # noqa: BLE001
                out["bare"] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    return out


# The event core --------------------------------------------------------------------------------------------

_DELAYS = [1 + (i * 7919) % 16 for i in range(1024)]


def _events_inline(n: int, procs: int) -> float:
    """Bare loop, callbacks push onto the heap themselves: the floor."""
    heap: list = []
    count = itertools.count()
    push, pop = heapq.heappush, heapq.heappop
    now = [0]
    left = [n - procs]

    def ev(k: int) -> None:
        if left[0] > 0:
            left[0] -= 1
            push(heap, (now[0] + _DELAYS[k & 1023], k % 3, next(count), ev, (k + 1,)))

    for p in range(procs):
        push(heap, (p, 0, next(count), ev, (p,)))
    t0 = time.perf_counter()
    while heap:
        t, _, _, fn, args = pop(heap)
        now[0] = t
        fn(*args)
    return time.perf_counter() - t0


def _events_bare(n: int, procs: int) -> float:
    """Bare loop, callbacks schedule through a plain function with `EventLoop.after`'s signature."""
    heap: list = []
    count = itertools.count()
    push, pop = heapq.heappush, heapq.heappop
    now = [0]
    left = [n - procs]

    def after(delay: int, fn, *args, priority: int = 0) -> None:
        push(heap, (now[0] + delay, priority, next(count), fn, args))

    def ev(k: int) -> None:
        if left[0] > 0:
            left[0] -= 1
            after(_DELAYS[k & 1023], ev, k + 1, priority=k % 3)

    for p in range(procs):
        push(heap, (p, 0, next(count), ev, (p,)))
    t0 = time.perf_counter()
    while heap:
        t, _, _, fn, args = pop(heap)
        now[0] = t
        fn(*args)
    return time.perf_counter() - t0


def _events_loop(n: int, procs: int, handles: bool) -> float:
    from sim.core.events import EventLoop

    loop = EventLoop()
    after = loop.after if handles else loop.post_after
    left = [n - procs]

    def ev(k: int) -> None:
        if left[0] > 0:
            left[0] -= 1
            after(_DELAYS[k & 1023], ev, k + 1, priority=k % 3)

    for p in range(procs):
        loop.at(p, ev, p)
    t0 = time.perf_counter()
    loop.run()
    elapsed = time.perf_counter() - t0
    if loop.events_run != n:
        raise RuntimeError(f"the event loop ran {loop.events_run} events, not {n}")
    return elapsed


def bench_events(n: int = 200_000, repeats: int = 5, procs: int = 64) -> dict[str, Any]:
    """Event rate of `sim.core.events.EventLoop` against a bare ``heapq`` loop with the same order.

    Workload: ``procs`` processes, each event reschedules its process 1..16 time units later with priority
    0..2, ``n`` events in all (a minimal callback: the core's own cost dominates). Best of ``repeats``, the
    variants alternating. ``bare``: heap of ``(time, priority, seq, fn, args)`` tuples, callbacks schedule
    through a plain function of `after`'s signature; ``loop``: `EventLoop.post_after` (no handle);
    ``loop_handles``: `EventLoop.after` (returns a cancellable handle); ``inline``: the bare loop with the
    ``heappush`` written into the callback (no call at all). Ratios are times over the bare loop's.
    """
    fns = {"bare": lambda: _events_bare(n, procs), "loop": lambda: _events_loop(n, procs, False),
           "loop_handles": lambda: _events_loop(n, procs, True), "inline": lambda: _events_inline(n, procs)}
    best = dict.fromkeys(fns, math.inf)
    for _ in range(repeats):
        for k, fn in fns.items():
            best[k] = min(best[k], fn())
    return {"events": n, "repeats": repeats,
            **{f"{k}_events_per_s": n / t for k, t in best.items()},
            "loop_over_bare": best["loop"] / best["bare"],
            "loop_handles_over_bare": best["loop_handles"] / best["bare"],
            "bare_over_inline": best["bare"] / best["inline"]}


# The whole bench -----------------------------------------------------------------------------------------

def _clean(x: Any) -> Any:
    """JSON-safe: NaN and infinities become None, numpy scalars plain numbers."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` with `sim.core.results.write_json`, non-finite figures (a ratio over a zero time) as null."""
    from sim.core.results import write_json as write

    write(path, _clean(data))
    return path


def _host() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        verilator = version("verilator")
    except PackageNotFoundError:  # pragma: no cover - dev extra missing
        verilator = None
    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "verilator": verilator, "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def run_bench(out: Path, block: str | None = None, progress: Progress | None = None, *, size: int | None = None,
              seed: int = 1, repeats: int = 3, event_size: int = 200_000) -> dict[str, Any]:
    """Benchmark ``block`` (default: every registered block) and the event core; write ``out/targets.json``.

    ``size`` overrides every block's ``bench_size``; ``event_size`` is the event count of `bench_events`
    (0 skips it). Returns what it writes (see the module docstring).
    """
    say = progress or (lambda msg: None)
    names = [ex.get(block).name] if block is not None else list(ex.blocks())
    result: dict[str, Any] = {"kind": "llmarch-bench", "version": 1, "host": _host(), "repeats": repeats,
                              "stalls": {"seed": STALLS.seed, "backpressure": STALLS.backpressure},
                              "bare_loops": sorted(BARE_LOOPS), "blocks": {}}
    for name in names:
        try:
            result["blocks"][name] = bench_block(name, size=size, seed=seed, repeats=repeats, progress=say)
        except Exception as exc:  # noqa: BLE001 - a broken block must not stop the others
            result["blocks"][name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    if event_size:
        say(f"bench event core: {event_size} events")
        result["event_core"] = bench_events(event_size, repeats=max(repeats, 7))
    result = _clean(result)
    write_json(Path(out) / "targets.json", result)
    return result


def _fmt(rate: float | None, unit: str = "") -> str:
    if rate is None:
        return "-"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if rate >= div:
            return f"{rate / div:.3g}{suffix}{unit}"
    return f"{rate:.3g}{unit}"


def summary(result: dict[str, Any]) -> str:
    """One line per block (and one for the event core) of a `run_bench` result."""
    lines = []
    for name, b in result.get("blocks", {}).items():
        if "error" in b:
            lines.append(f"{name}: error: {b['error'].splitlines()[0]}")
            continue
        parts = [f"{name}: {b['items']} items"]
        for t in ("reference", "model", "rtl"):
            d = b.get(t, {})
            if "error" in d:
                parts.append(f"{t} error")
            else:
                cyc = f" ({_fmt(d['cycles_per_s'], 'cyc/s')})" if d.get("cycles_per_s") else ""
                parts.append(f"{t} {_fmt(d.get('items_per_s'), '/s')}{cyc}")
        if b.get("model_over_rtl") is not None:
            parts.append(f"model/rtl {b['model_over_rtl']:.2f}x")
        parts.append({True: "cycles exact", False: "CYCLES DIFFER", None: "cycles not compared"}[b.get("cycles_exact")])
        if b.get("api_overhead") is not None:
            parts.append(f"api {b['api_overhead']:+.1%}")
        bare = b.get("bare")
        if bare and "error" not in bare:
            parts.append(f"bare {_fmt(bare['cycles_per_s'], 'cyc/s')}, harness/bare {b['rtl_over_bare']:.2f}x"
                         + ("" if bare.get("agrees_with_rtl", True) else " (BARE DIFFERS)"))
        elif bare:
            parts.append("bare error")
        lines.append(", ".join(parts))
    ev = result.get("event_core")
    if ev:
        lines.append(f"event core: {_fmt(ev['loop_events_per_s'], ' ev/s')} vs bare heapq "
                     f"{_fmt(ev['bare_events_per_s'], ' ev/s')} ({ev['loop_over_bare']:.2f}x the time; "
                     f"with handles {ev['loop_handles_over_bare']:.2f}x)")
    return "\n".join(lines)
