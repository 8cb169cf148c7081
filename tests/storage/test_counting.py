"""Rainflow counting against hand-worked ASTM E1049 cases."""

import numpy as np
import pytest

from gridsync.storage.counting import (
    blast_breakpoints,
    cycles,
    equivalent_full_cycles,
    throughput_weighted,
)


def test_one_charge_and_discharge_is_two_half_cycles():
    c = cycles([0.0, 1.0, 0.0])
    assert c[:, 0].tolist() == [1.0, 1.0]
    assert c[:, 2].tolist() == [0.5, 0.5]


def test_nested_cycles_hand_counted():
    # By hand (ASTM E1049 5.4.4): 0.6->0.4 closes a full cycle of 0.2, then 0.8->0.2 one of
    # 0.6; the residue 0 -> 1.0 -> 0 is two half cycles of 1.0.
    c = cycles([0.0, 0.8, 0.2, 0.6, 0.4, 1.0, 0.0])
    full = sorted(np.round(c[c[:, 2] == 1.0, 0], 9).tolist())
    half = sorted(np.round(c[c[:, 2] == 0.5, 0], 9).tolist())
    assert full == [0.2, 0.6]
    assert half == [1.0, 1.0]
    # throughput: sum |dSoC| / 2 = 3.6 / 2
    assert equivalent_full_cycles([0.0, 0.8, 0.2, 0.6, 0.4, 1.0, 0.0]) == pytest.approx(1.8)


def test_throughput_weighting_by_cycle():
    soc = np.array([[0.0, 0.8, 0.2, 0.6, 0.4, 1.0, 0.0], [0.5] * 7])
    got = throughput_weighted(soc, lambda depth, i: depth)
    # weights count x depth: 0.2, 0.6, 0.5, 0.5 -> (0.04 + 0.36 + 0.5 + 0.5) / 1.8
    assert got[0] == pytest.approx(1.4 / 1.8)
    assert got[1] == 0.0


def test_blast_breakpoints_hand_worked():
    # EFC so far: 0, .5, 1, 1.5, 2; the first cycle end past 1 EFC since index 0 is 3, then
    # the series' end
    assert blast_breakpoints(np.array([0.0, 1.0, 0.0, 1.0, 0.0]), 1.0) == [3, 4]
    # 50 h flat, then up and down: no turning point for more than a day, so a break 25 h after
    # the last (the first step past 24 h), again at 50, then the end
    soc = np.r_[np.full(50, 0.5), 1.0, 0.5]
    assert blast_breakpoints(soc, 1.0) == [25, 50, 51]
