"""The KV swap DMA controller (`hw.kv_swap.KvSwapController`) with its device memory and host link, on every target.

Stimulus: ``runs`` (``kv_swap_runs``: cycle each run is offered from, tag, direction (`hw.kv_swap.SwapDir`), src,
dst (blocks), count, last), ``aborts`` (``kv_swap_aborts``: cycle offered from, tag), ``dev_memory`` and
``host_memory`` (``mem_words``: the preloads; words of the pools, ``block * block_words + i``, that they leave
out are 0). ``meta``: ``dev_mem`` and ``host_mem`` (`hw.memory.MemoryParams` ``as_dict()``, ``addr_bits`` equal to
the controller's ``dev_addr_bits``/``host_addr_bits``) and ``overhead_cycles`` (the host link's per-burst
overhead, `sim.rtl.gateware.HostLinkMemory`).

Results: ``statuses`` (``kv_swap_statuses``: cycle each left on ``status``, tag, error; one per request, in an
order set by timing, so the reference is compared as a multiset), ``dev_writes`` and ``host_writes``
(``kv_swap_writes``: cycle the memory accepted each of the controller's writes, word address, data; in order),
``dev_memory`` and ``host_memory`` (``mem_words``: every pool word after the run) and ``counters``
(``kv_swap_counters``: ``bad_aborts``, ``abort_err`` after the run). Stalls: port 0 is the ``status`` output.

``cycles``: the first replay cycle in which every run and abort has been taken and the controller is ``idle``
(its last status taken); cycle 0 is the first cycle after the preload, with both memories empty and idle.

The reference (`sim.blocks.kv_swap.reference.swap_outcome`) decides each abort from the contract and the offer
cycles under stated assumptions (the aborts and the runs of the requests they name are taken when offered); the
standard stimulus (`sim.blocks.kv_swap.model.random_swap_workload`) drains the controller before each abort
scenario so that they hold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hw.kv_swap import KvSwapController, KvSwapParams
from hw.memory import MemoryParams
from sim.blocks.kv_swap.reference import ABORT_DTYPE, RUN_DTYPE, swap_outcome
from sim.core import trace
from sim.exec.api import Block, ResultTable, Stalls, register

trace.register_kind("kv_swap_runs", RUN_DTYPE)
trace.register_kind("kv_swap_aborts", ABORT_DTYPE)
trace.register_kind("mem_words", [("addr", "<u8"), ("data", "<u4")])
trace.register_kind("kv_swap_statuses", [("cycle", "<u8"), ("tag", "<u2"), ("error", "u1")])
trace.register_kind("kv_swap_writes", [("cycle", "<u8"), ("addr", "<u8"), ("data", "<u4")])
trace.register_kind("kv_swap_counters", [("bad_aborts", "<u2"), ("abort_err", "u1")])

STANDARD_OVERHEAD = 5


def _env(p: KvSwapParams, stim: trace.Trace) -> tuple[MemoryParams, MemoryParams, int]:
    dev, host = MemoryParams(**stim.meta["dev_mem"]), MemoryParams(**stim.meta["host_mem"])
    for mem, blocks, side in ((dev, p.dev_blocks, "device"), (host, p.host_blocks, "host")):
        if blocks * p.block_words > 1 << mem.size_log2:
            raise ValueError(f"the {side} memory (2**{mem.size_log2} words) is smaller than its pool")
    return dev, host, int(stim.meta["overhead_cycles"])


def _image(table: np.ndarray, words: int, side: str) -> np.ndarray:
    if len(table) and int(table["addr"].max()) >= words:
        raise ValueError(f"the {side} preload writes past the pool ({words} words)")
    image = np.zeros(words, dtype=np.uint32)
    image[table["addr"].astype(np.int64)] = table["data"]
    return image


def _images(p: KvSwapParams, stim: trace.Trace) -> tuple[np.ndarray, np.ndarray]:
    return (_image(stim["dev_memory"], p.dev_blocks * p.block_words, "device"),
            _image(stim["host_memory"], p.host_blocks * p.block_words, "host"))


def _words(image) -> np.ndarray:
    out = trace.empty("mem_words", len(image))
    out["addr"] = np.arange(len(image))
    out["data"] = np.asarray(image, dtype=np.uint32)
    return out


def _counters(bad_aborts: int, abort_err: int) -> np.ndarray:
    out = trace.empty("kv_swap_counters", 1)
    out["bad_aborts"], out["abort_err"] = bad_aborts, abort_err
    return out


def _reference(p: KvSwapParams, stim: trace.Trace) -> dict[str, np.ndarray]:
    _env(p, stim)
    dev, host = _images(p, stim)
    o = swap_outcome(p, stim["runs"], stim["aborts"], dev, host)
    statuses = np.zeros(len(o.statuses), dtype=[("tag", "<u2"), ("error", "u1")])
    if o.statuses:
        statuses["tag"], statuses["error"] = np.array(o.statuses).T
    tables = {"statuses": statuses}
    for name, (addr, data) in (("dev_writes", o.dev_writes), ("host_writes", o.host_writes)):
        w = np.zeros(len(addr), dtype=[("addr", "<u8"), ("data", "<u4")])
        w["addr"], w["data"] = addr, data
        tables[name] = w
    counters = np.zeros(1, dtype=[("bad_aborts", "<u2"), ("abort_err", "u1")])
    counters["bad_aborts"], counters["abort_err"] = o.bad_aborts, int(o.bad_aborts > 0)
    return tables | {"dev_memory": _words(o.dev_memory), "host_memory": _words(o.host_memory),
                     "counters": counters}


def _replay_inputs(stim: trace.Trace):
    from sim.blocks.kv_swap.model import Run

    runs = [(c, Run(tag, d, s, ds, n, bool(last))) for c, tag, d, s, ds, n, last in stim["runs"].tolist()]
    return runs, [(c, tag) for c, tag in stim["aborts"].tolist()]


def _timed(statuses, dev_cmds, host_cmds) -> dict[str, np.ndarray]:
    """Result tables from the replay's records: statuses ``(cycle, tag, error)``, commands ``(cycle, addr, write,
    data, ...)`` (the writes are the commands with ``write`` set)."""
    st = trace.empty("kv_swap_statuses", len(statuses))
    if len(statuses):
        st["cycle"], st["tag"], st["error"] = np.array(statuses, dtype=np.int64).T
    out = {"statuses": st}
    for name, cmds in (("dev_writes", dev_cmds), ("host_writes", host_cmds)):
        writes = [c[:4] for c in cmds if c[2]]
        w = trace.empty("kv_swap_writes", len(writes))
        if writes:
            a = np.array(writes, dtype=np.int64)
            w["cycle"], w["addr"], w["data"] = a[:, 0], a[:, 1], a[:, 3]
        out[name] = w
    return out


def _model(p: KvSwapParams, stim: trace.Trace, stalls: Stalls) -> tuple[dict[str, np.ndarray], int]:
    """The compiled replay (`sim.blocks.kv_swap.model.replay_arrays`) on the stimulus' columns."""
    from sim.blocks.kv_swap.model import replay_arrays

    dev_mem, host_mem, overhead = _env(p, stim)
    dev_image, host_image = _images(p, stim)
    storage = []
    for mem, image in ((dev_mem, dev_image), (host_mem, host_image)):
        words = np.zeros(1 << mem.size_log2, dtype=np.int64)
        words[:len(image)] = image
        storage.append(words)
    r = stim["runs"]
    runs = np.stack([r[c].astype(np.int64) for c in ("cycle", "tag", "direction", "src", "dst", "count", "last")],
                    axis=1) if len(r) else np.zeros((0, 7), dtype=np.int64)
    a = stim["aborts"]
    aborts = np.stack([a["cycle"].astype(np.int64), a["tag"].astype(np.int64)], axis=1) if len(a) else \
        np.zeros((0, 2), dtype=np.int64)
    # Drained: writes still queued in the memories land (the RTL reads back later).
    res = replay_arrays(p, dev_mem, host_mem, overhead, storage[0], storage[1], runs, aborts,
                        stalls.ready(0).as_model_ready(), drain=True)
    st = trace.empty("kv_swap_statuses", len(res.statuses))
    st["cycle"], st["tag"], st["error"] = res.statuses[:, 0], res.statuses[:, 1], res.statuses[:, 2]
    tables = {"statuses": st}
    for name, cmds in (("dev_writes", res.dev_cmds), ("host_writes", res.host_cmds)):
        cmds = cmds[cmds[:, 2] != 0]
        w = trace.empty("kv_swap_writes", len(cmds))
        w["cycle"], w["addr"], w["data"] = cmds[:, 0], cmds[:, 1], cmds[:, 3]
        tables[name] = w
    return tables | {
        "dev_memory": _words(storage[0][:len(dev_image)]),
        "host_memory": _words(storage[1][:len(host_image)]),
        "counters": _counters(res.bad_aborts, int(res.bad_aborts > 0)),  # the model's abort_err: bad_aborts > 0
    }, res.cycles


def _rtl(p: KvSwapParams, stim: trace.Trace, stalls: Stalls, work: Path, waves: bool
         ) -> tuple[dict[str, np.ndarray], int]:
    from sim.blocks.kv_swap.rtl import run_kv_swap_rtl

    dev_mem, host_mem, overhead = _env(p, stim)
    dev_image, host_image = _images(p, stim)
    runs, aborts = _replay_inputs(stim)
    ready = stalls.ready(0)
    last = max([c for c, _ in runs] + [c for c, _ in aborts] + [0])
    words = sum(r.count for _, r in runs) * p.block_words
    res = run_kv_swap_rtl(p, dev_mem, host_mem, overhead, dict(enumerate(dev_image.tolist())),
                          dict(enumerate(host_image.tolist())), runs, aborts, work, status_seed=ready.seed,
                          status_bp=ready.prob, max_cycles=last + 64 * words + 100 * len(runs) + 10_000, waves=waves)
    tables = _timed(res["statuses"], res["dev_cmds"], res["host_cmds"])
    return tables | {"dev_memory": _words(res["dev_mem"]), "host_memory": _words(res["host_mem"]),
                     "counters": _counters(res["bad_aborts"], res["abort_err"])}, int(res["cycles"])


def standard_environment(p: KvSwapParams) -> tuple[MemoryParams, MemoryParams, int]:
    """Memories of the standard stimulus: a fast device memory (latency 3, a command a cycle) and a slower host
    (latency 6, a command every 2 cycles) behind a link with a 5-cycle per-burst overhead, shallow queues."""
    def size(blocks: int) -> int:
        return max(1, (blocks * p.block_words - 1).bit_length())

    dev = MemoryParams(addr_bits=p.dev_addr_bits, size_log2=size(p.dev_blocks), latency=3, interval=1,
                       queue_depth=4, rsp_depth=4)
    host = MemoryParams(addr_bits=p.host_addr_bits, size_log2=size(p.host_blocks), latency=6, interval=2,
                        queue_depth=4, rsp_depth=8)
    return dev, host, STANDARD_OVERHEAD


def stimulus_trace(p: KvSwapParams, w, dev_mem: MemoryParams, host_mem: MemoryParams, overhead: int,
                   **meta) -> trace.Trace:
    """A `sim.blocks.kv_swap.model.SwapWorkload` as this block's stimulus trace."""
    runs = trace.empty("kv_swap_runs", len(w.runs))
    if w.runs:
        runs["cycle"] = [c for c, _ in w.runs]
        for col, attr in (("tag", "tag"), ("direction", "direction"), ("src", "src"), ("dst", "dst"),
                          ("count", "count"), ("last", "last")):
            runs[col] = [int(getattr(r, attr)) for _, r in w.runs]
    aborts = trace.empty("kv_swap_aborts", len(w.aborts))
    if w.aborts:
        aborts["cycle"], aborts["tag"] = np.array(w.aborts, dtype=np.int64).T
    t = trace.Trace(clock_hz=1.0, producer="sim.blocks.kv_swap",
                    meta={**meta, "dev_mem": dev_mem.as_dict(), "host_mem": host_mem.as_dict(),
                          "overhead_cycles": overhead})
    t.add("runs", "kv_swap_runs", runs)
    t.add("aborts", "kv_swap_aborts", aborts)
    t.add("dev_memory", "mem_words", _words([w.dev_preload.get(a, 0) for a in range(p.dev_blocks * p.block_words)]))
    t.add("host_memory", "mem_words",
          _words([w.host_preload.get(a, 0) for a in range(p.host_blocks * p.block_words)]))
    return t


def _standard(p: KvSwapParams, seed: int, size: int) -> trace.Trace:
    """``size`` requests of `random_swap_workload`: 15 % with errors, 15 % opening an abort scenario, the run
    stream idle 30 % of its cycles outside the scenarios' drain gaps."""
    from sim.blocks.kv_swap.model import random_swap_workload

    dev, host, overhead = standard_environment(p)
    w = random_swap_workload(p, np.random.default_rng(seed), n_requests=size, bad_fraction=0.15,
                             abort_fraction=0.15, idle_prob=0.3, dev_mem=dev, host_mem=host,
                             overhead_cycles=overhead)
    return stimulus_trace(p, w, dev, host, overhead, seed=seed)


BLOCK = register(Block(
    name="kv_swap",
    module="kv_swap_controller",
    params=KvSwapParams,
    component=KvSwapController,
    stimulus={"runs": "kv_swap_runs", "aborts": "kv_swap_aborts", "dev_memory": "mem_words",
              "host_memory": "mem_words"},
    results={"statuses": ResultTable("kv_swap_statuses", ordered=False),
             "dev_writes": ResultTable("kv_swap_writes"), "host_writes": ResultTable("kv_swap_writes"),
             "dev_memory": ResultTable("mem_words"), "host_memory": ResultTable("mem_words"),
             "counters": ResultTable("kv_swap_counters")},
    reference=_reference,
    model=_model,
    rtl=_rtl,
    standard_stimulus=_standard,
    test_params=lambda: KvSwapParams(block_words=4, max_burst_blocks=4, dev_blocks=256, host_blocks=256, block_bits=8,
                                     count_bits=4, dev_addr_bits=10, host_addr_bits=10, queue_depth=3, run_depth=6,
                                     outstanding=6, tag_bits=8),
    test_size=300,
    bench_size=2_000,  # default pools: 80 k words to preload and read back; ~300 model cycles a request
    doc="FastSwitch-style KV-cache swap DMA: queued requests of block runs, coalesced bursts, aborts, statuses",
))
