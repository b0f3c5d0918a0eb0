"""FastSwitch serving simulator: multi-turn workload, continuous-batching engine, swap cost models, metrics.

Entry point: ``simulate(cfg.fastswitch, workload.generate(cfg.fastswitch.workload, max_context), "fastswitch")``
with ``cfg = sim.core.config.load_config("configs/serving/llama8b_a10.yaml")``; see `engine` for the systems and the
time model, `link.SwapCostModel` for the swap cost interface and `metrics` for the result keys.
"""

from .engine import SYSTEMS, ServingEngine, SwapRecord, SystemSpec, offered_gpu_seconds, simulate
from .link import PcieLinkModel, SwapCostModel
from .workload import Workload, generate, load, save

__all__ = ["SYSTEMS", "PcieLinkModel", "ServingEngine", "SwapCostModel", "SwapRecord", "SystemSpec", "Workload",
           "generate", "load", "offered_gpu_seconds", "save", "simulate"]
