"""Verilog generation for every hardware block (``llmarch verilog``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring

from hw.tracker import TrackerParams, TrackTrigger


def _t3_device(tracker: TrackerParams | None = None) -> wiring.Component:
    from hw.t3_device import T3Device, T3DeviceParams

    kw = {}
    if tracker is not None:
        kw = {"entries": tracker.entries, "count_bits": tracker.count_bits, "fifo_depth": tracker.fifo_depth}
    return T3Device(T3DeviceParams(**kw))


def _dma(tracker: TrackerParams | None = None) -> wiring.Component:
    from hw.dma import DmaEngine

    return DmaEngine()


def _reducer(tracker: TrackerParams | None = None) -> wiring.Component:
    from hw.reducer import NearMemoryReducer

    return NearMemoryReducer()


def _kv_swap(tracker: TrackerParams | None = None) -> wiring.Component:
    from hw.kv_swap import KvSwapController

    return KvSwapController()


def _arbiter(tracker: TrackerParams | None = None) -> wiring.Component:
    from hw.arbiter import MemoryArbiter

    return MemoryArbiter()


# Block name (also the Verilog module and file name) -> constructor. Each takes the configured tracker
# parameters; the T3 device sizes its tracker and descriptor table from them, the other blocks use defaults.
BLOCKS: dict[str, Callable[..., wiring.Component]] = {
    "track_trigger": lambda tracker=None: TrackTrigger(tracker or TrackerParams()),
    "dma_engine": _dma,
    "near_memory_reducer": _reducer,
    "memory_arbiter": _arbiter,
    "t3_device": _t3_device,
    "kv_swap_controller": _kv_swap,
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
