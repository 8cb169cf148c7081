"""CityLearn KPIs on hand-solved series."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.citylearn import kpis as k


def test_cost_clips_the_district_sum_and_emissions_each_building():
    net = np.array([[2.0, -1.0], [-1.0, 3.0]])  # two buildings, two hours
    price = np.full((2, 2), 0.5)
    carbon = np.full((2, 2), 0.1)
    assert k.district_cost(net, price) == pytest.approx(0.5 * 1.0 + 0.5 * 2.0)
    assert k.emissions_kg(net, carbon) == pytest.approx(0.1 * (2.0 + 3.0))


def test_grid_kpis():
    d = np.array([1.0, 3.0, 2.0, 2.0] * 6 + [4.0] * 24)
    assert k.ramping(np.array([1.0, 3.0, 2.0])) == pytest.approx(3.0)
    assert k.average_daily_peak(d) == pytest.approx((3.0 + 4.0) / 2)
    assert k.all_time_peak(d) == pytest.approx(4.0)
    assert k.one_minus_load_factor(d) == pytest.approx(1 - d.mean() / 4.0)


def test_score_is_the_mean_of_cost_and_co2_ratios():
    base = np.array([[2.0, 2.0]])
    net = np.array([[1.0, 2.0]])
    out = k.kpis(net, base, np.array([[1.0, 3.0]]), np.array([[0.5, 0.0]]), ["B"])
    assert out["cost_ratio"] == pytest.approx(7.0 / 8.0)
    assert out["co2_ratio"] == pytest.approx(0.5)
    assert out["score_2022"] == pytest.approx((7 / 8 + 0.5) / 2)
