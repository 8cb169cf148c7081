"""Reference forecasters never look at or past the step they are issued at."""

import copy

import numpy as np

from gridsync.sim.forecasts import (
    NaiveForecaster,
    PerfectForecaster,
    carbon_day_ahead,
    nowcast,
)
from gridsync.sim.twin import SteppedTwin


def _poisoned(s, step):
    bad = copy.copy(s)
    rng = np.random.default_rng(0)
    for name in (
        "base_load_kw",
        "base_load_kvar",
        "pv_per_kwp",
        "outdoor_temp_c",
        "carbon_g_per_kwh",
    ):
        arr = getattr(s, name).copy()
        arr[step:] = rng.uniform(-1e3, 1e3, arr[step:].shape)
        setattr(bad, name, arr)
    return bad


def test_naive_uses_only_the_past(scenario_1day):
    s = scenario_1day
    step, h = s.start_step + 10, s.steps_per_day + 5
    f = NaiveForecaster().forecast(s, step, h)
    day = s.steps_per_day
    for k in range(h):
        src = step + k - day * (k // day + 1)  # latest same time of day before ``step``
        assert src < step
        assert np.array_equal(f.base_load_kw[k], s.base_load_kw[src])
    g = NaiveForecaster().forecast(_poisoned(s, step), step, h)
    for name in ("base_load_kw", "pv_per_kwp", "outdoor_temp_c", "carbon_g_per_kwh"):
        assert np.array_equal(getattr(f, name), getattr(g, name))


def test_carbon_signal_is_issued_the_day_before(scenario_1day):
    s = scenario_1day
    step, day = s.start_step + 5, s.steps_per_day
    c = carbon_day_ahead(s, step, day + 2)
    assert c[0] == s.carbon_g_per_kwh[step - day]
    assert c[day] == s.carbon_g_per_kwh[step - day]  # two days ahead: still the last measured
    assert np.array_equal(c, carbon_day_ahead(_poisoned(s, step), step, day + 2))


def test_nowcast_reads_telemetry_and_history_only(scenario_1day):
    s = scenario_1day
    twin = SteppedTwin(s)
    obs = twin.observe()
    est = nowcast(s, obs)
    t, m, day = obs.step, obs.telemetry.step, s.steps_per_day
    assert m == t - 1
    # x(t) ~ x(t-1) + x(t-1day) - x(t-1-1day), by hand for the feeder total
    expected = (
        s.base_load_kw[m].sum() + s.base_load_kw[t - day].sum() - s.base_load_kw[m - day].sum()
    )
    assert np.isclose(est.base_load_kw.sum(), expected)
    bad = nowcast(_poisoned(s, t), obs)
    assert np.array_equal(est.base_load_kw, bad.base_load_kw)
    assert np.array_equal(est.pv_available_kw, bad.pv_available_kw)
    assert est.outdoor_temp_c == bad.outdoor_temp_c


def test_perfect_is_truth_and_clips_at_the_end(scenario_1day):
    s = scenario_1day
    f = PerfectForecaster().forecast(s, len(s.index) - 3, 10)
    assert f.horizon == 3
    assert np.array_equal(f.pv_per_kwp, s.pv_per_kwp[-3:])
