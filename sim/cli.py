"""The ``llmarch`` command line.

``llmarch run``        planner -> ring model -> tracker replay on the model (and the RTL with ``--rtl``),
                       plus a short T3 study
``llmarch study t3``   the T3 design study (``--rtl``: with one device's RTL co-simulated)
``llmarch verilog``    one Verilog file per hardware block

User errors (bad config, bad trace, unplannable workload, unwritable output) print one line on stderr and exit
with status 2; a failing RTL flow exits with status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sim.core.config import DEFAULT_CONFIG, REPO_ROOT, ConfigError, RunConfig, load_config
from sim.core.trace import TraceError

STUDY_CONFIGS = {"t3": REPO_ROOT / "configs" / "t3_study.yaml",
                 "fastswitch": REPO_ROOT / "configs" / "fastswitch_study.yaml"}
EXIT_USER_ERROR = 2
EXIT_RTL_FAILURE = 1


def _progress(msg: str) -> None:
    print(f"[llmarch] {msg}", file=sys.stderr, flush=True)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically with stable key order (byte-identical for identical data)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(args: argparse.Namespace) -> tuple[RunConfig, Path]:
    path = Path(args.config) if args.config else DEFAULT_CONFIG
    cfg = load_config(path)
    if getattr(args, "seed", None) is not None:
        cfg = dataclasses.replace(cfg, seed=args.seed)
    return cfg, path


def cmd_run(args: argparse.Namespace) -> int:
    from sim.studies.ring.study import run_main_job
    from sw_stack.t3.planner import PlanError

    cfg, path = _load(args)
    out = Path(args.out)
    _check_writable(out)
    t0 = time.perf_counter()
    try:
        result, summary = run_main_job(cfg, out, rtl=args.rtl, progress=_progress)
    except PlanError as exc:
        raise ConfigError(path, exc.keypath, str(exc).split(": ", 1)[1]) from None
    write_json(out / "run.json", result)
    print(summary)
    print(f"wrote {out / 'run.json'} in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    if not args.config:
        args.config = str(STUDY_CONFIGS[args.study])
    if args.study == "fastswitch":
        return _study_fastswitch(args)
    import sim.studies.t3.study as t3

    cfg, _ = _load(args)
    out = Path(args.out)
    _check_writable(out)
    t0 = time.perf_counter()
    result = t3.run_study(cfg.hardware, cfg.t3_study, progress=_progress, sensitivity=True)
    if args.rtl:
        from sim.studies.t3.cosim import run_t3_cosim

        result["cosim"] = run_t3_cosim(cfg, out / "cosim", progress=_progress)
    write_json(out / "t3.json", result)
    files = t3.write_report(result, out)
    print(t3.summary_table(result))
    if args.rtl:
        c = result["cosim"]
        print(f"co-simulation: {c['data_mismatches']} data mismatches, max completion-cycle error "
              f"{100 * c['max_cycle_error']:.2f}%")
    print(f"wrote {out / 't3.json'}, " + ", ".join(str(f) for f in files) +
          f" in {time.perf_counter() - t0:.1f} s")
    return 0


def _study_fastswitch(args: argparse.Namespace) -> int:
    import dataclasses

    import sim.studies.fastswitch.study as fastswitch

    cfg, path = _load(args)
    st = cfg.fastswitch_study
    setups = {}
    for rel in st.setups:
        setup = load_config(path.parent / rel).fastswitch
        if st.conversations:
            setup = dataclasses.replace(setup, workload=dataclasses.replace(setup.workload,
                                                                            conversations=st.conversations))
        setups[Path(rel).stem] = setup
    out = Path(args.out)
    _check_writable(out)
    if args.rtl and "fastswitch" not in st.systems:
        raise ConfigError(path, "fastswitch_study.systems", "--rtl replays the fastswitch system's swaps; list it")
    t0 = time.perf_counter()
    result = fastswitch.run_study(setups, st.systems, progress=_progress,
                                  cosim_work=out / "cosim" if args.rtl else None, seed=cfg.seed)
    write_json(out / "fastswitch.json", result)
    files = fastswitch.write_report(result, out)
    print(fastswitch.summary_table(result))
    if args.rtl:
        c = result["cosim"]
        print(f"co-simulation: {c['swaps']} swaps, {c['data_mismatches']} data mismatches, max completion-cycle "
              f"error {100 * c['max_cycle_error']:.2f}%, {c['cycles_rtl']} cycles RTL / {c['cycles_model']} model")
    print(f"wrote {out / 'fastswitch.json'}, " + ", ".join(str(f) for f in files) +
          f" in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_verilog(args: argparse.Namespace) -> int:
    from hw.verilog import write_all

    cfg, _ = _load(args)
    out = Path(args.out)
    _check_writable(out)
    for path in write_all(out, tracker=cfg.hardware.tracker.params()):
        print(f"wrote {path}")
    return 0


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".llmarch-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(out, "--out", f"cannot write to the output directory ({exc.strerror})") from None


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="llmarch", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the main job on a config")
    run.add_argument("--config", help="YAML config (default: configs/default.yaml)")
    run.add_argument("--rtl", action="store_true", help="also replay every device's tracker input on the RTL")
    run.add_argument("--out", default="results", help="output directory (default: results)")
    run.add_argument("--seed", type=int, help="override the config's seed")
    run.set_defaults(fn=cmd_run)

    study = sub.add_parser("study", help="run a design study")
    study.add_argument("study", choices=sorted(STUDY_CONFIGS), help="which study")
    study.add_argument("--config", help="YAML config (default: configs/<study>_study.yaml)")
    study.add_argument("--out", default="results", help="output directory (default: results)")
    study.add_argument("--rtl", action="store_true", help="also co-simulate one device's RTL on Verilator")
    study.set_defaults(fn=cmd_study)

    ver = sub.add_parser("verilog", help="write one Verilog file per hardware block")
    ver.add_argument("--out", required=True, help="output directory")
    ver.add_argument("--config", help="config whose hardware parameters to use (default: the default config)")
    ver.set_defaults(fn=cmd_verilog)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ConfigError, TraceError) as exc:
        print(f"llmarch: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:
        from sim.rtl.runner import RtlError

        if isinstance(exc, RtlError):
            print(f"llmarch: RTL failure: {exc}", file=sys.stderr)
            return EXIT_RTL_FAILURE
        raise


if __name__ == "__main__":
    sys.exit(main())
