"""Verilog generation for every hardware block (``llmarch verilog``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring

from hw.tracker import TrackerParams, TrackTrigger

# Block name (also the Verilog module and file name) -> constructor from the block's parameters.
BLOCKS: dict[str, Callable[..., wiring.Component]] = {
    "track_trigger": lambda tracker=None: TrackTrigger(tracker or TrackerParams()),
}


def generate(name: str, component: wiring.Component) -> str:
    """Verilog text of ``component`` as module ``name``."""
    return verilog.convert(component, name=name, emit_src=False)


def write_all(out_dir: Path, **params: object) -> list[Path]:
    """Write one ``<block>.v`` per block into ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make in BLOCKS.items():
        path = out_dir / f"{name}.v"
        tmp = path.with_suffix(".v.tmp")
        tmp.write_text(generate(name, make(**params)))
        tmp.replace(path)
        paths.append(path)
    return paths
