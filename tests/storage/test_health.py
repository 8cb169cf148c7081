"""State of health: fade fed back into the battery physics, projection and warranty alert."""

import numpy as np
import pytest

from gridsync.storage.ageing import AgeingState
from gridsync.storage.cells import LFP
from gridsync.storage.health import faded_batteries, health_report
from tests.dispatch.conftest import battery


def test_fade_and_resistance_reach_the_physics():
    b = battery(capacity_kwh=10.0, eta=0.95)
    state = AgeingState.fresh(1)
    state.q_cyc[:] = 0.1
    aged = faded_batteries(b, np.array([10.0]), state, LFP)
    assert aged.capacity_kwh[0] == pytest.approx(9.0)
    # LFP resistance grows 1.5 x the fade: 1.15; each leg's 5 % loss grows with it
    assert aged.efficiency_charge[0] == pytest.approx(1 - 0.05 * 1.15)
    assert aged.efficiency_discharge[0] == pytest.approx(1 - 0.05 * 1.15)


def test_projection_and_alert_follow_the_closed_form():
    """A battery parked at 95 % and 45 C loses k t^0.526: it reaches 80 % at
    t = (0.2 / k)^(1 / 0.526) days; one parked at 30 % and 15 C never does in 20 years."""
    soc = np.array([np.full(24 * 30 + 1, 0.95), np.full(24 * 30 + 1, 0.30)])
    temp = np.array([np.full(soc.shape[1], 45.0), np.full(soc.shape[1], 15.0)])
    rep = health_report(LFP, soc, temp, 1.0, warranty_years=15.0)
    k = LFP.calendar_rate(np.array(318.15), np.array(0.95))
    years = (0.2 / k) ** (1 / LFP.cal_exp) / 365.0
    assert rep.years_to_end_of_life[0] == pytest.approx(years, rel=0.01)
    assert rep.soh_frac[0] == pytest.approx(1 - k * 30.0**LFP.cal_exp)
    assert np.isinf(rep.years_to_end_of_life[1])
    assert 10 < years < 15  # so the first alerts on a 15-year warranty
    assert rep.alert.tolist() == [True, False]
    assert rep.rows()[1]["years_to_80pct"] is None
