"""STREAM native targets: cache sizing, numpy and C runners, timing rule, validation, compile cache, errors."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from sw_stack.stream import kernel, native
from sw_stack.stream.kernel import KERNELS, SEQUENCE

N, REPS = 4096, 3


def _sysfs(root: Path, caches: list[tuple[int, str, str]]) -> Path:
    for i, (level, kind, size) in enumerate(caches):
        d = root / f"index{i}"
        d.mkdir(parents=True)
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    return root


def test_llc_bytes_of_this_machine_is_positive_or_unknown():
    llc = native.llc_bytes()
    assert llc is None or (isinstance(llc, int) and llc > 0)


def test_llc_bytes_takes_the_highest_level_and_parses_units(tmp_path):
    caches = [(1, "Data", "32K"), (1, "Instruction", "32K"), (3, "Unified", "32768K"), (2, "Unified", "1024K")]
    assert native.llc_bytes(_sysfs(tmp_path / "k", caches)) == 32 << 20
    assert native.llc_bytes(_sysfs(tmp_path / "m", [(1, "Data", "48K"), (3, "Unified", "32M")])) == 32 << 20
    # an instruction cache is never the LLC, even at the highest level listed
    assert native.llc_bytes(_sysfs(tmp_path / "i", [(2, "Data", "512"), (3, "Instruction", "1M")])) == 512


def test_llc_bytes_is_none_when_unreadable(tmp_path):
    assert native.llc_bytes(tmp_path / "absent") is None
    assert native.llc_bytes(_sysfs(tmp_path / "bad", [(3, "Unified", "lots")])) is None


def test_host_elements_is_four_llcs_rounded_up_to_1024():
    assert native.host_elements(32 << 20) == 32 << 20  # 4 x 32 MiB of 4-byte elements
    assert native.host_elements(1000) == 1024
    assert native.host_elements((1 << 20) + 1) == (1 << 20) + 1024
    assert native.host_elements(1 << 20, factor=2, itemsize=8) == 1 << 18
    with pytest.raises(ValueError):
        native.host_elements(0)


def test_numpy_validates_and_matches_the_scalar_recurrence():
    run = native.stream_numpy(N, REPS)
    assert run.target == "numpy" and run.validated and run.validation_errors == {} and not run.skipped
    assert run.final == kernel.expected(REPS)
    assert {name: len(t) for name, t in run.times_s.items()} == {k.name: REPS for k in SEQUENCE}
    assert run.timer_resolution_s > 0 and run.timer_ticks > 0


def test_numpy_times_each_call_and_best_drops_the_first_repetition(monkeypatch):
    # the first repetition is the fastest: a best over every repetition would pick it
    durations = [0.001, 2.0, 1.0]
    ticks = []
    t = 0.0
    for d in durations:
        for _ in SEQUENCE:
            ticks += [t, t + d]
            t += d + 10.0
    clock = iter(ticks)
    monkeypatch.setattr(native, "perf_counter", lambda: next(clock))
    run = native.stream_numpy(N, REPS)
    assert next(clock, None) is None  # two clock reads per kernel call, no more
    for k in SEQUENCE:
        assert run.times_s[k.name] == pytest.approx(durations)
        assert run.best_s[k.name] == pytest.approx(1.0)
        assert run.gbps[k.name] == pytest.approx(k.bytes(N) / 1.0 / 1e9)
    assert run.timer_ticks == pytest.approx(0.001 / run.timer_resolution_s)


def test_numpy_validation_fails_on_a_wrong_kernel(monkeypatch):
    real = kernel.apply

    def wrong_scale(k, arrays, q=kernel.SCALAR):
        real(k, arrays, q)
        if k.name == "scale":
            arrays["b"][:16] += np.float32(1.0)

    monkeypatch.setattr(kernel, "apply", wrong_scale)
    run = native.stream_numpy(N, REPS)
    assert not run.validated and "b" in run.validation_errors


def test_runs_need_two_repetitions():
    with pytest.raises(ValueError, match="repetitions >= 2"):
        native.stream_numpy(N, 1)
    with pytest.raises(ValueError, match="repetitions >= 2"):
        native.stream_c(N, 1)


needs_cc = pytest.mark.skipif(native.find_c_compiler() is None, reason="no C compiler")


@needs_cc
def test_c_validates_agrees_with_numpy_and_reuses_its_binary(tmp_path, monkeypatch):
    n = N + 5  # not a multiple of the C loops' block: the tail loops run too
    run = native.stream_c(n, REPS, cache_dir=tmp_path)
    assert run.target == "c" and run.validated and run.validation_errors == {} and not run.skipped
    assert run.final == kernel.expected(REPS)
    assert run.final == native.stream_numpy(n, REPS).final
    for k in SEQUENCE:
        times = run.times_s[k.name]
        assert len(times) == REPS and run.best_s[k.name] == min(times[1:])
        assert run.gbps[k.name] == pytest.approx(KERNELS[k.name].bytes(n) / run.best_s[k.name] / 1e9)
    assert run.timer_resolution_s > 0 and run.timer_ticks > 0
    binaries = list(tmp_path.iterdir())
    assert len(binaries) == 1 and binaries[0].name.startswith("stream-")
    before = binaries[0].stat()

    def no_compile(cmd):
        raise AssertionError(f"recompiled: {cmd}")

    monkeypatch.setattr(native, "_compile", no_compile)
    assert native.stream_c(N, REPS, cache_dir=tmp_path).validated
    after = binaries[0].stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert list(tmp_path.iterdir()) == binaries


@needs_cc
def test_c_rounds_the_triad_twice_like_numpy(tmp_path):
    q = 0.7  # b + q*c rounded once (a fused multiply-add) differs from two roundings within 3 repetitions
    run = native.stream_c(N, REPS, q, cache_dir=tmp_path)
    assert run.validated and run.final == kernel.expected(REPS, q) == native.stream_numpy(N, REPS, q).final


@needs_cc
def test_c_validation_fails_on_a_wrong_kernel(tmp_path):
    source = native.C_SOURCE.read_text()
    wrong = source.replace("c[j] = a[j];", "c[j] = a[j] + 1.0f;")
    assert wrong != source
    cc = native.find_c_compiler()
    exe = native.build_c(cc, wrong, tmp_path)
    run = native._run_c_binary(exe, N, REPS, kernel.SCALAR)
    assert not run.validated and set(run.validation_errors) == {"a", "b", "c"}
    good = native.build_c(cc, cache_dir=tmp_path)  # the source is part of the cache key
    assert good != exe and native._run_c_binary(good, N, REPS, kernel.SCALAR).validated


@needs_cc
def test_an_interrupted_compile_leaves_no_binary(tmp_path, monkeypatch):
    def interrupted(cmd):
        Path(cmd[cmd.index("-o") + 1]).write_bytes(b"\x7fELF half")
        raise KeyboardInterrupt

    monkeypatch.setattr(native, "_compile", interrupted)
    with pytest.raises(KeyboardInterrupt):
        native.build_c(native.find_c_compiler(), cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


@needs_cc
def test_a_compile_failure_names_the_command_and_its_errors(tmp_path):
    with pytest.raises(RuntimeError, match=r"(?s)C STREAM compile failed.*-ffp-contract=off.*error") as err:
        native.build_c(native.find_c_compiler(), "this is not C;\n", tmp_path)
    assert "Traceback" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cc", ["/nonexistent/llmarch-cc", None])
def test_no_c_compiler_skips(cc, monkeypatch, tmp_path):
    if cc is None:
        monkeypatch.delenv("CC", raising=False)
        monkeypatch.setenv("PATH", str(tmp_path))  # no cc on it
    else:
        monkeypatch.setenv("CC", cc)
    run = native.stream_c(N, REPS, cache_dir=tmp_path / "cache")
    assert run.skipped and not run.validated and run.times_s == {}
    assert run.note == f"no C compiler ({cc or 'cc'}) found: the C STREAM target is skipped"
    assert not (tmp_path / "cache").exists()


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _report(reps: int = REPS, **over) -> dict:
    report = {"n": N, "repetitions": reps, "q": 3.0, "clock_resolution_s": 1e-6,
              "times_s": {k.name: [0.5] + [2.0 + r for r in range(1, reps)] for k in SEQUENCE},
              "validated": False, "errors": {"a": 0.0, "b": 0.5, "c": 0.0}, "failed": ["b"],
              "final": {"a": 1.0, "b": 2.0, "c": 3.0}}
    return report | over


def test_c_report_is_read_with_the_best_of_repetitions_after_the_first(tmp_path):
    exe = _script(tmp_path / "fake", f"cat <<'EOF'\n{json.dumps(_report())}\nEOF\n")
    run = native._run_c_binary(exe, N, REPS, 3.0)
    assert run.best_s == {k.name: 3.0 for k in SEQUENCE}
    assert run.gbps == {k.name: pytest.approx(k.bytes(N) / 3.0 / 1e9) for k in SEQUENCE}
    assert run.timer_ticks == pytest.approx(0.5 / 1e-6)
    assert not run.validated and run.validation_errors == {"b": 0.5}
    assert run.final == {"a": 1.0, "b": 2.0, "c": 3.0}


@pytest.mark.parametrize("stdout, why", [
    ("Segmentation fault? no: garbage\n", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"n": N}), "missing"),
    (json.dumps(_report(n=N + 1)), "instead of"),
    (json.dumps(_report(times_s={"copy": [1.0, 1.0, 1.0]})), "times_s"),
    (json.dumps(_report(validated="yes")), "validated"),
])
def test_a_bad_report_raises_naming_the_command(stdout, why):
    cmd = ["/bin/stream-x", str(N), str(REPS), "3.0"]
    with pytest.raises(RuntimeError, match="C STREAM printed a bad report") as err:
        native.parse_report(stdout, cmd, N, REPS)
    assert why in str(err.value) and "/bin/stream-x 4096 3 3.0" in str(err.value)
    assert "Traceback" not in str(err.value)


def test_a_crashing_binary_raises_with_its_stderr(tmp_path):
    exe = _script(tmp_path / "crash", "echo 'stream: cannot allocate 4096 floats' >&2\nexit 3\n")
    with pytest.raises(RuntimeError, match=r"(?s)C STREAM failed \(exit 3\): .*crash 4096 3 3.0.*cannot allocate"):
        native._run_c_binary(exe, N, REPS, 3.0)
    garbage = _script(tmp_path / "garbage", "echo garbage\n")
    with pytest.raises(RuntimeError, match="not JSON"):
        native._run_c_binary(garbage, N, REPS, 3.0)
    os.remove(exe)
    with pytest.raises(RuntimeError, match="could not start"):
        native._run_c_binary(exe, N, REPS, 3.0)
