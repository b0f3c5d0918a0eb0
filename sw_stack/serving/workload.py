"""Seeded multi-turn conversation workload, stored as an llmarch trace (format v1 conventions).

Distributions (all drawn from one ``numpy.random.default_rng(seed)``, in a fixed order):

- conversation arrivals: Poisson process, exponential gaps of mean ``1 / arrival_rate`` s (FastSwitch: 1/s);
- turns per conversation: ``1 + Geometric`` with mean ``turns_mean`` (FastSwitch's multi-round ShareGPT: 5.5),
  capped at ``turns_max``;
- new user tokens per turn and answer tokens per turn: lognormal with the given mean and log-space sigma.
  Defaults are ShareGPT's published means, 161 input and 338 output tokens per request (Kwon et al., vLLM,
  SOSP 2023, section 6.1); the sigmas (1.0, 0.8) are assumed, giving the long right tail ShareGPT shows;
- think time before each later turn: exponential, mean ``think_time_mean_s`` (assumed: 10 s);
- a turn's prompt is the whole history plus its new tokens; the conversation's context (history + prompt +
  answer) is capped at the model's context length: a turn whose answer would pass it is shortened, and a turn
  without room for at least one new and one answer token ends the conversation.

The trace has one table ``turns`` of kind ``conversation_turns`` (dtype `TURN_DTYPE`, sorted by conversation
then turn; times in integer microseconds, ``clock_hz`` 1e6). `sim.core.trace` does not know this kind yet, so this
module writes and reads it itself with the same header, atomic write and validation rules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim.core import trace
from sim.core.config import ServingWorkloadConfig
from sim.core.trace import TraceError

KIND = "conversation_turns"
TURN_DTYPE = trace.TABLE_KINDS[KIND]
"""``conv`` id (0.. in arrival order); ``turn`` (0..); ``arrival_us`` the conversation's arrival (same on every
turn); ``think_us`` the user's think time between the previous turn's last token and this turn (0 on turn 0);
``new_tokens`` the user's new tokens; ``answer_tokens`` the tokens the model will generate."""


@dataclass
class Workload:
    """A conversation workload: the ``turns`` table plus free-form metadata."""

    turns: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def conversations(self) -> int:
        return int(self.turns["conv"].max()) + 1 if len(self.turns) else 0


def _lognormal(rng: np.random.Generator, mean: float, sigma: float, n: int) -> np.ndarray:
    mu = np.log(mean) - sigma * sigma / 2  # so that E[X] = mean
    return rng.lognormal(mu, sigma, n)


def generate(cfg: ServingWorkloadConfig, max_context: int) -> Workload:
    """Generate the workload of ``cfg`` for a model with a ``max_context``-token context."""
    rng = np.random.default_rng(cfg.seed)
    n = cfg.conversations
    arrivals = np.cumsum(rng.exponential(1.0 / cfg.arrival_rate, n))
    p = 1.0 / cfg.turns_mean
    turns = np.minimum(rng.geometric(p, n), cfg.turns_max)  # support 1.., mean 1/p
    total = int(turns.sum())
    new = np.maximum(1, np.rint(_lognormal(rng, cfg.prompt_mean, cfg.prompt_sigma, total))).astype(np.int64)
    ans = np.maximum(1, np.rint(_lognormal(rng, cfg.answer_mean, cfg.answer_sigma, total))).astype(np.int64)
    think = rng.exponential(cfg.think_time_mean_s, total) if cfg.think_time_mean_s > 0 else np.zeros(total)
    rows = []
    k = 0
    for c in range(n):
        ctx = 0
        arr_us = int(round(arrivals[c] * 1e6))
        for t in range(int(turns[c])):
            nt, at = int(new[k + t]), int(ans[k + t])
            room = max_context - ctx
            if room < 2:
                break
            nt = min(nt, room - 1)
            at = min(at, room - nt)
            rows.append((c, t, arr_us, 0 if t == 0 else int(round(think[k + t] * 1e6)), nt, at))
            ctx += nt + at
        k += int(turns[c])
    table = np.array(rows, dtype=TURN_DTYPE)
    meta = {"generator": "sw_stack.serving.workload", "max_context": max_context,
            "config": {f: getattr(cfg, f) for f in cfg.__dataclass_fields__}}
    return Workload(table, meta)


def save(workload: Workload, path: str | os.PathLike[str]) -> Path:
    """Write the workload atomically as an llmarch trace with one ``conversation_turns`` table."""
    path = Path(path)
    _check(path, workload.turns)
    t = trace.Trace(clock_hz=1e6, producer="sw_stack.serving.workload", meta=workload.meta, time_unit="us")
    t.add("turns", KIND, workload.turns)
    return trace.write(t, path)


def load(path: str | os.PathLike[str]) -> Workload:
    """Read and validate a workload trace; raise `sim.core.trace.TraceError` naming the file and the problem."""
    path = Path(path)
    t = trace.read(path)
    if t.time_unit != "us" or t.clock_hz != 1e6:
        raise TraceError(f"{path}: a workload trace counts microseconds (time_unit 'us', clock_hz 1e6)")
    if set(t.tables) != {"turns"} or t.tables["turns"][0] != KIND:
        raise TraceError(f"{path}: expected one table 'turns' of kind {KIND!r}, found "
                         f"{ {n: k for n, (k, _) in t.tables.items()} }")
    arr = t["turns"]
    _check(path, arr)
    return Workload(arr, t.meta)


def _check(path: Path, arr: np.ndarray) -> None:
    if arr.dtype != TURN_DTYPE:
        raise TraceError(f"{path}: table 'turns' ({KIND}) has columns {arr.dtype.descr}, "
                         f"expected {TURN_DTYPE.descr}")
    if len(arr) == 0:
        return
    key = arr["conv"].astype(np.int64) * 65536 + arr["turn"]
    if np.any(np.diff(key) <= 0):
        raise TraceError(f"{path}: table 'turns' is not sorted by (conv, turn) without duplicates")
    first = np.r_[True, arr["conv"][1:] != arr["conv"][:-1]]
    if np.any(arr["turn"][first] != 0) or np.any(np.diff(arr["turn"].astype(np.int64))[~first[1:]] != 1):
        raise TraceError(f"{path}: table 'turns': every conversation's turns must be numbered 0, 1, 2, ...")
    if np.any(arr["new_tokens"] == 0) or np.any(arr["answer_tokens"] == 0):
        raise TraceError(f"{path}: table 'turns': new_tokens and answer_tokens must be >= 1")
