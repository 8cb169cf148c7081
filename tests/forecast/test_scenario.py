"""The dispatch-facing forecaster on the bundled scenario: protocol, physics, no look-ahead."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gridsync.forecast.pv import K_MAX, clear_sky
from gridsync.forecast.scenario import LearnedForecaster
from gridsync.sim.forecasts import ExogenousForecast


def _pv_to_bus(sc):
    w = np.zeros((sc.pv_per_kwp.shape[1], sc.base_load_kw.shape[1]))
    for orient, bus, kwp in zip(
        sc.pv_orientation, sc.fleet.pv.bus, sc.fleet.pv.peak_kw, strict=True
    ):
        w[orient, bus] += kwp
    return w


@pytest.fixture(scope="module")
def issued(scenario_1day):
    f = LearnedForecaster(pv_max_rows=8_000)
    step = scenario_1day.start_step + 8
    return f, step, f.forecast(scenario_1day, step, 96)


def test_protocol_shapes_and_bands(scenario_1day, issued):
    f, step, fc = issued
    sc = scenario_1day
    assert isinstance(fc, ExogenousForecast) and fc.horizon == 96
    assert fc.base_load_kw.shape == (96, sc.base_load_kw.shape[1])
    assert fc.pv_per_kwp.shape == (96, sc.pv_per_kwp.shape[1])
    # 7 days of history is too little for the learned model: documented fallback
    assert f.mode == "seasonal_naive_day"
    for name in ("base_load_kw", "pv_per_kwp"):
        lo, hi = fc.quantiles[name][0.1], fc.quantiles[name][0.9]
        mid = getattr(fc, name)
        assert (lo <= mid + 1e-9).all() and (mid <= hi + 1e-9).all()
    head = fc.quantiles["feeder_load_kw"]
    assert (head[0.1] <= head[0.5]).all() and (head[0.5] <= head[0.9]).all()
    net = fc.quantiles["net_load_kw"]
    np.testing.assert_allclose(net[0.5], fc.base_load_kw - fc.pv_per_kwp @ _pv_to_bus(sc))
    assert (net[0.1] <= net[0.5] + 1e-9).all() and (net[0.5] <= net[0.9] + 1e-9).all()
    unloaded = np.abs(sc.base_load_kw).sum(axis=0) == 0
    assert (fc.base_load_kw[:, unloaded] == 0).all()


def test_clear_sky_physics_bounds_the_realised_pv(scenario_1day):
    clear, ghi_clear = clear_sky(scenario_1day)
    pv = scenario_1day.pv_per_kwp
    night = ghi_clear == 0
    assert night.any() and (clear[night] == 0).all() and (pv[night] == 0).all()
    assert 0.5 < clear.max() <= 1.0  # kW per kWp at noon in clear sky
    day = clear > 0.2  # at low sun the simple clear-sky model is loose (diffuse-heavy dawn)
    assert np.mean(pv[day] <= 1.15 * clear[day]) > 0.99


def test_pv_forecast_is_zero_at_night_and_capped_by_physics(scenario_1day, issued):
    _, step, fc = issued
    clear, _ = clear_sky(scenario_1day)
    future = clear[step : step + 96]
    assert (fc.quantiles["pv_per_kwp"][0.9][future == 0] == 0).all()
    assert (fc.quantiles["pv_per_kwp"][0.9] <= K_MAX * future + 1e-12).all()
    assert fc.pv_per_kwp.max() > 0.1  # it does forecast sun in June


def test_no_look_ahead_on_measured_series(scenario_1day, issued):
    """Poisoning every load, PV and weather value from the issue step on changes nothing
    (the default forecaster uses no weather forecast built from the realised weather)."""
    _, step, fc = issued
    sc = scenario_1day
    series = (sc.base_load_kw, sc.base_load_kvar, sc.pv_per_kwp, sc.outdoor_temp_c, sc.ghi_w_m2)
    load, kvar, pv, temp, ghi = (a.copy() for a in series)
    for a in (load, kvar, pv, temp, ghi):
        a[step:] = 1e6
    dirty = dataclasses.replace(
        sc, base_load_kw=load, base_load_kvar=kvar, pv_per_kwp=pv, outdoor_temp_c=temp, ghi_w_m2=ghi
    )
    again = LearnedForecaster(pv_max_rows=8_000).forecast(dirty, step, 96)
    np.testing.assert_allclose(again.base_load_kw, fc.base_load_kw)
    np.testing.assert_allclose(again.base_load_kvar, fc.base_load_kvar)
    np.testing.assert_allclose(again.pv_per_kwp, fc.pv_per_kwp)
    np.testing.assert_allclose(again.outdoor_temp_c, fc.outdoor_temp_c)


def test_reissue_between_refits_is_cheap_and_consistent(scenario_1day, issued):
    f, step, _ = issued
    fitted = f._fit_step
    nxt = f.forecast(scenario_1day, step + 1, 12)
    assert f._fit_step == fitted and nxt.horizon == 12
    with pytest.raises(ValueError, match="exceeds max_lead_h"):
        f.forecast(scenario_1day, step, 200)


def test_load_model_choice_is_validated():
    with pytest.raises(ValueError, match="load_model: 'arima'"):
        LearnedForecaster(load_model="arima")
