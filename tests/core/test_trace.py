"""Trace format v1: round trip, and a clear TraceError for every kind of bad file."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from sim.core import trace
from sim.core.trace import TraceError


def _sample() -> trace.Trace:
    t = trace.Trace(clock_hz=1.4e9, producer="tests", meta={"device": 2})
    req = trace.empty("tracker_requests", 5)
    req["cycle"] = [0, 1, 1, 4, 9]
    req["tag"] = [3, 1, 3, 0, 7]
    req["size"] = 64
    t.add("requests", "tracker_requests", req)
    t.add("program", "tracker_program", trace.empty("tracker_program", 2))
    return t


def test_round_trip(tmp_path):
    t = _sample()
    path = trace.write(t, tmp_path / "t.npz")
    back = trace.read(path)
    assert back.clock_hz == 1.4e9 and back.producer == "tests" and back.meta == {"device": 2}
    assert back.time_unit == "cycle"
    for name, (kind, arr) in t.tables.items():
        assert back.tables[name][0] == kind
        np.testing.assert_array_equal(back[name], arr)
    assert not list(tmp_path.glob(".*tmp")), "no temporary file left behind"


def test_empty_tables_round_trip(tmp_path):
    t = trace.Trace(clock_hz=1.0, producer="tests")
    t.add("none", "triggers", trace.empty("triggers"))
    assert len(trace.read(trace.write(t, tmp_path / "e.npz"))["none"]) == 0


def _rewrite(path, header_edit=None, drop=None, extra=None, table_edit=None):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(bytes(arrays["header"]).decode())
    if header_edit:
        header_edit(header)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    if drop:
        del arrays[drop]
    if extra:
        arrays.update(extra)
    if table_edit:
        table_edit(arrays)
    np.savez(path, **arrays)


@pytest.mark.parametrize("case,needle", [
    ("missing", "no such trace file"),
    ("not_zip", "unreadable or truncated"),
    ("truncated", "unreadable or truncated"),
    ("wrong_version", "trace version 2 is not supported"),
    ("wrong_format", "header 'format' must be"),
    ("row_count", "has 5 rows, the header says 6"),
    ("missing_table", "the file has no 'table.requests'"),
    ("unsorted", "is not sorted by 'cycle'"),
    ("wrong_columns", "has columns"),
    ("unknown_kind", "unknown kind 'bogus'"),
    ("extra_member", "members not listed in the header"),
    ("no_header", "no 'header' member"),
    ("bad_clock", "'clock_hz' must be > 0"),
    ("npy", "a single .npy array"),
])
def test_bad_traces_are_rejected(tmp_path, case, needle):
    path = tmp_path / "t.npz"
    if case != "missing":
        trace.write(_sample(), path)
    if case == "not_zip":
        path.write_bytes(b"hello, not a trace")
    elif case == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "wrong_version":
        _rewrite(path, header_edit=lambda h: h.update(version=2))
    elif case == "wrong_format":
        _rewrite(path, header_edit=lambda h: h.update(format="other"))
    elif case == "row_count":
        _rewrite(path, header_edit=lambda h: h["tables"]["requests"].update(rows=6))
    elif case == "missing_table":
        _rewrite(path, drop="table.requests")
    elif case == "unsorted":
        def unsort(arrays):
            arrays["table.requests"] = arrays["table.requests"][::-1].copy()
        _rewrite(path, table_edit=unsort)
    elif case == "wrong_columns":
        def narrow(arrays):
            arrays["table.requests"] = np.zeros(5, dtype=[("cycle", "<u4")])
        _rewrite(path, table_edit=narrow)
    elif case == "unknown_kind":
        _rewrite(path, header_edit=lambda h: h["tables"]["requests"].update(kind="bogus"))
    elif case == "extra_member":
        _rewrite(path, extra={"stray": np.zeros(3)})
    elif case == "no_header":
        _rewrite(path, drop="header")
    elif case == "npy":
        with open(path, "wb") as f:
            np.save(f, np.arange(3))
    elif case == "bad_clock":
        _rewrite(path, header_edit=lambda h: h.update(clock_hz=0))
    with pytest.raises(TraceError) as info:
        trace.read(path)
    assert str(path) in str(info.value) and needle in str(info.value)


def test_writer_refuses_bad_tables(tmp_path):
    t = trace.Trace(clock_hz=1.0, producer="tests")
    with pytest.raises(TraceError, match="unknown table kind"):
        t.add("x", "bogus", np.zeros(1))
    bad = trace.empty("triggers", 2)
    bad["cycle"] = [5, 1]
    t.add("x", "triggers", bad)
    with pytest.raises(TraceError, match="not sorted"):
        trace.write(t, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_a_zip_without_numpy_members(tmp_path):
    path = tmp_path / "z.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hi")
    with pytest.raises(TraceError):
        trace.read(path)
