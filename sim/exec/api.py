"""The execution API: one description of the work, every target, one call.

A *block* (`Block`, registered in `BLOCKS`) names its parameter class, its RTL component, and three runners
that take the same stimulus and return the same result tables:

``reference``  numpy, untimed: what the answer is (data tables without their ``cycle`` column);
``model``      the cycle model: when it happens (the tables with cycles);
``rtl``        the Amaranth RTL converted to Verilog and run on Verilator (the tables with cycles).

The stimulus is a `sim.core.trace.Trace` whose tables are of the block's stimulus kinds and whose ``meta``
holds the test environment (memory timing, number of devices, ...); the result (`Result`) holds tables of the
block's result kinds. `run` is the one entry point; `agree` compares any two results of one block.

Stalls: input idles are in the stimulus (a request is available from its ``cycle``); output backpressure is a
`Stalls` pattern, the same stateless hash on every target (`sim.core.stimulus.ReadyPattern`), port ``i`` of a
block using ``Stalls.ready(i)``.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hw.params import BlockParams
from sim.core import trace
from sim.core.stimulus import ReadyPattern, mix32


class Target(enum.StrEnum):
    REFERENCE = "reference"
    MODEL = "model"
    RTL = "rtl"


@dataclass(frozen=True)
class Stalls:
    """Seeded output backpressure: each output port is not ready with probability ``backpressure``."""

    seed: int = 0
    backpressure: float = 0.0

    def ready(self, port: int = 0) -> ReadyPattern:
        return ReadyPattern(mix32(self.seed * 0x9E3779B1 + port), self.backpressure)


Tables = dict[str, np.ndarray]


@dataclass(frozen=True)
class ResultTable:
    """A result table of a block: its trace kind and whether its rows come in a defined order.

    Rows of an ``ordered`` table are compared in order; an unordered table's rows (e.g. packets of channels
    that interleave by timing) are compared as a multiset by the reference, in order between timed targets.
    """

    kind: str
    ordered: bool = True


@dataclass(frozen=True)
class Block:
    """One hardware block as every target sees it (see the module docstring)."""

    name: str
    module: str                                   # Verilog module (and file) name
    params: type[BlockParams]
    component: Callable[[Any], Any]               # params -> the Amaranth component (synthesizable RTL)
    stimulus: Mapping[str, str]                   # stimulus table name -> trace kind
    results: Mapping[str, ResultTable]
    reference: Callable[[Any, trace.Trace], Tables]
    model: Callable[[Any, trace.Trace, Stalls], tuple[Tables, int]]
    rtl: Callable[..., tuple[Tables, int]]        # (params, stimulus, stalls, work, waves) -> (tables, cycles)
    standard_stimulus: Callable[[Any, int, int], trace.Trace]  # (params, seed, size) -> stimulus
    test_params: Callable[[], Any] | None = None  # small parameters for the generic tests (None: the defaults)
    test_size: int = 2000                           # stimulus size of the generic agreement test
    bench_size: int = 100_000                       # stimulus size of `llmarch bench`
    doc: str = ""

    def default_params(self) -> BlockParams:
        return self.params()

    def small_params(self) -> BlockParams:
        return self.test_params() if self.test_params is not None else self.params()


@dataclass
class Result:
    """What one target produced for one stimulus; ``cycles`` is None on the reference."""

    block: str
    target: Target
    tables: Tables
    cycles: int | None
    wall_s: float
    meta: dict[str, Any] = field(default_factory=dict)

    def trace(self) -> trace.Trace:
        """The result as a trace (kinds from the block's result tables)."""
        blk = BLOCKS[self.block]
        t = trace.Trace(clock_hz=1.0, producer=f"sim.exec:{self.block}:{self.target}",
                        meta={"target": str(self.target), "cycles": self.cycles, **self.meta})
        for name, arr in self.tables.items():
            t.add(name, blk.results[name].kind, arr)
        return t


BLOCKS: dict[str, Block] = {}


class UnknownBlock(KeyError):
    pass


def register(block: Block) -> Block:
    if block.name in BLOCKS:
        raise ValueError(f"block {block.name!r} is registered twice")
    BLOCKS[block.name] = block
    return block


def get(name: str | Block) -> Block:
    if isinstance(name, Block):
        return name
    import sim.blocks  # noqa: F401  (importing the package registers every block)

    try:
        return BLOCKS[name]
    except KeyError:
        raise UnknownBlock(f"unknown block {name!r}; known: {', '.join(sorted(BLOCKS))}") from None


def run(block: str | Block, stimulus: trace.Trace, target: Target | str, params: BlockParams | None = None,
        stalls: Stalls = Stalls(), *, work: Path | None = None, waves: bool = False) -> Result:
    """Run ``stimulus`` on ``target`` and return its result tables.

    ``work`` is the RTL run's working directory (default: a temporary one, removed after); ``waves`` also makes the RTL
    run dump a VCD wave file there (``dump.vcd``; RTL only).
    """
    blk = get(block)
    target = Target(target)
    params = params if params is not None else blk.default_params()
    if not isinstance(params, blk.params):
        raise TypeError(f"block {blk.name} takes {blk.params.__name__}, not {type(params).__name__}")
    t0 = time.perf_counter()
    if target is Target.REFERENCE:
        tables, cycles = blk.reference(params, stimulus), None
    elif target is Target.MODEL:
        tables, cycles = blk.model(params, stimulus, stalls)
    elif work is not None:
        tables, cycles = blk.rtl(params, stimulus, stalls, work, waves)
    else:
        if waves:
            raise ValueError("waves need a work directory to be written to (work=...)")
        import tempfile

        with tempfile.TemporaryDirectory(prefix=f"llmarch-{blk.name}-") as tmp:
            tables, cycles = blk.rtl(params, stimulus, stalls, Path(tmp), waves)
    wall = time.perf_counter() - t0
    expected = set(blk.results)
    if set(tables) != expected:
        raise RuntimeError(f"{blk.name} on {target} returned tables {sorted(tables)}, expected {sorted(expected)}")
    for name, arr in tables.items():
        kind = blk.results[name].kind
        if target is Target.REFERENCE:
            names = [n for n in trace.TABLE_KINDS[kind].names if n != "cycle"]
            arr = np.asarray(arr)
            if list(arr.dtype.names or ()) != names:
                raise RuntimeError(f"{blk.name} reference table {name!r} has columns {arr.dtype.names}, "
                                   f"expected {names}")
        else:
            tables[name] = np.asarray(arr, dtype=trace.TABLE_KINDS[kind])
    return Result(blk.name, target, tables, cycles, wall)


def data_view(kind: str, arr: np.ndarray) -> np.ndarray:
    """The table without its ``cycle`` column, as a plain structured array (what the reference returns)."""
    names = [n for n in trace.TABLE_KINDS[kind].names if n != "cycle"]
    dt = np.dtype([(n, trace.TABLE_KINDS[kind][n]) for n in names])
    out = np.empty(len(arr), dt)
    for n in names:
        out[n] = arr[n]
    return out


@dataclass
class Agreement:
    """How two results of one block compare; one definition for every agreement test and co-simulation.

    ``data_mismatches``: rows whose data columns differ, plus rows only one side has. ``cycle_mismatches``:
    paired rows whose ``cycle`` differs (both sides timed). ``max_cycle_error``: the largest
    ``|a - b| / max(b, 1)`` over paired rows (``b`` is the second result, the reference side: the model in
    model-vs-RTL); a row only one side has counts as a data mismatch, never as an infinite error. ``missing``:
    rows only one side has.
    """

    rows: int = 0
    data_mismatches: int = 0
    cycle_mismatches: int = 0
    missing: int = 0
    max_cycle_error: float = 0.0
    cycles: tuple[int | None, int | None] = (None, None)
    per_table: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ok(self, cycle_bound: float = 0.0) -> bool:
        """Data equal everywhere and every cycle within ``cycle_bound`` (0: exact)."""
        exact = cycle_bound == 0.0 and self.cycle_mismatches == 0
        return self.data_mismatches == 0 and (exact or (cycle_bound > 0 and self.max_cycle_error <= cycle_bound))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"cycles": list(self.cycles)}

    def add(self, name: str, rows: int, data: int, cycle: int, missing: int, err: float) -> None:
        self.rows += rows
        self.data_mismatches += data
        self.cycle_mismatches += cycle
        self.missing += missing
        self.max_cycle_error = max(self.max_cycle_error, err)
        self.per_table[name] = {"rows": rows, "data_mismatches": data, "cycle_mismatches": cycle,
                                "missing": missing, "max_cycle_error": err}


def cycle_error(a: int, b: int) -> float:
    """The one definition of a cycle error: ``|a - b| / max(b, 1)``, ``b`` the reference side (the model)."""
    return abs(a - b) / max(b, 1)


def completion_errors(rtl: list[int | None], model: list[int | None]) -> dict[str, Any]:
    """Co-simulation figures over paired completion cycles (``None``: that side never completed it).

    ``max_cycle_error`` / ``mean_cycle_error`` over the events both sides completed (`cycle_error`; 0.0 when
    there are none), ``missing_completions`` the events only one side completed: always finite, valid JSON.
    """
    if len(rtl) != len(model):
        raise ValueError(f"{len(rtl)} RTL completions vs {len(model)} model completions")
    errs = [cycle_error(r, m) for r, m in zip(rtl, model, strict=True) if r is not None and m is not None]
    return {"max_cycle_error": max(errs, default=0.0), "mean_cycle_error": sum(errs) / len(errs) if errs else 0.0,
            "missing_completions": sum((r is None) != (m is None) for r, m in zip(rtl, model, strict=True))}


def compare_tables(kind: str, a: np.ndarray, b: np.ndarray, *, ordered: bool, timed: bool
                   ) -> tuple[int, int, int, int, float]:
    """(rows, data mismatches, cycle mismatches, missing, max cycle error) of two tables of ``kind``.

    Either side may be a data view (no ``cycle`` column); cycles are compared only when ``timed``.
    """
    da = data_view(kind, a) if a.dtype.names and "cycle" in a.dtype.names else a
    db = data_view(kind, b) if b.dtype.names and "cycle" in b.dtype.names else b
    n = min(len(da), len(db))
    missing = abs(len(da) - len(db))
    if ordered or timed:
        data = int(np.count_nonzero(da[:n] != db[:n])) + missing
    else:
        sa, sb = np.sort(da), np.sort(db)
        data = int(np.count_nonzero(sa[:n] != sb[:n])) + missing
    cyc, err = 0, 0.0
    if timed and n and "cycle" in (a.dtype.names or ()) and "cycle" in (b.dtype.names or ()):
        ca, cb = a["cycle"][:n].astype(np.int64), b["cycle"][:n].astype(np.int64)
        diff = np.abs(ca - cb)
        cyc = int(np.count_nonzero(diff))
        err = float(np.max(diff / np.maximum(cb, 1)))  # cycle_error, vectorised
    return max(len(da), len(db)), data, cyc, missing, err


def agree(a: Result, b: Result) -> Agreement:
    """Compare two results of one block table by table (see `Agreement`)."""
    if a.block != b.block:
        raise ValueError(f"cannot compare a {a.block} result with a {b.block} result")
    blk = BLOCKS[a.block]
    timed = a.cycles is not None and b.cycles is not None
    out = Agreement(cycles=(a.cycles, b.cycles))
    for name, spec in blk.results.items():
        out.add(name, *compare_tables(spec.kind, a.tables[name], b.tables[name], ordered=spec.ordered,
                                      timed=timed))
    if timed and a.cycles != b.cycles:
        out.cycle_mismatches += 1
        out.max_cycle_error = max(out.max_cycle_error, cycle_error(a.cycles, b.cycles))
    return out


def write_verilog(out_dir: Path, params: Mapping[str, object] | None = None, only: str | None = None) -> list[Path]:
    """Write one ``<module>.v`` per registered block into ``out_dir``; return the paths.

    ``params`` maps a block name to its parameters (the config's ``hardware.<block>`` sections); a block not
    in it is built with its defaults. ``only`` restricts the output to one block.
    """
    import sim.blocks  # noqa: F401  (registers every block)
    from hw.verilog import generate

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, blk in sorted(BLOCKS.items()):
        if only is not None and name != only:
            continue
        p = (params or {}).get(name) or blk.default_params()
        path = out_dir / f"{blk.module}.v"
        tmp = path.with_suffix(".v.tmp")
        tmp.write_text(generate(blk.module, blk.component(p)))
        tmp.replace(path)
        paths.append(path)
    return paths
