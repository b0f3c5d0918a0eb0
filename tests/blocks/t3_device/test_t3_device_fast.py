"""The device's rules run two ways: compiled in one kernel (the block's ``model`` runner, `run_device_fast`) and
interpreted by the stepped class the T3 co-simulation drives (`T3DeviceModel`, through `model_stepped`). Both
must give the same tables and cycles on the same stimuli (idles, backpressure, error cases, both MCA modes)."""

from __future__ import annotations

import numpy as np
import pytest

import sim.exec as ex
from hw.arbiter import ArbiterMode
from sim.blocks.t3_device import model_stepped
from sim.blocks.t3_device.stimulus import saturating_stimulus


def _same(stim, p, stalls) -> None:
    fast = ex.run("t3_device", stim, "model", p, stalls)
    tables, cycles = model_stepped(p, stim, stalls)
    assert fast.cycles == cycles
    for name, table in tables.items():
        assert np.array_equal(fast.tables[name], table), name


@pytest.mark.parametrize("seed,size,backpressure,mode,threshold,starvation", [
    (1, 500, 0.0, ArbiterMode.MCA, 4, 32),
    (2, 700, 0.5, ArbiterMode.ROUND_ROBIN, 0, 0),
    (3, 400, 0.8, ArbiterMode.MCA, 2, 8),
    (4, 900, 0.3, ArbiterMode.MCA, 0, 4),
])
def test_kernel_equals_the_stepped_class(seed, size, backpressure, mode, threshold, starvation):
    blk = ex.get("t3_device")
    p = blk.small_params()
    stim = blk.standard_stimulus(p, seed, size)
    stim.meta.update(arb_mode=int(mode), arb_threshold=threshold, arb_starvation=starvation)
    assert len(stim["compute"]) and len(stim["produce"]) and len(stim["link_in"])
    _same(stim, p, ex.Stalls(seed=seed, backpressure=backpressure))


def test_kernel_equals_the_stepped_class_on_saturating_counts():
    p = ex.get("t3_device").small_params()
    _same(saturating_stimulus(p), p, ex.Stalls(seed=3, backpressure=0.4))


@pytest.mark.parametrize("emptied", [("compute", "link_in"), ("compute", "produce", "link_in")])
def test_kernel_runs_empty_input_tables(emptied):
    blk = ex.get("t3_device")
    p = blk.small_params()
    stim = blk.standard_stimulus(p, 1, 200)
    for name in emptied:
        kind, table = stim.tables[name]
        stim.add(name, kind, table[:0])
    _same(stim, p, ex.Stalls(seed=1, backpressure=0.2))
