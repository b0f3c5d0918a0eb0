"""llmarch trace format, version 1.

A trace is one ``.npz`` file (numpy's zip of arrays) holding:

``header``
    A uint8 array with UTF-8 JSON::

        {"format": "llmarch-trace", "version": 1,
         "clock_hz": 1.4e9,            # the clock the time columns count
         "time_unit": "cycle",
         "producer": "sw_stack.t3.planner",
         "tables": {"<name>": {"kind": "<table kind>", "rows": <int>}},
         "meta": {...}}                # free-form, JSON-serialisable, e.g. the device number

``table.<name>``
    One numpy structured array per table. Its columns must be exactly those of its kind (`TABLE_KINDS`),
    in that order and with those dtypes (little-endian). A table kind with a ``cycle`` column must be sorted
    by it (non-decreasing).

Table kinds (all integers; addresses and sizes in bytes, times in ``time_unit``):

``tracker_requests``
    ``cycle`` (u8) when the request reaches the tracker; ``tag`` (u4) tracking entry; ``addr`` (u8);
    ``kind`` (u1, 0 store, 1 update); ``size`` (u4); ``source`` (u1, 0 local producer, 1 remote link).
``producer_stores``
    A device's producer writes: ``cycle``, ``tag`` (the receiving tracker's entry), ``addr``, ``kind``,
    ``size``, ``dst_device`` (u2; equal to the producing device for a local store), ``stage`` (u2).
``tracker_program``
    ``entry`` (u4), ``threshold`` (u4, bytes), ``desc`` (u4), ``enable`` (u1), ``rearm`` (u1).
``dma_descriptors``
    ``index`` (u4), ``op`` (u1, `hw.dma.DmaOp`: store, reducer adds, notify), ``src_addr`` (u8), ``dst_device`` (u2),
    ``dst_addr`` (u8), ``dst_tag`` (u4), ``length`` (u4).
``triggers``
    ``cycle`` (u8) the trigger left the tracker; ``desc`` (u4); ``entry`` (u4).
Block packages declare the kinds of their stimuli and results with `register_kind` (documented in each
``sim/blocks/<block>/__init__.py``); the reader imports them before it calls a kind unknown.

``conversation_turns``
    A serving workload (time unit ``us``): ``conv`` (u4), ``turn`` (u2), ``arrival_us`` (u8), ``think_us``
    (u8), ``new_tokens`` (u4), ``answer_tokens`` (u4); see `sw_stack.serving.workload`.
``hogwild_traffic``
    The memory traffic of Hogwild!'s shared KV cache, one row per layer and event (KV reads and writes, commit
    moves, query rotations, prefill writes); columns and record kinds in `sw_stack.hogwild.traffic`.

Writers write to a temporary file and rename it, so a reader never sees a half-written trace. Readers check
every property above and raise `TraceError` naming the file and what is wrong.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "llmarch-trace"
VERSION = 1

TABLE_KINDS: dict[str, np.dtype] = {
    "tracker_requests": np.dtype([("cycle", "<u8"), ("tag", "<u4"), ("addr", "<u8"), ("kind", "u1"),
                                  ("size", "<u4"), ("source", "u1")]),
    "producer_stores": np.dtype([("cycle", "<u8"), ("tag", "<u4"), ("addr", "<u8"), ("kind", "u1"),
                                 ("size", "<u4"), ("dst_device", "<u2"), ("stage", "<u2")]),
    "tracker_program": np.dtype([("entry", "<u4"), ("threshold", "<u4"), ("desc", "<u4"), ("enable", "u1"),
                                 ("rearm", "u1")]),
    "dma_descriptors": np.dtype([("index", "<u4"), ("op", "u1"), ("src_addr", "<u8"), ("dst_device", "<u2"),
                                 ("dst_addr", "<u8"), ("dst_tag", "<u4"), ("length", "<u4")]),
    "triggers": np.dtype([("cycle", "<u8"), ("desc", "<u4"), ("entry", "<u4")]),
    "conversation_turns": np.dtype([("conv", "<u4"), ("turn", "<u2"), ("arrival_us", "<u8"), ("think_us", "<u8"),
                                    ("new_tokens", "<u4"), ("answer_tokens", "<u4")]),
}


def register_kind(kind: str, dtype: np.dtype | list) -> np.dtype:
    """Declare a table kind (a block package declares the kinds of its stimulus and results here).

    Column rules as above; declaring an existing kind again with other columns is an error.
    """
    dt = np.dtype(dtype)
    old = TABLE_KINDS.get(kind)
    if old is not None and old != dt:
        raise ValueError(f"table kind {kind!r} is already declared with columns {old.descr}")
    TABLE_KINDS[kind] = dt
    return dt


def _kind(kind: str) -> np.dtype | None:
    """The columns of ``kind``; the packages that declare kinds do so when imported, so import them first."""
    if kind not in TABLE_KINDS:
        import sim.blocks  # noqa: F401
        import sw_stack.hogwild.traffic  # noqa: F401

    return TABLE_KINDS.get(kind)


class TraceError(Exception):
    """A trace file is missing, truncated, of another version, or inconsistent."""


@dataclass
class Trace:
    """An in-memory trace: named tables of known kinds plus header fields."""

    clock_hz: float
    producer: str
    tables: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)  # name -> (kind, array)
    meta: dict[str, Any] = field(default_factory=dict)
    time_unit: str = "cycle"

    def add(self, name: str, kind: str, array: np.ndarray) -> None:
        if _kind(kind) is None:
            raise TraceError(f"unknown table kind {kind!r}; known: {sorted(TABLE_KINDS)}")
        self.tables[name] = (kind, np.asarray(array, dtype=TABLE_KINDS[kind]))

    def __getitem__(self, name: str) -> np.ndarray:
        return self.tables[name][1]


def empty(kind: str, rows: int = 0) -> np.ndarray:
    """A zeroed table of ``kind`` with ``rows`` rows."""
    return np.zeros(rows, dtype=TABLE_KINDS[kind])


def write(trace: Trace, path: str | os.PathLike[str]) -> Path:
    """Write ``trace`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    for name, (kind, arr) in trace.tables.items():
        _check_table(path, name, kind, arr)
    header = {
        "format": FORMAT, "version": VERSION, "clock_hz": float(trace.clock_hz), "time_unit": trace.time_unit,
        "producer": trace.producer,
        "tables": {name: {"kind": kind, "rows": int(len(arr))} for name, (kind, arr) in trace.tables.items()},
        "meta": trace.meta,
    }
    arrays = {"header": np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8)}
    arrays.update({f"table.{name}": arr for name, (_, arr) in trace.tables.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read(path: str | os.PathLike[str]) -> Trace:
    """Read and validate a trace; raise `TraceError` on any problem."""
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"{path}: no such trace file")
    try:
        with open(path, "rb") as fh:
            npz = np.load(fh, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise TraceError(f"{path}: not an llmarch trace (a single .npy array, not an .npz archive)")
            files = set(npz.files)
            if "header" not in files:
                raise TraceError(f"{path}: not an llmarch trace (no 'header' member)")
            header = _parse_header(path, npz["header"])
            trace = Trace(clock_hz=header["clock_hz"], producer=header["producer"], meta=header["meta"],
                          time_unit=header["time_unit"])
            for name, info in header["tables"].items():
                member = f"table.{name}"
                if member not in files:
                    raise TraceError(f"{path}: header lists table {name!r} but the file has no {member!r}")
                arr = npz[member]
                if len(arr) != info["rows"]:
                    raise TraceError(f"{path}: table {name!r} has {len(arr)} rows, the header says {info['rows']}")
                _check_table(path, name, info["kind"], arr)
                trace.tables[name] = (info["kind"], arr)
            extra = files - {"header"} - {f"table.{n}" for n in header["tables"]}
            if extra:
                raise TraceError(f"{path}: members not listed in the header: {sorted(extra)}")
    except TraceError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        raise TraceError(f"{path}: unreadable or truncated trace ({exc})") from None
    return trace


def _parse_header(path: Path, raw: np.ndarray) -> dict[str, Any]:
    try:
        header = json.loads(bytes(raw.astype(np.uint8)).decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TraceError(f"{path}: header is not valid JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise TraceError(f"{path}: header 'format' must be {FORMAT!r}")
    if header.get("version") != VERSION:
        raise TraceError(f"{path}: trace version {header.get('version')!r} is not supported "
                         f"(this llmarch reads version {VERSION})")
    for key, kind in (("clock_hz", (int, float)), ("time_unit", str), ("producer", str), ("tables", dict),
                      ("meta", dict)):
        if not isinstance(header.get(key), kind):
            raise TraceError(f"{path}: header key {key!r} is missing or of the wrong type")
    if not header["clock_hz"] > 0:
        raise TraceError(f"{path}: header 'clock_hz' must be > 0")
    for name, info in header["tables"].items():
        if not (isinstance(info, dict) and isinstance(info.get("kind"), str) and isinstance(info.get("rows"), int)):
            raise TraceError(f"{path}: header entry for table {name!r} needs 'kind' (string) and 'rows' (int)")
    return header


def _check_table(path: Path, name: str, kind: str, arr: np.ndarray) -> None:
    expected = _kind(kind)
    if expected is None:
        raise TraceError(f"{path}: table {name!r} has unknown kind {kind!r}; known: {sorted(TABLE_KINDS)}")
    if arr.dtype != expected:
        raise TraceError(f"{path}: table {name!r} ({kind}) has columns {arr.dtype.descr}, expected {expected.descr}")
    if "cycle" in expected.names and len(arr) > 1 and np.any(np.diff(arr["cycle"].astype(np.int64)) < 0):
        raise TraceError(f"{path}: table {name!r} is not sorted by 'cycle'")
