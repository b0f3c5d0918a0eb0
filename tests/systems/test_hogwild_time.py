"""The Hogwild! GPU time model: a step's cost from its traffic, by hand on small cases."""

from __future__ import annotations

import dataclasses

import pytest

from sim.core.config import DecoderShape, GpuConfig
from sim.systems.hogwild import crossover_workers, peak_flops, step_cost, traffic_of_step

SHAPE = DecoderShape("t", layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, intermediate=128, vocab=100)
GPU = GpuConfig("g", compute_units=1, clock_ghz=1.0, flops_per_cu_per_cycle=1000.0, hbm_gbps=10.0, l2_mib=1.0)
EFF = {"memory_efficiency": 1.0, "compute_efficiency": 1.0}


def test_one_worker_step_by_hand():
    step = traffic_of_step(SHAPE, "fp16", 1, "contiguous", [10, 5])
    cost = step_cost(SHAPE, "fp16", GPU, step, **EFF)
    tokens = 10 + 5 + 1  # the new token is read too
    kv_token = 2 * SHAPE.kv_dim * 2
    assert cost.workers == 1
    assert cost.kv_read_bytes == SHAPE.layers * tokens * kv_token
    assert cost.kv_write_bytes == SHAPE.layers * kv_token
    weights = SHAPE.layers * SHAPE.layer_params() * 2
    layer_mem = (weights + cost.kv_read_bytes + cost.kv_write_bytes) / SHAPE.layers / 10e9
    head_mem = SHAPE.vocab * SHAPE.hidden * 2 / 10e9
    assert cost.memory_s == pytest.approx(SHAPE.layers * layer_mem + head_mem)
    assert cost.attention_flops == 4 * SHAPE.layers * tokens * SHAPE.q_dim
    assert cost.rotation_flops == 3 * SHAPE.layers * 2 * SHAPE.heads * SHAPE.head_dim  # two non-empty blocks
    assert cost.step_time_s >= max(cost.memory_s, cost.compute_s) - 1e-15
    assert cost.tokens_per_s == pytest.approx(1 / cost.step_time_s)


def test_workers_share_the_weights_but_not_the_reads():
    one = step_cost(SHAPE, "fp16", GPU, traffic_of_step(SHAPE, "fp16", 1, "contiguous", [100, 10]), **EFF)
    four = step_cost(SHAPE, "fp16", GPU, traffic_of_step(SHAPE, "fp16", 4, "contiguous", [100, 10, 10, 10, 10]),
                     **EFF)
    assert four.weight_bytes == one.weight_bytes
    # every worker reads the prompt and all four blocks, each with this step's token (token-wise synchrony)
    assert four.kv_read_bytes == 4 * (100 + 4 * 11) * SHAPE.layers * 2 * SHAPE.kv_dim * 2
    assert four.matmul_flops == 4 * one.matmul_flops


def test_bound_follows_the_gpu_balance():
    fast_compute = dataclasses.replace(GPU, flops_per_cu_per_cycle=1e9)
    slow_compute = dataclasses.replace(GPU, flops_per_cu_per_cycle=1.0)
    step = traffic_of_step(SHAPE, "fp16", 2, "combined", [50, 3, 3])
    assert step_cost(SHAPE, "fp16", fast_compute, step, **EFF).bound == "memory"
    assert step_cost(SHAPE, "fp16", slow_compute, step, **EFF).bound == "compute"
    assert peak_flops(GPU) == 1e12


def test_crossover_moves_out_with_the_context():
    """Per worker, a step costs 2 FLOPs a weight against its KV bytes: a short context turns compute-bound once
    enough workers share the weights; at a long context the KV reads keep it memory-bound for any W."""
    gpu = dataclasses.replace(GPU, flops_per_cu_per_cycle=100.0)  # 10 FLOPs a byte at the ridge
    short = crossover_workers(SHAPE, "fp16", gpu, 8, **EFF)
    assert short is not None and 1 < short <= 64
    assert crossover_workers(SHAPE, "fp16", gpu, 4096, **EFF) is None
