"""Hogwild! Inference: W workers over one shared KV cache, costed on a GPU, with its invariants checked."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from sim.core.config import RunConfig
from sim.studies import FullResult, Progress, Study, StudyOptions, register


def _short(cfg: RunConfig, out: Path, opt: StudyOptions, progress: Progress) -> tuple[dict[str, Any], list[str]]:
    from sim.studies.hogwild import study

    progress("short Hogwild! study")
    hw = dataclasses.replace(cfg.hogwild, workers=(1, 4), layouts=("combined",), contexts=(4096,))
    result = study.run_study(hw, cfg.hardware)
    lines = ["  Hogwild! study (short: 1 and 4 workers, combined layout, 4096 tokens; full: llmarch study hogwild):"]
    lines += ["    " + line for line in study.summary_table(result).splitlines()]
    return {"hogwild": result}, lines


def _full(cfg: RunConfig, path: Path, out: Path, opt: StudyOptions, progress: Progress) -> FullResult:
    from sim.studies.hogwild import study

    result = study.run_study(cfg.hogwild, cfg.hardware, progress)
    lines = [study.summary_table(result)]
    if opt.rtl:
        from sim.studies.hogwild.cosim import run_cosim

        result["cosim"] = c = run_cosim(cfg.hogwild, out / "cosim", seed=cfg.seed, waves=opt.waves,
                                        progress=progress)
        lines.append(f"co-simulation: {c['data_mismatches']} data mismatches over {c['words_checked']} words, max "
                     f"cycle error {100 * c['max_cycle_error']:.2f}%")
    return FullResult("hogwild.json", result, study.write_report(result, out), "\n".join(lines))


STUDY = register(Study(
    name="hogwild", order=4, default_config="hogwild_study.yaml", short=_short, full=_full,
    help="Hogwild! Inference on a 32B-class shape (--rtl: commit moves replayed into the DMA engine RTL)",
))
