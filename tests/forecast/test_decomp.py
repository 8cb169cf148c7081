"""The MSTL-like decomposition component and the hybrid's stacking and time-of-day band."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridsync.forecast import run_backtest
from gridsync.forecast.decomp import HALF_LIVES_H, decomposition_forecast, decomposition_forecasts
from gridsync.forecast.hybrid import HybridForecaster
from tests.forecast.conftest import double_seasonal

FAST = dict(max_lead_h=12, weeks=2, valid_days=7, n_estimators=40, max_rows=20_000)


def test_an_additive_week_day_level_series_is_forecast_exactly():
    # weekly pattern (weekend dip) + daily sine + constant level: every part is identified
    y = double_seasonal(days=30).to_numpy()[:, None]
    origin = 27 * 24 - 1 + 5  # not at a day boundary
    fc = decomposition_forecast(y, origin, 24, 24, (1.0, 12.0))
    assert fc.shape == (2, 24, 1)
    np.testing.assert_allclose(fc, np.stack([y[origin + 1 : origin + 25]] * 2), atol=1e-9)


def test_a_short_half_life_follows_a_level_shift():
    y = double_seasonal(days=30).to_numpy()[:, None].copy()
    origin = 28 * 24 - 1
    y[origin - 5 :] += 10.0  # the level rose 6 h before the origin
    truth = y[origin + 1 : origin + 13]
    fc = decomposition_forecast(y, origin, 12, 24, (1.0, 12.0))
    err = {hl: np.abs(fc[k] - truth).mean() for k, hl in enumerate((1.0, 12.0))}
    assert err[1.0] < 0.5 * err[12.0] and err[1.0] < 4.0, err  # vs 10 without tracking


def test_forecast_reads_nothing_after_the_origin():
    y = double_seasonal(days=30, noise=1.0, seed=1).to_numpy()[:, None]
    origin = 25 * 24 + 7
    poisoned = y.copy()
    poisoned[origin + 1 :] *= 5.0
    np.testing.assert_array_equal(
        decomposition_forecast(y, origin, 24, 24),
        decomposition_forecast(poisoned, origin, 24, 24),
    )
    with pytest.raises(ValueError, match="needs >= 2 weeks"):
        decomposition_forecast(y, 10 * 24, 24, 24)


def test_a_trend_costs_at_most_a_day_of_rise():
    # a steady rise of 0.05 per hour (1.2 per day): the centred 7-day mean keeps it out of the
    # weekly pattern (from weeks back it would cost several days of rise)
    y = double_seasonal(days=35).to_numpy()
    rise = 0.05 * np.arange(len(y))
    origins = np.array([30 * 24 - 1, 31 * 24 + 5])
    fc = decomposition_forecasts((y + rise)[:, None], origins, 12, 24, (1.0,))[0, ..., 0]
    truth = (y + rise)[origins[:, None] + np.arange(1, 13)]
    assert np.abs(fc - truth).max() <= 1.25, fc - truth


def test_stacking_recovers_a_known_mixture():
    rng = np.random.default_rng(0)
    comps = rng.normal(100, 10, (4, 50, 6, 3))
    truth = 0.7 * comps[0] + 0.3 * comps[3]  # the stacker sees any number of inputs
    w = HybridForecaster(**FAST)._fit_weights(comps, truth, np.ones_like(truth), 1.0)
    assert w.shape == (6, 4)
    np.testing.assert_allclose(w, np.tile([0.7, 0.0, 0.0, 0.3], (6, 1)), atol=1e-6)


def test_stacking_weights_follow_the_lead_within_their_window():
    # component 0 is the truth at leads 1-4, component 2 at leads 5-8: a window of +-1 lead
    # keeps the pure leads pure and blends only at the change-over
    rng = np.random.default_rng(1)
    comps = rng.normal(100, 10, (3, 40, 8, 2))
    truth = np.concatenate([comps[0, :, :4], comps[2, :, 4:]], axis=1)
    model = HybridForecaster(**FAST)
    model.STACK_H = 1.0
    w = model._fit_weights(comps, truth, np.ones_like(truth), 1.0)
    np.testing.assert_allclose(w[:3], np.tile([1.0, 0.0, 0.0], (3, 1)), atol=1e-6)
    np.testing.assert_allclose(w[5:], np.tile([0.0, 0.0, 1.0], (3, 1)), atol=1e-6)
    assert 0.2 < w[3, 0] < 0.8 and 0.2 < w[4, 2] < 0.8


def test_band_follows_time_of_day_noise():
    # noise sd 4 from 08:00 to 20:00 and 0.5 at night: a band of one width for all hours would
    # cover ~100 % at night and far less by day; the time-of-day scale keeps both near 80 %
    y = double_seasonal(days=70, seed=7)
    rng = np.random.default_rng(7)
    day = (y.index.hour >= 8) & (y.index.hour < 20)
    y = y + np.where(day, 4.0, 0.5) * rng.standard_normal(len(y))
    res = run_backtest(
        y,
        {"hybrid": lambda: HybridForecaster(**{**FAST, "valid_days": 14})},
        horizon_h=12,
        train_days=42,
        issue_every_h=5,
        refit_every_h=24 * 7,
    )
    pred, truth = res.pred["hybrid"], res.truth
    inside = (truth >= pred[:, 0]) & (truth <= pred[:, -1])
    target = res.origins.values[:, None] + np.arange(1, 13) * np.timedelta64(1, "h")
    hour = pd.DatetimeIndex(target.ravel()).hour.to_numpy().reshape(target.shape)
    by_day = 100 * inside[..., 0][(hour >= 8) & (hour < 20)].mean()
    by_night = 100 * inside[..., 0][(hour < 8) | (hour >= 20)].mean()
    assert 68 <= by_day <= 92 and 68 <= by_night <= 92, (by_day, by_night)
    width = (pred[:, -1] - pred[:, 0])[..., 0]
    assert np.median(width[(hour >= 8) & (hour < 20)]) > 3 * np.median(
        width[(hour < 8) | (hour >= 20)]
    )


def test_components_are_checked_and_holt_winters_can_be_stacked():
    with pytest.raises(ValueError, match="components: \\('arima',\\) must be"):
        HybridForecaster(components=("arima",))
    y = double_seasonal(days=30, noise=1.0, seed=2)
    model = HybridForecaster(**FAST, components=("holt_winters", "decomposition")).fit(y)
    assert model._weights.shape == (12, 1 + len(HALF_LIVES_H))  # HW + one per half-life
    np.testing.assert_allclose(model._weights.sum(axis=1), 1.0)
    assert np.isfinite(model.predict(12).values).all()
