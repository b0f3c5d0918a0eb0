"""The generic agreement test: every registered block, every target, one stimulus.

A block added to the registry (`sim.blocks`) is picked up here without editing this file.
"""

from __future__ import annotations

import numpy as np
import pytest

import sim.exec as ex
from sim.core import trace
from sim.core.stimulus import idle_fraction

NAMES = sorted(ex.blocks())
STALLS = ex.Stalls(seed=7, backpressure=0.3)


def _stimulus(name: str) -> tuple[ex.Block, object, trace.Trace]:
    blk = ex.get(name)
    params = blk.small_params()
    return blk, params, blk.standard_stimulus(params, 1, blk.test_size)


def _timed_inputs(blk: ex.Block, stim: trace.Trace) -> list[np.ndarray]:
    return [stim[n]["cycle"] for n in blk.stimulus if "cycle" in (trace.TABLE_KINDS[blk.stimulus[n]].names or ())]


@pytest.mark.parametrize("name", NAMES)
def test_standard_stimulus_has_real_idles(name):
    blk, _, stim = _stimulus(name)
    timed = _timed_inputs(blk, stim)
    assert timed, f"{name}'s stimulus has no timed input table"
    assert max(idle_fraction(c) for c in timed) >= 0.1, "the agreement stimulus must contain input idles"


@pytest.mark.parametrize("name", NAMES)
def test_model_data_equals_the_reference(name):
    blk, params, stim = _stimulus(name)
    ref = ex.run(name, stim, "reference", params)
    model = ex.run(name, stim, "model", params, STALLS)
    agreement = ex.agree(model, ref)
    assert agreement.rows > 0
    assert agreement.data_mismatches == 0, agreement.per_table


@pytest.mark.parametrize("name", NAMES)
def test_agreement_catches_a_changed_row(name):
    """The comparison has teeth: one changed data word in the reference is one mismatch."""
    blk, params, stim = _stimulus(name)
    ref = ex.run(name, stim, "reference", params)
    model = ex.run(name, stim, "model", params, STALLS)
    table = next(n for n, a in ref.tables.items() if len(a))
    col = ref.tables[table].dtype.names[-1]
    ref.tables[table][col][0] ^= 1
    assert ex.agree(model, ref).data_mismatches >= 1


@pytest.mark.rtl
@pytest.mark.parametrize("name", NAMES)
def test_rtl_agrees_with_model_and_reference(name, tmp_path):
    blk, params, stim = _stimulus(name)
    rtl = ex.run(name, stim, "rtl", params, STALLS, work=tmp_path)
    model = ex.run(name, stim, "model", params, STALLS)
    ref = ex.run(name, stim, "reference", params)
    vs_model = ex.agree(rtl, model)
    assert vs_model.data_mismatches == 0 and vs_model.cycle_mismatches == 0, vs_model.per_table
    assert ex.agree(rtl, ref).data_mismatches == 0
