"""VPP flexibility: hand-solved EV session, heat-pump band from the RC physics, battery limits."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from gridsync.market.vpp import (
    BalancingPrices,
    VppConfig,
    ev_flexibility_kw,
    run_vpp,
    thermal_band_kw,
    thermal_flexibility_kw,
)
from gridsync.model.assets import EVFleet, EVSessions
from gridsync.model.physics import thermal_step


def _ev_scenario(headroom_kwh):
    sessions = EVSessions(
        charger=np.array([0]),
        arrival_step=np.array([0]),
        departure_step=np.array([8]),
        energy_need_kwh=np.array([5.0]),
        headroom_kwh=np.array([headroom_kwh]),
        v2g_floor_kwh=np.array([0.0]),
    )
    ev = EVFleet(
        bus=np.array([0]),
        max_power_kw=np.array([10.0]),
        efficiency=np.array([1.0]),
        v2g=np.array([False]),
        sessions=sessions,
    )
    return SimpleNamespace(fleet=SimpleNamespace(ev=ev), start_step=0, end_step=10, dt_h=0.25)


def test_ev_flexibility_hand_solved():
    # 10 kW charger, 5 kWh need, plugged steps 0..7 of 15 min: the uncontrolled baseline charges
    # 2.5 kWh in steps 0 and 1. Pausing is possible while the rest still fits before departure;
    # afterwards it can take (headroom - 5) kWh more, i.e. 1 kWh -> 4 kW for one step.
    up, down = ev_flexibility_kw(_ev_scenario(headroom_kwh=6.0))
    np.testing.assert_allclose(up, [10, 10, 0, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(down, [0, 0, 4, 4, 4, 4, 4, 4, 0, 0])


def test_thermal_band_matches_rc_physics(scenario_1day):
    s = scenario_1day
    th = s.fleet.thermal
    base, lo, hi = thermal_band_kw(s)
    up, down = thermal_flexibility_kw(s)
    np.testing.assert_allclose(up, (base - lo).sum(1))
    assert np.all(lo <= base + 1e-12) and np.all(base <= hi + 1e-12)
    t_set = 0.5 * (th.comfort_min_c + th.comfort_max_c)
    for k in (10, 60):
        step = s.start_step + k
        after = {
            name: thermal_step(th, t_set, p[k], s.outdoor_temp_c[step], s.dt_h, s.hvac_mode[step])[
                1
            ]
            for name, p in (("base", base), ("lo", lo), ("hi", hi))
        }
        unclipped = (base[k] > 0) & (base[k] < th.max_power_kw)
        np.testing.assert_allclose(after["base"][unclipped], t_set[unclipped], atol=1e-9)
        for name in ("lo", "hi"):  # both ends of the offered range stay in the comfort band
            assert np.all(after[name] >= th.comfort_min_c - 1e-9)
            assert np.all(after[name] <= th.comfort_max_c + 1e-9)


def test_vpp_accepts_only_cleared_bids_and_keeps_batteries_in_bounds(scenario_1day):
    s = scenario_1day
    n = s.n_steps
    direction = np.where(np.arange(n) % 2 == 0, 1, -1)
    # Up prices alternate between worthless and lucrative, down prices always cheap.
    price = np.where(direction > 0, np.where(np.arange(n) % 4 == 0, 0.0, 2.0), 0.01)
    res = run_vpp(s, BalancingPrices(direction, price), VppConfig(recovery_steps=0))
    up_steps = np.flatnonzero(direction > 0)
    assert res.accepted_up_kw[up_steps[price[up_steps] == 0.0]].sum() == 0
    assert res.accepted_up_kw[:, 0].sum() > 0 and res.accepted_down_kw[:, 0].sum() > 0
    assert np.all(res.accepted_up_kw[direction < 0] == 0)
    b = s.fleet.battery
    assert res.up_kw[:, 0].max() <= b.power_kw.sum() + 1e-9
    # battery energy: up-deliveries can never exceed what was stored plus what down put in
    stored0 = (b.capacity_kwh * b.soc_initial_frac - b.energy_min_kwh) @ b.efficiency_discharge
    assert (
        res.accepted_up_kw[:, 0].sum() * s.dt_h
        <= stored0 + res.accepted_down_kw[:, 0].sum() * s.dt_h + 1e-6
    )
    summary = res.summary(s.dt_h)
    assert 0 < summary["acceptance_rate"] < 1
    assert summary["revenue_eur"] == pytest.approx(res.revenue_eur.sum())


def test_vpp_rejects_mismatched_price_series(scenario_1day):
    with pytest.raises(ValueError, match="balancing prices"):
        run_vpp(scenario_1day, BalancingPrices(np.ones(3), np.ones(3)))
