"""STREAM's native targets: numpy written directly (`stream_numpy`) and our own small C STREAM (`stream_c`).

Both run the kernels of `sw_stack.stream.kernel` with STREAM's rules: arrays of ``n`` fp32 elements (STREAM wants
each at least 4x the last-level cache: `llc_bytes`, `host_elements`), every kernel of every repetition timed on
its own, the best time of a kernel taken over all repetitions but the first, bandwidth as `Kernel.bytes` over
that time, and the arrays validated at the end. Neither uses llmarch's execution API.

The C program is ``stream.c`` next to this module. It is compiled on first use with ``$CC`` (else ``cc``) into
``<cache>/stream-c/`` (``$LLMARCH_CACHE`` or ``<repo>/.cache``), keyed by the source, the compiler's
``--version`` and the flags; no compiler gives a skipped run, not an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.core.config import REPO_ROOT
from sw_stack.stream import kernel
from sw_stack.stream.kernel import ARRAYS, DTYPE, KERNELS, REPETITIONS, SCALAR, SEQUENCE

SYSFS_CACHE = Path("/sys/devices/system/cpu/cpu0/cache")
C_SOURCE = Path(__file__).with_name("stream.c")
# -ffp-contract=off: the triad rounds twice (product, then sum) as numpy does; a fused multiply-add would not
# match the scalar recurrence bit for bit.
C_FLAGS = ("-O2", "-ffp-contract=off", "-std=c11")
C_LIBS = ("-lm",)
_SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}

perf_counter = time.perf_counter  # the numpy target's clock (a module name, so a test can drive it)


@dataclass
class NativeRun:
    """One STREAM run of a native target. Times in seconds, bandwidth in GB/s (1e9 bytes)."""

    target: str
    n: int
    repetitions: int
    times_s: dict[str, list[float]]  # kernel -> every repetition's time, the first included
    best_s: dict[str, float]  # kernel -> min over repetitions 2..N (STREAM drops the first)
    gbps: dict[str, float]  # kernel -> Kernel.bytes(n) / best / 1e9
    validated: bool
    validation_errors: dict[str, float]  # failing array -> relative mean absolute error; {} when validated
    note: str = ""
    skipped: bool = False
    timer_resolution_s: float = 0.0
    # The shortest timed region in ticks of the clock: STREAM wants every one to last at least ~20.
    timer_ticks: float = 0.0
    final: dict[str, float] = field(default_factory=dict)  # first element of each array at the end


def llc_bytes(sysfs: Path = SYSFS_CACHE) -> int | None:
    """Size of the highest-level data or unified cache of cpu0, from sysfs; None when it cannot be read."""
    best: tuple[int, int] | None = None
    try:
        for index in sorted(sysfs.glob("index*")):
            if (index / "type").read_text().strip() == "Instruction":
                continue
            level = int((index / "level").read_text())
            size = _parse_size((index / "size").read_text())
            if best is None or level > best[0]:
                best = (level, size)
    except (OSError, ValueError):
        return None
    return best[1] if best is not None and best[1] > 0 else None


def _parse_size(text: str) -> int:
    """``"32768K"``, ``"32M"``, ``"512"`` -> bytes."""
    text = text.strip().upper()
    if text[-1:] in _SIZE_UNITS:
        return int(text[:-1]) * _SIZE_UNITS[text[-1]]
    return int(text)


def host_elements(llc: int, factor: int = 4, itemsize: int = DTYPE.itemsize) -> int:
    """Elements per array so that each array is at least ``factor`` x ``llc`` bytes, rounded up to 1024."""
    if llc <= 0 or factor <= 0 or itemsize <= 0:
        raise ValueError(f"llc, factor and itemsize must be > 0, got {llc}, {factor}, {itemsize}")
    elements = -(-factor * llc // itemsize)
    return -(-elements // 1024) * 1024


def _summarise(target: str, n: int, repetitions: int, times: dict[str, list[float]], resolution: float,
               validated: bool, errors: dict[str, float], final: dict[str, float]) -> NativeRun:
    best = {name: min(t[1:]) for name, t in times.items()}
    gbps = {name: KERNELS[name].bytes(n) / b / 1e9 if b > 0 else float("inf") for name, b in best.items()}
    shortest = min(min(t) for t in times.values())
    return NativeRun(target=target, n=n, repetitions=repetitions, times_s=times, best_s=best, gbps=gbps,
                     validated=validated, validation_errors=errors, timer_resolution_s=resolution,
                     timer_ticks=shortest / resolution if resolution > 0 else float("inf"), final=final)


def _check_args(n: int, repetitions: int) -> None:
    if n < 1 or repetitions < 2:
        raise ValueError(f"STREAM needs n >= 1 and repetitions >= 2 (the first is not counted), "
                         f"got n={n}, repetitions={repetitions}")


def stream_numpy(n: int, repetitions: int = REPETITIONS, q: float = SCALAR) -> NativeRun:
    """STREAM with numpy written directly: `kernel.apply` on `kernel.initial` arrays, each call timed alone."""
    _check_args(n, repetitions)
    arrays = kernel.initial(n)
    times: dict[str, list[float]] = {k.name: [] for k in SEQUENCE}
    for _ in range(repetitions):
        for k in SEQUENCE:
            t0 = perf_counter()
            kernel.apply(k, arrays, q)
            times[k.name].append(perf_counter() - t0)
    errors = kernel.validate(arrays, repetitions, q)
    final = {name: float(arrays[name][0]) for name in ARRAYS}
    resolution = time.get_clock_info("perf_counter").resolution
    return _summarise("numpy", n, repetitions, times, resolution, not errors, errors, final)


def find_c_compiler() -> list[str] | None:
    """``$CC`` (split like a shell word list, e.g. ``ccache gcc``) or ``cc``, resolved on PATH; None if absent."""
    words = shlex.split(os.environ.get("CC", "")) or ["cc"]
    path = shutil.which(words[0])
    return None if path is None else [path, *words[1:]]


def default_cache_dir() -> Path:
    return Path(os.environ.get("LLMARCH_CACHE", REPO_ROOT / ".cache")) / "stream-c"


def _first_lines(text: str, count: int = 5) -> str:
    lines = text.strip().splitlines()
    more = f"\n  ... ({len(lines) - count} more lines)" if len(lines) > count else ""
    return "\n".join("  " + line for line in lines[:count]) + more


def _run_tool(cmd: Sequence[str], what: str) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; a start failure or a non-zero exit raises a RuntimeError naming it and its stderr."""
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True)
    except OSError as exc:
        raise RuntimeError(f"{what} could not start: {shlex.join(cmd)}: {exc}") from None
    if proc.returncode != 0:
        how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        raise RuntimeError(f"{what} failed ({how}): {shlex.join(cmd)}\n{_first_lines(proc.stderr or proc.stdout)}")
    return proc


def build_c(compiler: Sequence[str], source: str | None = None, cache_dir: Path | None = None) -> Path:
    """The C STREAM executable for ``source`` (default: ``stream.c``), compiled unless cached.

    The binary is compiled in a temporary directory and moved into place, so an interrupted compile leaves no
    half binary behind, and two concurrent compiles of the same key both end with a whole one.
    """
    source = C_SOURCE.read_text() if source is None else source
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    version = _run_tool([*compiler, "--version"], "C compiler version query").stdout
    key_src = json.dumps({"source": source, "compiler": list(compiler), "version": version,
                          "flags": list(C_FLAGS), "libs": list(C_LIBS)}, sort_keys=True)
    exe = cache_dir / f"stream-{hashlib.sha256(key_src.encode()).hexdigest()[:16]}"
    if exe.is_file():
        return exe
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as tmp:
        src, out = Path(tmp) / "stream.c", Path(tmp) / "stream"
        src.write_text(source)
        _compile([*compiler, *C_FLAGS, "-o", str(out), str(src), *C_LIBS])
        os.replace(out, exe)
    return exe


def _compile(cmd: list[str]) -> None:
    _run_tool(cmd, "C STREAM compile")


def parse_report(stdout: str, cmd: Sequence[str], n: int, repetitions: int) -> dict[str, Any]:
    """The C program's JSON report, checked; anything else raises a RuntimeError naming ``cmd``."""
    def bad(why: str) -> RuntimeError:
        return RuntimeError(f"C STREAM printed a bad report ({why}): {shlex.join(cmd)}\n"
                            f"{_first_lines(stdout) or '  (no output)'}")

    try:
        report = json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise bad(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(report, dict):
        raise bad("not a JSON object")
    missing = {"n", "repetitions", "times_s", "validated", "errors", "failed", "final",
               "clock_resolution_s"} - report.keys()
    if missing:
        raise bad(f"missing {', '.join(sorted(missing))}")
    if report["n"] != n or report["repetitions"] != repetitions:
        raise bad(f"ran n={report['n']}, repetitions={report['repetitions']} instead of n={n}, "
                  f"repetitions={repetitions}")
    times = report["times_s"]
    if not isinstance(times, dict) or set(times) != set(KERNELS) or any(
            not isinstance(t, list) or len(t) != repetitions for t in times.values()):
        raise bad(f"times_s must give {repetitions} times for each of {', '.join(KERNELS)}")
    if not isinstance(report["validated"], bool) or not set(report["failed"]) <= set(report["errors"]):
        raise bad("validated must be true or false, and every failed array must have an error")
    return report


def _run_c_binary(exe: Path, n: int, repetitions: int, q: float) -> NativeRun:
    cmd = [str(exe), str(n), str(repetitions), repr(float(q))]
    proc = _run_tool(cmd, "C STREAM")
    report = parse_report(proc.stdout, cmd, n, repetitions)
    times = {k.name: [float(t) for t in report["times_s"][k.name]] for k in SEQUENCE}
    errors = {name: float(report["errors"][name]) for name in report["failed"]}
    final = {name: float(v) for name, v in report["final"].items()}
    return _summarise("c", n, repetitions, times, float(report["clock_resolution_s"]), report["validated"],
                      errors, final)


def stream_c(n: int, repetitions: int = REPETITIONS, q: float = SCALAR, *,
             cache_dir: Path | None = None) -> NativeRun:
    """STREAM with our own C program (single-threaded, -O2); skipped, never raising, when no C compiler exists.

    A compile failure, a crash or a bad report of the program raises a RuntimeError.
    """
    _check_args(n, repetitions)
    compiler = find_c_compiler()
    if compiler is None:
        name = os.environ.get("CC") or "cc"
        return NativeRun(target="c", n=n, repetitions=repetitions, times_s={}, best_s={}, gbps={},
                         validated=False, validation_errors={}, skipped=True,
                         note=f"no C compiler ({name}) found: the C STREAM target is skipped")
    return _run_c_binary(build_c(compiler, cache_dir=cache_dir), n, repetitions, q)
