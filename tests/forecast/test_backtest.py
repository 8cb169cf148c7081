"""Rolling-origin backtest: no look-ahead, metrics that match hand computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridsync.forecast import GlobalLightGBM, HoltWinters, SeasonalNaive, run_backtest
from gridsync.forecast.backtest import lead_metrics, pinball
from tests.forecast.conftest import double_seasonal

FACTORIES = {
    "seasonal_naive_day": lambda: SeasonalNaive("1D"),
    "seasonal_naive_week": lambda: SeasonalNaive("7D"),
    "holt_winters": HoltWinters,
    "lightgbm": lambda: GlobalLightGBM(n_estimators=30, max_rows=5_000, max_lead_h=12),
}


def test_poisoning_the_future_changes_no_forecast():
    """Every model: replacing all data after origin k leaves forecasts at origins <= k equal."""
    y = double_seasonal(days=23, noise=1.0, seed=5)
    kwargs = dict(horizon_h=12, train_days=20, issue_every_h=12, refit_every_h=24)
    clean = run_backtest(y, FACTORIES, **kwargs)
    assert len(clean.origins) >= 4
    for k in (1, len(clean.origins) - 2):  # after a refit origin, and between refits
        poisoned = y.copy()
        poisoned[poisoned.index > clean.origins[k]] = 1e9
        dirty = run_backtest(poisoned, FACTORIES, **kwargs)
        for name in FACTORIES:
            np.testing.assert_allclose(
                dirty.pred[name][: k + 1], clean.pred[name][: k + 1], err_msg=name
            )
        for name in ("holt_winters", "lightgbm"):  # these read the latest value: poison shows
            assert not np.allclose(dirty.pred[name][k + 1 :], clean.pred[name][k + 1 :]), name
        assert (dirty.truth[k] == 1e9).all()  # the scorer does see the poisoned future


def test_origins_and_shapes():
    y = double_seasonal(days=12)
    res = run_backtest(
        y, {"sn": lambda: SeasonalNaive("1D")}, horizon_h=6, train_days=8, issue_every_h=12
    )
    assert res.origins[0] == y.index[8 * 24 - 1]
    assert (np.diff(res.origins) == pd.Timedelta("12h")).all()
    assert res.pred["sn"].shape == (len(res.origins), 3, 6, 1)
    assert res.truth.shape == (len(res.origins), 6, 1)
    with pytest.raises(ValueError, match="too short"):
        run_backtest(y, {"sn": SeasonalNaive}, horizon_h=24, train_days=12)


def test_pinball_hand_values():
    truth = np.array([10.0])
    pred = np.array([[8.0], [10.0], [13.0]])  # P10, P50, P90
    # q=0.1: 0.1*2 = 0.2; q=0.5: 0; q=0.9: (0.9-1)*(-3) = 0.3 -> mean 0.1667
    assert pinball(truth, pred, (0.1, 0.5, 0.9))[0] == pytest.approx(0.5 / 3)


def test_lead_metrics_hand_values():
    truth = np.array([[[100.0], [200.0]], [[50.0], [100.0]]])  # 2 origins, 2 leads
    p50 = np.array([[[110.0], [150.0]], [[50.0], [120.0]]])
    pred = np.stack([p50 - 5, p50, p50 + 5], axis=1)
    m = lead_metrics(truth, pred, (0.1, 0.5, 0.9))
    assert m.loc[1, "mape"] == pytest.approx(100 * (0.1 + 0.0) / 2)
    assert m.loc[2, "mape"] == pytest.approx(100 * (0.25 + 0.2) / 2)
    assert m.loc[2, "mae"] == pytest.approx(35.0)
    assert m.loc[2, "rmse"] == pytest.approx(np.sqrt((50**2 + 20**2) / 2))
    assert m.loc[1, "coverage_p10_p90"] == pytest.approx(50.0)
    assert m.loc[2, "coverage_p10_p90"] == pytest.approx(0.0)


def test_json_layout_and_hourly_leads():
    y = double_seasonal(days=12, per_day=48)
    res = run_backtest(
        y, {"sn": lambda: SeasonalNaive("1D")}, horizon_h=4, train_days=9, issue_every_h=6
    )
    out = res.to_json()["models"]["sn"]
    assert list(out["mape_by_lead_h"]) == ["1", "2", "3", "4"]
    for key in ("mape_mean", "pinball_mean", "coverage_p10_p90"):
        assert np.isfinite(out[key])
    # a noise-free periodic series is forecast perfectly by day-naive
    assert out["mape_mean"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.slow
def test_real_victoria_demand_learned_model_beats_baselines(vic):
    """On the real series, LightGBM beats weekly seasonal-naive on mean MAPE and pinball.
    (Holt-Winters with constants chosen for the 24 h horizon beats LightGBM here: 2.7 vs
    4.1 % mean MAPE; it lost only while it chose them by one-step error.)"""
    models = {
        "sn_week": lambda: SeasonalNaive("7D"),
        "hw": HoltWinters,
        "lgbm": lambda: GlobalLightGBM(
            n_estimators=120, max_rows=20_000, country="AU", subdiv="VIC"
        ),
    }
    res = run_backtest(
        vic.iloc[-(70 * 24) :], models, train_days=42, issue_every_h=24, refit_every_h=24 * 14
    )
    s = {name: res.summary(name) for name in models}
    assert s["lgbm"]["mape_mean"] < s["sn_week"]["mape_mean"]
    assert s["lgbm"]["pinball_mean"] < s["sn_week"]["pinball_mean"]
    assert s["hw"]["mape_mean"] < s["sn_week"]["mape_mean"]
    assert 60 <= s["lgbm"]["coverage_p10_p90"] <= 95
