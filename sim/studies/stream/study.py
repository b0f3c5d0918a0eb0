"""STREAM through the execution API: one kernel description on every target, the abstraction's cost measured.

HPX ported STREAM to its uniform execution API and found no measurable cost against native STREAM. This study
asks the same of llmarch's API (`sim.exec.run`). The kernel description is `sw_stack.stream.kernel` (STREAM's
four kernels in its order, fp32, its rules); the targets:

``numpy``      native: the kernels written directly in numpy on three arrays (`sw_stack.stream.native`);
``c``          native: our own small C STREAM, compiled with the system C compiler (skipped without one);
``reference``  the STREAM unit's numpy reference through `sim.exec.run`, one call per kernel, on one image
               holding the three arrays (donated, so nothing is copied);
``model``      the STREAM unit's cycle model through `sim.exec.run`: the whole run (every repetition) as one
               stimulus of kernel programs queued at cycle 0;
``rtl``        the same stimulus on the unit's RTL on Verilator (``--rtl``).

Host targets are timed by the wall clock on arrays of at least 4x the last-level cache; device targets by
their cycles at the configured clock (a kernel's time is the cycles between its status and the previous
kernel's, so it includes taking and checking the program). Every target follows STREAM's rules: 10 repetitions,
the best time of each kernel over all but the first, bytes as STREAM counts them, the arrays validated at the
end against STREAM's scalar recurrence; the device targets' final images must also equal the reference's bit
for bit.

``api_overhead`` = (sum over kernels of the best time through `sim.exec.run`) / (the same for the direct call
of the block's runner, ``Block.reference`` / ``Block.model``) - 1, both measured interleaved in one run. The
native targets are direct by definition; the RTL's run is a simulator process of seconds whose run-to-run
variation is larger than what it would measure, so it has none (null).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

import sim.exec as ex
from hw.memory import MemoryParams
from hw.stream import WORD_BYTES, StreamParams
from sim.core import trace
from sim.core.config import StreamStudyConfig
from sim.studies import Progress
from sw_stack.stream import kernel as K
from sw_stack.stream import native

SCHEMA = "llmarch.stream/1"
# Keys of a target that are wall-clock measurements of this machine (they differ from run to run); every other
# key is a function of the config. ``llmarch run`` prints them and leaves them out of run.json.
MEASURED = ("gbps", "best_s", "api_overhead", "vs_native", "direct_best_s", "wall_s", "timer_ticks")
LLC_FACTOR = 4  # STREAM: each array at least 4x the last-level cache
BLOCK = "stream"
# Words between the host image's arrays (STREAM's OFFSET): arrays a power of two apart hit the same cache sets
# element for element (measured: the reference's copy 20 % slower than the same np.copyto on separate arrays).
HOST_PAD = 1024 + 16


def _bits(words: int) -> int:
    return max(1, (words - 1).bit_length())


def _layout(n: int, pad: int = 0) -> dict[str, int]:
    """Word offsets of the three arrays in the memory image: a, b, c in order, ``pad`` words apart."""
    return {name: i * (n + pad) for i, name in enumerate(K.ARRAYS)}


def _image(n: int, pad: int = 0) -> np.ndarray:
    arrays = K.initial(n)
    image = np.zeros(len(K.ARRAYS) * n + (len(K.ARRAYS) - 1) * pad, dtype=np.float32)
    for name, o in _layout(n, pad).items():
        image[o:o + n] = arrays[name]
    return image.view(np.uint32)


def _programs(n: int, repetitions: int, tag_bits: int, pad: int = 0) -> np.ndarray:
    """Every repetition's kernels as programs, all queued at cycle 0 (the host fills the unit's queue)."""
    from sim.blocks.stream.reference import PROGRAM_DTYPE

    off = _layout(n, pad)
    seq = K.SEQUENCE * repetitions
    progs = np.zeros(len(seq), dtype=PROGRAM_DTYPE)
    for i, k in enumerate(seq):
        src = (*k.src, k.src[0])[:2]
        progs[i]["op"] = k.op
        progs[i]["a"] = off[k.dst] * WORD_BYTES
        progs[i]["b"] = off[src[0]] * WORD_BYTES
        progs[i]["c"] = off[src[1]] * WORD_BYTES
        progs[i]["n"] = n
        progs[i]["q"] = np.float32(K.SCALAR).view(np.uint32)
        progs[i]["tag"] = i % (1 << tag_bits)
    return progs


def _stimulus(mem: MemoryParams, programs: np.ndarray, image: np.ndarray, donate: bool = False) -> trace.Trace:
    from sim.blocks.stream import make_stimulus

    return make_stimulus(programs, image, mem, producer="sim.studies.stream", donate=donate)


def _arrays(image: np.ndarray, n: int, pad: int = 0) -> dict[str, np.ndarray]:
    f = np.asarray(image).view(np.float32)
    return {name: f[o:o + n] for name, o in _layout(n, pad).items()}


def _best(times: list[float]) -> float:
    """STREAM's rule: the best time over all repetitions but the first."""
    return min(times[1:])


def _kernel_rows(times: dict[str, list[float]], n: int, validated: bool) -> dict[str, dict[str, Any]]:
    return {k.name: {"gbps": k.bytes(n) / _best(times[k.name]) / 1e9, "best_s": _best(times[k.name]),
                     "validated": validated} for k in K.SEQUENCE}


# Host targets --------------------------------------------------------------------------------------------------

def _native(run: native.NativeRun) -> dict[str, Any]:
    if run.skipped:
        return {"kind": "native", "skipped": True, "note": run.note, "validated": False, "api_overhead": None,
                **{k.name: {"gbps": None, "best_s": None, "validated": False} for k in K.SEQUENCE}}
    return {"kind": "native", "skipped": False, "note": run.note, "validated": run.validated, "api_overhead": None,
            "validation_errors": run.validation_errors, "timer_ticks": run.timer_ticks,
            **{k.name: {"gbps": run.gbps[k.name], "best_s": run.best_s[k.name], "validated": run.validated}
               for k in K.SEQUENCE}}


def host_reference(n: int, repetitions: int, progress: Progress) -> dict[str, Any]:
    """The reference through the API and directly, interleaved kernel by kernel on one donated image.

    Each kernel runs twice per repetition (API, then direct call); STREAM's kernels never write a source, so the
    second run leaves the arrays as the first did and the recurrence, hence the validation, is STREAM's own.
    """
    blk = ex.get(BLOCK)
    image = _image(n, HOST_PAD)
    bits = _bits(len(image))
    p = StreamParams(addr_bits=bits, length_bits=max(1, n.bit_length()))
    mem = MemoryParams(addr_bits=bits, size_log2=bits)
    progs = _programs(n, 1, p.tag_bits, HOST_PAD)
    api: dict[str, list[float]] = {k.name: [] for k in K.SEQUENCE}
    direct: dict[str, list[float]] = {k.name: [] for k in K.SEQUENCE}
    errors = 0
    for rep in range(repetitions):
        progress(f"STREAM reference through the API: repetition {rep + 1}/{repetitions}")
        for i, k in enumerate(K.SEQUENCE):
            stim = _stimulus(mem, progs[i:i + 1], image, donate=True)
            t0 = time.perf_counter()
            res = ex.run(BLOCK, stim, "reference", p)
            api[k.name].append(time.perf_counter() - t0)
            errors += int(np.count_nonzero(res.tables["status"]["error"]))
            if not np.shares_memory(res.tables["memory"], image):
                raise RuntimeError("the donated image was copied")  # would time a copy, not the kernel
            stim = _stimulus(mem, progs[i:i + 1], image, donate=True)
            t0 = time.perf_counter()
            blk.reference(p, stim)
            direct[k.name].append(time.perf_counter() - t0)
    failed = K.validate(_arrays(image, n, HOST_PAD), repetitions)
    validated = not failed and errors == 0
    out = {"kind": "api", "validated": validated, "validation_errors": failed, **_kernel_rows(api, n, validated)}
    out["api_overhead"] = sum(_best(api[k]) for k in api) / sum(_best(direct[k]) for k in direct) - 1
    out["direct_best_s"] = {k: _best(v) for k, v in direct.items()}
    out["timer_ticks"] = min(min(v) for v in api.values()) / time.get_clock_info("perf_counter").resolution
    return out


# Device targets ------------------------------------------------------------------------------------------------

def device_setup(cfg: StreamStudyConfig, p: StreamParams) -> tuple[MemoryParams, trace.Trace]:
    n = cfg.device_elements
    words = len(K.ARRAYS) * n
    if n > p.max_array_elements(len(K.ARRAYS)):  # the config loader reports this for a config file
        raise ValueError(f"{n} elements per array do not fit the STREAM unit ({p})")
    mem = MemoryParams(addr_bits=p.addr_bits, size_log2=_bits(words), latency=cfg.memory_latency,
                       interval=cfg.memory_interval, queue_depth=8, rsp_depth=16)
    return mem, _stimulus(mem, _programs(n, cfg.repetitions, p.tag_bits), _image(n))


def device_figures(cfg: StreamStudyConfig, res: ex.Result, ref: ex.Result) -> dict[str, Any]:
    """Per-kernel cycles and GB/s of a timed run of `device_setup`'s stimulus, validated."""
    n = cfg.device_elements
    done = res.tables["status"]["cycle"].astype(np.int64)
    took = np.diff(np.concatenate([[0], done]))
    cycles = {k.name: took[i::len(K.SEQUENCE)].tolist() for i, k in enumerate(K.SEQUENCE)}
    seconds = {name: [c / (cfg.clock_mhz * 1e6) for c in v] for name, v in cycles.items()}
    failed = K.validate(_arrays(res.tables["memory"].view(np.uint32), n), cfg.repetitions)
    agreement = ex.agree(res, ref)
    validated = not failed and agreement.data_mismatches == 0
    out = {"kind": "device", "validated": validated, "validation_errors": failed,
           "reference_mismatches": agreement.data_mismatches, "cycles": res.cycles,
           **_kernel_rows(seconds, n, validated)}
    for k in K.SEQUENCE:
        out[k.name]["best_cycles"] = int(min(cycles[k.name][1:]))
    return out


def device_targets(cfg: StreamStudyConfig, p: StreamParams, *, rtl: bool, work: Path | None, waves: bool,
                   progress: Progress) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model's and (with ``rtl``) the RTL's figures, and the device description."""
    blk = ex.get(BLOCK)
    mem, stim = device_setup(cfg, p)
    ref = ex.run(BLOCK, stim, "reference", p)
    progress("STREAM unit: cycle model")
    api, direct = [], []
    model = None
    for _ in range(15):  # interleaved, best of 15: a model run takes ~10 ms, so this is cheap and steady
        t0 = time.perf_counter()
        model = ex.run(BLOCK, stim, "model", p)
        api.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        blk.model(p, stim, ex.Stalls())
        direct.append(time.perf_counter() - t0)
    targets = {"model": device_figures(cfg, model, ref)}
    targets["model"]["api_overhead"] = min(api) / min(direct) - 1
    targets["model"]["wall_s"] = min(api)
    peak = WORD_BYTES * cfg.clock_mhz * 1e6 / cfg.memory_interval / 1e9
    device = {"elements": cfg.device_elements, "clock_mhz": cfg.clock_mhz, "peak_gbps": peak,
              "memory": mem.as_dict(), "params": p.as_dict(),
              "peak_note": "one 32-bit word a cycle on the memory port every memory_interval cycles"}
    if rtl:
        progress("STREAM unit: RTL on Verilator")
        res = ex.run(BLOCK, stim, "rtl", p, work=work, waves=waves)
        targets["rtl"] = device_figures(cfg, res, ref)
        targets["rtl"]["api_overhead"] = None
        targets["rtl"]["wall_s"] = res.wall_s
        a = ex.agree(res, model)
        gap = max(abs(targets["rtl"][k.name]["gbps"] - targets["model"][k.name]["gbps"])
                  / targets["rtl"][k.name]["gbps"] for k in K.SEQUENCE)
        device["model_vs_rtl"] = {"max_gbps_error": gap, "cycle_mismatches": a.cycle_mismatches,
                                  "data_mismatches": a.data_mismatches, "cycles": [res.cycles, model.cycles]}
    for t in targets.values():
        t["peak_gbps"] = peak
    device["inflight_sweep"] = inflight_sweep(cfg, p)
    return targets, device


def inflight_sweep(cfg: StreamStudyConfig, p: StreamParams, points: tuple[int, ...] = (1, 2, 4, 8, 16)
                   ) -> list[dict[str, Any]]:
    """The model's GB/s per kernel against the elements the unit keeps in flight (Little's law: the port stays
    busy once they cover the memory's round trip), the other parameters as configured."""
    from dataclasses import replace

    rows = []
    for k in points:
        q = replace(p, inflight=k)
        _, stim = device_setup(replace(cfg, repetitions=2), q)
        res = ex.run(BLOCK, stim, "model", q)
        fig = device_figures(replace(cfg, repetitions=2), res, ex.run(BLOCK, stim, "reference", q))
        rows.append({"inflight": k, **{name: fig[name]["gbps"] for name in (kk.name for kk in K.SEQUENCE)}})
    return rows


# The study -----------------------------------------------------------------------------------------------------

def run_study(cfg: StreamStudyConfig, p: StreamParams, *, rtl: bool = False, work: Path | None = None,
              waves: bool = False, progress: Progress = lambda _: None) -> dict[str, Any]:
    llc = cfg.llc_bytes or native.llc_bytes()
    n = cfg.host_elements or native.host_elements(llc or 32 << 20, LLC_FACTOR, K.DTYPE.itemsize)
    array_bytes = n * K.DTYPE.itemsize
    host = {"elements": n, "array_bytes": array_bytes, "llc_bytes": llc, "llc_factor": LLC_FACTOR,
            "stream_sized": bool(llc) and array_bytes >= LLC_FACTOR * llc, "repetitions": cfg.repetitions}
    targets: dict[str, Any] = {}
    progress(f"STREAM native numpy: {n} elements x 3 arrays")
    targets["numpy"] = _native(native.stream_numpy(n, cfg.repetitions, K.SCALAR))
    if cfg.native_c:
        progress("STREAM native C")
        targets["c"] = _native(native.stream_c(n, cfg.repetitions, K.SCALAR))
    targets["reference"] = host_reference(n, cfg.repetitions, progress)
    if targets["numpy"]["validated"]:
        targets["reference"]["vs_native"] = {k.name: targets["reference"][k.name]["gbps"]
                                             / targets["numpy"][k.name]["gbps"] for k in K.SEQUENCE}
    dev_targets, device = device_targets(cfg, p, rtl=rtl, work=work, waves=waves, progress=progress)
    targets.update(dev_targets)
    result = {"schema": SCHEMA, "element": K.DTYPE.name,
              "bytes_per_element": {k.name: k.arrays * K.DTYPE.itemsize for k in K.SEQUENCE},
              "repetitions": cfg.repetitions, "host": host, "device": device, "peak_gbps": device["peak_gbps"],
              "targets": targets}
    _finite(result)
    return result


def deterministic(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` without its wall-clock measurements (`MEASURED`; a device target's GB/s come from cycles and
    stay)."""
    out = dict(result, targets={})
    for name, t in result["targets"].items():
        drop = {"api_overhead", "wall_s"} if t["kind"] == "device" else set(MEASURED)
        out["targets"][name] = {k: {f: x for f, x in v.items() if f not in drop} if isinstance(v, dict) else v
                                for k, v in t.items() if k not in drop}
    return out


def _finite(obj: Any, path: str = "") -> None:
    """Fail loudly on a NaN or infinite figure (the JSON writer would refuse it later, far from the cause)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"stream result {path} is {obj}")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _finite(v, f"{path}.{k}")


def summary_table(result: dict[str, Any]) -> str:
    names = [k.name for k in K.SEQUENCE]
    lines = [f"{'target':<10} " + " ".join(f"{n:>8}" for n in names) + "  GB/s   validated  API overhead"]
    for name, t in result["targets"].items():
        if t.get("skipped"):
            lines.append(f"{name:<10} skipped: {t['note']}")
            continue
        ov = t.get("api_overhead")
        lines.append(f"{name:<10} " + " ".join(f"{t[n]['gbps']:8.3f}" for n in names)
                     + f"  {'yes' if t['validated'] else 'NO':>9}  " + (f"{100 * ov:+.2f}%" if ov is not None else "-"))
    d = result["device"]
    lines.append(f"device peak {d['peak_gbps']:.3f} GB/s ({d['clock_mhz']:g} MHz, 4 B/cycle / interval "
                 f"{d['memory']['interval']}); host arrays {result['host']['array_bytes'] / 2**20:.1f} MiB"
                 + ("" if result["host"]["stream_sized"] else " (smaller than STREAM's 4x LLC: a short run)"))
    if "model_vs_rtl" in d:
        m = d["model_vs_rtl"]
        lines.append(f"model vs RTL: GB/s within {100 * m['max_gbps_error']:.3f}%, {m['cycle_mismatches']} cycle "
                     f"mismatches, {m['data_mismatches']} data mismatches")
    return "\n".join(lines)


def write_report(result: dict[str, Any], out: Path) -> list[Path]:
    names = [k.name for k in K.SEQUENCE]
    h, d = result["host"], result["device"]
    lines = ["# STREAM through the execution API", "",
             "One kernel description (STREAM's copy, scale, add, triad in fp32, its rules) on every target. Host "
             f"arrays: {h['elements']} elements ({h['array_bytes'] / 2**20:.1f} MiB each; last-level cache "
             f"{(h['llc_bytes'] or 0) / 2**20:.0f} MiB" + ("" if h["stream_sized"] else ", so not STREAM-sized")
             + f"); {result['repetitions']} repetitions, best of all but the first. Device: the STREAM unit at "
             f"{d['clock_mhz']:g} MHz (assumed), {d['elements']} elements per array, memory latency "
             f"{d['memory']['latency']} cycles, one command every {d['memory']['interval']} cycle(s): peak "
             f"{d['peak_gbps']:.3f} GB/s.", "",
             "| target | " + " | ".join(names) + " | validated | API overhead |",
             "|---|" + "---|" * (len(names) + 2)]
    for name, t in result["targets"].items():
        if t.get("skipped"):
            lines.append(f"| {name} | " + " | ".join("-" for _ in names) + f" | skipped: {t['note']} | - |")
            continue
        ov = t.get("api_overhead")
        lines.append(f"| {name} | " + " | ".join(f"{t[n]['gbps']:.3f}" for n in names)
                     + f" | {'yes' if t['validated'] else 'NO'} | "
                     + (f"{100 * ov:+.2f}%" if ov is not None else "-") + " |")
    lines += ["", "GB/s are 1e9 bytes per second as STREAM counts them (8 bytes per element for copy and scale, "
              "12 for add and triad, in fp32). API overhead: best time through `sim.exec.run` over the direct "
              "call of the same runner - 1, measured interleaved.", ""]
    ref = result["targets"]["reference"]
    if "vs_native" in ref:
        lines.append("Reference through the API against native numpy: " + ", ".join(
            f"{n} {ref['vs_native'][n]:.2f}x" for n in names) + " (the reference computes in cache-sized chunks "
            "and makes NaN results canonical; native numpy's triad makes two passes over the destination).")
    for tgt in ("model", "rtl"):
        if tgt in result["targets"]:
            t = result["targets"][tgt]
            lines.append(f"{tgt}: " + ", ".join(f"{n} {t[n]['best_cycles']} cycles ({t[n]['gbps'] / d['peak_gbps']:.1%}"
                                                f" of peak)" for n in names) + ".")
    lines.append("Elements in flight (model, memory latency " f"{d['memory']['latency']}): " + ", ".join(
        f"{r['inflight']}: {r['copy']:.3f} / {r['triad']:.3f}" for r in d["inflight_sweep"])
        + " GB/s (copy / triad); the configured unit keeps " f"{d['params']['inflight']}.")
    if "model_vs_rtl" in d:
        m = d["model_vs_rtl"]
        lines.append(f"Model against RTL: GB/s within {100 * m['max_gbps_error']:.3f}% "
                     f"({m['cycle_mismatches']} cycle and {m['data_mismatches']} data mismatches over the run, "
                     f"{m['cycles'][0]} cycles).")
    lines += ["", "![GB/s per target](stream.png)", ""]
    md = out / "stream.md"
    md.write_text("\n".join(lines))
    png = out / "stream.png"
    _plot(result, png)
    return [md, png]


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k.name for k in K.SEQUENCE]
    groups = {"host (wall clock)": ("numpy", "c", "reference"), "device (cycles at the clock)": ("model", "rtl")}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (title, tgts) in zip(axes, groups.items(), strict=True):
        shown = [t for t in tgts if t in result["targets"] and not result["targets"][t].get("skipped")]
        width = 0.8 / max(1, len(shown))
        for j, t in enumerate(shown):
            ax.bar(np.arange(len(names)) + j * width, [result["targets"][t][n]["gbps"] for n in names], width,
                   label=t)
        if title.startswith("device"):
            ax.axhline(result["device"]["peak_gbps"], color="k", linestyle="--", label="port peak")
        ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
        ax.set_ylabel("GB/s")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
