"""The registered ``t3_device`` block on Verilator: every result table and the cycle count equal to the model's,
row for row (cycles included), in the cases the generic agreement test does not cover."""

from __future__ import annotations

import numpy as np
import pytest

import sim.exec as ex
from hw.arbiter import ArbiterMode
from sim.blocks.t3_device.stimulus import saturating_stimulus
from sim.exec.api import data_view

pytestmark = pytest.mark.rtl  # runs on Verilator


def _exact(stim, params, stalls, work) -> tuple[ex.Result, ex.Result]:
    rtl = ex.run("t3_device", stim, "rtl", params, stalls, work=work)
    model = ex.run("t3_device", stim, "model", params, stalls)
    assert rtl.cycles == model.cycles
    for name in rtl.tables:
        assert np.array_equal(rtl.tables[name], model.tables[name]), name
    return rtl, model


def test_saturating_counts_model_equals_rtl(tmp_path):
    """Byte counts that pass 2**count_bits - 1: the RTL saturates them, fires and counts three overflows; the
    model (the tracker block's model inside the device) does exactly the same, in the same cycles."""
    blk = ex.get("t3_device")
    p = blk.small_params()
    rtl, _ = _exact(saturating_stimulus(p), p, ex.Stalls(seed=3, backpressure=0.4), tmp_path)
    row = rtl.tables["tracker"][0]
    assert int(row["overflow"]) == 3 and int(row["errors"]) == 0b11
    # entry 0 fires once, entry 1 twice, entry 2 every two of its six packets
    assert len(rtl.tables["statuses"]) == int(row["triggers"]) == 1 + 2 + 3


def test_round_robin_heavy_backpressure_model_equals_rtl(tmp_path):
    blk = ex.get("t3_device")
    p = blk.small_params()
    stim = blk.standard_stimulus(p, 5, 400)
    stim.meta.update(arb_mode=int(ArbiterMode.ROUND_ROBIN), arb_threshold=0, arb_starvation=0)
    rtl, _ = _exact(stim, p, ex.Stalls(seed=2, backpressure=0.7), tmp_path)
    ref = ex.run("t3_device", stim, "reference", p)
    assert sorted(data_view("t3_link_out", rtl.tables["link_out"]).tolist()) == \
        sorted(ref.tables["link_out"].tolist())
