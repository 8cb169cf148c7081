"""Marginal ageing costs against closed forms of the power laws."""

import numpy as np
import pytest

from gridsync.storage.ageing import AgeingState, age_window
from gridsync.storage.calibration import (
    AgeingEconomics,
    calendar_cost_eur_per_h,
    convex_slopes,
    cycle_cost_eur,
)
from gridsync.storage.cells import LFP, NMC


def test_calendar_cost_is_the_fade_an_hour_adds_at_warranty_end_in_the_twin():
    """Independent expectation: the twin's own integration (``age_window``). A 10-year life at
    SoC 0.5 (a point a day, 10-day segments), and the same life with one day at 0.6 half-way:
    the 10-year calendar fade differs by what 24 h at 0.6 instead of 0.5 cost. (First order:
    the fade is convex in a segment's mean rate, ~ k^(1/p), so large swings cost more.)"""
    econ = AgeingEconomics(LFP, np.array([10.0]), warranty_years=10.0, temp_c=25.0)
    soc = np.full((2, 3651), 0.5)
    soc[1, 1825] = 0.6  # inside a segment: the trapezoid gives it one day
    end = age_window(AgeingState.fresh(2), LFP, soc, 25.0, 24.0, segment_h=240.0)
    fd = end.q_cal[1] - end.q_cal[0]
    per_h = calendar_cost_eur_per_h(econ, AgeingState.fresh(1), np.array([0.5, 0.6]))[0]
    want = (per_h[1] - per_h[0]) * 24.0 / econ.eur_per_capacity_frac()[0]
    assert fd == pytest.approx(want, rel=0.01)


def test_cycle_cost_is_the_fade_a_cycle_adds_at_warranty_end_in_the_twin():
    """Independent expectation: the twin's rainflow integration. Two years of one 0.8-deep
    cycle a day (292 EFC a year, the assumed use), and the same with one more 0.3-deep cycle
    on day 365: the 2-year cycling fade differs by the cost of a 0.3 cycle (NMC, whose stress
    grows with depth, so the day's mean stress moving toward the shallow cycle's matters)."""
    econ = AgeingEconomics(NMC, np.array([10.0]), warranty_years=2.0, efc_per_year=292.0)
    day = np.array([0.1, 0.9, 0.1, 0.1, 0.1])
    soc = np.tile(np.r_[np.tile(day[:-1], 730), day[-1]], (2, 1))
    soc[1, 365 * 4 + 3] = 0.4
    end = age_window(AgeingState.fresh(2), NMC, soc, 25.0, 6.0)
    fd = end.q_cyc[1] - end.q_cyc[0]
    cost = cycle_cost_eur(econ, AgeingState.fresh(1), np.array([0.3]))[0, 0]
    assert fd == pytest.approx(cost / econ.eur_per_capacity_frac()[0], rel=0.02)


def test_cycle_cost_by_hand():
    econ = AgeingEconomics(LFP, np.array([10.0]), 300.0, 0.8, 10.0, 25.0, 250.0, 0.05)
    got = cycle_cost_eur(econ, AgeingState.fresh(1), np.array([0.5]))[0, 0]
    # fresh battery, x_end = 250 EFC/y x 10 y; k at 25 C; V = 300 x 10 / 0.2
    temp = np.exp(2.19e3 / 298.15) + np.exp(-1.55e5 / 298.15)
    k = (4.38e-8 + 1.55e-8 * 0.5 + 1.68e-7 * 0.05) * temp
    k_ref = (4.38e-8 + 1.55e-8 * 0.8 + 1.68e-7 * 0.05) * temp
    assert got == pytest.approx(15000.0 * 0.5 * (k - 0.172 * k_ref) * 2500.0 ** (0.828 - 1))


def test_calendar_cost_grows_with_soc_and_is_valued_at_warranty_end():
    econ = AgeingEconomics(LFP, np.array([10.0] * 3), warranty_years=10.0)
    state = AgeingState.fresh(3)
    state.t_days[:] = [0.0, 5 * 365.0, 12 * 365.0]
    cost = calendar_cost_eur_per_h(econ, state, np.array([0.2, 0.9]))
    assert cost[0, 1] > cost[0, 0] > 0
    # an extra hour moves the whole trajectory: what it costs is the slope at the warranty's
    # end (day 3650) for a new and a 5-year-old battery alike; past the warranty, a year on
    assert cost[1, 1] == pytest.approx(cost[0, 1])
    assert cost[2, 1] == pytest.approx(cost[0, 1] * (13 / 10) ** (LFP.cal_exp - 1))


def test_convex_minorant_hand_case():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    y = np.array([0.0, 2.0, 2.5, 5.0])
    # (1, 2) lies above the chord (0, 0)-(2, 2.5): slopes 1.25, 1.25, then 2.5
    assert convex_slopes(x, y).tolist() == [1.25, 1.25, 2.5]
