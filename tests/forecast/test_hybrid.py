"""The hybrid (default learned) model: combination, calibration, no look-ahead, sizing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridsync.forecast import run_backtest
from gridsync.forecast.hybrid import HybridForecaster, ProfileAR, profile_weights, weekly_profile
from tests.forecast.conftest import double_seasonal

FAST = dict(max_lead_h=12, weeks=2, valid_days=5, n_estimators=40, max_rows=20_000)


def structured(days: int, seed: int = 0, noise: float = 1.0) -> pd.Series:
    """Double-seasonal hourly series plus a slow random-walk level and AR(1) noise: every
    component of the hybrid has something to contribute."""
    y = double_seasonal(days=days)
    rng = np.random.default_rng(seed)
    level = np.cumsum(rng.normal(0, 0.15, len(y)))
    ar = np.zeros(len(y))
    shocks = rng.normal(0, noise, len(y))
    for t in range(1, len(y)):
        ar[t] = 0.8 * ar[t - 1] + shocks[t]
    return y + level + ar


def test_weekly_profile_is_the_weighted_mean_of_past_weeks():
    y = np.arange(4 * 168, dtype=float)[:, None]
    w = profile_weights(3, 0.5)
    np.testing.assert_allclose(w, [4 / 7, 2 / 7, 1 / 7])
    rows = np.array([3 * 168 + 5])
    expected = sum(wk * (rows[0] - (k + 1) * 168) for k, wk in enumerate(w))
    assert weekly_profile(y, rows, 168, w)[0, 0] == pytest.approx(expected)


def test_profile_ar_learns_the_persistence_of_an_anomaly():
    # a pure weekly pattern plus a level step: after the step the anomaly persists, so the
    # regression on the last hour's anomaly must carry it forward (coefficient near 1)
    y = double_seasonal(days=35).to_numpy()[:, None].copy()
    y[-200:] += 10.0
    model = ProfileAR(weeks=2).fit(y[:-30], 12, 24, 168, 1)
    fc = model.forecast(y, np.array([len(y) - 13]), 12)[0, :, 0]
    np.testing.assert_allclose(fc, y[-12:, 0], atol=1.0)


def test_combination_is_no_worse_than_its_components():
    y = structured(days=48, seed=2).to_frame("load")
    hist_days = 38
    model = HybridForecaster(**FAST).fit(y.iloc[: hist_days * 24])
    origins = np.arange(hist_days * 24 - 1, len(y) - 13, 3)
    comps = model._component_forecasts(model._fitted, y, origins, 12, None)[..., 0]
    hybrid = np.stack(
        [model.predict(12, y.iloc[: o + 1]).p50[:, 0] for o in origins]
    )  # issued from each origin with data up to it
    truth = y.to_numpy()[origins[:, None] + np.arange(1, 13), 0]
    mae_components = np.abs(comps - truth).mean(axis=(1, 2))
    mae_hybrid = np.abs(hybrid - truth).mean()
    assert mae_hybrid <= 1.02 * mae_components.min(), (mae_hybrid, mae_components)
    assert mae_hybrid < mae_components.max()


def test_band_covers_about_80_percent_of_iid_noise():
    y = double_seasonal(days=60, noise=2.0, seed=4)
    res = run_backtest(
        y,
        {"hybrid": lambda: HybridForecaster(**{**FAST, "valid_days": 14})},
        horizon_h=12,
        train_days=35,
        issue_every_h=7,
        refit_every_h=24 * 7,
    )
    cover = res.summary("hybrid")["coverage_p10_p90"]
    assert 72 <= cover <= 88, cover
    # with iid noise the point error is close to the noise itself (sigma 2 -> MAE ~1.6)
    assert res.summary("hybrid")["mae_mean"] < 2.2


def test_quantiles_never_cross():
    y = double_seasonal(days=30, noise=3.0, seed=1)
    model = HybridForecaster(quantiles=(0.05, 0.1, 0.5, 0.9, 0.95), **FAST).fit(y)
    fc = model.predict(12)
    assert fc.quantiles == (0.05, 0.1, 0.5, 0.9, 0.95)
    assert (np.diff(fc.values, axis=0) >= 0).all()
    assert (fc.q(0.95) - fc.q(0.05) > fc.q(0.9) - fc.q(0.1)).mean() > 0.5


def test_poisoning_the_future_changes_no_forecast():
    """Forecasts at origins up to k are identical when every value after origin k changes."""
    y = double_seasonal(days=27, noise=1.0, seed=5)
    factories = {"hybrid": lambda: HybridForecaster(**FAST)}
    kwargs = dict(horizon_h=12, train_days=23, issue_every_h=12, refit_every_h=24)
    clean = run_backtest(y, factories, **kwargs)
    assert len(clean.origins) >= 4
    for k in (1, len(clean.origins) - 2):  # right after a refit, and between refits
        poisoned = y.copy()
        poisoned[poisoned.index > clean.origins[k]] *= 3.0
        dirty = run_backtest(poisoned, factories, **kwargs)
        np.testing.assert_array_equal(dirty.pred["hybrid"][: k + 1], clean.pred["hybrid"][: k + 1])
        assert not np.allclose(dirty.pred["hybrid"][k + 1 :], clean.pred["hybrid"][k + 1 :])


def test_sizing_to_the_training_window_and_clear_errors():
    assert HybridForecaster.for_history_days(56).weeks == 4
    small = HybridForecaster.for_history_days(25)
    assert (small.weeks, small.valid_days) == (2, 7)
    with pytest.raises(ValueError, match="20-day training window is too short"):
        HybridForecaster.for_history_days(20)
    with pytest.raises(ValueError, match="too short: need >= "):
        HybridForecaster(**FAST).fit(double_seasonal(days=15))
    with pytest.raises(ValueError, match="valid_days"):
        HybridForecaster(valid_days=0)
    with pytest.raises(ValueError, match="max_lead_h: 36"):
        HybridForecaster(max_lead_h=36)


def test_exogenous_forecasts_reach_the_learned_component():
    y = double_seasonal(days=30, noise=0.5, seed=6)
    temp = pd.DataFrame(
        {"temp_c": 15 + 8 * np.sin(np.arange(len(y) + 12) / 40.0)},
        index=pd.date_range(y.index[0], periods=len(y) + 12, freq="1h"),
    )
    y = y + 2.0 * temp["temp_c"].iloc[: len(y)].to_numpy()
    model = HybridForecaster(**FAST).fit(y, temp.iloc[: len(y)])  # exog over the history only
    fc = model.predict(12, exog=temp)
    assert np.isfinite(fc.values).all()
    with pytest.raises(ValueError, match="exog: model was fitted with"):
        model.predict(12)
