"""The MPC's damped persistence of the last measured forecast error, against hand arithmetic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gridsync.dispatch.nowcast import ErrorPersistence
from gridsync.sim.controller import Setpoints
from gridsync.sim.forecasts import NaiveForecaster
from gridsync.sim.twin import SteppedTwin


def test_estimate_is_the_forecast_plus_the_last_error_damped_per_step(scenario_1day):
    s = dataclasses.replace(scenario_1day, plant=None)
    t0 = s.start_step + 40  # 10:00, PV on
    fc = NaiveForecaster().forecast(s, t0, 8)
    persist = ErrorPersistence(s, decay_per_step=0.5)
    persist.issued(t0, fc)
    twin = SteppedTwin(s, step=t0)
    obs = twin.observe()
    # before any interval the forecast covered was measured: the forecast as issued
    first = persist.estimate(obs)
    np.testing.assert_array_equal(first.base_load_kw, fc.base_load_kw[0])
    for _ in range(3):  # measure t0 .. t0+2, decide at t0+3 on interval t0+2
        twin.advance(obs, Setpoints.zeros(s.fleet))
        obs = twin.observe()
    m, k = obs.telemetry.step, obs.step - t0
    assert m == t0 + 2
    est = persist.estimate(obs)
    err = s.base_load_kw[m] - fc.base_load_kw[m - t0]
    np.testing.assert_allclose(est.base_load_kw, fc.base_load_kw[k] + 0.5 * err)
    pv_fc = fc.pv_per_kwp[:, s.pv_orientation] * s.fleet.pv.peak_kw
    ratio = np.clip(s.pv_available_kw(m) / pv_fc[m - t0], 0.0, 2.5)
    big = pv_fc[m - t0] > 0.05
    np.testing.assert_allclose(
        est.pv_available_kw[big], pv_fc[k][big] * (1 + 0.5 * (ratio[big] - 1)), rtol=1e-9
    )
    expected_temp = fc.outdoor_temp_c[k] + 0.5 * (s.outdoor_temp_c[m] - fc.outdoor_temp_c[m - t0])
    assert est.outdoor_temp_c == pytest.approx(expected_temp)
