"""The FastSwitch design study: what cheap context switches buy for tail latency in fair serving.

For each setup (a `FastSwitchConfig` preset: model, GPU, PCIe, workload, scheduler), one seeded multi-turn
workload is served by the vLLM-like baseline, FastSwitch, and each of FastSwitch's mechanisms alone
(`sw_stack.serving.SYSTEMS`). Every swap's duration comes from the KV swap DMA controller's model on the PCIe
link (`sim.systems.swap_cost.ControllerSwapCost`). ``speedup`` is ``baseline / fastswitch`` for each TTFT and TBT
percentile (higher is better), ``throughput_ratio`` is ``fastswitch / baseline``.

Output: ``fastswitch.json`` (keys in docs/results.md), ``fastswitch.md`` (beside the paper's bands, with
reasons from the model's breakdown) and ``fastswitch.png`` (TTFT and TBT CDFs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.core.config import FastSwitchConfig, as_dict
from sim.systems.swap_cost import ControllerSwapCost
from sw_stack.serving import SYSTEMS, generate, offered_gpu_seconds, simulate
from sw_stack.serving.engine import ServingEngine

if TYPE_CHECKING:
    from sim.studies.fastswitch.cosim import SwapWindow

SCHEMA = "llmarch.fastswitch/1"
PCTS = ("p50", "p95", "p99", "p999")
PAPER = {"ttft_speedup": [1.4, 5.8], "tbt_p999_speedup_max": 11.2, "throughput_ratio_max": 1.44, "arrival_rate": 1.0}
KEEP = ("ttft", "tbt", "throughput_tokens_per_s", "swap_bytes", "swap_gbps", "gpu_idle_fraction",
        "swap_stall_fraction", "swap_copies", "swaps_out", "swaps_in", "preemptions", "recomputes", "rejections",
        "rejected", "reused_blocks", "turns_completed", "makespan_s", "ttft_cdf", "tbt_cdf")


def unit_bytes(cfg: FastSwitchConfig) -> int:
    """One copy unit: one 16-token block of one layer's K (or V)."""
    m = cfg.model
    return cfg.scheduler.block_tokens * m.kv_heads * m.head_size * m.dtype_bytes


def run_setup(name: str, cfg: FastSwitchConfig, systems: tuple[str, ...],
              progress: Callable[[str], None] = lambda _: None, window: SwapWindow | None = None) -> dict[str, Any]:
    """Serve the setup's workload with each system; ``window`` (if given) receives the first ``window.swaps``
    swaps of ``window.system`` and its pool sizes."""
    workload = generate(cfg.workload, cfg.model.max_context)
    out: dict[str, Any] = {"model": cfg.model.name, "gpu": cfg.gpu.name, "conversations": cfg.workload.conversations,
                           "turns": int(len(workload.turns)), "systems": {}}
    work = offered_gpu_seconds(cfg, workload)
    n = max(1, cfg.workload.conversations)
    out.update(arrival_rate=cfg.workload.arrival_rate, gpu_work_s=work,
               offered_load=work * cfg.workload.arrival_rate / n,
               offered_load_at_paper_rate=work * PAPER["arrival_rate"] / n)
    for system in systems:
        t0 = time.perf_counter()
        cost = ControllerSwapCost(cfg.pcie, unit_bytes(cfg))
        if window is not None and system == window.system:
            engine = ServingEngine(cfg, system, cost, record_swaps=window.swaps)
            metrics = engine.run(workload)
            window.records, window.gpu_blocks, window.cpu_blocks = engine.swap_log, engine.gpu_blocks, engine.cpu_blocks
        else:
            metrics = simulate(cfg, workload, system, swap_cost=cost)
        out["systems"][system] = {k: metrics[k] for k in KEEP}
        progress(f"fastswitch study: {name} {system} in {time.perf_counter() - t0:.1f} s")
    base, fast = out["systems"].get("baseline"), out["systems"].get("fastswitch")
    if base and fast:
        out["speedup"] = {m: {p: base[m][p] / fast[m][p] if fast[m][p] > 0 else None for p in PCTS}
                          for m in ("ttft", "tbt")}
        out["throughput_ratio"] = fast["throughput_tokens_per_s"] / base["throughput_tokens_per_s"]
    return out


def run_study(setups: dict[str, FastSwitchConfig], systems: tuple[str, ...] = tuple(SYSTEMS),
              progress: Callable[[str], None] = lambda _: None, cosim_work: Path | None = None,
              seed: int = 1, waves: bool = False) -> dict[str, Any]:
    """Run every setup; with ``cosim_work``, also replay the FastSwitch system's first swaps of the first setup
    into the swap controller's RTL (`sim.studies.fastswitch.cosim`) and store the figures under ``cosim``."""
    window = None
    if cosim_work is not None:
        from sim.studies.fastswitch.cosim import WINDOW_SWAPS, SwapWindow

        if "fastswitch" not in systems:
            raise ValueError("the co-simulation replays the fastswitch system's swaps; add it to the systems")
        window = SwapWindow(2 * WINDOW_SWAPS)  # spare swaps replace those that do not fit the replay's pools
    result: dict[str, Any] = {"schema": SCHEMA, "paper": PAPER,
                              "config": {name: as_dict(cfg) for name, cfg in setups.items()}, "setups": {}}
    for i, (name, cfg) in enumerate(setups.items()):
        result["setups"][name] = run_setup(name, cfg, systems, progress, window if i == 0 else None)
    if window is not None:
        from sim.studies.fastswitch.cosim import cosim_swap_window

        name, cfg = next(iter(setups.items()))
        t0 = time.perf_counter()
        result["cosim"] = cosim_swap_window(window.records, window.gpu_blocks, window.cpu_blocks,
                                            ControllerSwapCost(cfg.pcie, unit_bytes(cfg)), unit_bytes(cfg),
                                            cosim_work, seed=seed, setup=name, system=window.system,
                                            waves=waves)
        progress(f"fastswitch co-simulation: {result['cosim']['swaps']} swaps of {name} on Verilator in "
                 f"{time.perf_counter() - t0:.1f} s")
    return result


def _x(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def _per_swap(m: dict[str, Any]) -> float:
    return m["swap_copies"] / max(1, m["swaps_out"] + m["swaps_in"])


def explain(result: dict[str, Any]) -> list[str]:
    """Reasons, from the model's breakdown, for what the study shows and where it differs from the paper."""
    out = []
    for name, s in result["setups"].items():
        sy = s["systems"]
        b, f = sy.get("baseline"), sy.get("fastswitch")
        out.append(
            f"{name}: offered load {s['offered_load']:.2f} at {s['arrival_rate']} conversations/s "
            f"({s['gpu_work_s']:.0f} GPU-seconds of prefill and decode for {s['conversations']} conversations, "
            f"`offered_gpu_seconds`); at the paper's {PAPER['arrival_rate']} conversation/s it would be "
            f"{s['offered_load_at_paper_rate']:.1f}, where no scheduler keeps up and queues and swap volume grow "
            f"without bound. The rate is calibrated to the paper's high-stress but stable regime.")
        if not (b and f):
            continue
        out.append(
            f"{name}: swaps run at {b['swap_gbps']:.1f} GB/s in the baseline ({_per_swap(b):.0f} "
            f"copies of 32 KiB per swap: one per block, layer and K/V) and {f['swap_gbps']:.1f} GB/s with block groups "
            f"({_per_swap(f):.0f} copies per swap); the GPU waits on swaps "
            f"{100 * b['swap_stall_fraction']:.1f}% of the time in the baseline and "
            f"{100 * f['swap_stall_fraction']:.1f}% with FastSwitch; FastSwitch did not copy {f['reused_blocks']} "
            f"blocks again thanks to KV reuse and fell back to recomputation {f['recomputes']} times (CPU pool full). "
            f"Cheaper switches feed back into the load: shorter stalls keep the queues short, so fewer requests are "
            f"preempted ({b['preemptions']} -> {f['preemptions']}) and {b['swap_bytes'] / 1e12:.1f} -> "
            f"{f['swap_bytes'] / 1e12:.1f} TB are swapped.")
        for abl, what, why in (
                ("block_groups_only", "block groups alone", "few large copies instead of many 32 KiB ones"),
                ("async_swap_only", "async swap alone",
                 "the copies are as slow as the baseline's, and the GPU still waits whenever nothing is runnable "
                 "(the head of the queue waits for its victims' swap-outs)"),
                ("kv_reuse_only", "KV reuse alone",
                 "blocks already in the CPU copy are not copied out again, so less is moved at the same GB/s")):
            if abl in sy:
                a = sy[abl]
                out.append(f"{name}, {what}: P99 TTFT {a['ttft']['p99']:.2f} s (baseline {b['ttft']['p99']:.2f} s), "
                           f"P99.9 TBT {a['tbt']['p999']:.2f} s (baseline {b['tbt']['p999']:.2f} s), swap "
                           f"{a['swap_gbps']:.1f} GB/s, {a['swap_bytes'] / 1e12:.1f} TB swapped, swap stall "
                           f"{100 * a['swap_stall_fraction']:.1f}%: {why}.")
        ratio = s.get("throughput_ratio")
        if ratio is not None and ratio < PAPER["throughput_ratio_max"]:
            out.append(f"{name}: throughput {ratio:.2f}x (paper up to {PAPER['throughput_ratio_max']}x): below "
                       f"saturation the tokens served per second follow the arrivals, so FastSwitch's gain shows in "
                       f"the tails, not in tokens/s; the paper's throughput gain needs a saturated system.")
        sp = s.get("speedup", {}).get("tbt", {}).get("p999")
        if sp is not None and sp < PAPER["tbt_p999_speedup_max"]:
            swap_ms = 1e3 * f["swap_bytes"] / max(1, f["swaps_out"] + f["swaps_in"]) / max(1e-9, f["swap_gbps"] * 1e9)
            out.append(f"{name}: P99.9 TBT {sp:.2f}x (paper up to {PAPER['tbt_p999_speedup_max']}x): FastSwitch's "
                       f"P99.9 TBT ({f['tbt']['p999']:.2f} s) is the time a preempted request waits, swapped out, for "
                       f"its priority to come back (the scheduler's choice, the same in both systems), while a swap "
                       f"takes {swap_ms:.0f} ms on average.")
    return out


def write_report(result: dict[str, Any], out: Path) -> list[Path]:
    lines = ["# FastSwitch study: fair preemptive serving", "",
             f"Paper (FastSwitch vs vLLM 0.3.3): TTFT {PAPER['ttft_speedup'][0]}–{PAPER['ttft_speedup'][1]}x better "
             f"at P95–P99.9, P99.9 TBT up to {PAPER['tbt_p999_speedup_max']}x, throughput up to "
             f"{PAPER['throughput_ratio_max']}x.", ""]
    for name, s in result["setups"].items():
        lines += [f"## {name}: {s['model']} on {s['gpu']}, {s['conversations']} conversations ({s['turns']} turns)",
                  "", "| system | TTFT p50 / p95 / p99 / p99.9 s | TBT p50 / p99 / p99.9 s | tokens/s | swap GB "
                  "| swap GB/s | GPU idle | rejected |", "|---|---|---|---|---|---|---|---|"]
        for sysname, m in s["systems"].items():
            t, b = m["ttft"], m["tbt"]
            lines.append(f"| {sysname} | {t['p50']:.2f} / {t['p95']:.2f} / {t['p99']:.2f} / {t['p999']:.2f} | "
                         f"{b['p50']:.3f} / {b['p99']:.3f} / {b['p999']:.3f} | {m['throughput_tokens_per_s']:.0f} | "
                         f"{m['swap_bytes'] / 1e9:.1f} | {m['swap_gbps']:.1f} | {100 * m['gpu_idle_fraction']:.1f}% | "
                         f"{m['rejections']} |")
        if "speedup" in s:
            sp = s["speedup"]
            lines += ["", "| FastSwitch over baseline | P50 | P95 | P99 | P99.9 |", "|---|---|---|---|---|",
                      "| TTFT | " + " | ".join(_x(sp["ttft"][p]) for p in PCTS) + " |",
                      "| TBT | " + " | ".join(_x(sp["tbt"][p]) for p in PCTS) + " |",
                      "", f"Throughput ratio {s['throughput_ratio']:.2f}x "
                      f"(paper: up to {PAPER['throughput_ratio_max']}x).", ""]
    if "cosim" in result:
        c = result["cosim"]
        lines += ["## Swap controller RTL co-simulation", "",
                  f"The first {c['swaps']} swaps of {c['system']} on {c['setup']} "
                  + (f"that fit the replay's pools ({c['swaps_skipped']} skipped; " if c["swaps_skipped"] else "(")
                  + f"{c['swaps_out']} out, "
                  f"{c['swaps_in']} in; {c['runs']} runs, {c['blocks_moved']} blocks of {c['block_words']} words) "
                  f"replayed into the KV swap controller on Verilator with {100 * c['status_backpressure']:.0f}% "
                  f"status backpressure: {c['data_mismatches']} data mismatches over {c['words_checked']} words, "
                  f"{c['write_errors']} write-count errors, {c['cycles_rtl']} cycles on the RTL and "
                  f"{c['cycles_model']} on the model, max completion-cycle error "
                  f"{100 * c['max_cycle_error']:.2f}%.", ""]
    lines += ["## Where ours differs from the paper, and why", ""] + [f"- {x}" for x in explain(result)]
    lines += ["", "![CDFs](fastswitch.png)", ""]
    md = out / "fastswitch.md"
    md.write_text("\n".join(lines))
    png = out / "fastswitch.png"
    _plot(result, png)
    return [md, png]


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    setups = result["setups"]
    fig, axes = plt.subplots(len(setups), 2, figsize=(10, 3.6 * len(setups)), squeeze=False)
    for row, (name, s) in enumerate(setups.items()):
        for col, metric in enumerate(("ttft", "tbt")):
            ax = axes[row][col]
            for sysname, m in s["systems"].items():
                values = m[f"{metric}_cdf"]
                if values:
                    ax.plot(values, [i / (len(values) - 1) for i in range(len(values))], label=sysname)
            ax.set_xscale("log")
            ax.set_xlabel(f"{metric.upper()} (s)")
            ax.set_ylabel("CDF")
            ax.set_title(f"{name}: {metric.upper()}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def summary_table(result: dict[str, Any]) -> str:
    lines = [f"{'setup':<14}{'TTFT speedup p95/p99/p99.9':>30}{'TBT p99.9':>11}{'tput':>7}{'swap GB/s b->f':>16}"]
    for name, s in result["setups"].items():
        if "speedup" not in s:
            continue
        sp = s["speedup"]
        b, f = s["systems"]["baseline"], s["systems"]["fastswitch"]
        lines.append(f"{name:<14}{' / '.join(_x(sp['ttft'][p]) for p in ('p95', 'p99', 'p999')):>30}"
                     f"{_x(sp['tbt']['p999']):>11}{s['throughput_ratio']:>6.2f}x"
                     f"{b['swap_gbps']:>8.1f} -> {f['swap_gbps']:.1f}")
    lines.append(f"{'paper':<14}{'1.4x - 5.8x':>30}{'<= 11.2x':>11}{'<=1.44x':>7}")
    return "\n".join(lines)
