"""The FastSwitch serving study: the vLLM-like baseline, FastSwitch and each of its mechanisms alone."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from sim.core.config import ConfigError, RunConfig, load_config
from sim.studies import FullResult, Progress, Study, StudyOptions, register


def _short(cfg: RunConfig, out: Path, opt: StudyOptions, progress: Progress) -> tuple[dict[str, Any], list[str]]:
    from sim.studies.fastswitch import study

    progress("short FastSwitch study")
    fs = study.run_study({"default": cfg.fastswitch}, ("baseline", "fastswitch"))
    lines = [f"  FastSwitch study (short: {cfg.fastswitch.workload.conversations} conversations, "
             f"{cfg.fastswitch.model.name} on {cfg.fastswitch.gpu.name}; full: llmarch study fastswitch):"]
    lines += ["    " + line for line in study.summary_table(fs).splitlines()]
    return {"fastswitch": fs["setups"]["default"]}, lines


def _full(cfg: RunConfig, path: Path, out: Path, opt: StudyOptions, progress: Progress) -> FullResult:
    from sim.studies.fastswitch import study

    st = cfg.fastswitch_study
    setups = {}
    for rel in st.setups:
        setup = load_config(path.parent / rel).fastswitch
        if st.conversations:
            setup = dataclasses.replace(setup, workload=dataclasses.replace(setup.workload,
                                                                            conversations=st.conversations))
        setups[Path(rel).stem] = setup
    if opt.rtl and "fastswitch" not in st.systems:
        raise ConfigError(path, "fastswitch_study.systems", "--rtl replays the fastswitch system's swaps; list it")
    result = study.run_study(setups, st.systems, progress=progress,
                             cosim_work=out / "cosim" if opt.rtl else None, seed=cfg.seed, waves=opt.waves)
    lines = [study.summary_table(result)]
    if opt.rtl:
        c = result["cosim"]
        lines.append(f"co-simulation: {c['swaps']} swaps, {c['data_mismatches']} data mismatches, max "
                     f"completion-cycle error {100 * c['max_cycle_error']:.2f}%, {c['cycles_rtl']} cycles RTL / "
                     f"{c['cycles_model']} model")
    return FullResult("fastswitch.json", result, study.write_report(result, out), "\n".join(lines))


STUDY = register(Study(
    name="fastswitch", order=2, default_config="fastswitch_study.yaml", short=_short, full=_full,
    help="the FastSwitch serving study (--rtl: swaps replayed into the KV swap controller RTL)",
))
