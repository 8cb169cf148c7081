"""Baselines on hand-built meter data where the right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.dr.mv import BaselineError, baseline_10of10, baseline_regression

SPD = 24  # hourly steps keep the arithmetic readable


def _days(n_days: int, n_cust: int = 2):
    t = np.arange(n_days * SPD)
    shape = 1.0 + np.sin(2 * np.pi * (t % SPD) / SPD) ** 2
    meter = np.c_[shape, 2 * shape][:, :n_cust]
    return meter, np.zeros(len(t), bool), np.zeros(len(t), bool)


def test_10of10_repeats_identical_days_exactly():
    meter, excluded, weekend = _days(12)
    start = 11 * SPD + 17
    base = baseline_10of10(meter, start, start + 3, excluded, weekend, SPD)
    np.testing.assert_allclose(base, meter[start : start + 3])


def test_10of10_same_day_adjustment_is_capped():
    meter, excluded, weekend = _days(12)
    start = 11 * SPD + 17
    meter[11 * SPD :, 0] *= 1.1  # customer 0 runs 10 % high all day: fully adjusted
    meter[11 * SPD :, 1] *= 1.5  # customer 1 runs 50 % high: capped at +20 %
    base = baseline_10of10(meter, start, start + 3, excluded, weekend, SPD)
    np.testing.assert_allclose(base[:, 0], meter[start : start + 3, 0])
    np.testing.assert_allclose(base[:, 1], meter[start : start + 3, 1] / 1.5 * 1.2)


def test_10of10_skips_event_days_and_other_day_types():
    meter, excluded, weekend = _days(12)
    start = 11 * SPD + 17
    meter[10 * SPD + 17 : 10 * SPD + 20] += 100.0  # yesterday was an event with odd load
    excluded[10 * SPD + 17 : 10 * SPD + 20] = True
    weekend[9 * SPD : 10 * SPD] = True  # and the day before was a weekend day
    meter[9 * SPD : 10 * SPD] += 50.0
    base = baseline_10of10(meter, start, start + 3, excluded, weekend, SPD)
    np.testing.assert_allclose(base, meter[start : start + 3])


def test_no_history_is_a_clear_error():
    meter, excluded, weekend = _days(2)
    with pytest.raises(BaselineError, match="warm-up"):
        baseline_10of10(meter, 5, 8, excluded, weekend, SPD)


def test_regression_recovers_temperature_dependence():
    rng = np.random.default_rng(0)
    n_days = 20
    meter, excluded, weekend = _days(n_days)
    temp = rng.uniform(10, 30, len(meter))
    meter = meter + np.c_[0.3 * temp, 0.1 * temp]  # kW per °C, different per customer
    start = (n_days - 1) * SPD + 14
    base = baseline_regression(meter, start, start + 4, excluded, weekend, temp, SPD)
    np.testing.assert_allclose(base, meter[start : start + 4], atol=1e-9)
    with pytest.raises(BaselineError, match=">= 3"):
        baseline_regression(meter, SPD + 2, SPD + 4, excluded, weekend, temp, SPD)


def test_accuracy_backtest_is_exact_on_repeating_days_and_reports_noise():
    from gridsync.dr.mv import baseline_accuracy

    meter, excluded, weekend = _days(15)
    temp = np.full(len(meter), 20.0)
    acc = baseline_accuracy(
        meter, excluded, weekend, temp, SPD, [(17, 20)], np.array([0, 1]), first_step=4 * SPD
    )
    for a in acc.values():
        assert a.n_days == 11
        assert a.mape_pct == pytest.approx(0.0, abs=1e-9)
        assert a.cv_rmse_pct == pytest.approx(0.0, abs=1e-9)
    # Day 12 breaks the pattern: its window is 30 % high, so the portfolio error that day is
    # 1 - 1/1.3 and the 11-day mean MAPE is that over 11.
    meter[12 * SPD + 17 : 12 * SPD + 20] *= 1.3
    acc = baseline_accuracy(
        meter, excluded, weekend, temp, SPD, [(17, 20)], np.array([0, 1]), first_step=4 * SPD
    )
    # later days average the odd day into their 10-of-10 history, so only a lower bound is exact
    assert acc["10of10_adjusted"].mape_pct >= 100 * (1 - 1 / 1.3) / 11 - 1e-9
    assert acc["10of10_adjusted"].as_dict()["portfolio_mape_pct"] > 0


def test_control_group_shed_hand_solved():
    from gridsync.dr.mv import control_group_shed_kw

    # 4 customers, 2 end uses (col 1 = battery), one segment. Customers 2 and 3 are the
    # control group: their devices ran at 50 % and 30 % of rating -> 40 % expected.
    rated = np.array([[10.0, 5.0], [5.0, 5.0], [4.0, 5.0], [10.0, 5.0]])
    used = np.array([[0.0, -5.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    shed = control_group_shed_kw(
        used,
        rated,
        np.zeros(4, int),
        np.array([False, False, True, True]),
        np.array([0, 1]),
        battery_before_kw=np.array([1.0, 0.0]),
        battery_col=1,
    )
    np.testing.assert_allclose(shed, [[4.0, 6.0], [1.0, 0.0]])
