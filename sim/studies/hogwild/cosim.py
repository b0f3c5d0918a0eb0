"""Co-simulation of Hogwild!'s commit moves on T3's DMA engine RTL.

In Hogwild! a worker's step ends with a commit (`sw_stack.hogwild.cache.SharedCache.commit`): its block of the KV
cache joins the end of the common block, every key re-rotated once to its new offset. On a GPU the rotation is a
small compute kernel and the move a DMA. Here a tiny random-weight decoder (`COSIM_SHAPE`) runs ``workers`` workers
for ``steps`` Hogwild! steps each (`sw_stack.hogwild.generate.Hogwild`, ``combined`` layout, steps of
`STEP_TOKENS` sampled tokens after each worker's step header) over a recording cache (`_RecordingCache`). The
rotation runs in numpy, in the cache; what the DMA moves is the block as it lands in the common block: after the
commit, the common block's K and V rows ``[dst, dst + n)`` of each layer.

Device memory (32-bit words, `hw.memory`; 16-bit values packed two a word, low half first; fp32 one a word)::

    region (layer l, K or V = kind 0 or 1)   words [(2 l + kind) C T, (2 l + kind + 1) C T)
    staging of commit i                       words [S + o_i, S + o_i + 2 L n_i T): layer by layer, K then V,
                                                    n_i T words each

``T`` (`CommitWindow.token_words`) is one token's K (or V) of one layer (``kv_heads * head_dim`` values, token
after token, head after head inside a token), ``C`` (`CommitWindow.capacity`) the tokens a common region holds
(a power of two, at least `MIN_CAPACITY`), ``L`` the layers, ``S = 2 L C T`` the end of the common regions and
``o_i`` the staging words of the commits before ``i``. Each commit's staging region holds its moved rows as the
rotation kernel would write them (the memory preload). One ``STORE`` descriptor per (commit, layer, K or V)
copies ``n_i T`` words from staging to its region at token ``dst_i``: index ``2 L i + 2 l + kind``, tag the
commit's index (modulo the tag field), destination device 0 (the device itself). The descriptors are triggered
once each, in commit order, offered with input idles (`sim.core.stimulus.arrival_cycles`).

The stimulus runs on the RTL (Verilator), the cycle model and the reference through `sim.exec.run`, with the same
seeded backpressure on ``link`` (port 0) and ``status`` (port 1). Checks: the link packets applied (a store of
``data`` at word ``addr``) to the common regions as they were at the window start must give, word for word, the
common regions packed from the numpy cache at the window end (a packet that is not a ``STORE`` to device 0 inside
the common regions counts as a mismatch); every descriptor reports ``OK`` exactly once; each descriptor's status
cycle on the RTL against the model's (`sim.exec.api.completion_errors`: the model is cycle-exact, so 0).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hw.dma import DmaError, DmaOp, DmaParams
from hw.memory import MemoryParams
from sim.blocks import dma as _dma_block  # noqa: F401  (declares the DMA table kinds)
from sim.core import trace
from sim.core.config import STORAGE_DTYPES, DecoderShape, HogwildConfig
from sim.core.stimulus import arrival_cycles, mix32, probability_threshold
from sw_stack.hogwild.cache import SharedCache

COSIM_SHAPE = DecoderShape("hogwild-cosim", layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, intermediate=128,
                           vocab=320)  # byte ids 0..255 (`ByteTokenizer`) and a few more
STEP_TOKENS = 6  # sampled tokens per Hogwild! step (after the step header)
STEPS = 3  # Hogwild! steps (so commits) per worker
PROMPT = "Add up the whole numbers from 1 to 20, then check the sum another way."
LAYOUT = "combined"
MIN_CAPACITY = 512  # tokens per common region, at least (the default run ends near 380)
IDLE_PROB = 0.3  # input idles of the trigger stream
# The DMA and memory parameters of the default run; larger windows widen them (a new Verilator build).
DMA_BASE = dict(addr_bits=16, descriptors=64, device_bits=1, length_bits=16, tag_bits=8, channels=2, burst=8,
                outstanding=16, status_depth=4)
MEM_TIMING = dict(latency=5, interval=1, queue_depth=16, rsp_depth=16)
KINDS = ("K", "V")


# --- the window ---------------------------------------------------------------------------------------------------

def pack_words(values: np.ndarray, storage: str) -> np.ndarray:
    """``values`` (float32 holding ``storage`` values, any shape) as the 32-bit words that store them, in order:
    fp16 and bf16 two a word, the first in the low half (`hw.memory`); fp32 one a word."""
    x = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    if storage == "fp32":
        return x.view(np.uint32).copy()
    if storage == "fp16":
        half = x.astype(np.float16).view(np.uint16)
    elif storage == "bf16":
        half = (x.view(np.uint32) >> np.uint32(16)).astype(np.uint16)
    else:
        raise ValueError(f"storage must be one of {', '.join(STORAGE_DTYPES)}, not {storage!r}")
    if len(half) % 2:
        raise ValueError("an odd number of 16-bit values does not fill whole words")
    pairs = half.reshape(-1, 2).astype(np.uint32)
    return pairs[:, 0] | (pairs[:, 1] << np.uint32(16))


def token_rows(block: np.ndarray) -> np.ndarray:
    """A cache block's K or V ``[kv_heads, n, head_dim]`` as ``[n, kv_heads * head_dim]``: token after token."""
    return block.transpose(1, 0, 2).reshape(block.shape[1], -1)


@dataclass
class Commit:
    """One commit: worker ``worker``'s ``tokens`` tokens landing at token ``dst`` of the common block; ``words``
    ``[layers, 2, tokens * token_words]`` their K and V as they land (keys re-rotated), packed."""

    worker: int
    dst: int
    tokens: int
    words: np.ndarray


@dataclass
class CommitWindow:
    """The commits of a Hogwild! run and the common block around them (memory layout: module docstring).

    ``before``/``after``: the common regions ``[layers, 2, capacity * token_words]`` packed from the cache at the
    window's start (before its first commit) and end (after its last), zero past the block's length.
    """

    shape: DecoderShape
    storage: str
    workers: int
    steps: int
    step_tokens: int
    capacity: int
    commits: list[Commit]
    before: np.ndarray
    after: np.ndarray
    common_before: int  # tokens
    common_after: int
    decode_steps: int = 0

    @property
    def token_words(self) -> int:
        return self.shape.kv_dim * STORAGE_DTYPES[self.storage] // 4

    @property
    def region_words(self) -> int:
        return self.capacity * self.token_words

    @property
    def common_words(self) -> int:
        """Words of every common region (the staging starts here)."""
        return 2 * self.shape.layers * self.region_words

    def region(self, layer: int, kind: int) -> int:
        """First word of the common region of ``layer``'s K (``kind`` 0) or V (1)."""
        return (2 * layer + kind) * self.region_words

    def staging(self) -> list[int]:
        """First word of each commit's staging region."""
        sizes = [2 * self.shape.layers * c.tokens * self.token_words for c in self.commits]
        return [self.common_words + int(s) for s in np.cumsum([0] + sizes[:-1])] if sizes else []

    @property
    def memory_words(self) -> int:
        """Words the layout uses: the common regions and every staging region."""
        return self.common_words + 2 * self.shape.layers * self.tokens_moved * self.token_words

    @property
    def tokens_moved(self) -> int:
        return sum(c.tokens for c in self.commits)


def common_image(cache: SharedCache, capacity: int | None = None) -> np.ndarray:
    """The common regions ``[layers, 2, capacity * token_words]`` packed from ``cache``'s common block (zero past
    its length; ``capacity`` default: its length)."""
    n = cache.lengths()[0]
    capacity = n if capacity is None else capacity
    if n > capacity:
        raise ValueError(f"the common block ({n} tokens) does not fit a region of {capacity} tokens")
    words = cache.shape.kv_dim * STORAGE_DTYPES[cache.storage] // 4
    out = np.zeros((cache.shape.layers, 2, capacity * words), np.uint32)
    for layer in range(cache.shape.layers):
        for kind, x in enumerate(cache.block_kv(layer, 0)):
            out[layer, kind, :n * words] = pack_words(token_rows(x), cache.storage)
    return out


class _RecordingCache(SharedCache):
    """A `SharedCache` that records every commit as it lands in the common block (`Commit`), and the common block
    before the first one (unpadded)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commits: list[Commit] = []
        self.before: np.ndarray | None = None

    def commit(self, w: int) -> int:
        if self.before is None:
            self.before = common_image(self)
        dst = self.lengths()[0]
        n = super().commit(w)  # the rotation kernel: the keys re-rotated to the common block's length
        if n:
            words = np.stack([np.stack([pack_words(token_rows(x[:, dst:dst + n]), self.storage)
                                        for x in self.block_kv(layer, 0)])
                              for layer in range(self.shape.layers)])
            self.commits.append(Commit(w, dst, n, words))
        return n


def record_window(cfg: HogwildConfig, *, workers: int = 2, steps: int = STEPS, step_tokens: int = STEP_TOKENS,
                  shape: DecoderShape = COSIM_SHAPE, prompt: str = PROMPT) -> CommitWindow:
    """Run ``workers`` workers of ``shape`` (random weights of seed ``cfg.seed``, ``cfg.storage``) until each has
    written ``steps`` steps of ``step_tokens`` sampled tokens, recording every commit (module docstring). The
    common regions hold the smallest power of two of tokens, at least `MIN_CAPACITY`, that fits the run."""
    from sw_stack.hogwild.decoder import Decoder, random_weights
    from sw_stack.hogwild.generate import ByteTokenizer, Hogwild

    if workers < 1 or steps < 1 or step_tokens < 1:
        raise ValueError(f"workers, steps and step_tokens must be >= 1, not {workers}, {steps}, {step_tokens}")
    if shape.kv_dim * STORAGE_DTYPES[cfg.storage] % 4:
        raise ValueError(f"one token's K ({shape.kv_dim} {cfg.storage} values) does not fill whole words")
    cache = _RecordingCache(shape, workers, LAYOUT, cfg.storage, tensors=True)
    decoder = Decoder(shape, random_weights(shape, cfg.seed, cfg.storage))
    run = Hogwild(decoder, cache, ByteTokenizer(), layout=LAYOUT, step_tokens=step_tokens,
                  check_every=cfg.check_every, seed=cfg.seed).run(prompt, steps * step_tokens)
    if cache.before is None:
        raise RuntimeError("the run committed nothing")
    end = cache.lengths()[0]
    capacity = max(MIN_CAPACITY, 1 << (end - 1).bit_length())
    tw = shape.kv_dim * STORAGE_DTYPES[cfg.storage] // 4
    before = np.zeros((shape.layers, 2, capacity * tw), np.uint32)
    before[..., :cache.before.shape[-1]] = cache.before
    return CommitWindow(shape, cfg.storage, workers, steps, step_tokens, capacity, cache.commits, before,
                        common_image(cache, capacity), cache.before.shape[-1] // tw, end, run.steps)


# --- the stimulus -------------------------------------------------------------------------------------------------

def _bits(n: int) -> int:
    """Bits of an unsigned field that holds ``n``."""
    return max(1, int(n).bit_length())


def dma_params(window: CommitWindow) -> DmaParams:
    """`DMA_BASE`, widened where the window needs it (address space, descriptor table, byte lengths)."""
    n = 2 * window.shape.layers * len(window.commits)
    longest = max((c.tokens for c in window.commits), default=1) * window.token_words * 4
    return DmaParams(**DMA_BASE | dict(
        addr_bits=max(DMA_BASE["addr_bits"], _bits(window.memory_words - 1)),
        descriptors=max(DMA_BASE["descriptors"], 1 << _bits(n - 1) if n > 1 else 2),
        length_bits=max(DMA_BASE["length_bits"], _bits(longest))))


def memory_params(p: DmaParams) -> MemoryParams:
    """The memory behind the engine: the whole word address space, one word a cycle."""
    return MemoryParams(addr_bits=p.addr_bits, size_log2=p.addr_bits, **MEM_TIMING)


def descriptor_of(window: CommitWindow, commit: int, layer: int, kind: int) -> int:
    return 2 * window.shape.layers * commit + 2 * layer + kind


def build_stimulus(window: CommitWindow, *, seed: int = 1, idle_prob: float = IDLE_PROB,
                   params: DmaParams | None = None) -> trace.Trace:
    """The DMA stimulus of ``window`` (module docstring): descriptors, their triggers in commit order (input idles
    of probability ``idle_prob``, seeded) and the staging regions as the memory preload."""
    p = params or dma_params(window)
    layers, tw = window.shape.layers, window.token_words
    n = 2 * layers * len(window.commits)
    d = trace.empty("dma_descriptors", n)
    pre_addr, pre_data = [], []
    for i, (c, base) in enumerate(zip(window.commits, window.staging(), strict=True)):
        words = c.tokens * tw
        for layer in range(layers):
            for kind in range(2):
                j = descriptor_of(window, i, layer, kind)
                src = base + (2 * layer + kind) * words
                d[j] = (j, int(DmaOp.STORE), 4 * src, 0, 4 * (window.region(layer, kind) + c.dst * tw),
                        i % (1 << p.tag_bits), 4 * words)
                pre_addr.append(np.arange(src, src + words))
                pre_data.append(c.words[layer, kind])
    t = trace.empty("dma_triggers", n)
    t["cycle"] = arrival_cycles(n, idle_prob, np.random.default_rng(seed))
    t["desc"] = np.arange(n)
    mem = trace.empty("mem_words", sum(len(a) for a in pre_addr))
    if pre_addr:
        mem["addr"], mem["data"] = np.concatenate(pre_addr), np.concatenate(pre_data)
    stim = trace.Trace(clock_hz=1.0, producer="sim.studies.hogwild.cosim",
                       meta={"num_devices": 1, "mem": memory_params(p).as_dict(), "seed": seed})
    stim.add("descriptors", "dma_descriptors", d)
    stim.add("triggers", "dma_triggers", t)
    stim.add("memory", "mem_words", mem)
    return stim


# --- the checks ---------------------------------------------------------------------------------------------------

def apply_packets(window: CommitWindow, link: np.ndarray) -> tuple[np.ndarray, int]:
    """The common regions (flat, word by word) after ``link``'s packets are applied, in order, to ``before``, and
    the packets that could not be (not a ``STORE`` to device 0 inside the common regions)."""
    image = window.before.reshape(-1).copy()
    ok = ((link["op"] == int(DmaOp.STORE)) & (link["dst_device"] == 0)
          & (link["addr"].astype(np.int64) < window.common_words))
    for a, v in zip(link["addr"][ok].astype(np.int64).tolist(), link["data"][ok].tolist(), strict=True):
        image[a] = v
    return image, int(np.count_nonzero(~ok))


def data_mismatches(window: CommitWindow, link: np.ndarray) -> int:
    """Words of the common regions that differ from the cache's at the window end once ``link`` is applied, plus
    the packets that could not be applied."""
    image, stray = apply_packets(window, link)
    return int(np.count_nonzero(image != window.after.reshape(-1))) + stray


def status_cycles(descriptors: int, status: np.ndarray) -> tuple[list[int | None], int]:
    """Each descriptor's status cycle (None: no status) and the status errors: statuses not ``OK`` plus
    descriptors without exactly one status."""
    out: list[int | None] = [None] * descriptors
    count = np.zeros(descriptors, np.int64)
    errors = int(np.count_nonzero(status["error"] != int(DmaError.OK)))
    for desc, cyc in zip(status["desc"].tolist(), status["cycle"].tolist(), strict=True):
        if desc < descriptors:
            count[desc] += 1
            out[desc] = int(cyc)
        else:
            errors += 1
    return out, errors + int(np.count_nonzero(count != 1))


def stall_cycles(seed: int, prob: float, cycles: int) -> int:
    """Cycles among the first ``cycles`` in which a `sim.core.stimulus.ReadyPattern` of ``seed`` is not ready."""
    if prob <= 0 or cycles <= 0:
        return 0
    t = np.arange(cycles, dtype=np.uint64) ^ np.uint64(seed & 0xFFFFFFFF)
    return int(np.count_nonzero((mix32(t) >> np.uint64(16)) < probability_threshold(prob)))


# --- the run ------------------------------------------------------------------------------------------------------

@dataclass
class CosimRun:
    """Everything one co-simulation produced (`run_cosim` returns ``figures``)."""

    window: CommitWindow
    stimulus: trace.Trace
    results: dict[str, Any] = field(default_factory=dict)  # target -> sim.exec.Result
    figures: dict[str, Any] = field(default_factory=dict)


def cosimulate(cfg: HogwildConfig, work: Path, *, seed: int = 1, waves: bool = False,
               progress: Callable[[str], None] = lambda _: None, workers: int = 2, steps: int = STEPS,
               backpressure: float = 0.3, targets: tuple[str, ...] = ("rtl", "model", "reference")) -> CosimRun:
    """`run_cosim`, keeping the window, the stimulus and each target's result (``targets`` without ``rtl``: the
    figures that need it are left out)."""
    from sim import exec as sx
    from sim.exec.api import completion_errors

    progress(f"Hogwild! co-simulation: {workers} workers, {steps} steps each")
    window = record_window(cfg, workers=workers, steps=steps)
    p = dma_params(window)
    stim = build_stimulus(window, seed=seed, params=p)
    stalls = sx.Stalls(seed, backpressure)
    run = CosimRun(window, stim)
    for target in targets:
        progress(f"Hogwild! co-simulation: commit moves on the DMA {target}")
        kw: dict[str, Any] = {}
        if target == "rtl":
            kw = {"work": work / "dma", "waves": waves}
            kw["work"].mkdir(parents=True, exist_ok=True)
        run.results[target] = sx.run("dma", stim, target, p, stalls, **kw)

    n = len(stim["descriptors"])
    tw = window.token_words
    link, status = stalls.ready(0), stalls.ready(1)
    f: dict[str, Any] = {
        "description": (
            f"{len(window.commits)} commits of a {workers}-worker Hogwild! run ({window.shape.name}: "
            f"{window.shape.layers} layers, {window.shape.kv_heads} KV heads of {window.shape.head_dim}, random "
            f"weights, {window.storage} KV, {LAYOUT} layout, {steps} steps a worker of {window.step_tokens} sampled "
            f"tokens after the step header, {window.decode_steps} decode steps) replayed into T3's DMA engine: each "
            f"commit's block, its keys re-rotated by the cache to their offset in the common block, is staged in "
            f"device memory and moved to the common block by one STORE descriptor per layer and K/V ({n} "
            f"descriptors, {window.tokens_moved} tokens, {tw} words per token of one layer's K or V, triggered in "
            f"commit order); the link and status ports are not ready with probability {backpressure}. The link "
            f"packets applied to the common block as it was at the window start ({window.common_before} tokens) "
            f"are compared word for word with the numpy cache's common block at the window end "
            f"({window.common_after} tokens)."),
        "workers": workers,
        "steps": steps,
        "commits": len(window.commits),
        "commits_per_worker": [sum(c.worker == w for c in window.commits) for w in range(workers)],
        "tokens_moved": window.tokens_moved,
        "descriptors": n,
        "words_moved": int(stim["descriptors"]["length"].sum()) // 4,
        "words_checked": int(window.after.size),
        "link_backpressure": link.prob,
        "status_backpressure": status.prob,
        "seed": seed,
    }
    if "model" in run.results:
        f["model_data_mismatches"] = data_mismatches(window, run.results["model"].tables["link"])
        f["cycles_model"] = int(run.results["model"].cycles)
    if "reference" in run.results:
        f["reference_data_mismatches"] = data_mismatches(window, run.results["reference"].tables["link"])
    if "rtl" in run.results:
        rtl = run.results["rtl"]
        rtl_done, errors = status_cycles(n, rtl.tables["status"])
        f["data_mismatches"] = data_mismatches(window, rtl.tables["link"])
        f["status_errors"] = errors
        f["cycles_rtl"] = int(rtl.cycles)
        f["link_stall_cycles"] = stall_cycles(link.seed, link.prob, int(rtl.cycles))
        if "model" in run.results:
            model_done, _ = status_cycles(n, run.results["model"].tables["status"])
            f.update(completion_errors(rtl_done, model_done))
            a = sx.agree(rtl, run.results["model"])
            f["rtl_vs_model"] = {"rows": a.rows, "data_mismatches": a.data_mismatches,
                                 "cycle_mismatches": a.cycle_mismatches, "missing": a.missing,
                                 "max_cycle_error": a.max_cycle_error}
        if "reference" in run.results:
            f["rtl_vs_reference_mismatches"] = sx.agree(rtl, run.results["reference"]).data_mismatches
    run.figures = f
    return run


def run_cosim(cfg: HogwildConfig, work: Path, *, seed: int = 1, waves: bool = False,
              progress: Callable[[str], None] = lambda _: None, workers: int = 2, steps: int = STEPS,
              backpressure: float = 0.3) -> dict[str, Any]:
    """Replay the commit moves of ``workers`` workers writing ``steps`` Hogwild! steps each into the DMA engine on
    Verilator (work directory ``work/dma``, a VCD there with ``waves``), its model and its reference, with
    ``backpressure`` on the link and status ports; return the figures (JSON-ready, finite; no assertions: the
    caller judges ``data_mismatches`` and ``max_cycle_error``). See the module docstring."""
    t0 = time.perf_counter()
    run = cosimulate(cfg, work, seed=seed, waves=waves, progress=progress, workers=workers, steps=steps,
                     backpressure=backpressure)
    progress(f"Hogwild! co-simulation done in {time.perf_counter() - t0:.1f} s")
    return run.figures
