"""Drift monitor on streams with a known change, and the drift-triggered retraining loop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridsync.forecast.base import Forecaster
from gridsync.learning.adapt import run_stream
from gridsync.learning.drift import DriftMonitor
from tests.forecast.conftest import double_seasonal


def _alerts(z, **kwargs):
    m = DriftMonitor("s", **kwargs)
    return [a for a in (m.update(v, ts=i) for i, v in enumerate(z)) if a is not None]


def test_no_alarm_on_a_month_of_stationary_noise():
    z = np.random.default_rng(0).standard_normal(30 * 24)
    assert len(_alerts(z)) <= 1


def test_a_three_sigma_step_is_found_fast_and_located():
    # Page-Hinkley gains (3 - delta 0.5) per value after the step, less the drift of its own
    # mean (anchored by 168 reference values): the threshold 40 is crossed after ~17-20
    # values; the CUSUM change-point estimate lands near the true step at 300
    rng = np.random.default_rng(1)
    z = rng.standard_normal(600)
    z[300:] += 3.0
    alerts = _alerts(z)
    assert alerts, "step not detected"
    first = alerts[0]
    assert 300 <= first.index <= 325
    assert abs(first.change_index - 300) <= 10
    assert first.shift_sigma == pytest.approx(3.0, abs=0.8)


def test_adwin_detects_a_step_in_an_asset_kpi():
    # battery round-trip efficiency per cycle: 0.90 +- 0.01, drops to 0.86 at cycle 200
    rng = np.random.default_rng(2)
    eff = 0.90 + 0.01 * rng.standard_normal(400)
    eff[200:] -= 0.04
    alerts = _alerts(eff, mean=0.90, scale=0.01, level=0.90, detector="adwin")
    assert alerts and 200 <= alerts[0].index <= 260
    assert alerts[0].shift_pct < 0


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="detector"):
        DriftMonitor("s", detector="cusum")
    with pytest.raises(ValueError, match="scale"):
        DriftMonitor("s", scale=0.0)


class WeeklyProfile(Forecaster):
    """Mean time-of-week profile of the training data, P10/P90 at +-2 %: a model that never
    re-levels from new data, so only retraining can follow a level change."""

    name = "weekly_profile"

    def _fit(self, history, exog):
        y = history.to_numpy(dtype=float)[:, 0]
        week = 7 * 24
        self._off = len(y) % week  # profile slot 0 is row _off of the history
        self._profile = y[self._off :].reshape(-1, week).mean(axis=0)

    def _predict(self, history, horizon, exog):
        pos = (len(history) - self._off + np.arange(horizon)) % (7 * 24)
        p = self._profile[pos]
        return np.stack([p * 0.98, p, p * 1.02])[:, :, None]


def test_level_step_is_detected_retrained_promoted_and_error_recovers():
    y = double_seasonal(days=56 + 28, noise=0.5, seed=4)
    step_at = y.index[0] + pd.Timedelta(days=56 + 10)
    y[y.index >= step_at] *= 1.10
    res = run_stream(y, WeeklyProfile, shadow_h=24, monitor_kwargs={"threshold": 40.0})
    first = res.alerts[0]
    assert step_at <= first["ts"] <= step_at + pd.Timedelta(hours=48)
    assert first["shift_pct"] == pytest.approx(10.0, abs=2.0)
    promoted = [d for d in res.decisions if d["promoted"]]
    assert promoted and promoted[0]["level_ratio"] == pytest.approx(1.10, abs=0.02)
    before = res.mape_between(step_at - pd.Timedelta(days=7), step_at)
    after = res.mape_between(promoted[0]["ts"] + pd.Timedelta(days=1), y.index[-1])
    assert after <= 1.1 * before + 0.05  # noise 0.5 on level ~100: MAPE ~0.4 %
    no_retrain = run_stream(y, WeeklyProfile, retrain_on_drift=False)
    assert no_retrain.mape_between(step_at + pd.Timedelta(days=3), y.index[-1]) > 5 * after
