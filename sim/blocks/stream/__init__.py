"""The STREAM unit (`hw.stream.StreamUnit`) in front of a `SimpleMemory`, on every target.

Stimulus: ``programs`` (``stream_programs``: each offered from its ``cycle``, in table order; ``op``, byte
addresses ``a``, ``b``, ``c``, element count ``n``, the scalar ``q`` as fp32 bits, ``tag``) and ``memory``
(``mem_image``: the memory's preload, words from address 0). ``meta["mem"]`` is the memory's
`hw.memory.MemoryParams` (``as_dict()``; its ``addr_bits`` must equal the unit's, and every program that runs
must fit in its ``2**size_log2`` words). ``meta["donate"]`` (optional, reference only): the reference may apply
the programs to the stimulus's ``memory`` table in place and return that table as its result, so host-sized
arrays are not copied (the STREAM study's host runs; the stimulus is spent).

Results: ``status`` (``stream_status``: cycle the status left on ``status``, ``tag``, ``op``, ``error``; one per
program, in program order) and ``memory`` (``mem_image``: the final image, words ``0 .. n-1`` with ``n`` the
larger of the preload's length and one past the highest word a running program uses). Stalls: port 0 is
``status``. ``cycles``: the first replay cycle in which every program has been taken and the unit is idle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hw.memory import MemoryParams
from hw.stream import OP_BITS, WORD_BYTES, StreamError, StreamOp, StreamParams, StreamUnit
from sim.blocks.stream.reference import PROGRAM_DTYPE, errors, run_programs, top_word
from sim.core import trace
from sim.core.stimulus import arrival_cycles
from sim.exec.api import Block, ResultTable, Stalls, register

trace.register_kind("stream_programs", PROGRAM_DTYPE)
trace.register_kind("mem_image", [("data", "<u4")])
trace.register_kind("stream_status", [("cycle", "<u8"), ("tag", "<u2"), ("op", "u1"), ("error", "u1")])

_STATUS = ("tag", "op", "error")


def _mem(p: StreamParams, stim: trace.Trace) -> MemoryParams:
    mem = MemoryParams(**stim.meta["mem"])
    if mem.addr_bits != p.addr_bits:
        raise ValueError(f"meta['mem'] addr_bits ({mem.addr_bits}) must equal the STREAM unit's ({p.addr_bits})")
    return mem


def _image(p: StreamParams, stim: trace.Trace, *, copy: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The words the programs run on (preload, zero-extended to every word they use) and their error codes."""
    programs = stim["programs"]
    widths = {"op": OP_BITS, "a": p.byte_addr_bits, "b": p.byte_addr_bits, "c": p.byte_addr_bits,
              "n": p.length_bits, "tag": p.tag_bits}
    for name, bits in widths.items():
        if len(programs) and int(programs[name].max()) >= 1 << bits:
            raise ValueError(f"a program's {name} does not fit the unit's {bits}-bit {name} field")
    errs = errors(p, programs)
    pre = stim["memory"]["data"]
    top = max(len(pre), top_word(programs, errs))
    if top > 1 << _mem(p, stim).size_log2:
        raise ValueError(f"the programs use {top} words, the memory has 2**{_mem(p, stim).size_log2}")
    if not copy and top == len(pre):
        return stim["memory"].view(np.uint32), errs
    image = np.zeros(top, dtype=np.uint32)
    image[:len(pre)] = pre
    return image, errs


def _words(image: np.ndarray) -> np.ndarray:
    return image.view(trace.TABLE_KINDS["mem_image"]) if image.dtype == np.uint32 else image


def make_stimulus(programs: np.ndarray, image: np.ndarray, mem: MemoryParams, *, producer: str = "sim.blocks.stream",
                  **meta: object) -> trace.Trace:
    """The block's stimulus: ``programs`` (`PROGRAM_DTYPE`) on a memory of ``mem`` preloaded with ``image`` (words
    from address 0, uint32 or any 4-byte type, not copied); ``meta`` adds keys (``donate``, ``seed``)."""
    t = trace.Trace(clock_hz=1.0, producer=producer, meta={"mem": mem.as_dict(), **meta})
    t.add("programs", "stream_programs", programs)
    t.add("memory", "mem_image", _words(np.asarray(image).view(np.uint32)))
    return t


def _reference(p: StreamParams, stim: trace.Trace) -> dict[str, np.ndarray]:
    image, _ = _image(p, stim, copy=not stim.meta.get("donate", False))
    programs = stim["programs"]
    errs = run_programs(p, image, programs)
    status = np.zeros(len(programs), dtype=[("tag", "<u2"), ("op", "u1"), ("error", "u1")])
    status["tag"], status["op"], status["error"] = programs["tag"], programs["op"], errs
    return {"status": status, "memory": _words(image)}


def _status(rows: np.ndarray) -> np.ndarray:
    out = trace.empty("stream_status", len(rows))
    if len(rows):
        out["cycle"] = rows[:, 0]
        for i, col in enumerate(_STATUS, start=1):
            out[col] = rows[:, i]
    return out


def _model(p: StreamParams, stim: trace.Trace, stalls: Stalls) -> tuple[dict[str, np.ndarray], int]:
    from sim.blocks.stream.model import run_stream

    image, _ = _image(p, stim)
    run, words = run_stream(p, _mem(p, stim), stim["programs"], image, stalls.ready(0))
    return {"status": _status(run.status), "memory": _words(words[:len(image)].copy())}, run.cycles


def _rtl(p: StreamParams, stim: trace.Trace, stalls: Stalls, work: Path, waves: bool
         ) -> tuple[dict[str, np.ndarray], int]:
    from sim.blocks.stream.rtl import run_stream_rtl

    image, _ = _image(p, stim)
    ready = stalls.ready(0)
    res = run_stream_rtl(p, _mem(p, stim), stim["programs"], image, work, status_seed=ready.seed,
                         status_bp=ready.prob, waves=waves)
    return ({"status": _status(np.asarray(res["status"], dtype=np.int64).reshape(-1, 4)),
             "memory": _words(np.asarray(res["memory"], dtype=np.uint32))}, int(res["cycles"]))


def standard_memory(p: StreamParams, words: int) -> MemoryParams:
    """The standard stimulus's memory: DRAM-like latency, a command every cycle."""
    return MemoryParams(addr_bits=p.addr_bits, size_log2=min(p.addr_bits, max(1, (words - 1).bit_length())),
                        latency=8, interval=1, queue_depth=8, rsp_depth=16)


SPECIALS = np.array([0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0x00000001,
                     0x807FFFFF, 0x00800000, 0x7F7FFFFF, 0x3F800000, 0x00400000], dtype=np.uint32)


def random_words(rng: np.random.Generator, n: int) -> np.ndarray:
    """fp32 words that reach every path of the datapath: random encodings (a few are NaN or infinite), values
    near 1, tiny and huge exponents (subnormal and overflowing products and sums) and special values."""
    kind = rng.integers(0, 4, n)
    words = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    exps = np.where(kind == 1, rng.integers(120, 135, n), np.where(kind == 2, rng.integers(0, 40, n),
                                                                    rng.integers(200, 255, n)))
    shaped = (words & np.uint32(0x807FFFFF)) | (exps.astype(np.uint32) << np.uint32(23))
    words = np.where(kind == 0, words, shaped).astype(np.uint32)
    special = rng.random(n) < 0.03
    words[special] = rng.choice(SPECIALS, int(special.sum()))
    return words


def random_programs(p: StreamParams, rng: np.random.Generator, count: int, words: int, *, max_n: int = 64,
                    bad: float = 0.15, idle_prob: float = 0.98) -> np.ndarray:
    """``count`` programs on a ``words``-word memory: every op with random lengths and placements (some of
    which overlap), plus a ``bad`` fraction of each other error class; offered with input idles."""
    progs = np.zeros(count, dtype=PROGRAM_DTYPE)
    progs["cycle"] = arrival_cycles(count, idle_prob, rng)
    max_n = max(1, min(max_n, words // 3, (1 << p.length_bits) - 1))
    n = rng.integers(1, max_n + 1, count)
    progs["n"] = n
    for x in "abc":
        progs[x] = rng.integers(0, words - n + 1) * WORD_BYTES
    progs["op"] = rng.integers(0, len(StreamOp), count)
    progs["q"] = random_words(rng, count)
    progs["tag"] = rng.integers(0, 1 << p.tag_bits, count)
    flaw = np.where(rng.random(count) < bad, rng.integers(1, 6, count), 0)
    progs["op"][flaw == 1] = rng.integers(len(StreamOp), 8, int((flaw == 1).sum()))
    progs["n"][flaw == 2] = 0
    progs["b"][flaw == 3] += rng.integers(1, WORD_BYTES, int((flaw == 3).sum())).astype(np.uint64)
    progs["n"][flaw == 4] = np.maximum(progs["n"][flaw == 4], 2)
    progs["a"][flaw == 4] = (1 << p.byte_addr_bits) - WORD_BYTES  # the last word: n >= 2 runs past the end
    progs["a"][flaw == 5] = progs["b"][flaw == 5]  # the destination is the source
    return progs


def _standard(p: StreamParams, seed: int, size: int) -> trace.Trace:
    """About ``size`` elements in programs of 1 to 64 on a 4 Ki-word memory (or the whole address space),
    arriving every ~50 cycles (a program takes 2 to 3 cycles an element), so the unit both queues programs and
    waits for them; ~15 % of the programs are bad, each error class among them."""
    rng = np.random.default_rng(seed)
    words = min(4096, 1 << p.addr_bits)
    programs = random_programs(p, rng, max(1, size // 32), words)
    return make_stimulus(programs, random_words(rng, words), standard_memory(p, words), seed=seed)


def error_counts(status: np.ndarray) -> dict[str, int]:
    """Programs per error class (names of `hw.stream.StreamError`)."""
    return {e.name: int(np.count_nonzero(status["error"] == e)) for e in StreamError}


BLOCK = register(Block(
    name="stream",
    module="stream_unit",
    params=StreamParams,
    component=StreamUnit,
    stimulus={"programs": "stream_programs", "memory": "mem_image"},
    results={"status": ResultTable("stream_status"), "memory": ResultTable("mem_image")},
    reference=_reference,
    model=_model,
    rtl=_rtl,
    standard_stimulus=_standard,
    test_params=lambda: StreamParams(addr_bits=12, length_bits=12, tag_bits=8, inflight=8, status_depth=2),
    test_size=3000,
    doc="STREAM unit: COPY/SCALE/ADD/TRIAD on fp32 arrays next to memory, numbered errors for bad programs",
))
