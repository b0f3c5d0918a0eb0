"""T3's per-GPU device (`hw.t3_device.T3Device`: tracker, DMA, reducer, MCA arbiter) on every target.

The device runs in front of `hw.memory.SimpleMemory` (the RTL harness `sim.blocks.t3_device.rtl`; the model
`sim.blocks.t3_device.model`, a composition of the blocks' rules: the ``model`` runner runs it compiled in one
kernel, `model_stepped` through the stepped class the T3 co-simulation drives).

Stimulus (kinds registered here):

``program``      ``tracker_program``: the tracker's entries.
``descriptors``  ``t3_descriptors``: the DMA's table (``index``, ``src_addr``/``dst_addr``/``length`` in bytes,
                 ``dst_device``, ``op`` (`hw.dma.DmaOp`), ``tag``, ``valid``).
``preload``      ``mem_words`` (``addr`` word address, ``data``): the memory before the run.
``compute``      ``t3_compute`` (``cycle``, ``addr``, ``write``, ``data``): the GPU's own commands.
``produce``      ``t3_packets`` (``cycle``, ``addr`` word, ``op`` (`hw.reducer.ReduceOp`), ``data``, ``tag``): the
                 GPU's tracked output updates.
``link_in``      ``t3_packets``: the ring's incoming updates.

Timed rows are offered from their ``cycle`` until taken, in order. ``meta``: ``mem`` (`MemoryParams.as_dict()`,
``addr_bits`` the device's), ``num_devices``, ``arb_mode``, ``arb_threshold``, ``arb_starvation``. The stimulus
contract that makes the answer timing-independent is in `sim.blocks.t3_device.stimulus`.

Results:

``link_out``     ``t3_link_out`` (``cycle``, ``dst_device``, ``addr``, ``op``, ``data``, ``tag``): packets sent,
                 unordered against the reference (channels interleave by timing).
``statuses``     ``t3_status`` (``cycle``, ``desc``, ``tag``, ``error``): DMA completions, unordered likewise.
``compute_rsp``  ``t3_compute_rsp`` (``cycle``, ``data``): the compute port's read words, in order.
``memory``       ``mem_words``: the final contents of every word preloaded or written, by address.
``tracker``      ``t3_tracker_stats`` (``errors``, ``unprogrammed``, ``overflow``, ``triggers``, ``requests``): the
                 tracker's status registers (`hw.tracker.StatusReg`) after the run.

Stalls: port 0 is ``link_out``, port 1 ``status``, port 2 the compute responses (``compute.rsp.ready``).

``cycles``: the number of the first replay cycle (cycle 0: the first after programming) in which every input
row has been taken, every compute read answered and the device is ``idle``; i.e. the run's length.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hw.t3_device import T3Device, T3DeviceParams
from sim.core import trace
from sim.exec.api import Block, ResultTable, Stalls, register

trace.register_kind("t3_descriptors", [("index", "<u4"), ("src_addr", "<u8"), ("dst_device", "<u2"),
                                       ("dst_addr", "<u8"), ("length", "<u4"), ("op", "u1"), ("tag", "<u4"),
                                       ("valid", "u1")])
trace.register_kind("mem_words", [("addr", "<u8"), ("data", "<u4")])  # shared with the DMA and reducer
trace.register_kind("t3_compute", [("cycle", "<u8"), ("addr", "<u4"), ("write", "u1"), ("data", "<u4")])
trace.register_kind("t3_packets", [("cycle", "<u8"), ("addr", "<u4"), ("op", "u1"), ("data", "<u4"),
                                   ("tag", "<u4")])
trace.register_kind("t3_link_out", [("cycle", "<u8"), ("dst_device", "<u2"), ("addr", "<u4"), ("op", "u1"),
                                    ("data", "<u4"), ("tag", "<u4")])
trace.register_kind("t3_status", [("cycle", "<u8"), ("desc", "<u4"), ("tag", "<u4"), ("error", "u1")])
trace.register_kind("t3_compute_rsp", [("cycle", "<u8"), ("data", "<u4")])
trace.register_kind("t3_tracker_stats", [("errors", "u1"), ("unprogrammed", "<u4"), ("overflow", "<u4"),
                                         ("triggers", "<u4"), ("requests", "<u4")])

from sim.blocks.t3_device.stimulus import (  # noqa: E402  (the kinds first)
    STIMULUS,
    memory_params,
    readback_addrs,
    standard_stimulus,
)

RESULTS = {"link_out": ResultTable("t3_link_out", ordered=False), "statuses": ResultTable("t3_status", ordered=False),
           "compute_rsp": ResultTable("t3_compute_rsp"), "memory": ResultTable("mem_words"),
           "tracker": ResultTable("t3_tracker_stats")}


def _rows(kind: str, rows) -> np.ndarray:
    dt = trace.TABLE_KINDS[kind]
    return np.array([tuple(r) for r in rows], dtype=dt) if len(rows) else trace.empty(kind)


def _reference(p: T3DeviceParams, stim: trace.Trace) -> dict[str, np.ndarray]:
    from sim.blocks.t3_device.reference import device_reference

    return device_reference(p, stim)


def _descriptors(stim: trace.Trace) -> dict:
    from sim.blocks.dma.model import Descriptor

    return {int(r["index"]): Descriptor(src_addr=int(r["src_addr"]), dst_device=int(r["dst_device"]),
                                        dst_addr=int(r["dst_addr"]), length=int(r["length"]), op=int(r["op"]),
                                        tag=int(r["tag"]), valid=int(r["valid"])) for r in stim["descriptors"]}


def _config(stim: trace.Trace) -> dict:
    meta = stim.meta
    return {"num_devices": int(meta["num_devices"]), "arb_mode": int(meta["arb_mode"]),
            "arb_threshold": int(meta["arb_threshold"]), "arb_starvation": int(meta["arb_starvation"]),
            "program": stim["program"], "descriptors": _descriptors(stim)}


def _model(p: T3DeviceParams, stim: trace.Trace, stalls: Stalls) -> tuple[dict[str, np.ndarray], int]:
    """The compiled device kernel (`sim.blocks.t3_device.model.run_device_fast`)."""
    from sim.blocks.t3_device.model import run_device_fast

    cols, cycles = run_device_fast(p, memory_params(stim), **_config(stim), preload=stim["preload"],
                                   compute=stim["compute"], produce=stim["produce"], link_in=stim["link_in"],
                                   readies=[stalls.ready(i) for i in range(3)], readback=readback_addrs(stim),
                                   max_cycles=_max_cycles(stim))
    return {name: _columns(kind, cols[name]) for name, kind in (
        ("link_out", "t3_link_out"), ("statuses", "t3_status"), ("compute_rsp", "t3_compute_rsp"),
        ("memory", "mem_words"), ("tracker", "t3_tracker_stats"))}, cycles


def _columns(kind: str, rows: np.ndarray) -> np.ndarray:
    out = np.zeros(len(rows), dtype=trace.TABLE_KINDS[kind])
    for j, name in enumerate(out.dtype.names):
        out[name] = rows[:, j]
    return out


def model_stepped(p: T3DeviceParams, stim: trace.Trace, stalls: Stalls) -> tuple[dict[str, np.ndarray], int]:
    """The ``model`` runner's results from the stepped class `sim.blocks.t3_device.model.T3DeviceModel` (the same
    rules interpreted, driven cycle by cycle from Python as the T3 co-simulation drives it)."""
    from sim.blocks.memory.model import SimpleMemoryModel
    from sim.blocks.t3_device.model import T3DeviceModel

    mem_p = memory_params(stim)
    pre = stim["preload"]
    mem = SimpleMemoryModel(mem_p, {a & ((1 << mem_p.size_log2) - 1): v
                                    for a, v in zip(pre["addr"].tolist(), pre["data"].tolist(), strict=True)})
    dev = T3DeviceModel(p, mem, **_config(stim))
    link_ready, status_ready, compute_ready = (stalls.ready(i) for i in range(3))
    comp = list(zip(*(stim["compute"][k].tolist() for k in ("cycle", "addr", "write", "data")), strict=True))
    prod, link = ([(r[0], (r[1], r[2], r[4], r[3])) for r in
                   zip(*(stim[n][k].tolist() for k in ("cycle", "addr", "op", "data", "tag")), strict=True)]
                  for n in ("produce", "link_in"))
    n_reads = sum(1 for r in comp if not r[2])
    ci = pi = li = 0
    limit = _max_cycles(stim)
    k = 0
    while not (ci == len(comp) and pi == len(prod) and li == len(link) and len(dev.compute_words) == n_reads
               and dev.idle()):
        if k > limit:
            raise RuntimeError(f"the device model did not finish within {limit} cycles")
        c = comp[ci][1:] if ci < len(comp) and comp[ci][0] <= k else None
        pr = prod[pi][1] if pi < len(prod) and prod[pi][0] <= k else None
        ln = link[li][1] if li < len(link) and link[li][0] <= k else None
        took_c, took_p, took_l, _ = dev.cycle(k, c, pr, ln, link_ready(k), status_ready(k), compute_ready(k))
        ci, pi, li = ci + took_c, pi + took_p, li + took_l
        k += 1
    while mem.queue or mem.pipe:  # writes still queued reach memory before anyone reads it back
        mem.step()
    addrs = readback_addrs(stim)
    st = dev.tracker_stats
    errors = int("unprogrammed" in st.errors) | (int("overflow" in st.errors) << 1)
    return {
        "link_out": _rows("t3_link_out", dev.run.packets),
        "statuses": _rows("t3_status", dev.run.statuses),
        "compute_rsp": _rows("t3_compute_rsp", dev.compute_words),
        "memory": _rows("mem_words", [(a, mem.read_word(a)) for a in addrs.tolist()]),
        "tracker": _rows("t3_tracker_stats", [(errors, st.unprogrammed, st.overflow, st.triggers, st.requests)]),
    }, k


def _max_cycles(stim: trace.Trace) -> int:
    timed = [stim[n] for n in ("compute", "produce", "link_in")]
    last = max((int(t["cycle"][-1]) for t in timed if len(t)), default=0)
    return last + 64 * sum(len(t) for t in timed) + 10_000


def _rtl(p: T3DeviceParams, stim: trace.Trace, stalls: Stalls, work: Path, waves: bool
         ) -> tuple[dict[str, np.ndarray], int]:
    from sim.blocks.t3_device.rtl import replay_device_rtl

    meta = stim.meta
    readies = [stalls.ready(i) for i in range(3)]
    job = {
        "params": p.blocks_dict(), "mem": dict(meta["mem"]), "num_devices": int(meta["num_devices"]),
        "arb": [int(meta["arb_mode"]), int(meta["arb_threshold"]), int(meta["arb_starvation"])],
        "program": stim["program"].tolist(),
        "descriptors": {str(int(r["index"])): {k: int(r[k]) for k in ("src_addr", "dst_device", "dst_addr", "length",
                                                                      "op", "tag", "valid")}
                        for r in stim["descriptors"]},
        "preload": stim["preload"].tolist(), "readback": readback_addrs(stim).tolist(),
        "compute": stim["compute"].tolist(), "produce": stim["produce"].tolist(), "link_in": stim["link_in"].tolist(),
        "link_ready": [readies[0].seed, readies[0].prob], "status_ready": [readies[1].seed, readies[1].prob],
        "compute_ready": [readies[2].seed, readies[2].prob], "max_cycles": _max_cycles(stim),
    }
    res = replay_device_rtl(p, memory_params(stim), job, work, waves)
    tr = res["tracker"]
    return {
        "link_out": _rows("t3_link_out", res["link_out"]),
        "statuses": _rows("t3_status", res["statuses"]),
        "compute_rsp": _rows("t3_compute_rsp", res["compute_rsp"]),
        "memory": _rows("mem_words", res["memory"]),
        "tracker": _rows("t3_tracker_stats", [(tr["errors"], tr["unprogrammed_count"], tr["overflow_count"],
                                               tr["trigger_count"], tr["request_count"])]),
    }, int(res["cycles"])


def test_params() -> T3DeviceParams:
    """Small and quick to build; ``count_bits = 8`` lets the standard stimulus saturate a byte count."""
    return T3DeviceParams(addr_bits=16, entries=16, count_bits=8, fifo_depth=4, channels=2, burst=4, outstanding=8,
                          device_bits=2, inflight=4, max_reads=8, occupancy_bits=4)


BLOCK = register(Block(
    name="t3_device",
    module="t3_device",
    params=T3DeviceParams,
    component=T3Device,
    stimulus=STIMULUS,
    results=RESULTS,
    reference=_reference,
    model=_model,
    rtl=_rtl,
    standard_stimulus=standard_stimulus,
    test_params=test_params,
    test_size=600,
    bench_size=100_000,
    doc="T3's per-GPU device: tracker + DMA + near-memory reducer + MCA arbiter around one memory port",
))
