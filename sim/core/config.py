"""Typed, validated configuration loaded from YAML.

Every section is a frozen dataclass. `load_config` checks every key against the dataclass fields: unknown
keys, missing keys, wrong types and out-of-range values raise `ConfigError` with the file, the dotted key path
and the expected form, e.g.::

    configs/bad.yaml: hardware.gpu.clock_ghz: expected a number > 0, got -1.4

The ``hardware`` key takes either a mapping or the path of a preset file, relative to the config file.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hw.params import ParamError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "default.yaml"


class ConfigError(Exception):
    """A user error in a config file; the message names file, key path and the expected form."""

    def __init__(self, file: str | Path, keypath: str, message: str) -> None:
        self.file, self.keypath = str(file), keypath
        where = f"{file}: {keypath}: " if keypath else f"{file}: "
        super().__init__(where + message)


def _positive(v: float) -> bool:
    return v > 0


def _non_negative(v: float) -> bool:
    return v >= 0


def _probability(v: float) -> bool:
    return 0 <= v < 1


def _fraction(v: float) -> bool:
    return 0 < v <= 1


def _power_of_two(v: int) -> bool:
    return v >= 2 and v & (v - 1) == 0


def _check(predicate, expected: str) -> dict[str, Any]:
    return {"check": (predicate, expected)}


def _pos(**kw: Any) -> Any:
    return field(metadata=_check(_positive, "> 0"), **kw)


@dataclass(frozen=True)
class GpuConfig:
    """One accelerator. ``flops_per_cu_per_cycle`` is an assumed figure (dense fp16/bf16 matrix rate)."""

    name: str
    compute_units: int = _pos()
    clock_ghz: float = _pos()
    flops_per_cu_per_cycle: float = _pos()
    hbm_gbps: float = _pos()  # GB/s, 1e9 bytes per second
    l2_mib: float = _pos()


@dataclass(frozen=True)
class LinkConfig:
    """A point-to-point link; ``bandwidth_gbps`` counts both directions (GB/s), as the T3 paper states it."""

    bandwidth_gbps: float = _pos()
    latency_ns: float = field(metadata=_check(_non_negative, ">= 0"))

    def bytes_per_cycle_one_way(self, clock_ghz: float) -> float:
        return self.bandwidth_gbps / 2 / clock_ghz

    def latency_cycles(self, clock_ghz: float) -> int:
        return int(round(self.latency_ns * clock_ghz))


def block_sections() -> dict[str, type]:
    """Config key -> parameter class of every registered hardware block (``hardware.<block>`` sections)."""
    from sim.exec import blocks

    return {name: blk.params for name, blk in blocks().items()}


@dataclass(frozen=True)
class HardwareConfig:
    """The machine: its GPU, its ring links, and one section per registered hardware block.

    Block sections are not listed here: each is derived from its block's parameter class (`hw.params`), so a
    new block is configurable as ``hardware.<block>`` without touching this file, with the block's own ranges
    and rules. A section left out gets the block's defaults. ``hw.tracker`` and the like read a section.
    """

    name: str
    gpu: GpuConfig
    ring_link: LinkConfig
    blocks: dict[str, Any] = field(default_factory=lambda: {n: cls() for n, cls in block_sections().items()})

    def __getattr__(self, name: str) -> Any:
        blocks = self.__dict__.get("blocks")
        if blocks is not None and name in blocks:
            return blocks[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or block section {name!r}")


@dataclass(frozen=True)
class T3Config:
    """A GEMM whose output is reduce-scattered over a ring of ``devices`` (T3's fused GEMM + RS).

    The output is ``tokens x hidden`` elements of ``dtype_bytes``; ``k`` is the GEMM's inner dimension.
    Output rows are split into ``devices`` chunks (one per ring stage); each chunk into tiles of
    ``tile_m x tile_n``, one workgroup per tile. ``store_bytes`` is the size of one tracked producer store (a
    coalesced wavefront write); ``dma_packet_bytes`` the size of one link packet.
    """

    devices: int = field(default=4, metadata=_check(lambda v: v >= 2, "an integer >= 2"))
    tokens: int = _pos(default=2048)
    hidden: int = _pos(default=3072)
    k: int = _pos(default=768)
    tile_m: int = _pos(default=256)
    tile_n: int = _pos(default=128)
    dtype_bytes: int = _pos(default=2)
    store_bytes: int = _pos(default=1024)
    dma_packet_bytes: int = _pos(default=1024)


@dataclass(frozen=True)
class ReplayConfig:
    """Random stalls applied when a trace is replayed into a block (RTL and model alike)."""

    input_idle_prob: float = field(default=0.0, metadata=_check(_probability, "a probability in [0, 1)"))
    backpressure_prob: float = field(default=0.0, metadata=_check(_probability, "a probability in [0, 1)"))


SUBLAYERS = {
    # name: (K as a multiple of hidden / TP, pass). The GEMM is tokens x hidden x K on each device, and its
    # output (tokens x hidden partial sums) is reduce-scattered over the TP ring.
    "OP": (1, "forward attention output projection"),
    "FC-2": (4, "forward second MLP projection"),
    "FC-1": (4, "backward first MLP projection (input gradient)"),
    "IP": (3, "backward attention input projection (input gradient)"),
}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    hidden: int = _pos()


@dataclass(frozen=True)
class T3StudyConfig:
    """The T3 design study: sublayers x models x TP degrees, and the system model's assumed parameters.

    ``gemm_efficiency`` (fraction of peak matrix FLOP/s a GEMM tile reaches when its data is there),
    ``k_slice`` (K elements a workgroup loads per pipelined step; loads are double-buffered),
    ``dram_latency_ns``, ``comm_batch_bytes`` (the size of one communication memory request burst),
    ``rs_rings`` (2: the reduce-scatter uses both directions of the bidirectional ring links, as two rings
    each carrying half the data, as collective libraries do) and the MCA settings are assumptions, not figures
    from the paper.
    """

    tokens: int = _pos(default=8192)
    models: tuple[ModelSpec, ...] = (ModelSpec("Mega-GPT-2", 3072), ModelSpec("T-NLG", 4256))
    tp: tuple[int, ...] = field(default=(8, 16), metadata={"check": (lambda v: v >= 2, ">= 2")})
    sublayers: tuple[str, ...] = field(default=tuple(SUBLAYERS), metadata={
        "check": (lambda v: v in SUBLAYERS, "one of " + ", ".join(SUBLAYERS))})
    tile_m: int = _pos(default=256)
    tile_n: int = _pos(default=128)
    dtype_bytes: int = _pos(default=2)
    gemm_efficiency: float = field(default=0.75, metadata=_check(lambda v: 0 < v <= 1, "a number in (0, 1]"))
    k_slice: int = _pos(default=128)
    dram_latency_ns: float = field(default=250.0, metadata=_check(_non_negative, ">= 0"))
    comm_batch_bytes: int = _pos(default=16384)
    rs_rings: int = field(default=2, metadata=_check(lambda v: v in (1, 2), "1 or 2"))
    mca_max_threshold: int = _pos(default=16)
    mca_starvation_cycles: int = _pos(default=4000)


@dataclass(frozen=True)
class StreamStudyConfig:
    """STREAM through the execution API (`sim.studies.stream`): host targets on ``host_elements`` fp32 elements per
    array, the STREAM unit (``hardware.stream``) on ``device_elements`` behind a memory of the given timing."""

    host_elements: int = field(default=0, metadata=_check(_non_negative, ">= 0"))  # 0: 4x the LLC (STREAM's rule)
    llc_bytes: int = field(default=0, metadata=_check(_non_negative, ">= 0"))  # 0: read from the machine
    repetitions: int = field(default=10, metadata=_check(lambda v: v >= 2, "an integer >= 2"))
    device_elements: int = _pos(default=4096)
    clock_mhz: float = _pos(default=100.0)
    memory_latency: int = _pos(default=8)  # cycles from a read's service to its word
    memory_interval: int = _pos(default=1)  # cycles between commands the memory serves
    native_c: bool = True


HOGWILD_LAYOUTS = ("contiguous", "interleaved", "combined")  # Hogwild!'s cache layouts (sw_stack.hogwild.cache)
STORAGE_DTYPES = {"fp32": 4, "fp16": 2, "bf16": 2}  # storage type -> bytes per element


@dataclass(frozen=True)
class DecoderShape:
    """A Llama/Qwen2-style decoder's shape, without weights (RMSNorm, RoPE, grouped-query attention, SwiGLU)."""

    name: str
    layers: int = _pos()
    hidden: int = _pos()
    heads: int = _pos()
    kv_heads: int = _pos()
    head_dim: int = _pos()
    intermediate: int = _pos()
    vocab: int = _pos()
    rope_base: float = _pos(default=10000.0)
    norm_eps: float = _pos(default=1e-6)
    qkv_bias: bool = False  # Qwen2 has biases on the q, k and v projections
    tie_embeddings: bool = False  # the output head reuses the embedding matrix

    def __post_init__(self) -> None:
        if self.heads % self.kv_heads:
            raise ParamError("DecoderShape", "kv_heads", f"a divisor of heads ({self.heads})", self.kv_heads)
        if self.head_dim % 2:
            raise ParamError("DecoderShape", "head_dim", "an even integer (RoPE rotates pairs)", self.head_dim)

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def layer_params(self) -> int:
        h = self.hidden
        attn = h * self.q_dim + 2 * h * self.kv_dim + self.q_dim * h
        bias = (self.q_dim + 2 * self.kv_dim) if self.qkv_bias else 0
        return attn + bias + 3 * h * self.intermediate + 2 * h

    def params(self) -> int:
        """Every weight: embeddings, layers, final norm, output head (unless tied)."""
        head = 0 if self.tie_embeddings else self.vocab * self.hidden
        return self.vocab * self.hidden + self.layers * self.layer_params() + self.hidden + head

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        """K and V of one token in every layer."""
        return 2 * self.layers * self.kv_dim * dtype_bytes


@dataclass(frozen=True)
class HogwildConfig:
    """Hogwild! Inference: the study's shape and sweep, and the random-weight model of ``llmarch hogwild``."""

    model: DecoderShape = field(default_factory=lambda: DecoderShape(
        "QwQ-32B", layers=64, hidden=5120, heads=40, kv_heads=8, head_dim=128, intermediate=27648, vocab=152064,
        rope_base=1e6, norm_eps=1e-5, qkv_bias=True))
    generator: DecoderShape = field(default_factory=lambda: DecoderShape(
        "random-100m", layers=12, hidden=768, heads=12, kv_heads=4, head_dim=64, intermediate=2048, vocab=32000))
    workers: tuple[int, ...] = field(default=(1, 2, 4, 8), metadata={"check": (lambda v: 1 <= v <= 64,
                                                                               "an integer in 1..64")})
    layouts: tuple[str, ...] = field(default=HOGWILD_LAYOUTS, metadata={"check": (
        lambda v: v in HOGWILD_LAYOUTS, "one of " + ", ".join(HOGWILD_LAYOUTS))})
    contexts: tuple[int, ...] = field(default=(1024, 4096, 16384, 32768), metadata={"check": (
        lambda v: v >= 1, "an integer >= 1")})
    prompt_tokens: int = _pos(default=512)
    step_tokens: int = _pos(default=64)  # a step's length with random weights (a tokenizer's paragraphs otherwise)
    check_every: int = field(default=256, metadata=_check(_non_negative, ">= 0"))  # 0: no "redundant work?" check
    storage: str = field(default="fp16", metadata=_check(lambda v: v in STORAGE_DTYPES, "one of fp32, fp16, bf16"))
    seed: int = 1
    memory_efficiency: float = field(default=0.8, metadata=_check(_fraction, "a number in (0, 1]"))  # assumed
    compute_efficiency: float = field(default=0.6, metadata=_check(_fraction, "a number in (0, 1]"))  # assumed


@dataclass(frozen=True)
class RunConfig:
    """The whole configuration of ``llmarch run``."""

    hardware: HardwareConfig
    seed: int = 1
    t3: T3Config = field(default_factory=T3Config)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    t3_study: T3StudyConfig = field(default_factory=T3StudyConfig)
    fastswitch_study: FastSwitchStudyConfig = field(default_factory=lambda: FastSwitchStudyConfig())
    fastswitch: FastSwitchConfig = field(default_factory=lambda: FastSwitchConfig())
    stream: StreamStudyConfig = field(default_factory=lambda: StreamStudyConfig())
    hogwild: HogwildConfig = field(default_factory=lambda: HogwildConfig())

    def __post_init__(self) -> None:
        unit = self.hardware.blocks.get("stream")
        if unit is not None and self.stream.device_elements > unit.max_array_elements(3):
            raise ParamError("RunConfig", "stream.device_elements", f"at most {unit.max_array_elements(3)} (three "
                             f"arrays in hardware.stream's address space and length field)",
                             self.stream.device_elements)


# Loading ------------------------------------------------------------------------------------------------

def _type_name(tp: Any) -> str:
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _convert(tp: Any, value: Any, file: Path, keypath: str, extra: dict[str, Any] | None = None) -> Any:
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, file, keypath)
    if typing.get_origin(tp) is tuple:
        item = typing.get_args(tp)[0]
        if not isinstance(value, list) or not value:
            raise ConfigError(file, keypath, f"expected a non-empty list of {_type_name(item)}s, got {value!r}")
        items = tuple(_convert(item, v, file, f"{keypath}[{i}]", extra) for i, v in enumerate(value))
        check = (extra or {}).get("check_list")
        if check and not check[0](items):
            raise ConfigError(file, keypath, f"expected {check[1]}, got {value!r}")
        return items
    ok = (
        (tp is int and isinstance(value, int) and not isinstance(value, bool))
        or (tp is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (tp is str and isinstance(value, str))
        or (tp is bool and isinstance(value, bool))
    )
    check = (extra or {}).get("check")
    if not ok:
        expected = _type_name(tp) + (f" {check[1]}" if check and not check[1].startswith(("a ", "an ")) else "")
        raise ConfigError(file, keypath, f"expected {expected}, got {value!r}")
    if tp is float:
        value = float(value)
    if check and check[1].startswith("one of"):
        if not check[0](value):
            raise ConfigError(file, keypath, f"expected {check[1]}, got {value!r}")
        return value
    if check and not check[0](value):
        exp = check[1] if check[1].startswith(("a ", "an ")) else f"{_type_name(tp)} {check[1]}"
        raise ConfigError(file, keypath, f"expected {exp}, got {value!r}")
    return value


def _build(cls: type, raw: Any, file: Path, keypath: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    sections: dict[str, type] = {}
    if cls is HardwareConfig:
        sections = block_sections()
        fields = {n: f for n, f in fields.items() if n != "blocks"} | {n: None for n in sections}
    if not isinstance(raw, dict):
        raise ConfigError(file, keypath or "(top level)",
                          f"expected a mapping with keys {sorted(fields)}, got {type(raw).__name__} {raw!r}")
    prefix = f"{keypath}." if keypath else ""
    for key in raw:
        if key not in fields:
            raise ConfigError(file, f"{prefix}{key}", f"unknown key; expected one of {sorted(fields)}")
    values: dict[str, Any] = {}
    if sections:
        values["blocks"] = {n: _build(sec, raw[n], file, f"{prefix}{n}") if n in raw else sec()
                            for n, sec in sections.items()}
    for name, f in fields.items():
        if name in sections:
            continue
        path = f"{prefix}{name}"
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(file, path, f"missing key; expected {_type_name(hints[name])}")
            continue
        value, vfile = raw[name], file
        if dataclasses.is_dataclass(hints[name]) and isinstance(value, str):
            vfile = (file.parent / value)
            value = _read_yaml(vfile)
            values[name] = _build(hints[name], value, vfile, "")
            continue
        values[name] = _convert(hints[name], value, vfile, path, dict(f.metadata))
    try:
        return cls(**values)
    except ParamError as exc:  # the block's own ranges and rules
        raise ConfigError(file, f"{prefix}{exc.field}", f"expected {exc.expected}, got {exc.value!r}") from None


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(path, "", "no such config file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "", f"cannot read the file ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, "", f"{where}YAML syntax error: {problem}") from None
    if data is None:
        raise ConfigError(path, "", "the file is empty; expected a YAML mapping")
    return data


def load_config(path: str | Path | None = None) -> RunConfig:
    """Load and validate a `RunConfig` (default: ``configs/default.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    return _build(RunConfig, _read_yaml(path), path, "")


def as_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain data, for results files (block sections under ``hardware`` as in the YAML)."""
    out = dataclasses.asdict(cfg)

    def flatten(d: Any) -> Any:
        if isinstance(d, dict):
            d = {k: flatten(v) for k, v in d.items()}
            if isinstance(d.get("blocks"), dict) and "gpu" in d:
                d.update(d.pop("blocks"))
        return d

    return flatten(out)


# FastSwitch serving simulator (sw_stack.serving) ----------------------------------------------------------


@dataclass(frozen=True)
class ServingModelConfig:
    """A decoder-only LLM as the serving time model sees it (defaults: LLaMA-3.1-8B, GQA with 8 KV heads)."""

    name: str = "LLaMA-3.1-8B"
    layers: int = _pos(default=32)
    hidden: int = _pos(default=4096)
    kv_heads: int = _pos(default=8)
    head_size: int = _pos(default=128)
    params_billion: float = _pos(default=8.03)
    dtype_bytes: int = _pos(default=2)
    max_context: int = _pos(default=8192)  # tokens; the workload caps every conversation at this length


@dataclass(frozen=True)
class ServingGpuConfig:
    """One serving GPU (defaults: NVIDIA A10). Efficiencies, overhead and activation reserve are assumed."""

    name: str = "A10"
    tflops: float = _pos(default=125.0)  # dense fp16/bf16 tensor TFLOP/s
    hbm_gbps: float = _pos(default=600.0)  # device memory GB/s (1e9 B/s)
    memory_gb: float = _pos(default=24.0)  # device memory, 1e9 bytes
    memory_utilization: float = field(default=0.9, metadata=_check(_fraction, "a number in (0, 1]"))
    activation_reserve_gb: float = field(default=1.0, metadata=_check(_non_negative, ">= 0"))
    compute_efficiency: float = field(default=0.6, metadata=_check(_fraction, "a number in (0, 1]"))
    memory_efficiency: float = field(default=0.8, metadata=_check(_fraction, "a number in (0, 1]"))
    iteration_overhead_ms: float = field(default=4.0, metadata=_check(_non_negative, ">= 0"))


@dataclass(frozen=True)
class PcieLinkConfig:
    """Host link of the default `PcieLinkModel`: per-copy overhead plus bytes at bandwidth, each direction."""

    bandwidth_gbps: float = _pos(default=24.0)  # one direction, pinned host memory, PCIe 4.0 x16
    per_copy_us: float = field(default=2.3, metadata=_check(_non_negative, ">= 0"))


@dataclass(frozen=True)
class ServingWorkloadConfig:
    """Seeded multi-turn conversations; token lengths are lognormal, given by mean and log-space sigma."""

    seed: int = 1
    conversations: int = _pos(default=1000)
    arrival_rate: float = _pos(default=0.11)  # conversations per second, Poisson (calibrated, see the presets)
    turns_mean: float = field(default=5.5, metadata=_check(lambda v: v >= 1, "a number >= 1"))
    turns_max: int = _pos(default=40)
    prompt_mean: float = _pos(default=161.0)
    prompt_sigma: float = field(default=1.0, metadata=_check(_non_negative, ">= 0"))
    answer_mean: float = _pos(default=338.0)
    answer_sigma: float = field(default=0.8, metadata=_check(_non_negative, ">= 0"))
    think_time_mean_s: float = field(default=10.0, metadata=_check(_non_negative, ">= 0"))


@dataclass(frozen=True)
class ServingSchedulerConfig:
    """Continuous batching, paged KV pools and the fairness-aware priority scheduler.

    ``priority_update_frequency`` is re-draws per engine iteration: priorities are re-drawn every
    ``round(1 / frequency)`` iterations (0.04: every 25 iterations).
    """

    block_tokens: int = _pos(default=16)
    cpu_swap_gb: float = _pos(default=60.0)
    max_num_seqs: int = _pos(default=256)
    max_batched_tokens: int = _pos(default=8192)
    watermark: float = field(default=0.01, metadata=_check(lambda v: 0 <= v < 1, "a number in [0, 1)"))
    priority_pattern: str = field(default="random", metadata=_check(
        lambda v: v in ("random", "markov"), "one of random, markov"))
    priority_update_frequency: float = field(default=0.04, metadata=_check(_fraction, "a number in (0, 1]"))
    priority_levels: int = field(default=8, metadata=_check(lambda v: v >= 1, "an integer >= 1"))
    markov_stay_prob: float = field(default=0.5, metadata=_check(lambda v: 0 <= v <= 1, "a number in [0, 1]"))


@dataclass(frozen=True)
class FastSwitchConfig:
    """The serving study of FastSwitch (arXiv 2411.18424): model, GPU, host link, workload, scheduler.

    ``max_group_blocks`` bounds a block group of the dynamic block group manager (a power of two);
    ``reuse_reserve_blocks`` is the room reserved in a conversation's CPU copy for its next turn.
    """

    model: ServingModelConfig = field(default_factory=ServingModelConfig)
    gpu: ServingGpuConfig = field(default_factory=ServingGpuConfig)
    pcie: PcieLinkConfig = field(default_factory=PcieLinkConfig)
    workload: ServingWorkloadConfig = field(default_factory=ServingWorkloadConfig)
    scheduler: ServingSchedulerConfig = field(default_factory=ServingSchedulerConfig)
    max_group_blocks: int = field(default=1024, metadata=_check(_power_of_two, "a power of two >= 2"))
    reuse_reserve_blocks: int = field(default=8, metadata=_check(_non_negative, ">= 0"))


@dataclass(frozen=True)
class FastSwitchStudyConfig:
    """Which setups (preset files, relative to the config file) and systems `llmarch study fastswitch` runs."""

    setups: tuple[str, ...] = ("serving/llama8b_a10.yaml", "serving/qwen32b_a100.yaml")
    systems: tuple[str, ...] = field(default=("baseline", "fastswitch", "block_groups_only", "async_swap_only",
                                              "kv_reuse_only"), metadata={"check": (
        lambda v: v in ("baseline", "fastswitch", "block_groups_only", "async_swap_only", "kv_reuse_only"),
        "one of baseline, fastswitch, block_groups_only, async_swap_only, kv_reuse_only")})
    conversations: int = field(default=0, metadata=_check(_non_negative, ">= 0"))  # 0: each setup's own count
