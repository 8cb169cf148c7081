"""Marginal ageing costs against closed forms of the power laws."""

import numpy as np
import pytest

from gridsync.storage.ageing import AgeingState
from gridsync.storage.calibration import (
    AgeingEconomics,
    calendar_cost_eur_per_h,
    convex_slopes,
    cycle_cost_eur,
)
from gridsync.storage.cells import LFP


def test_cycle_cost_is_the_capacity_taken_at_warranty_end():
    econ = AgeingEconomics(LFP, np.array([10.0]), 300.0, 0.8, 10.0, 25.0, 250.0, 0.05)
    got = cycle_cost_eur(econ, AgeingState.fresh(1), np.array([0.5]))[0, 0]
    # by hand: fresh battery, x_end = 250 EFC/y x 10 y; k(0.5) at 25 C; V = 300 x 10 / 0.2
    k = (4.38e-8 + 1.55e-8 * 0.5 + 1.68e-7 * 0.05) * (
        np.exp(2.19e3 / 298.15) + np.exp(-1.55e5 / 298.15)
    )
    assert got == pytest.approx(15000.0 * 0.5 * k * 0.828 * 2500.0 ** (0.828 - 1))


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
