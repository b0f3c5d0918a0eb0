"""The Hogwild! study: W workers over one shared KV cache against one worker and W private caches, on a GPU.

For each (W, layout, context) a decode step is costed by `sim.systems.hogwild.step_cost` on the config's GPU
(an H100-class preset by default) for a 32B-class shape (QwQ-32B's, no weights). The cache state at a context
of C tokens: a prompt of ``prompt_tokens``, the rest generated, split evenly over the workers; in the
``contiguous`` layout every worker's block holds all its tokens, in ``interleaved`` and ``combined`` each worker
is half-way through a step of ``step_tokens`` (the rest is committed in the common block). Each configuration
is costed from the traffic trace of one decode step of a shape-only cache in that state
(`sim.systems.hogwild.traffic_of_step`).

Baselines at the same context: ``single`` (one worker with all C tokens in its cache, one token a step) and
``independent`` (W workers with private caches of the prompt and their own tokens, as self-consistency runs
them: batched, so the weights are read once a step, but the prompt is stored and read W times).

``rotation``: rotating each query once per block against re-rotating every key to its absolute position each
step (`sw_stack.hogwild.traffic.rotation_costs`). ``invariants``: attention through the query-rotation path
against the dense absolute-position reference, on random tensors, for W in {1, 2, 4, 8}, every layout, GQA on
and off. ``crossover``: per context, the smallest power of two W at which the step turns compute-bound.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from sim.core.config import STORAGE_DTYPES, DecoderShape, HardwareConfig, HogwildConfig, as_dict
from sim.studies import Progress
from sim.systems.hogwild import StepCost, crossover_workers, peak_flops, step_cost, traffic_of_step
from sw_stack.hogwild.cache import SharedCache
from sw_stack.hogwild.traffic import rotation_costs

SCHEMA = "llmarch.hogwild/1"
INVARIANT_WORKERS = (1, 2, 4, 8)


def _split(cfg: HogwildConfig, workers: int, context: int) -> tuple[int, list[int]]:
    """The prompt's tokens and each worker's generated tokens when the cache holds ``context`` tokens."""
    prompt = min(cfg.prompt_tokens, context)
    base, extra = divmod(context - prompt, workers)
    return prompt, [base + (w < extra) for w in range(workers)]


def block_lengths(cfg: HogwildConfig, workers: int, layout: str, context: int) -> list[int]:
    """Tokens in each block (common first) when the cache holds ``context`` tokens (see the module docstring)."""
    prompt, written = _split(cfg, workers, context)
    if layout == "contiguous":
        return [prompt, *written]
    progress = [min(cfg.step_tokens // 2, n) for n in written]
    return [prompt + sum(written) - sum(progress), *progress]


def _cost(cfg: HogwildConfig, hw: HardwareConfig, step: np.ndarray) -> StepCost:
    return step_cost(cfg.model, cfg.storage, hw.gpu, step, memory_efficiency=cfg.memory_efficiency,
                     compute_efficiency=cfg.compute_efficiency)


def _summary(cost: StepCost, footprint: int) -> dict[str, Any]:
    return {"step_time_s": cost.step_time_s, "tokens_per_s": cost.tokens_per_s,
            "kv_bytes_read_per_step": cost.kv_read_bytes, "kv_footprint_bytes": footprint,
            "weight_bytes_per_step": cost.weight_bytes, "bound": cost.bound, "memory_s": cost.memory_s,
            "compute_s": cost.compute_s}


def point(cfg: HogwildConfig, hw: HardwareConfig, workers: int, layout: str, context: int) -> dict[str, Any]:
    """One (W, layout, context): Hogwild!, one worker alone and W private caches, each costed from the traffic
    of one decode step of the cache in that state (`sim.systems.hogwild.traffic_of_step`)."""
    shape, per_token = cfg.model, cfg.model.kv_bytes_per_token(STORAGE_DTYPES[cfg.storage])
    lengths = block_lengths(cfg, workers, layout, context)
    step = traffic_of_step(shape, cfg.storage, workers, layout, lengths)
    prompt, own = _split(cfg, workers, context)
    private = [traffic_of_step(shape, cfg.storage, 1, "contiguous", [prompt, n]) for n in own]
    batch = private[0].copy()
    for name in batch.dtype.names[1:]:
        batch[name] = sum(int(t[name]) for t in private)
    single = traffic_of_step(shape, cfg.storage, 1, "contiguous", [prompt, context - prompt])
    rot = rotation_costs(np.asarray(step)[None], shape, cfg.storage)[0]
    return {"workers": workers, "layout": layout, "context": context, "blocks": lengths,
            "hogwild": _summary(_cost(cfg, hw, step), context * per_token),
            "single": _summary(_cost(cfg, hw, single), context * per_token),
            "independent": _summary(_cost(cfg, hw, batch), (workers * prompt + sum(own)) * per_token),
            "rotation": {"query_flops": float(rot["query_flops"]), "rerotate_flops": float(rot["naive_flops"]),
                         "rerotate_bytes": float(rot["naive_bytes"]),
                         "flops_saved": float(rot["naive_flops"] - rot["query_flops"])}}


def invariant_error(workers: int, layout: str, gqa: bool, *, steps: int = 12, seed: int = 0) -> float:
    """Largest relative error (norm of the difference over the norm) of `SharedCache.attend` against
    `SharedCache.attend_reference` over a prefill and ``steps`` decode steps with commits, on random tensors."""
    shape = DecoderShape("invariant", layers=2, hidden=64, heads=4, kv_heads=2 if gqa else 4, head_dim=16,
                         intermediate=128, vocab=64)
    rng = np.random.default_rng(seed)
    cache = SharedCache(shape, workers, layout, "fp32")
    kv, qd = (shape.kv_heads, shape.head_dim), (shape.heads, shape.head_dim)

    def rand(*dims: int) -> np.ndarray:
        return rng.standard_normal(dims).astype(np.float32)

    for layer in range(shape.layers):
        cache.append_common(layer, rand(9, *kv), rand(9, *kv))
        cache.attend_common(layer, rand(9, *qd))
    worst = 0.0
    for step in range(steps):
        for layer in range(shape.layers):
            cache.append(layer, rand(workers, *kv), rand(workers, *kv))
            q = rand(workers, *qd)
            got, want = cache.attend(layer, q), cache.attend_reference(layer, q)
            worst = max(worst, float(np.linalg.norm(got - want) / np.linalg.norm(want)))
        if layout != "contiguous" and step % 4 == 3:
            cache.commit(step % workers)
    return worst


def run_study(cfg: HogwildConfig, hw: HardwareConfig, progress: Progress = lambda _: None) -> dict[str, Any]:
    points = []
    for layout in cfg.layouts:
        for workers in cfg.workers:
            progress(f"Hogwild! {layout}, {workers} workers")
            for context in cfg.contexts:
                points.append(point(cfg, hw, workers, layout, context))
    storage = STORAGE_DTYPES[cfg.storage]
    cross = {str(c): crossover_workers(cfg.model, cfg.storage, hw.gpu, c, memory_efficiency=cfg.memory_efficiency,
                                       compute_efficiency=cfg.compute_efficiency) for c in cfg.contexts}
    progress("Hogwild! attention invariants")
    cases = [{"workers": w, "layout": layout, "gqa": gqa, "rel_error": invariant_error(w, layout, gqa)}
             for w in INVARIANT_WORKERS for layout in cfg.layouts for gqa in (False, True)]
    return {"schema": SCHEMA, "config": as_dict(cfg), "gpu": dataclasses.asdict(hw.gpu),
            "peak_tflops": peak_flops(hw.gpu) / 1e12, "model_params": cfg.model.params(),
            "kv_bytes_per_token": cfg.model.kv_bytes_per_token(storage), "points": points, "crossover": cross,
            "invariants": {"max_rel_error": max(c["rel_error"] for c in cases), "cases": cases}}


def _find(result: dict[str, Any], workers: int, layout: str, context: int) -> dict[str, Any]:
    return next(p for p in result["points"]
                if (p["workers"], p["layout"], p["context"]) == (workers, layout, context))


def summary_table(result: dict[str, Any]) -> str:
    cfg = result["config"]
    ctx = max(cfg["contexts"])
    lines = [f"{result['config']['model']['name']} on {result['gpu']['name']}, context {ctx} tokens "
             f"({cfg['storage']} KV):",
             f"{'layout':<12}{'W':>3} {'tok/s':>9} {'x single':>9} {'x indep.':>9} {'KV read/step':>13} "
             f"{'footprint':>10} {'indep. fp':>10}  bound"]
    for layout in cfg["layouts"]:
        for w in cfg["workers"]:
            p = _find(result, w, layout, ctx)
            h, s, i = p["hogwild"], p["single"], p["independent"]
            lines.append(f"{layout:<12}{w:>3} {h['tokens_per_s']:9.1f} {h['tokens_per_s'] / s['tokens_per_s']:9.2f} "
                         f"{h['tokens_per_s'] / i['tokens_per_s']:9.2f} {h['kv_bytes_read_per_step'] / 1e9:10.2f} GB "
                         f"{h['kv_footprint_bytes'] / 1e9:7.2f} GB {i['kv_footprint_bytes'] / 1e9:7.2f} GB  "
                         f"{h['bound']}")
    lines.append(f"attention invariant: max relative error {result['invariants']['max_rel_error']:.2e} over "
                 f"{len(result['invariants']['cases'])} cases")
    return "\n".join(lines)


def write_report(result: dict[str, Any], out: Path) -> list[Path]:
    cfg = result["config"]
    ctx = max(cfg["contexts"])
    lines = ["# Hogwild! Inference: workers over one shared KV cache", "",
             f"Shape {cfg['model']['name']} ({result['model_params'] / 1e9:.1f}B parameters, "
             f"{cfg['model']['layers']} layers, {cfg['model']['heads']} query heads, {cfg['model']['kv_heads']} KV "
             f"heads, head dim {cfg['model']['head_dim']}), {cfg['storage']} weights and KV, on "
             f"{result['gpu']['name']} ({result['peak_tflops']:.0f} TFLOP/s, {result['gpu']['hbm_gbps']:.0f} GB/s; "
             f"memory efficiency {cfg['memory_efficiency']}, compute efficiency {cfg['compute_efficiency']}, "
             "both assumed). A step: every worker emits one token.", "",
             "```", summary_table(result), "```", "",
             "## Query rotation against re-rotating keys", "",
             "| layout | W | context | query rotation GFLOP | key re-rotation GFLOP | key re-rotation GB |",
             "|---|---|---|---|---|---|"]
    for p in result["points"]:
        if p["context"] == ctx:
            r = p["rotation"]
            lines.append(f"| {p['layout']} | {p['workers']} | {ctx} | {r['query_flops'] / 1e9:.3f} | "
                         f"{r['rerotate_flops'] / 1e9:.1f} | {r['rerotate_bytes'] / 1e9:.1f} |")
    cross = ", ".join(f"{c}: {'W = ' + str(w) if w else 'never (below 65536)'}" for c, w in result["crossover"].items())
    lines += ["", "## Memory-bound or compute-bound", "",
              f"Smallest power-of-two W at which a step turns compute-bound, per context: {cross}. The weights are "
              "read once a step for all workers, but each worker reads its whole view's K and V, whose intensity "
              "(about `heads / kv_heads` FLOPs a byte) stays far below the GPU's, so long contexts keep the step "
              "memory-bound at any W.", "",
              "![tokens/s and footprint](hogwild.png)", ""]
    if "cosim" in result:
        c = result["cosim"]
        lines += ["## Commit moves on the DMA engine RTL", "", c["description"], "",
                  f"{c['data_mismatches']} data mismatches over {c['words_checked']} words; max cycle error "
                  f"{100 * c['max_cycle_error']:.2f}% ({c['cycles_rtl']} cycles RTL, {c['cycles_model']} model).", ""]
    md = out / "hogwild.md"
    md.write_text("\n".join(lines))
    png = out / "hogwild.png"
    _plot(result, png)
    return [md, png]


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    cfg = result["config"]
    ctx = max(cfg["contexts"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ws = list(cfg["workers"])
    for layout in cfg["layouts"]:
        pts = [_find(result, w, layout, ctx) for w in ws]
        axes[0].plot(ws, [p["hogwild"]["tokens_per_s"] for p in pts], marker="o", label=f"Hogwild! {layout}")
        axes[1].plot(ws, [p["hogwild"]["kv_footprint_bytes"] / 1e9 for p in pts], marker="o",
                     label=f"Hogwild! {layout}")
    pts = [_find(result, w, cfg["layouts"][0], ctx) for w in ws]
    axes[0].plot(ws, [p["independent"]["tokens_per_s"] for p in pts], "k--", label="independent")
    axes[0].plot(ws, [p["single"]["tokens_per_s"] for p in pts], "k:", label="one worker")
    axes[1].plot(ws, [p["independent"]["kv_footprint_bytes"] / 1e9 for p in pts], "k--", label="independent")
    axes[0].set(xlabel="workers", ylabel="tokens/s (all workers)", title=f"tokens/s at {ctx} tokens", xscale="log",
                xticks=ws, xticklabels=[str(w) for w in ws])
    axes[1].set(xlabel="workers", ylabel="KV footprint (GB)", title="KV footprint", xscale="log", xticks=ws,
                xticklabels=[str(w) for w in ws])
    for c in cfg["contexts"]:
        pts = [_find(result, w, cfg["layouts"][0], c) for w in ws]
        axes[2].plot(ws, [p["hogwild"]["memory_s"] / p["hogwild"]["compute_s"] for p in pts], marker="o",
                     label=f"{c} tokens")
    axes[2].axhline(1.0, color="k", linestyle="--")
    axes[2].set(xlabel="workers", ylabel="memory time / compute time", title="bound (>1: memory-bound)",
                xscale="log", yscale="log", xticks=ws, xticklabels=[str(w) for w in ws])
    for ax in axes:
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
