"""`T3Device` co-simulated in a mirrored ring on Verilator: data bit-exact, DMA bytes and cycles equal to the
device's cycle model, with backpressure on every output stream and a reset in the middle of the transfers."""

from __future__ import annotations

import pytest

from hw.arbiter import ArbiterMode
from sim.core.config import load_config
from sim.studies.t3.cosim import CosimScenario, run_t3_cosim, scenario_from_config

pytestmark = pytest.mark.rtl  # runs on Verilator


@pytest.mark.parametrize("scenario", [
    CosimScenario(),
    CosimScenario(seed=5, arb_mode=ArbiterMode.ROUND_ROBIN, link_backpressure=0.5, reset_at=3000),
    CosimScenario(seed=9, device=3, chunk_words=256, tile_words=32, arb_threshold=2, arb_starvation=8,
                  status_backpressure=0.7, compute_backpressure=0.5, link_latency=7),
], ids=["mca", "round-robin-reset", "small-tiles-heavy-backpressure"])
def test_device_cosim(scenario, tmp_path):
    res = run_t3_cosim(load_config(), tmp_path, scenario=scenario)
    assert res["data_mismatches"] == 0 and res["words_checked"] == (scenario.devices - 1) * scenario.chunk_words
    assert res["rtl_dma_bytes"] == res["model_dma_bytes"] == (scenario.devices - 2) * scenario.chunk_words * 4
    assert res["statuses"] == (scenario.devices - 1) * scenario.tiles and not res["status_errors"]
    assert res["max_cycle_error"] == 0.0, "the device model is composed of cycle-exact block models"
    if scenario.reset_at is not None:  # the reset really cut the first run short
        assert res["reset_cut_run"]["cycles"] == scenario.reset_at
        assert 0 < res["reset_cut_run"]["statuses"] < res["statuses"]


def test_scenario_follows_the_sublayer():
    cfg = load_config("configs/t3_study.yaml")
    sc = scenario_from_config(cfg)
    assert sc.sublayer == "Mega-GPT-2/OP/TP8" and sc.cycles_per_tile > sc.tile_words and sc.reads_per_tile > 0
