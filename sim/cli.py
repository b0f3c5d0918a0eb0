"""The ``llmarch`` command line.

``llmarch run``        every registered study's short version on one config (``run.json``)
``llmarch study NAME`` one study in full (the study registry, `sim.studies`, lists them)
``llmarch verilog``    one Verilog file per registered hardware block, with the config's parameters
``llmarch bench``      each block's standard stimulus on every target, side by side (``targets.json``)

User errors (bad config, bad trace, unplannable workload, unwritable output) print one line on stderr and exit
with status 2; a failing RTL flow exits with status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from sim.core import trace
from sim.core.config import DEFAULT_CONFIG, HOGWILD_LAYOUTS, REPO_ROOT, ConfigError, RunConfig, load_config
from sim.core.results import write_json
from sim.core.trace import TraceError

EXIT_USER_ERROR = 2
EXIT_RTL_FAILURE = 1


def _progress(msg: str) -> None:
    print(f"[llmarch] {msg}", file=sys.stderr, flush=True)


def _load(args: argparse.Namespace) -> tuple[RunConfig, Path]:
    path = Path(args.config) if args.config else DEFAULT_CONFIG
    cfg = load_config(path)
    if getattr(args, "seed", None) is not None:
        cfg = dataclasses.replace(cfg, seed=args.seed)
    return cfg, path


def cmd_run(args: argparse.Namespace) -> int:
    from sim.studies import StudyOptions, run_all
    from sw_stack.t3.planner import PlanError

    cfg, path = _load(args)
    out = Path(args.out)
    _check_writable(out)
    t0 = time.perf_counter()
    try:
        result, summary = run_all(cfg, out, StudyOptions(rtl=args.rtl, waves=args.waves), _progress)
    except PlanError as exc:
        raise ConfigError(path, exc.keypath, str(exc).split(": ", 1)[1]) from None
    write_json(out / "run.json", result)
    print(summary)
    print(f"wrote {out / 'run.json'} in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from sim.studies import StudyOptions, studies

    study = studies()[args.study]
    if not args.config:
        args.config = str(REPO_ROOT / "configs" / study.default_config)
    cfg, path = _load(args)
    out = Path(args.out)
    _check_writable(out)
    t0 = time.perf_counter()
    res = study.full(cfg, path, out, StudyOptions(rtl=args.rtl, waves=args.waves), _progress)
    write_json(out / res.json_name, res.result)
    print(res.summary)
    print(f"wrote {out / res.json_name}, " + ", ".join(str(f) for f in res.files) +
          f" in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_verilog(args: argparse.Namespace) -> int:
    from sim.exec.api import write_verilog

    cfg, _ = _load(args)
    out = Path(args.out)
    _check_writable(out)
    for path in write_verilog(out, cfg.hardware.blocks, only=args.block):
        print(f"wrote {path}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from sim.exec.bench import run_bench, summary

    out = Path(args.out)
    _check_writable(out)
    result = run_bench(out, block=args.block, size=args.size, progress=_progress)
    print(summary(result))
    print(f"wrote {out / 'targets.json'}")
    return 0


def cmd_hogwild_generate(args: argparse.Namespace) -> int:
    from sw_stack.hogwild import checkpoint
    from sw_stack.hogwild.cache import SharedCache
    from sw_stack.hogwild.decoder import Decoder, random_weights
    from sw_stack.hogwild.generate import ByteTokenizer, HFTokenizer, Hogwild, weight_limit_tokens_per_s
    from sw_stack.hogwild.traffic import TRAFFIC_KIND, Traffic

    cfg, _ = _load(args)
    hw = cfg.hogwild
    if args.model:
        try:
            shape, weights, tok = checkpoint.load(Path(args.model), storage=hw.storage)
        except checkpoint.CheckpointError as exc:
            raise ConfigError(Path(args.model), "--model", str(exc)) from None
        tokenizer = HFTokenizer(tok)
    else:
        shape, weights, tokenizer = hw.generator, random_weights(hw.generator, hw.seed, hw.storage), ByteTokenizer()
    decoder = Decoder(shape, weights)
    traffic = Traffic() if args.trace else None
    cache = SharedCache(shape, args.workers, args.layout, hw.storage, traffic=traffic)
    run = Hogwild(decoder, cache, tokenizer, layout=args.layout, step_tokens=hw.step_tokens,
                  check_every=hw.check_every, temperature=args.temperature, seed=hw.seed)
    print(f"{shape.name}: {shape.params() / 1e6:.0f}M parameters, {args.workers} workers, {args.layout} layout")

    def on_step(step: int, items: list) -> None:
        print(f"{step:5d} | " + " | ".join(f"{w.name}: {text!r}" for w, text in items), flush=True)

    res = run.run(args.prompt, args.max_tokens, on_step)
    print("=== committed history ===")
    print(tokenizer.decode(res.common[res.prompt_tokens:]))
    for w in res.workers:
        if w.block:
            print(f"=== {w.name}, in progress ===")
            print(tokenizer.decode(w.block))
    if traffic is not None:
        t = trace.Trace(clock_hz=1.0, producer="llmarch hogwild generate",
                        meta={"workers": args.workers, "layout": args.layout, "model": shape.name})
        t.add("traffic", TRAFFIC_KIND, traffic.table())
        print(f"wrote {trace.write(t, Path(args.trace))} ({len(traffic)} traffic rows)")
    gbps = args.stream_gbps
    if gbps is None:
        from sw_stack.stream import native

        gbps = max(native.stream_numpy(native.host_elements(native.llc_bytes() or 32 << 20), 3).gbps.values())
    step_bytes = decoder.step_bytes("fp32")  # the weights a step reads (the embedding table's rows are few)
    limit = weight_limit_tokens_per_s(step_bytes, args.workers, gbps)
    print(f"{res.tokens_per_s:.1f} tokens/s over {args.workers} workers ({res.steps} steps, {res.commits} commits); "
          f"memory-bandwidth limit {limit:.1f} tokens/s ({step_bytes / 1e6:.0f} MB of weights a "
          f"step at the host's STREAM {gbps:.1f} GB/s): {res.tokens_per_s / limit:.0%} of it")
    return 0


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".llmarch-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(out, "--out", f"cannot write to the output directory ({exc.strerror})") from None


def _block_name(name: str) -> str:
    from sim.exec import blocks

    if name not in blocks():
        raise argparse.ArgumentTypeError(f"unknown block {name!r}; known: {', '.join(blocks())}")
    return name


def build_parser() -> argparse.ArgumentParser:
    from sim.studies import studies

    ap = argparse.ArgumentParser(prog="llmarch", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    all_studies = studies()
    full = {n: s for n, s in all_studies.items() if s.full is not None}

    run = sub.add_parser("run", help="every study's short version on one config",
                         description="Runs, in order: " + "; ".join(f"{n}: {s.help}" for n, s in all_studies.items()))
    run.add_argument("--config", help="YAML config (default: configs/default.yaml)")
    run.add_argument("--rtl", action="store_true", help="also run the RTL on Verilator where a study can")
    run.add_argument("--waves", action="store_true", help="with --rtl: dump a VCD wave file of each RTL run")
    run.add_argument("--out", default="results", help="output directory (default: results)")
    run.add_argument("--seed", type=int, help="override the config's seed")
    run.set_defaults(fn=cmd_run)

    study = sub.add_parser("study", help="run one design study in full",
                           description="\n".join(f"{n}: {s.help}" for n, s in full.items()),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    study.add_argument("study", choices=sorted(full), help="which study")
    study.add_argument("--config", help="YAML config (default: the study's own in configs/)")
    study.add_argument("--out", default="results", help="output directory (default: results)")
    study.add_argument("--rtl", action="store_true", help="also co-simulate on Verilator")
    study.add_argument("--waves", action="store_true", help="with --rtl: dump a VCD wave file of the RTL run")
    study.set_defaults(fn=cmd_study)

    ver = sub.add_parser("verilog", help="write one Verilog file per hardware block")
    ver.add_argument("--out", required=True, help="output directory")
    ver.add_argument("--config", help="config whose hardware.<block> parameters to use (default: the default config)")
    ver.add_argument("--block", type=_block_name, help="only this block")
    ver.set_defaults(fn=cmd_verilog)

    hog = sub.add_parser("hogwild", help="Hogwild! Inference: parallel workers over one shared KV cache")
    hog_sub = hog.add_subparsers(dest="hogwild_command", required=True)
    gen = hog_sub.add_parser("generate", help="generate with W workers, streaming their tokens")
    gen.add_argument("--workers", type=int, default=2, help="number of workers (default 2)")
    gen.add_argument("--prompt", required=True, help="the task text")
    gen.add_argument("--model", help="a Llama/Qwen2 checkpoint directory (Hugging Face layout); default: the "
                     "config's random-weight generator model")
    gen.add_argument("--max-tokens", type=int, default=64, help="tokens each worker samples (default 64)")
    gen.add_argument("--layout", choices=HOGWILD_LAYOUTS, default="combined", help="cache layout (default combined)")
    gen.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (0: greedy)")
    gen.add_argument("--stream-gbps", type=float, help="host memory bandwidth for the limit (default: measured)")
    gen.add_argument("--trace", help="write the cache's memory traffic (trace kind hogwild_traffic) to this file")
    gen.add_argument("--config", help="YAML config (default: configs/default.yaml)")
    gen.set_defaults(fn=cmd_hogwild_generate)

    bench = sub.add_parser("bench", help="speed of every target on each block's standard stimulus")
    bench.add_argument("--out", default="results", help="output directory (default: results)")
    bench.add_argument("--block", type=_block_name, help="only this block")
    bench.add_argument("--size", type=int, help="stimulus size (default: each block's bench size)")
    bench.set_defaults(fn=cmd_bench)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ConfigError, TraceError) as exc:
        print(f"llmarch: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:
        from sim.rtl.runner import RtlError

        if isinstance(exc, RtlError):
            print(f"llmarch: RTL failure: {exc}", file=sys.stderr)
            return EXIT_RTL_FAILURE
        raise


if __name__ == "__main__":
    sys.exit(main())
