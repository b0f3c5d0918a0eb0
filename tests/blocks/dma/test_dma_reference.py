"""The DMA engine's functional reference and stimulus: the documented error rules on hand-made descriptors, the
packets' addresses and data, the stimulus checks, and the model against the reference under stalls."""

from __future__ import annotations

import numpy as np
import pytest

import sim.exec as ex
from hw.dma import DmaError, DmaOp, DmaParams
from hw.memory import MemoryParams
from sim.blocks.dma.reference import dma_reference
from sim.blocks.dma.stimulus import check_stimulus, random_dma_workload
from sim.core import trace

P = DmaParams(addr_bits=12, descriptors=16, device_bits=3, length_bits=12, tag_bits=8, channels=2, burst=2,
              outstanding=4)
MEM = MemoryParams(addr_bits=12, size_log2=6, latency=3, interval=1)
NUM_DEVICES = 5
OK, UNPROG, ZERO, BAD_DEV, MIS, BAD_OP = (DmaError.OK, DmaError.UNPROGRAMMED, DmaError.ZERO_LENGTH,
                                          DmaError.BAD_DEVICE, DmaError.MISALIGNED, DmaError.BAD_OP)


def _stim(rows: list[tuple], triggers: list[int], preload: dict[int, int] | None = None) -> trace.Trace:
    """rows: (index, op, src_addr, dst_device, dst_addr, dst_tag, length)."""
    t = trace.Trace(clock_hz=1.0, producer="test", meta={"num_devices": NUM_DEVICES, "mem": MEM.as_dict()})
    t.add("descriptors", "dma_descriptors", np.array(rows, dtype=trace.TABLE_KINDS["dma_descriptors"]))
    trig = trace.empty("dma_triggers", len(triggers))
    trig["cycle"], trig["desc"] = np.arange(len(triggers)), triggers
    t.add("triggers", "dma_triggers", trig)
    preload = preload if preload is not None else {a: 1000 + a for a in range(1 << MEM.size_log2)}
    w = trace.empty("mem_words", len(preload))
    w["addr"], w["data"] = list(preload), list(preload.values())
    t.add("memory", "mem_words", w)
    return t


def _ref(stim: trace.Trace):
    check_stimulus(P, stim)
    return dma_reference(P, MEM, NUM_DEVICES, stim["descriptors"], stim["memory"], stim["triggers"])


@pytest.mark.parametrize("row,error", [
    ((0, DmaOp.STORE, 8, 1, 16, 7, 8), OK),
    ((0, 5, 8, 1, 16, 7, 8), BAD_OP),
    ((0, 7, 8, 1, 16, 7, 0), BAD_OP),                 # a bad op is reported before a zero length
    ((0, DmaOp.ADD_I32, 8, 1, 16, 7, 0), ZERO),
    ((0, DmaOp.ADD_I32, 8, 6, 16, 7, 0), ZERO),       # ... and a zero length before a bad device
    ((0, DmaOp.ADD_F32, 8, 5, 16, 7, 8), BAD_DEV),    # the first device at or above num_devices
    ((0, DmaOp.ADD_F32, 9, 7, 16, 7, 8), BAD_DEV),    # ... before a misaligned source
    ((0, DmaOp.ADD_BF16, 9, 4, 16, 7, 8), MIS),
    ((0, DmaOp.ADD_BF16, 8, 4, 18, 7, 8), MIS),
    ((0, DmaOp.ADD_BF16, 8, 4, 16, 7, 6), MIS),
    ((0, DmaOp.NOTIFY, 9, 7, 18, 7, 0), OK),          # a NOTIFY is only checked for being programmed
], ids=["ok", "bad-op", "op-before-zero", "zero", "zero-before-device", "device", "device-before-misaligned",
        "misaligned-src", "misaligned-dst", "misaligned-length", "notify"])
def test_error_rules(row, error):
    link, status = _ref(_stim([row], [0]))
    assert status.tolist() == [(0, 7, int(error))]
    moves = error == OK and row[1] != DmaOp.NOTIFY
    assert len(link) == (row[6] // 4 if moves else 0)


def test_unprogrammed_index_reports_tag_zero_and_moves_nothing():
    link, status = _ref(_stim([(3, DmaOp.STORE, 0, 1, 0, 9, 8)], [2, 3, 2]))
    assert status.tolist() == [(2, 0, int(UNPROG)), (3, 9, int(OK)), (2, 0, int(UNPROG))]
    assert len(link) == 2


def test_packets_carry_header_and_data_and_wrap():
    words = 1 << MEM.size_log2
    top = (1 << P.addr_bits) - 2  # destination word address: the third word wraps to 0
    link, _ = _ref(_stim([(1, DmaOp.ADD_I32, 4 * (words - 1), 3, 4 * top, 42, 12)], [1], {0: 5, 1: 6, words - 1: 7}))
    assert link.tolist() == [(3, top, 1, 7, 42), (3, top + 1, 1, 5, 42), (3, 0, 1, 6, 42)]
    link, _ = _ref(_stim([(1, DmaOp.STORE, 4 * words + 8, 3, 0, 42, 8)], [1], {2: 11}))  # memory wraps; 3 unloaded
    assert link["data"].tolist() == [11, 0]


@pytest.mark.parametrize("col,value", [("op", 8), ("dst_device", 8), ("dst_tag", 256), ("length", 1 << 12),
                                       ("src_addr", 1 << 14), ("index", 16)])
def test_check_stimulus_rejects_fields_the_ports_would_truncate(col, value):
    stim = _stim([(0, DmaOp.STORE, 0, 1, 0, 1, 4)], [0])
    stim["descriptors"][col] = value
    with pytest.raises(ValueError, match=col):
        check_stimulus(P, stim)


def test_check_stimulus_rejects_duplicates_and_bad_triggers():
    with pytest.raises(ValueError, match="twice"):
        check_stimulus(P, _stim([(0, 0, 0, 1, 0, 1, 4), (0, 0, 4, 1, 0, 1, 4)], [0]))
    with pytest.raises(ValueError, match="trigger"):
        check_stimulus(P, _stim([(0, 0, 0, 1, 0, 1, 4)], [16]))


def test_workload_covers_every_error_code_and_has_idles():
    stim = random_dma_workload(P, np.random.default_rng(3), triggers=2000, num_devices=NUM_DEVICES, mem=MEM,
                               idle_prob=0.5)
    _, status = _ref(stim)
    assert set(np.unique(status["error"])) == {int(e) for e in DmaError}
    d = stim["descriptors"]
    assert ((d["op"] == DmaOp.NOTIFY) & (d["src_addr"] % 4 != 0)).any()  # NOTIFYs that would fail other checks
    cycles = stim["triggers"]["cycle"].astype(np.int64)
    assert 0.4 < 1 - len(cycles) / (cycles[-1] + 1) < 0.6


@pytest.mark.parametrize("bp", [0.0, 0.5, 0.9])
def test_model_data_equals_the_reference_under_stalls(bp):
    blk = ex.get("dma")
    stim = blk.standard_stimulus(P, 5, 400)
    model = ex.run("dma", stim, "model", P, ex.Stalls(seed=3, backpressure=bp))
    ref = ex.run("dma", stim, "reference", P)
    agreement = ex.agree(model, ref)
    assert agreement.rows > 400 and agreement.data_mismatches == 0, agreement.per_table
