"""Forecasters against hand-solved cases and the physics of their own definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridsync.forecast import GlobalLightGBM, HoltWinters, SeasonalNaive
from tests.forecast.conftest import double_seasonal


def test_seasonal_naive_day_repeats_yesterday_exactly():
    y = double_seasonal(days=10)
    fc = SeasonalNaive("1D").fit(y).predict(30)
    expected = np.r_[y.to_numpy()[-24:], y.to_numpy()[-24:-18]]
    np.testing.assert_allclose(fc.p50[:, 0], expected)
    assert fc.index[0] == y.index[-1] + pd.Timedelta("1h")


def test_seasonal_naive_week_repeats_last_week():
    y = double_seasonal(days=21)
    fc = SeasonalNaive("7D").fit(y).predict(24)
    np.testing.assert_allclose(fc.p50[:, 0], y.to_numpy()[-168:-144])


def test_seasonal_naive_band_matches_lag_error_spread():
    # iid N(0, 1) noise: the day-lag error is N(0, 2), so P10/P90 sit at -/+1.2816 * sqrt(2).
    y = double_seasonal(days=200, noise=1.0, seed=3)
    fc = SeasonalNaive("7D", resid_days=190).fit(y).predict(24)
    half_width = (fc.q(0.9) - fc.q(0.1)) / 2
    np.testing.assert_allclose(half_width, 1.2816 * np.sqrt(2), rtol=0.08)


def test_holt_winters_recovers_a_pure_double_seasonal_signal():
    y = double_seasonal(days=28)
    fc = HoltWinters().fit(y).predict(48)
    future = double_seasonal(days=31).to_numpy()[len(y) : len(y) + 48]
    np.testing.assert_allclose(fc.p50[:, 0], future, atol=0.5)


def test_holt_winters_needs_two_weeks():
    with pytest.raises(ValueError, match="needs >= 14 days"):
        HoltWinters().fit(double_seasonal(days=10))


def test_lightgbm_global_learns_the_weekend_and_beats_day_naive():
    # three series with different scales share one model; Monday after a weekend is where
    # day-naive fails (it repeats Sunday's dip)
    base = double_seasonal(days=42, noise=0.5, seed=1)
    frame = pd.DataFrame({"a": base, "b": 10 * base, "c": 0.1 * base})
    cut = frame.index.get_loc(pd.Timestamp("2024-02-05 00:00")) - 1  # Sunday 23:00 origin
    hist = frame.iloc[: cut + 1]
    truth = frame.iloc[cut + 1 : cut + 25].to_numpy()
    clean = double_seasonal(days=42).to_numpy()[cut + 1 : cut + 25, None] * np.array([1, 10, 0.1])
    model = GlobalLightGBM(n_estimators=80, max_rows=15_000, calib_days=5).fit(hist)
    fc = model.predict(24)
    naive = SeasonalNaive("1D").fit(hist).predict(24)
    err_gbm = np.abs(fc.p50 - clean).mean(axis=0) / np.abs(clean).mean(axis=0)
    err_naive = np.abs(naive.p50 - clean).mean(axis=0) / np.abs(clean).mean(axis=0)
    assert (err_gbm < 0.5 * err_naive).all()
    assert np.abs(fc.p50 - truth).mean() < np.abs(naive.p50 - truth).mean()


def test_quantiles_never_cross_and_include_median():
    y = double_seasonal(days=30, noise=2.0)
    for model in (
        SeasonalNaive("1D"),
        HoltWinters(),
        GlobalLightGBM(n_estimators=40, max_rows=10_000),
    ):
        fc = model.fit(y).predict(24)
        assert fc.quantiles == (0.1, 0.5, 0.9)
        assert (np.diff(fc.values, axis=0) >= 0).all(), model.name
    with pytest.raises(ValueError, match="must include 0.5"):
        SeasonalNaive("1D", quantiles=(0.1, 0.9))


def test_lightgbm_bad_parameters_are_named():
    with pytest.raises(ValueError, match="season: 'month'"):
        GlobalLightGBM(season="month")


def test_lightgbm_rejects_horizon_beyond_training():
    y = double_seasonal(days=20)
    model = GlobalLightGBM(max_lead_h=6, n_estimators=20).fit(y)
    with pytest.raises(ValueError, match="exceeds the trained max lead"):
        model.predict(7)


def test_nan_history_is_rejected():
    y = double_seasonal(days=10)
    y.iloc[5] = np.nan
    with pytest.raises(ValueError, match="contains NaN"):
        SeasonalNaive().fit(y)


def test_to_frame_is_long_and_complete():
    y = pd.DataFrame({"n1": double_seasonal(days=9), "n2": double_seasonal(days=9)})
    frame = SeasonalNaive().fit(y).predict(5).to_frame()
    assert list(frame.columns) == ["time", "lead", "series", "q0.1", "q0.5", "q0.9"]
    assert len(frame) == 10 and set(frame.series) == {"n1", "n2"}


def test_holt_winters_chooses_constants_for_its_horizon():
    # fixed double-seasonal pattern + AR(1) noise (phi 0.95, sd 1): 24 h ahead the noise has
    # forgotten the origin (0.95^24 = 0.29), so the best forecast is about the pattern itself,
    # MSE ~ var = 1 / (1 - 0.95^2) = 10.3 at leads 19..24.
    per_day, days = 24, 56
    base = double_seasonal(days=days + 7, per_day=per_day)
    rng = np.random.default_rng(3)
    e = np.zeros(len(base))
    for t in range(1, len(e)):
        e[t] = 0.95 * e[t - 1] + rng.standard_normal()
    y = base + e
    hist = y.iloc[: days * per_day]

    def lead24_mse(model):
        errs = []
        for o in range(days * per_day - 1, len(y) - 25, 6):
            fc = model.predict(24, y.iloc[: o + 1]).p50[:, 0]
            errs.append((y.to_numpy()[o + 1 : o + 25] - fc)[-6:])  # leads 19..24
        return float(np.mean(np.square(errs)))

    var = 1 / (1 - 0.95**2)
    assert lead24_mse(HoltWinters(horizon_h=24).fit(hist)) < 1.35 * var
