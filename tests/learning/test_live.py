"""ForecastWatch on a hand-made stream: warm-up reference, alert, retraining on the measured
level, shadow decision; and the least-squares change point."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.learning.live import ForecastWatch, mean_shift_split


def test_mean_shift_split_finds_a_clean_step():
    assert mean_shift_split(np.r_[np.zeros(10), np.ones(5)]) == 10
    assert mean_shift_split(np.r_[np.full(3, 5.0), np.full(30, 2.0)]) == 3


def _replay(actual, forecast_of, watch, steps):
    for t in steps:
        cand = None if watch.candidate is None else np.array([forecast_of(watch.candidate, t)])
        watch.issued(t, np.array([forecast_of(watch.live, t)]), cand)
        watch.observe(t, actual[t])


def test_watch_alerts_retrains_on_the_measured_level_and_promotes():
    rng = np.random.default_rng(0)
    n, change = 600, 400
    actual = 100 + rng.normal(0, 1.0, n)
    actual[change:] += 20.0  # +20 %
    calls = []

    def retrain(live, change_step, ratio, history):
        calls.append((change_step, ratio))
        return ("levelled", ratio)

    def forecast_of(model, t):
        return 100.0 * (model[1] if isinstance(model, tuple) else 1.0)

    watch = ForecastWatch(
        "feeder",
        "flat",
        lead=1,
        warmup=100,
        shadow_steps=20,
        retrain_after=10,
        retrain=retrain,
    )
    _replay(actual, forecast_of, watch, range(n))
    kinds = [e["kind"] for e in watch.events]
    assert kinds == ["drift", "retrain", "promoted"]
    drift = watch.events[0]
    assert change <= drift["step"] <= change + 5  # a 20-sigma step: at once
    ((c, ratio),) = calls
    assert c == change  # the least-squares split of the residuals
    assert ratio == pytest.approx(actual[change : change + 10].mean() / 100.0, rel=0.05)
    assert watch.live == ("levelled", ratio)
    assert watch.events[2]["shadow_mape_candidate"] < watch.events[2]["shadow_mape_live"]


def test_watch_stays_silent_on_noise_and_checks_its_settings():
    rng = np.random.default_rng(1)
    actual = 100 + rng.normal(0, 1.0, 3000)
    watch = ForecastWatch("feeder", "flat", lead=1, warmup=100, retrain=lambda *a: "x")
    _replay(actual, lambda m, t: 100.0, watch, range(3000))
    assert watch.events == [] and watch.monitor is not None
    with pytest.raises(ValueError, match="lead 0"):
        ForecastWatch("f", "flat", lead=0, retrain=lambda *a: None)
