"""Outage-risk model: normalisation, storm response, posture flag."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.resilience.feeder import Conditions, load_feeder_study
from gridsync.resilience.risk import RiskModel, base_rates, daily_risk, line_risk, wind_factor


@pytest.fixture(scope="module")
def feeder():
    return load_feeder_study()


def year(wind: np.ndarray) -> Conditions:
    n = 8760 + 24 * 31
    w = np.concatenate([wind, wind[:24 * 31]])
    return Conditions(np.ones(n), np.ones(n), np.zeros(n), np.full(n, 15.0), w)


def test_weather_only_redistributes_the_annual_rate(feeder):
    rng = np.random.default_rng(0)
    cond = year(rng.gamma(2.0, 3.0, 8760))
    risk = line_risk(feeder, cond, RiskModel())
    # the mean hourly rate over the weather year is the file's annual average, element by element
    np.testing.assert_allclose(risk.rate_per_yr.mean(axis=0), base_rates(feeder), rtol=1e-9)


def test_wind_factor_is_one_below_the_critical_gust_and_quadratic_above():
    m = RiskModel(gust_factor=1.5, critical_gust_m_s=20.0, alpha_wind=20.0)
    assert wind_factor(m, np.array([10.0]))[0] == 1.0  # 15 m/s gust
    assert wind_factor(m, np.array([20.0]))[0] == pytest.approx(1 + 20 * ((30 / 20) ** 2 - 1))


def test_a_storm_day_is_flagged_and_a_calm_one_is_not(feeder):
    wind = np.full(8760, 4.0)
    wind[24 * 100 + 6:24 * 100 + 18] = 22.0  # 33 m/s gusts for 12 h on day 100
    m = RiskModel()
    risk = line_risk(feeder, year(wind), m)
    storm, calm = daily_risk(feeder, risk, 100, m), daily_risk(feeder, risk, 50, m)
    assert storm.precharge and not calm.precharge
    assert storm.top_lines[0][0] in ("Line 12-13", "Line 13-14", "upstream supply")  # overhead
    assert "pre-charge" in storm.text()
