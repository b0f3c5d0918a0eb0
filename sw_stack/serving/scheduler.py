"""Fairness-aware priority scheduling: priority patterns and vLLM's priority preemption rule.

Priorities are integer levels, 0 the most urgent. A request's rank key is ``level * 2**32 + conversation id``:
lower keys rank higher, and equal levels fall back to first-come first-served (conversation ids follow
arrival order), so the order is total and two requests never preempt each other back and forth.

Update frequency: ``f`` is priority re-draws per engine iteration. Every ``round(1 / f)`` iterations (0.04:
every 25 iterations, 0.02: every 50) every live conversation (one with a request waiting, running or swapped)
gets a new level:

``random``
    uniform over ``levels``, independent of the old one;
``markov``
    a reflecting birth-death chain: stay with probability ``markov_stay_prob``, else one level up or down
    with equal probability (a move past either end stays put). Its stationary law is uniform, so a new
    conversation starts with a uniform level under both patterns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim.core.config import ServingSchedulerConfig

KEY_SHIFT = 32


def rank_key(level: int, conv: int) -> int:
    return (level << KEY_SHIFT) | conv


class PriorityPattern:
    """Draws initial levels and periodic re-draws, from its own seeded generator."""

    def __init__(self, cfg: ServingSchedulerConfig, seed: int) -> None:
        self.kind = cfg.priority_pattern
        self.levels = cfg.priority_levels
        self.stay = cfg.markov_stay_prob
        self.period = max(1, round(1.0 / cfg.priority_update_frequency))
        self.rng = np.random.default_rng((seed, 0xFA57))

    def initial(self) -> int:
        return int(self.rng.integers(self.levels))

    def redraw(self, levels: np.ndarray) -> np.ndarray:
        """New levels for the live conversations whose current levels are ``levels`` (in conversation order)."""
        n = len(levels)
        if self.kind == "random":
            return self.rng.integers(self.levels, size=n)
        move = self.rng.random(n) >= self.stay
        step = np.where(self.rng.random(n) < 0.5, -1, 1)
        new = levels + np.where(move, step, 0)
        return np.where((new < 0) | (new >= self.levels), levels, new)


def priority_victims(waiter_key: int, waiter_need: int, available: int,
                     running: Sequence[tuple[int, int]]) -> int:
    """vLLM's priority preemption rule for the head of the waiting queue.

    ``running`` is ``(key, blocks)`` per running request, sorted by key (highest priority first). While the
    waiter cannot be allocated (``available < waiter_need``) and the lowest-priority running request ranks
    below it, that request is popped and its blocks count as available. Returns how many requests are popped
    from the end of ``running``.
    """
    popped = 0
    while available < waiter_need and popped < len(running):
        key, blocks = running[len(running) - 1 - popped]
        if key <= waiter_key:
            break
        available += blocks
        popped += 1
    return popped
