"""MPC on generated districts: no look-ahead (poisoned future), price issuing, the bound."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridsync.citylearn.bound import OracleMPC, PerfectForesightBound, RealisedRows
from gridsync.citylearn.dataset import read_dataset
from gridsync.citylearn.mpc import CityLearnMPC, issued_price_forecast
from gridsync.citylearn.simulate import Observation, SelfConsumptionRule, run, site_of
from tests.citylearn.conftest import write_dataset


def _poison_after(root, t):
    """Scale every data row after hour t of every CSV by 7 (zero thermal demand stays 0)."""
    for path in root.glob("*.csv"):
        frame = pd.read_csv(path)
        frame.iloc[t + 1 :, :] = frame.iloc[t + 1 :, :].to_numpy() * 7.0
        frame.to_csv(path, index=False)


def test_actions_up_to_t_ignore_every_later_row(tmp_path):
    hours, t = 420, 400  # past the 384 h cold start: the learned forecaster is in play
    clean = write_dataset(tmp_path / "clean", hours=hours, n_buildings=2, seed=3)
    poisoned = write_dataset(tmp_path / "poisoned", hours=hours, n_buildings=2, seed=3)
    _poison_after(poisoned, t)
    a = run(read_dataset(clean), CityLearnMPC()).request_kwh
    b = run(read_dataset(poisoned), CityLearnMPC()).request_kwh
    assert np.array_equal(a[:, : t + 1], b[:, : t + 1])
    assert not np.allclose(a[:, t + 1 :], b[:, t + 1 :])  # the poison did reach the data


def test_issued_price_forecast_takes_the_latest_prediction():
    t = 30
    price = np.arange(t + 1.0)[None, :]
    predicted = np.stack([price + 6, price + 12, price + 24], axis=2)  # perfect predictions
    out = issued_price_forecast(price, predicted, 24)
    assert out[0] == pytest.approx(np.arange(t, t + 24.0))
    # at t = 2 nothing was issued yet for t+5 (6 h rows start at 0 -> hour 6): back to t
    early = issued_price_forecast(price[:, :3], predicted[:, :3], 8)
    assert early[0] == pytest.approx([2, 2, 2, 2, 6, 7, 8, 2])


def test_bound_lp_is_below_mpc_and_rule_and_the_cap_holds(tmp_path):
    root = write_dataset(tmp_path / "d", hours=96, n_buildings=2, seed=5)
    ds = read_dataset(root)
    rule = run(ds, SelfConsumptionRule()).kpis
    mpc = run(ds, CityLearnMPC()).kpis
    bound = run(ds, PerfectForesightBound(ds)).kpis
    capped = run(ds, PerfectForesightBound(ds, peak_cap=True)).kpis
    # the LP's own optimum is a lower bound on every controller (hull sampling aside)
    assert bound["lp_score_2022"] <= mpc["score_2022"] + 1e-3
    assert bound["lp_score_2022"] <= rule["score_2022"] + 1e-3
    assert mpc["score_2022"] < 1.0
    assert capped["lp_peak_import_kw"] <= capped["peak_import_kw_no_battery"] + 1e-3


def test_the_hour_sent_never_lifts_the_district_import_above_the_cap(tmp_path):
    root = write_dataset(tmp_path / "d", hours=24, n_buildings=3, seed=2)
    ds = read_dataset(root)
    mpc = CityLearnMPC()
    mpc.reset(site_of(ds))
    mpc._peak0 = 10.0
    net = np.array([[4.0], [4.0], [1.0]])
    obs = Observation(0, net, np.zeros_like(net), net, np.zeros((3, 1, 3)), net,
                      np.zeros((3, 1, 16)), net, np.zeros(3), np.full(3, 6.4))
    # 9 kWh of load + 4 kWh of charging, and the empty third battery delivers nothing of its
    # planned 1 kWh: 13 > 10, so charging is cut by 3 of its 4 kWh
    request = mpc._hold_cap(np.array([3.0, 1.0, -1.0]), obs)
    assert request[:2] == pytest.approx([0.75, 0.25])
    assert (net[:, 0] + np.clip(request, 0, None)).sum() == pytest.approx(10.0)


def test_oracle_mpc_forecasts_the_realised_rows_and_sits_between_bound_and_no_battery(tmp_path):
    series = np.arange(10.0).reshape(2, 5)
    rows = RealisedRows(series, horizon=3)
    assert rows.forecast(series[:, :2]) == pytest.approx(series[:, 2:5])
    assert rows.forecast(series[:, :4])[:, -1] == pytest.approx(series[:, 4])  # past the end
    ds = read_dataset(write_dataset(tmp_path / "d", hours=72, n_buildings=2, seed=4))
    oracle = run(ds, OracleMPC(ds)).kpis
    bound = run(ds, PerfectForesightBound(ds)).kpis
    # the whole-episode LP bounds every controller, the oracle included
    assert bound["lp_score_2022"] <= oracle["score_2022"] + 1e-3
    assert oracle["score_2022"] < 1.0
