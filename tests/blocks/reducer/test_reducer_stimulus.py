"""The reducer's stimulus: the configured input idles are real (`sim.blocks.reducer.reference.random_packets`)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.blocks.reducer.reference import packet_cycles, random_packets
from sim.core.stimulus import idle_fraction


@pytest.mark.parametrize("idle_prob,burst_frac", [(0.3, 0.0), (0.3, 0.3), (0.75, 0.3), (0.5, 0.6), (0.0, 0.3)])
def test_random_packets_input_is_idle_the_configured_fraction_of_cycles(idle_prob, burst_frac):
    _, packets = random_packets(np.random.default_rng(4), 20_000, 64, idle_prob=idle_prob, burst_frac=burst_frac)
    cycles = packets["cycle"].astype(np.int64)
    # One packet a cycle at most, so an input that takes one a cycle sees every idle cycle of the stimulus
    # (several packets stamped with one cycle would back up and swallow the idles after them).
    assert np.all(np.diff(cycles) >= 1)
    assert idle_fraction(cycles) == pytest.approx(idle_prob, abs=0.015)


def test_bursts_make_longer_idle_stretches_not_fewer_idles():
    rng = np.random.default_rng(5)
    steps = {b: np.diff(packet_cycles(rng, 20_000, 0.5, b)) for b in (0.0, 0.6)}
    back_to_back = {b: float(np.mean(s == 1)) for b, s in steps.items()}
    assert back_to_back[0.6] >= 0.6 and back_to_back[0.6] > back_to_back[0.0] + 0.15
    stretch = {b: float(np.mean(s[s > 1] - 1)) for b, s in steps.items()}  # idle cycles between two packets
    assert stretch[0.6] > 1.5 * stretch[0.0]


def test_packet_cycles_rejects_bad_fractions():
    with pytest.raises(ValueError):
        packet_cycles(np.random.default_rng(0), 10, 1.0, 0.0)
    with pytest.raises(ValueError):
        packet_cycles(np.random.default_rng(0), 10, 0.3, 1.5)
