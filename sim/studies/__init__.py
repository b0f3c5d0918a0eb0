"""The study registry: one package per study, each registering a `Study`; the CLI is driven by it.

``llmarch study NAME`` runs a study's ``full`` on its default config (``configs/<default_config>``);
``llmarch run`` runs every study's ``short`` in ``order`` on one config and writes one ``run.json`` whose keys
are the parts the studies return (`run_all`). A new study is one package here, nothing else to edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.core.config import RunConfig, as_dict

RUN_SCHEMA = "llmarch.run/1"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class StudyOptions:
    """What the command line passes to a study: ``rtl`` co-simulates on Verilator, ``waves`` dumps its waves."""

    rtl: bool = False
    waves: bool = False


@dataclass(frozen=True)
class FullResult:
    json_name: str            # file written in the output directory
    result: dict[str, Any]
    files: list[Path]         # report and plots
    summary: str


@dataclass(frozen=True)
class Study:
    name: str
    help: str
    order: int                                     # position in ``llmarch run``
    default_config: str | None                     # relative to configs/; None: no ``llmarch study NAME``
    short: Callable[[RunConfig, Path, StudyOptions, Progress], tuple[dict[str, Any], list[str]]]
    full: Callable[[RunConfig, Path, Path, StudyOptions, Progress], FullResult] | None = None


STUDIES: dict[str, Study] = {}


def register(study: Study) -> Study:
    if study.name in STUDIES:
        raise ValueError(f"study {study.name!r} is registered twice")
    STUDIES[study.name] = study
    return study


def studies() -> dict[str, Study]:
    """Every study package, imported (so registered), in ``llmarch run`` order."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.ispkg:
            importlib.import_module(f"{__name__}.{info.name}")
    return dict(sorted(STUDIES.items(), key=lambda kv: kv[1].order))


def run_all(cfg: RunConfig, out: Path, options: StudyOptions, progress: Progress) -> tuple[dict[str, Any], str]:
    """``llmarch run``: every study's short version; ``run.json`` data and the printed summary."""
    result: dict[str, Any] = {"schema": RUN_SCHEMA, "seed": cfg.seed, "config": as_dict(cfg)}
    lines: list[str] = []
    for study in studies().values():
        parts, summary = study.short(cfg, out, options, progress)
        clash = set(parts) & set(result)
        if clash:
            raise RuntimeError(f"study {study.name} returns keys {sorted(clash)} another part already wrote")
        result.update(parts)
        lines += summary
    return result, "\n".join(lines)
