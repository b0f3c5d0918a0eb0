"""The T3 design study: how much do track & trigger and near-memory reduction buy per sublayer?

For every (model, TP, sublayer) of the study config, the system model (`sim.systems.t3_system`) runs Sequential
(GEMM, then ring reduce-scatter on the cores), T3, and T3 + MCA; Ideal is ``max(GEMM alone, RS alone)``.
``speedup = T_sequential / T_config - 1``. Aggregates are geometric means of ``1 + speedup`` minus one and
maxima; ``data_movement_reduction_geomean = 1 - geomean(bytes_t3_mca / bytes_sequential)`` over DRAM bytes.

Output (``t3.json``, keys documented in docs/results.md), ``t3.md`` (report with the paper's numbers beside
ours and an explanation of the differences from the model's own breakdown) and ``t3.png`` (bar chart).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.core.config import HardwareConfig, T3StudyConfig, as_dict
from sim.systems.t3_system import RunResult, Sublayer, mca_threshold, run_sequential, run_t3, sublayers

SCHEMA = "llmarch.t3/1"
CONFIGS = ("t3", "t3_mca", "ideal")
PAPER = {
    "t3": {"geomean": 0.20, "max": 0.39},
    "t3_mca": {"geomean": 0.30, "max": 0.47},
    "ideal": {"geomean": 0.35, "max": 0.50},
    "data_movement_reduction_geomean": 0.22,
    "communication_fraction": [0.34, 0.46],
}


def _geomean_speedup(values: list[float]) -> float:
    return math.exp(sum(math.log1p(v) for v in values) / len(values)) - 1


def _bytes(r: RunResult) -> dict[str, int]:
    return {"dram_read": r.traffic.dram_read, "dram_write": r.traffic.dram_write, "dram": r.traffic.dram,
            "link": r.traffic.link}


def run_sublayer(sl: Sublayer, hw: HardwareConfig, st: T3StudyConfig) -> dict[str, Any]:
    seq, t_gemm, t_rs = run_sequential(sl, hw, st)
    threshold = mca_threshold(st, seq.extra["gemm_dram_utilization"])
    t3 = run_t3(sl, hw, st, mca=False)
    mca = run_t3(sl, hw, st, mca=True, threshold=threshold)
    ideal = max(t_gemm, t_rs)
    us = 1e-3 / hw.gpu.clock_ghz
    cycles = {"sequential": seq.cycles, "t3": t3.cycles, "t3_mca": mca.cycles, "ideal": ideal}

    def stall(r: RunResult) -> float:
        return r.gemm_stall_cycles / max(1.0, r.gemm_stall_cycles + r.compute_busy_cycles)

    return {
        "key": sl.key, "model": sl.model, "sublayer": sl.name, "tp": sl.tp, "m": sl.m, "n": sl.n, "k": sl.k,
        "cycles": cycles,
        "time_us": {k: round(v * us, 3) for k, v in cycles.items()},
        "speedup": {k: seq.cycles / cycles[k] - 1 for k in CONFIGS},
        "bytes": {"sequential": _bytes(seq), "t3": _bytes(t3), "t3_mca": _bytes(mca)},
        "data_movement_reduction": 1 - mca.traffic.dram / seq.traffic.dram,
        "breakdown": {
            "gemm_alone_us": round(t_gemm * us, 3),
            "rs_alone_us": round(t_rs * us, 3),
            "communication_fraction_sequential": t_rs / seq.cycles,
            "gemm_dram_utilization": seq.extra["gemm_dram_utilization"],
            "mca_threshold": threshold,
            "gemm_end_us": {"t3": round(t3.gemm_end * us, 3), "t3_mca": round(mca.gemm_end * us, 3)},
            "gemm_slowdown": {"t3": t3.gemm_end / t_gemm - 1, "t3_mca": mca.gemm_end / t_gemm - 1},
            "comm_tail_us": {"t3": round(t3.comm_after_gemm * us, 3), "t3_mca": round(mca.comm_after_gemm * us, 3)},
            "gemm_stall_fraction": {"sequential": stall(seq), "t3": stall(t3), "t3_mca": stall(mca)},
            "dram_utilization": {"sequential": seq.dram_busy_cycles / seq.cycles,
                                 "t3": t3.dram_busy_cycles / t3.cycles, "t3_mca": mca.dram_busy_cycles / mca.cycles},
        },
        "model_events": seq.events + t3.events + mca.events,
    }


def run_study(hw: HardwareConfig, st: T3StudyConfig, progress: Callable[[str], None] = lambda _: None, *,
              sensitivity: bool = False) -> dict[str, Any]:
    """Run every sublayer; with ``sensitivity`` also rerun with half the assumed matrix rate (the assumption
    that most moves the GEMM : reduce-scatter ratio) and report those geomeans under ``sensitivity``."""
    result = _run_all(hw, st, progress)
    if sensitivity:
        import dataclasses

        half = dataclasses.replace(hw, gpu=dataclasses.replace(
            hw.gpu, flops_per_cu_per_cycle=hw.gpu.flops_per_cu_per_cycle / 2))
        other = _run_all(half, st, lambda m: progress("sensitivity: " + m))
        result["sensitivity"] = {
            "flops_per_cu_per_cycle": half.gpu.flops_per_cu_per_cycle,
            "summary": other["summary"],
            "communication_fraction_mean": _mean_comm_fraction(other),
        }
    return result


def _mean_comm_fraction(result: dict[str, Any]) -> float:
    fr = [r["breakdown"]["communication_fraction_sequential"] for r in result["sublayers"]]
    return sum(fr) / len(fr)


def _run_all(hw: HardwareConfig, st: T3StudyConfig, progress: Callable[[str], None]) -> dict[str, Any]:
    rows = []
    todo = sublayers(st)
    t0 = time.perf_counter()
    for i, sl in enumerate(todo, 1):
        rows.append(run_sublayer(sl, hw, st))
        progress(f"t3 study: {i}/{len(todo)} {sl.key} ({time.perf_counter() - t0:.1f} s)")
    summary: dict[str, Any] = {}
    for c in CONFIGS:
        values = [r["speedup"][c] for r in rows]
        summary[c] = {"geomean": _geomean_speedup(values), "max": max(values)}
    ratios = [r["bytes"]["t3_mca"]["dram"] / r["bytes"]["sequential"]["dram"] for r in rows]
    summary["data_movement_reduction_geomean"] = 1 - math.exp(sum(map(math.log, ratios)) / len(ratios))
    reads = [r["bytes"]["sequential"]["dram_read"] / r["bytes"]["t3_mca"]["dram_read"] for r in rows]
    summary["dram_read_reduction_factor_geomean"] = math.exp(sum(map(math.log, reads)) / len(reads))
    exceptions = []
    for r in rows:
        s = r["speedup"]
        if not (0 <= s["t3"] <= s["t3_mca"] <= s["ideal"]):
            exceptions.append({"key": r["key"], "speedup": s, "why": _exception_reason(r)})
    return {"schema": SCHEMA, "config": {"hardware": as_dict(hw), "t3_study": as_dict(st)}, "paper": PAPER,
            "sublayers": rows, "summary": summary, "ordering_exceptions": exceptions,
            "model_events": sum(r["model_events"] for r in rows)}


def _exception_reason(r: dict[str, Any]) -> str:
    s, b = r["speedup"], r["breakdown"]
    if s["t3"] > s["t3_mca"] and r["cycles"]["t3_mca"] - r["cycles"]["t3"] <= 0.001 * r["cycles"]["t3"]:
        return (f"a tie: MCA changed the total by {r['cycles']['t3_mca'] - r['cycles']['t3']} cycles of "
                f"{r['cycles']['t3']} (the GEMM's stall fraction {b['gemm_stall_fraction']['t3']:.3f} without MCA, "
                f"{b['gemm_stall_fraction']['t3_mca']:.3f} with it)")
    if s["t3"] > s["t3_mca"]:
        return (f"MCA delayed communication more than it helped the GEMM: the GEMM's stall fraction is "
                f"{b['gemm_stall_fraction']['t3']:.3f} without MCA and {b['gemm_stall_fraction']['t3_mca']:.3f} with "
                f"it, while the tail after the GEMM grew from {b['comm_tail_us']['t3']} to "
                f"{b['comm_tail_us']['t3_mca']} us")
    if s["t3_mca"] > s["ideal"]:
        return ("T3 + MCA beat Ideal because T3 moves less data than the sequential reduce-scatter that Ideal "
                "overlaps perfectly (near-memory updates replace read-reduce-write kernels)")
    return "T3 slower than Sequential: communication traffic slowed the GEMM more than overlap saved"


# --- report ------------------------------------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def explain(result: dict[str, Any]) -> list[str]:
    """Sentences comparing ours with the paper, each backed by the model's breakdown."""
    rows, summ = result["sublayers"], result["summary"]
    out = []
    fracs = [r["breakdown"]["communication_fraction_sequential"] for r in rows]
    lo, hi = PAPER["communication_fraction"]
    mean_frac = sum(fracs) / len(fracs)
    out.append(
        f"Communication is {_pct(min(fracs))}–{_pct(max(fracs))} of the Sequential time here (mean "
        f"{_pct(mean_frac)}), against {_pct(lo)}–{_pct(hi)} in the paper. Ideal's speedup is "
        f"min(GEMM, RS) / max(GEMM, RS), so it follows that fraction: ours "
        f"{'exceeds' if summ['ideal']['geomean'] > PAPER['ideal']['geomean'] else 'falls short of'} the "
        f"paper's {_pct(PAPER['ideal']['geomean'])} geomean. The largest Ideal gains are the sublayers with the "
        f"smallest K (OP: K = H/TP), where the reduce-scatter is as long as the GEMM or longer.")
    if "sensitivity" in result:
        sen = result["sensitivity"]
        out.append(
            f"The matrix rate is an assumption ({result['config']['hardware']['gpu']['flops_per_cu_per_cycle']:.0f} "
            f"FLOP/cycle/CU, an MI210-class figure); with half of it ({sen['flops_per_cu_per_cycle']:.0f}) the "
            f"GEMMs lengthen, communication falls to {_pct(sen['communication_fraction_mean'])} of Sequential on "
            f"average, and the geomeans become T3 {_pct(sen['summary']['t3']['geomean'])}, T3 + MCA "
            f"{_pct(sen['summary']['t3_mca']['geomean'])}, Ideal {_pct(sen['summary']['ideal']['geomean'])}.")
    gap_t3 = summ["ideal"]["geomean"] - summ["t3"]["geomean"]
    gap_mca = summ["ideal"]["geomean"] - summ["t3_mca"]["geomean"]
    slow = [r["breakdown"]["gemm_slowdown"]["t3"] for r in rows]
    slow_m = [r["breakdown"]["gemm_slowdown"]["t3_mca"] for r in rows]
    tails = [r["breakdown"]["comm_tail_us"]["t3_mca"] / max(r["time_us"]["t3_mca"], 1e-9) for r in rows]
    util = [r["breakdown"]["dram_utilization"]["t3"] for r in rows]
    out.append(
        f"T3 reaches {_pct(summ['t3']['geomean'])} geomean ({_pct(gap_t3)} below Ideal; paper "
        f"{_pct(PAPER['ideal']['geomean'] - PAPER['t3']['geomean'])} below). Without MCA the GEMM slows by "
        f"{_pct(min(slow))}–{_pct(max(slow))} because communication requests queue ahead of its loads (DRAM "
        f"utilisation {_pct(min(util))}–{_pct(max(util))}); with MCA by {_pct(min(slow_m))}–{_pct(max(slow_m))}. "
        f"The rest of the gap to Ideal is the pipeline tail: the last stage's transfers and updates after the "
        f"GEMM ends take {_pct(min(tails))}–{_pct(max(tails))} of T3 + MCA's time.")
    if gap_t3 - gap_mca < 0.5 * (PAPER["t3_mca"]["geomean"] - PAPER["t3"]["geomean"]):
        helped = [r for r in rows if r["breakdown"]["gemm_slowdown"]["t3"] - r["breakdown"]["gemm_slowdown"]["t3_mca"]
                  > 0.01]
        comm_bound = [r["key"] for r in helped if r["breakdown"]["rs_alone_us"] > r["breakdown"]["gemm_alone_us"]]
        out.append(
            f"MCA buys {_pct(summ['t3_mca']['geomean'] - summ['t3']['geomean'])} geomean here versus "
            f"{_pct(PAPER['t3_mca']['geomean'] - PAPER['t3']['geomean'])} in the paper. It protects the GEMM where "
            f"there is contention ({len(helped)} sublayers lose over a point less GEMM time with it), but "
            + (f"in {len(comm_bound)} of those ({', '.join(comm_bound)}) the reduce-scatter is the longer part, so "
               f"holding communication back lengthens the tail by about what the GEMM saves; " if comm_bound else "")
            + "elsewhere our GEMM is rarely memory-bound: it hides latency with double-buffered K steps and its DRAM "
            "traffic is only what a wave's panels need (L2 holds them), while Accel-Sim's GEMMs see more DRAM "
            "traffic and latency per step. `gemm_efficiency`, `k_slice` and `dram_latency_ns` in the study config "
            "are the assumed knobs that move this.")
    same = {r["sublayer"] for r in rows} >= {"FC-1", "FC-2"}
    if same:
        out.append("FC-1 (backward, input gradient) has the same GEMM shape as FC-2 under our assumed shapes "
                   "(tokens x H x 4H/TP), so the two rows agree; the paper's differ through layouts and "
                   "kernels that this model does not represent.")
    dm = summ["data_movement_reduction_geomean"]
    out.append(
        f"DRAM data movement falls {_pct(dm)} geomean (paper {_pct(PAPER['data_movement_reduction_geomean'])}); "
        f"DRAM reads fall {summ['dram_read_reduction_factor_geomean']:.2f}x (paper about 2.4x for the RS's reads "
        f"alone; ours counts the GEMM's input reads too, which T3 does not change).")
    if result["ordering_exceptions"]:
        for e in result["ordering_exceptions"]:
            out.append(f"Exception to 0 <= T3 <= T3 + MCA <= Ideal at {e['key']}: {e['why']}.")
    else:
        out.append("Every sublayer satisfies 0 <= T3 <= T3 + MCA <= Ideal.")
    return out


def write_report(result: dict[str, Any], out: Path) -> list[Path]:
    """``t3.md`` and ``t3.png`` next to ``t3.json``."""
    summ = result["summary"]
    lines = [
        "# T3 study: fused GEMM + reduce-scatter",
        "",
        "Speedup over Sequential (GEMM, then ring reduce-scatter on the cores), ours beside the paper's "
        "(T3, ASPLOS 2024).",
        "",
        "| configuration | ours geomean | ours max | paper geomean | paper max |",
        "|---|---|---|---|---|",
    ]
    names = {"t3": "T3", "t3_mca": "T3 + MCA", "ideal": "Ideal overlap"}
    for c in ("t3", "t3_mca", "ideal"):
        lines.append(f"| {names[c]} | {_pct(summ[c]['geomean'])} | {_pct(summ[c]['max'])} | "
                     f"{_pct(PAPER[c]['geomean'])} | {_pct(PAPER[c]['max'])} |")
    lines.append(f"| DRAM data movement reduction (T3 + MCA) | {_pct(summ['data_movement_reduction_geomean'])} | | "
                 f"{_pct(PAPER['data_movement_reduction_geomean'])} | |")
    lines += ["", "## Per sublayer", "",
              "| sublayer | M x N x K | Sequential us | GEMM / RS alone us | T3 | T3 + MCA | Ideal | "
              "GEMM slowdown T3 / MCA | data moved |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in result["sublayers"]:
        b = r["breakdown"]
        lines.append(
            f"| {r['key']} | {r['m']} x {r['n']} x {r['k']} | {r['time_us']['sequential']:.1f} | "
            f"{b['gemm_alone_us']:.1f} / {b['rs_alone_us']:.1f} | {_pct(r['speedup']['t3'])} | "
            f"{_pct(r['speedup']['t3_mca'])} | {_pct(r['speedup']['ideal'])} | "
            f"{_pct(b['gemm_slowdown']['t3'])} / {_pct(b['gemm_slowdown']['t3_mca'])} | "
            f"-{_pct(r['data_movement_reduction'])} |")
    lines += ["", "## Where ours differs from the paper, and why", ""]
    lines += [f"- {s}" for s in explain(result)]
    if "cosim" in result:
        c = result["cosim"]
        lines += ["", "## RTL co-simulation", "",
                  f"One `T3Device` on Verilator ran {c['description']}: data mismatches {c['data_mismatches']}, "
                  f"DMA bytes {c['rtl_dma_bytes']} (model {c['model_dma_bytes']}), max completion-cycle error "
                  f"{_pct(c['max_cycle_error'])}."]
    lines += ["", "![speedups](t3.png)", ""]
    md = out / "t3.md"
    md.write_text("\n".join(lines))
    png = out / "t3.png"
    _plot(result, png)
    return [md, png]


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["sublayers"]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(8, 0.6 * len(rows)), 4.5))
    width = 0.27
    colors = {"t3": "#8da0cb", "t3_mca": "#66c2a5", "ideal": "#bbbbbb"}
    labels = {"t3": "T3", "t3_mca": "T3 + MCA", "ideal": "Ideal"}
    for i, c in enumerate(("t3", "t3_mca", "ideal")):
        ax.bar([v + (i - 1) * width for v in x], [100 * r["speedup"][c] for r in rows], width, label=labels[c],
               color=colors[c])
    ax.set_xticks(list(x))
    ax.set_xticklabels([r["key"].replace("/", "\n", 1) for r in rows], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("speedup over Sequential (%)")
    ax.set_title("T3 sublayer speedups (llmarch system model)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)


def summary_table(result: dict[str, Any]) -> str:
    summ = result["summary"]
    names = {"t3": "T3", "t3_mca": "T3 + MCA", "ideal": "Ideal"}
    lines = [f"{'configuration':<14}{'ours geomean':>14}{'ours max':>10}{'paper geomean':>15}{'paper max':>11}"]
    for c in CONFIGS:
        lines.append(f"{names[c]:<14}{_pct(summ[c]['geomean']):>14}{_pct(summ[c]['max']):>10}"
                     f"{_pct(PAPER[c]['geomean']):>15}{_pct(PAPER[c]['max']):>11}")
    lines.append(f"{'data moved':<14}{'-' + _pct(summ['data_movement_reduction_geomean']):>14}{'':>10}"
                 f"{'-' + _pct(PAPER['data_movement_reduction_geomean']):>15}")
    return "\n".join(lines)
