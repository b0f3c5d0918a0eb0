"""The ring study: T3's fused GEMM + ring reduce-scatter at tracker level (the main job of ``llmarch run``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.core.config import RunConfig
from sim.studies import Progress, Study, StudyOptions, register


def _short(cfg: RunConfig, out: Path, opt: StudyOptions, progress: Progress) -> tuple[dict[str, Any], list[str]]:
    from sim.studies.ring.study import run_main_job

    result, summary = run_main_job(cfg, out, rtl=opt.rtl, waves=opt.waves, progress=progress)
    return result, summary.splitlines()


STUDY = register(Study(
    name="ring", order=0, default_config=None, short=_short,
    help="planner -> ring model -> every device's tracker replayed on the model (and the RTL with --rtl)",
))
