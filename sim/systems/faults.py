"""Fault campaigns for a training cluster: what fails, where and when, drawn from a production failure log.

The rates come from the Llama 3 paper (Meta, 2024): 419 unexpected interruptions in 54 days of pre-training on
16,384 H100 GPUs, by root cause. Each cause maps to one of the fault kinds the cluster model can inject
(`FaultKind`); `LLAMA3_COUNTS` keeps the published counts and `CAUSE_KIND` the mapping, so a reader can see (and
change) every choice. Interruptions scale with the GPU count and the campaign's length (a Poisson process per
cause, at ``count / (54 days x 16,384 GPUs)`` per GPU-day), and each falls on a component drawn uniformly among
the components of its kind. Slow components (a link or a GPU running at a fraction ``factor`` of its rate,
which never interrupts a job by itself) come on top, at a configured rate per 1,000 GPU-days: the paper does not
count them, so that rate is an assumption of the campaign.

A campaign is a table (`FAULT_DTYPE`) sorted by time; the same spec and seed give the same table.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

LLAMA3_DAYS = 54
LLAMA3_GPUS = 16_384
# Root cause -> interruptions in the Llama 3 log (Table 5 of the paper); the five causes listed with 2 each are
# grouped as "other" (the log's 419 in all).
LLAMA3_COUNTS: dict[str, int] = {
    "faulty_gpu": 148, "gpu_hbm3": 72, "software_bug": 54, "network_switch_cable": 35, "host_maintenance": 32,
    "gpu_sram": 19, "gpu_system_processor": 17, "nic": 7, "collective_watchdog": 7, "silent_data_corruption": 6,
    "gpu_thermal": 6, "ssd": 3, "power_supply": 3, "other": 10,
}


class FaultKind(enum.IntEnum):
    """What the cluster model injects. Hangs stop progress; ``LINK_SLOW`` and ``GPU_SLOW`` scale a rate."""

    GPU_HANG = 0  # a GPU stops (its rank never finishes its next operation)
    NODE_DOWN = 1  # a whole host: its 8 GPUs and NICs
    NIC_PORT_DOWN = 2
    LINK_DOWN = 3
    SWITCH_DOWN = 4
    SOFTWARE_HANG = 5  # a rank's process hangs outside communication
    COMM_HANG = 6  # a rank hangs inside a collective (the library's watchdog would fire)
    LINK_SLOW = 7
    GPU_SLOW = 8  # a straggler: compute x factor


# Which component each kind falls on (the keys of the component counts a campaign is drawn for).
COMPONENT = {FaultKind.GPU_HANG: "gpu", FaultKind.NODE_DOWN: "node", FaultKind.NIC_PORT_DOWN: "nic_port",
             FaultKind.LINK_DOWN: "link", FaultKind.SWITCH_DOWN: "switch", FaultKind.SOFTWARE_HANG: "gpu",
             FaultKind.COMM_HANG: "gpu", FaultKind.LINK_SLOW: "link", FaultKind.GPU_SLOW: "gpu"}

# Root cause -> (kind, share of the cause's interruptions). Assumed where the log gives one cause for two kinds:
# network switch/cable is 4/5 cables (a link down) and 1/5 switches.
CAUSE_KIND: dict[str, tuple[tuple[FaultKind, float], ...]] = {
    "faulty_gpu": ((FaultKind.GPU_HANG, 1.0),), "gpu_hbm3": ((FaultKind.GPU_HANG, 1.0),),
    "gpu_sram": ((FaultKind.GPU_HANG, 1.0),), "gpu_system_processor": ((FaultKind.GPU_HANG, 1.0),),
    "silent_data_corruption": ((FaultKind.GPU_HANG, 1.0),), "gpu_thermal": ((FaultKind.GPU_HANG, 1.0),),
    "software_bug": ((FaultKind.SOFTWARE_HANG, 1.0),), "collective_watchdog": ((FaultKind.COMM_HANG, 1.0),),
    "network_switch_cable": ((FaultKind.LINK_DOWN, 0.8), (FaultKind.SWITCH_DOWN, 0.2)),
    "nic": ((FaultKind.NIC_PORT_DOWN, 1.0),),
    "host_maintenance": ((FaultKind.NODE_DOWN, 1.0),), "ssd": ((FaultKind.NODE_DOWN, 1.0),),
    "power_supply": ((FaultKind.NODE_DOWN, 1.0),), "other": ((FaultKind.NODE_DOWN, 1.0),),
}

FAULT_DTYPE = np.dtype([("time_s", "<f8"), ("kind", "u1"), ("component", "<u4"), ("factor", "<f8")])


@dataclass(frozen=True)
class CampaignSpec:
    """A campaign: ``days`` of a job on ``gpus`` GPUs; slow links and slow GPUs at ``slow_per_kgpu_day`` each
    (assumed), each running at a ``factor`` drawn uniformly in ``slow_factor``."""

    gpus: int
    days: float
    slow_per_kgpu_day: float = 0.5
    slow_factor: tuple[float, float] = (0.2, 0.6)
    seed: int = 1


def interruption_rates() -> dict[FaultKind, float]:
    """Interruptions per GPU-day of each hang kind (the Llama 3 log's counts through `CAUSE_KIND`)."""
    exposure = LLAMA3_DAYS * LLAMA3_GPUS
    rates = dict.fromkeys((k for k in FaultKind if k not in (FaultKind.LINK_SLOW, FaultKind.GPU_SLOW)), 0.0)
    for cause, count in LLAMA3_COUNTS.items():
        for kind, share in CAUSE_KIND[cause]:
            rates[kind] += count * share / exposure
    return rates


def draw_campaign(spec: CampaignSpec, components: Mapping[str, int]) -> np.ndarray:
    """The campaign's faults (`FAULT_DTYPE`, by time). ``components`` counts the components of each kind
    (``gpu``, ``node``, ``nic_port``, ``link``, ``switch``); a kind whose component count is 0 is not drawn."""
    if spec.gpus < 1 or spec.days <= 0:
        raise ValueError(f"a campaign needs gpus >= 1 and days > 0, not {spec.gpus} and {spec.days}")
    rng = np.random.default_rng(spec.seed)
    gpu_days = spec.gpus * spec.days
    rates = interruption_rates() | {FaultKind.LINK_SLOW: spec.slow_per_kgpu_day / 1000,
                                    FaultKind.GPU_SLOW: spec.slow_per_kgpu_day / 1000}
    parts = []
    for kind in FaultKind:  # a fixed order, so the draws do not depend on dict order
        count = int(rng.poisson(rates[kind] * gpu_days))
        pool = int(components.get(COMPONENT[kind], 0))
        if count == 0 or pool == 0:
            continue
        part = np.zeros(count, dtype=FAULT_DTYPE)
        part["time_s"] = rng.uniform(0, spec.days * 86_400, count)
        part["kind"] = kind
        part["component"] = rng.integers(0, pool, count)
        slow = kind in (FaultKind.LINK_SLOW, FaultKind.GPU_SLOW)
        part["factor"] = rng.uniform(*spec.slow_factor, count) if slow else 0.0
        parts.append(part)
    out = np.concatenate(parts) if parts else np.zeros(0, dtype=FAULT_DTYPE)
    return out[np.argsort(out["time_s"], kind="stable")]
