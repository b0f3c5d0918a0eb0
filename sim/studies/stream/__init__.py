"""STREAM through the execution API: native numpy and C, the reference, the cycle model and the RTL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.core.config import RunConfig
from sim.studies import FullResult, Progress, Study, StudyOptions, register


def _short(cfg: RunConfig, out: Path, opt: StudyOptions, progress: Progress) -> tuple[dict[str, Any], list[str]]:
    from sim.studies.stream import study

    progress("short STREAM study")
    result = study.run_study(cfg.stream, cfg.hardware.stream, rtl=opt.rtl, work=out / "stream_rtl" if opt.rtl
                             else None, waves=opt.waves, progress=progress)
    lines = ["  STREAM through the execution API (short; full: llmarch study stream; host GB/s and API overheads are "
             "measurements, printed here and kept out of run.json):"]
    lines += ["    " + line for line in study.summary_table(result).splitlines()]
    return {"stream": study.deterministic(result)}, lines


def _full(cfg: RunConfig, path: Path, out: Path, opt: StudyOptions, progress: Progress) -> FullResult:
    from sim.studies.stream import study

    result = study.run_study(cfg.stream, cfg.hardware.stream, rtl=opt.rtl, work=out / "stream_rtl" if opt.rtl
                             else None, waves=opt.waves, progress=progress)
    return FullResult("stream.json", result, study.write_report(result, out), study.summary_table(result))


STUDY = register(Study(
    name="stream", order=3, default_config="stream_study.yaml", short=_short, full=_full,
    help="STREAM through the execution API on every target (--rtl: the STREAM unit on Verilator too)",
))
