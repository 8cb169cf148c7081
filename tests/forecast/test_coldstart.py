"""Cold-start forecaster chain: each link on series whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.forecast.coldstart import ColdStartForecaster


def test_stages_by_history_length():
    f = ColdStartForecaster()
    assert [f.stage(n) for n in (1, 23, 24, 239, 240)] == [
        "last_value", "last_value", "previous_day", "previous_day", "previous_day"]
    assert f.stage(16 * 24) == "learned"


def test_last_value_then_previous_day():
    f = ColdStartForecaster(horizon=3)
    assert f.forecast(np.array([1.0, 5.0]))[0] == pytest.approx([5.0, 5.0, 5.0])
    y = np.arange(30.0)
    # history ends at index 29: the next 3 hours repeat indices 6, 7, 8
    assert f.forecast(y)[0] == pytest.approx([6.0, 7.0, 8.0])


def test_learned_stage_is_exact_on_a_daily_pattern_plus_trend_free_noise_free_series():
    hours = np.arange(500)
    y = np.vstack([np.sin(2 * np.pi * hours / 24), 2 + np.cos(2 * np.pi * hours / 24)])
    f = ColdStartForecaster(horizon=24)
    out = f.forecast(y[:, :400])
    assert f.stage(400) == "learned"
    assert np.abs(out - y[:, 400:424]).max() < 1e-3


def test_learned_stage_uses_exogenous_columns():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, 700)
    y = 3.0 * x  # driven only by an input known ahead
    f = ColdStartForecaster(horizon=6)
    hours = np.arange(700)
    profile = np.array([y[h - 24 * np.arange(1, 8)].mean() for h in hours[168:]])
    exog = np.zeros((1, 700, 1))
    exog[0, 168:, 0] = y[168:] - profile  # the deviation from the profile, known ahead
    out = f.forecast(y[None, :600], exog=exog)
    assert out[0] == pytest.approx(y[600:606], abs=1e-2)
