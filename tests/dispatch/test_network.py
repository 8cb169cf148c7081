"""Exact AC sensitivities (one Jacobian factorisation) against finite differences of the AC
power flow on the default SimBench feeder."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.dispatch.formulation import flexible_buses
from gridsync.dispatch.horizon import FleetState, horizon_from_scenario
from gridsync.dispatch.network import NetworkLimits
from gridsync.sim.forecasts import PerfectForecaster


@pytest.fixture(scope="module")
def operating_point(scenario_1day):
    s = scenario_1day
    fleet = s.fleet
    state = FleetState(
        battery_energy_kwh=fleet.battery.capacity_kwh * fleet.battery.soc_initial_frac,
        ev_delivered_kwh=np.zeros(len(fleet.ev.sessions)),
        deferrable_done_kwh=np.zeros(len(fleet.deferrable)),
        thermal_temp_c=fleet.thermal.initial_temp_c.astype(float),
    )
    step = s.start_step
    hd = horizon_from_scenario(s, step, 96, state, PerfectForecaster().forecast(s, step, 96), True)
    nl = NetworkLimits(s.powerflow(), flexible_buses(fleet), 0.9, 1.1, 100.0)
    # every flexible bus draws 3 kW: a loaded operating point, not the no-load one
    z = np.full((hd.horizon, len(nl.flex_bus)), 3.0)
    res = nl.check(hd, z)
    return nl, hd, z, res


def central_differences(nl, hd, z, t, h_kw):
    """(vm, loading) derivatives by +-h_kw at each flexible bus, batched AC power flow."""
    p0 = nl.bus_kw(hd, z)[t]
    nf = len(nl.flex_bus)
    p = np.tile(p0, (2 * nf, 1))
    p[np.arange(nf), nl.flex_bus] += h_kw
    p[np.arange(nf, 2 * nf), nl.flex_bus] -= h_kw
    r = nl.pf.solve_batch(p, np.tile(hd.base_kvar[t], (2 * nf, 1)), tol_pu=1e-13)
    dv = (r.vm_pu[:nf] - r.vm_pu[nf:]).T / (2 * h_kw)
    dl = (r.branch_loading_pct[:nf] - r.branch_loading_pct[nf:]).T / (2 * h_kw)
    return dv, dl


def test_sensitivities_equal_finite_differences_of_the_ac_power_flow(operating_point):
    nl, hd, z, res = operating_point
    sens = nl.sensitivity(hd, z, res)
    t = sens.at_step - hd.step0
    assert t == int(np.argmax(np.max(np.abs(res.vm_pu - 1.0), axis=1)))
    dv, dl = central_differences(nl, hd, z, t, h_kw=0.05)  # truncation error ~h^2: 7e-8 %/kW here
    assert sens.dv_dz.shape == (hd.n_bus, len(nl.flex_bus))
    assert np.abs(dv).max() > 1e-5  # the voltages do respond
    scale_v = np.abs(dv).max()
    assert np.abs(sens.dv_dz - dv).max() < 1e-6 * scale_v
    # loading is |I|, smooth only where current flows: compare on branches above 5 %
    loaded = res.branch_loading_pct[t] > 5.0
    assert loaded.sum() > 10
    scale_l = np.abs(dl[loaded]).max()
    assert np.abs(sens.dl_dz[loaded] - dl[loaded]).max() < 1e-6 * scale_l


def test_previous_one_kw_forward_differences_agree_to_their_truncation_error(operating_point):
    nl, hd, z, res = operating_point
    sens = nl.sensitivity(hd, z, res)
    t = sens.at_step - hd.step0
    p0 = nl.bus_kw(hd, z)[t]
    nf = len(nl.flex_bus)
    p = np.tile(p0, (nf + 1, 1))
    p[np.arange(1, nf + 1), nl.flex_bus] += 1.0
    r = nl.pf.solve_batch(p, np.tile(hd.base_kvar[t], (nf + 1, 1)))
    dv_old = (r.vm_pu[1:] - r.vm_pu[0]).T
    assert np.abs(sens.dv_dz - dv_old).max() < 1e-6


def test_slack_bus_is_rejected(operating_point):
    nl, hd, z, _ = operating_point
    slack = int(np.argmax(nl.pf.ppc_of_bus == nl.pf.ref))
    with pytest.raises(ValueError, match="slack"):
        nl.pf.sensitivity(nl.bus_kw(hd, z)[0], hd.base_kvar[0], np.array([slack]))
