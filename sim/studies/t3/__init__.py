"""The T3 design study (ASPLOS 2024): Sequential, T3, T3 + MCA and Ideal on the paper's sublayers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.core.config import RunConfig
from sim.studies import FullResult, Progress, Study, StudyOptions, register


def _short(cfg: RunConfig, out: Path, opt: StudyOptions, progress: Progress) -> tuple[dict[str, Any], list[str]]:
    from sim.studies.t3 import study

    progress("short T3 study")
    result = study.run_study(cfg.hardware, cfg.t3_study)
    lines = ["  T3 study (short; full: llmarch study t3):"]
    lines += ["    " + line for line in study.summary_table(result).splitlines()]
    return {"t3": {k: result[k] for k in ("sublayers", "summary", "ordering_exceptions")}}, lines


def _full(cfg: RunConfig, path: Path, out: Path, opt: StudyOptions, progress: Progress) -> FullResult:
    from sim.studies.t3 import study

    result = study.run_study(cfg.hardware, cfg.t3_study, progress=progress, sensitivity=True)
    lines = [study.summary_table(result)]
    if opt.rtl:
        from sim.studies.t3.cosim import run_t3_cosim

        result["cosim"] = c = run_t3_cosim(cfg, out / "cosim", progress=progress, waves=opt.waves)
        lines.append(f"co-simulation: {c['data_mismatches']} data mismatches, max completion-cycle error "
                     f"{100 * c['max_cycle_error']:.2f}%")
    return FullResult("t3.json", result, study.write_report(result, out), "\n".join(lines))


STUDY = register(Study(
    name="t3", order=1, default_config="t3_study.yaml", short=_short, full=_full,
    help="the T3 design study (--rtl: one T3Device co-simulated on Verilator)",
))
