"""The ring study: the main job of ``llmarch run``.

1. The T3 planner (`sw_stack.t3.planner`) plans the default fused GEMM + ring reduce-scatter.
2. The ring model (`sim.systems.t3_ring`) runs every device's tracker and the links in one event loop and yields each
   tracker's input stream. Each device's trace (planner output + tracker input) is written to
   ``OUT/traces/device<d>.npz`` (trace format v1).
3. Each device's tracker input is replayed, with the config's random input idles and trigger backpressure
   (seeded by ``seed`` and the device number), into the tracker model and, with ``--rtl``, into the tracker
   RTL on Verilator; every trigger's cycle and data are compared.

The other studies' short versions follow it in ``llmarch run`` (`sim.studies.run_all`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sim.blocks.tracker import triggers_table
from sim.blocks.tracker.model import replay_tracker
from sim.core import trace
from sim.core.config import RunConfig
from sim.core.stimulus import ReadyPattern, add_input_idles, mix32
from sim.exec.api import compare_tables
from sim.systems.t3_ring import simulate_ring
from sw_stack.t3.planner import plan_t3


def device_stimulus(requests: np.ndarray, seed: int, device: int, idle_prob: float,
                    backpressure_prob: float) -> tuple[np.ndarray, ReadyPattern]:
    """The stalled replay stimulus of one device: delayed availability and a backpressure pattern."""
    rng = np.random.default_rng([seed, device])
    stim = requests.copy()
    stim["cycle"] = add_input_idles(requests["cycle"], idle_prob, rng)
    return stim, ReadyPattern(mix32(seed * 7919 + device), backpressure_prob)


def run_main_job(cfg: RunConfig, out: Path, *, rtl: bool = False, waves: bool = False,
                 progress: Callable[[str], None] = lambda _: None) -> tuple[dict[str, Any], str]:
    """The ring part of ``llmarch run``: ``{"ring": ..., "tracker": ...}`` and its summary lines."""
    hw = cfg.hardware
    params = hw.tracker
    progress("planning the fused GEMM + ring reduce-scatter")
    plan = plan_t3(cfg.t3, hw)
    progress(f"ring model: {cfg.t3.devices} devices, {sum(len(d.stores) for d in plan.devices)} producer stores")
    ring = simulate_ring(plan, hw)

    per_device = []
    for dp, dr in zip(plan.devices, ring.devices, strict=True):
        t = plan.to_trace(dp.device)
        t.add("tracker_input", "tracker_requests", dr.tracker_input)
        t.add("ring_triggers", "triggers", dr.triggers)
        trace.write(t, out / "traces" / f"device{dp.device}.npz")

        stim, ready = device_stimulus(dr.tracker_input, cfg.seed, dp.device, cfg.replay.input_idle_prob,
                                      cfg.replay.backpressure_prob)
        progress(f"device {dp.device}: model replay of {len(stim)} tracker requests")
        model = replay_tracker(params, dp.program, stim, ready.as_model_ready())
        model_trig = triggers_table(model.triggers)
        entry: dict[str, Any] = {
            "device": dp.device,
            "requests": len(stim),
            "triggers": len(model_trig),
            "model_last_trigger_cycle": int(model_trig["cycle"][-1]) if len(model_trig) else -1,
            "model_stall_cycles": model.stats.stall_cycles,
        }
        if rtl:
            from sim.blocks.tracker.rtl import replay_harness

            progress(f"device {dp.device}: RTL replay on Verilator")
            res = replay_harness(params, dp.program, stim, out / "rtl" / f"device{dp.device}",
                                 bp_seed=ready.seed, bp_prob=ready.prob, waves=waves)
            rtl_trig = triggers_table(res["triggers"])
            _, data_mis, cyc_mis, missing, _ = compare_tables("triggers", rtl_trig, model_trig, ordered=True,
                                                              timed=True)
            entry.update({
                "rtl_last_trigger_cycle": int(rtl_trig["cycle"][-1]) if len(rtl_trig) else -1,
                "rtl_cycles": res["cycles"],
                "mismatches": cyc_mis + missing,  # a trigger only one side has counts here too
                "data_mismatches": data_mis,
                "scoreboard_ok": bool(res["scoreboard_ok"]),
                "rtl_wall_s": res["wall_s"],
            })
        per_device.append(entry)

    tracker: dict[str, Any] = {
        "params": params.as_dict(),
        "requests": sum(e["requests"] for e in per_device),
        "triggers": sum(e["triggers"] for e in per_device),
        "model_last_trigger_cycle": max(e["model_last_trigger_cycle"] for e in per_device),
        "per_device": per_device,
    }
    if rtl:
        tracker["rtl_last_trigger_cycle"] = max(e["rtl_last_trigger_cycle"] for e in per_device)
        tracker["mismatches"] = sum(e["mismatches"] for e in per_device)
        tracker["data_mismatches"] = sum(e["data_mismatches"] for e in per_device)
        tracker["scoreboard_ok"] = all(e["scoreboard_ok"] for e in per_device)
        rtl_wall = sum(e.pop("rtl_wall_s") for e in per_device)  # wall time is not deterministic: not in JSON
    compute_end = max(d.compute_end_cycle for d in ring.devices)
    clock_hz = plan.clock_hz
    ring_json = {
        "devices": cfg.t3.devices,
        "tiles_per_chunk": plan.tiles_per_chunk,
        "tiles_per_group": plan.tiles_per_group,
        "tracked_entries_per_device": (cfg.t3.devices - 1) * plan.groups_per_chunk,
        "compute_end_cycle": compute_end,
        "last_reduced_cycle": ring.last_notify_cycle,
        "exposed_communication_cycles": ring.last_notify_cycle - compute_end,
        "link_bytes": ring.link_bytes,
        "model_events": ring.events,
        "clock_hz": clock_hz,
    }
    result = {"ring": ring_json, "tracker": tracker}

    us = 1e6 / clock_hz
    lines = [
        f"llmarch run: T3 fused GEMM + ring reduce-scatter on {cfg.t3.devices} x {hw.gpu.name} "
        f"({cfg.t3.tokens}x{cfg.t3.hidden}, K={cfg.t3.k}), seed {cfg.seed}",
        f"  ring model : compute ends at cycle {compute_end} ({compute_end * us:.1f} us); last chunk reduced at "
        f"{ring.last_notify_cycle} ({ring.last_notify_cycle * us:.1f} us); exposed communication "
        f"{ring_json['exposed_communication_cycles']} cycles; {ring.link_bytes / 2**20:.1f} MiB over links",
        f"  tracker    : {tracker['requests']} requests, {tracker['triggers']} triggers, "
        f"{ring_json['tracked_entries_per_device']}/{params.entries} entries per device; "
        f"model last trigger at cycle {tracker['model_last_trigger_cycle']} "
        f"(replay stalls: idle {cfg.replay.input_idle_prob}, backpressure {cfg.replay.backpressure_prob})",
    ]
    if rtl:
        lines.append(
            f"  RTL        : last trigger at cycle {tracker['rtl_last_trigger_cycle']}; "
            f"{tracker['mismatches']} cycle mismatches, {tracker['data_mismatches']} data mismatches vs the model; "
            f"scoreboard {'ok' if tracker['scoreboard_ok'] else 'FAILED'}; "
            f"{sum(e['rtl_cycles'] for e in per_device) / max(rtl_wall, 1e-9) / 1e6:.2f} M cycles/s on Verilator")
    return result, "\n".join(lines)
