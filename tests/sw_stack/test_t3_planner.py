"""The T3 planner: staggered schedule, remote_map, tracker programming and dma_map."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hw.dma import DmaOp
from sw_stack.t3.planner import UPDATE_OPS, PlanError, chunk_at, plan_t3


def test_staggered_schedule_ends_on_own_chunk():
    for n in (2, 4, 8):
        firsts = [chunk_at(n, d, 0) for d in range(n)]
        assert sorted(firsts) == list(range(n)), "every device starts on a different chunk"
        for d in range(n):
            assert chunk_at(n, d, n - 1) == d
            for s in range(1, n):  # the chunk a device works on came from its ring predecessor's previous stage
                assert chunk_at(n, d, s) == chunk_at(n, (d - 1) % n, s - 1)


def test_programming_and_descriptors(small_config):
    cfg = small_config
    plan = plan_t3(cfg.t3, cfg.hardware)
    n, g = cfg.t3.devices, plan.groups_per_chunk
    assert plan.tiles_per_group > 1, "the small config forces coarser tracking"
    assert (n - 1) * g <= cfg.hardware.tracker.entries
    for dp in plan.devices:
        d = dp.device
        assert np.all(dp.program["threshold"] == 2 * plan.group_bytes)
        assert np.all(dp.program["desc"] == dp.program["entry"])
        ops = dp.descriptors["op"]
        assert np.count_nonzero(ops == DmaOp.NOTIFY) == g
        for desc in dp.descriptors[ops == UPDATE_OPS[cfg.t3.dtype_bytes]]:
            tag = int(desc["index"])
            stage = tag // g + 1
            nxt = plan.devices[(d + 1) % n]
            assert desc["dst_device"] == (d + 1) % n
            # the receiver's entry for the next stage covers the same addresses
            recv = nxt.descriptors[int(desc["dst_tag"])]
            assert recv["src_addr"] == desc["src_addr"] and int(desc["dst_tag"]) // g + 1 == stage + 1
        # remote_map: stage 0 goes to the next device, later stages stay local
        s0 = dp.stores[dp.stores["stage"] == 0]
        assert np.all(s0["dst_device"] == (d + 1) % n)
        assert np.all(dp.stores[dp.stores["stage"] > 0]["dst_device"] == d)
        assert np.all(np.diff(dp.stores["cycle"].astype(np.int64)) >= 0)
        # every output byte is stored exactly once
        total = int(dp.stores["size"].sum())
        assert total == cfg.t3.tokens * cfg.t3.hidden * cfg.t3.dtype_bytes
        assert len(np.unique(dp.stores["addr"])) == len(dp.stores)


@pytest.mark.parametrize("field,value,key", [
    ("tokens", 500, "t3.tokens"),
    ("hidden", 1000, "t3.hidden"),
    ("store_bytes", 3000, "t3.store_bytes"),
])
def test_unplannable_workloads(small_config, field, value, key):
    w = dataclasses.replace(small_config.t3, **{field: value})
    with pytest.raises(PlanError) as info:
        plan_t3(w, small_config.hardware)
    assert info.value.keypath == key


def test_store_size_must_fit_the_tracker(small_config):
    w = dataclasses.replace(small_config.t3, store_bytes=16384, tile_n=1024, tile_m=128)
    with pytest.raises(PlanError) as info:
        plan_t3(w, small_config.hardware)
    assert info.value.keypath == "t3.store_bytes"
