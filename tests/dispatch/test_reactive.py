"""Inverter reactive power in the dispatch LP, checked against hand-computed expectations."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gridsync.dispatch.mpc import MPCConfig, MPCController
from gridsync.dispatch.reactive import BATTERY_SIDES, PV_SIDES, polygon_facets
from gridsync.model.assets import PVFleet
from gridsync.sim.forecasts import PerfectForecaster
from gridsync.sim.scenario import Scenario
from gridsync.sim.twin import SteppedTwin
from tests.dispatch.conftest import empty_fleet, steady_pv_scenario

R_OHM, X_OHM = 0.1, 0.1  # the one line of the two-bus feeder
Z_BASE_OHM = 0.4**2 / 1.0  # 0.4 kV on the 1 MVA base of the power-flow model
V_SLACK_PU = 1.02
# the plan's own setpoints, uncorrected (no realtime rebalance, no AC correction)
LP_ONLY = MPCConfig(
    horizon_steps=3,
    fine_steps=3,
    resolve_every=1,
    realtime=False,
    ac_correct=False,
    error_decay_per_step=0.0,
)


@pytest.mark.parametrize(
    ("n_sides", "half"), [(PV_SIDES, True), (BATTERY_SIDES, False), (PV_SIDES, False)]
)
@pytest.mark.parametrize("absorbing", [False, True])
def test_kva_polygon_lies_inside_the_circle_and_touches_it(n_sides, half, absorbing):
    """Every (P, Q) the facets allow has P^2 + Q^2 <= S^2 (inner approximation), the
    polygon's vertices are on the circle, and it covers most of the allowed half/quarter."""
    cos, sin, dist = polygon_facets(n_sides, half, absorbing)
    rng = np.random.default_rng(0)
    pq = rng.uniform(-1.2, 1.2, (200_000, 2))
    inside = np.all(pq @ np.c_[cos, sin].T <= dist + 1e-12, axis=1)
    if half:
        inside &= pq[:, 0] >= 0
    if absorbing:
        inside &= pq[:, 1] <= 0
    assert np.hypot(pq[inside, 0], pq[inside, 1]).max() <= 1.0 + 1e-12
    # vertices at multiples of 2 pi / n satisfy every facet, with equality on two
    ang = 2 * np.pi * np.arange(n_sides) / n_sides
    vert = np.c_[np.cos(ang), np.sin(ang)]
    slack = dist - vert @ np.c_[cos, sin].T
    keep = np.ones(n_sides, bool)
    if half:
        keep &= vert[:, 0] >= -1e-12
    if absorbing:
        keep &= vert[:, 1] <= 1e-12
    assert np.all(slack[keep] >= -1e-12)
    assert np.all((np.abs(slack[keep]) < 1e-12).sum(axis=1) >= 1)
    # area: the inscribed polygon covers n sin(2 pi / n) / (2 pi) of the disk
    disk = np.hypot(pq[:, 0], pq[:, 1]) <= 1.0
    if half:
        disk &= pq[:, 0] >= 0
    if absorbing:
        disk &= pq[:, 1] <= 0
    ratio = inside.sum() / disk.sum()
    assert ratio == pytest.approx(n_sides * np.sin(2 * np.pi / n_sides) / (2 * np.pi), abs=0.01)


def two_bus_feeder():
    """ext_grid at V_SLACK_PU - one line (R_OHM + j X_OHM) - bus 1."""
    import pandapower as pp

    from gridsync.model.network import Feeder

    net = pp.create_empty_network()
    b = [pp.create_bus(net, vn_kv=0.4, name=f"bus{i}") for i in range(2)]
    pp.create_ext_grid(net, b[0], vm_pu=V_SLACK_PU)
    pp.create_line_from_parameters(
        net, b[0], b[1], length_km=1.0, r_ohm_per_km=R_OHM, x_ohm_per_km=X_OHM,
        c_nf_per_km=0.0, max_i_ka=0.4, name="line",
    )  # fmt: skip
    pp.create_load(net, b[1], p_mw=0.0, q_mvar=0.0)
    return Feeder(
        name="two-bus",
        net=net,
        bus_ids=np.array(b),
        bus_names=np.array(["bus0", "bus1"]),
        vn_kv=np.full(2, 0.4),
        slack_pos=0,
        load_bus_pos=np.array([1]),
        load_profile=np.array([""], dtype=object),
        load_p_kw=np.zeros(1),
        load_q_kvar=np.zeros(1),
        bus_xy=np.full((2, 2), np.nan),
    )


def two_bus_scenario(pv_kw: float, peak_kw: float, T: int = 3) -> Scenario:
    fleet = dataclasses.replace(
        empty_fleet(), pv=PVFleet(np.array([1]), np.array([peak_kw]), np.zeros(1), np.zeros(1))
    )
    return steady_pv_scenario(two_bus_feeder(), fleet, pv_kw / peak_kw, T)


def test_two_bus_dv_dq_matches_the_line_reactance():
    """Linearised voltage drop: dV/dQ_consumption = -X / (V Z_base) per MVAr, so per kvar
    -X_OHM / Z_BASE_OHM / 1000 / V (and dV/dP with R); the exact AC derivative agrees."""
    s = two_bus_scenario(30.0, 50.0)
    pf = s.powerflow()
    res, _ = pf.solve(np.array([0.0, -30.0]), np.zeros(2))
    v1 = float(res.vm_pu[1])
    dv, _ = pf.sensitivity(np.array([0.0, -30.0]), np.zeros(2), np.array([1]), reactive=True)
    assert dv[1, 0] == pytest.approx(-R_OHM / Z_BASE_OHM / 1000 / v1, rel=0.05)
    assert dv[1, 1] == pytest.approx(-X_OHM / Z_BASE_OHM / 1000 / v1, rel=0.05)


def test_two_bus_lp_absorbs_the_reactive_power_the_over_voltage_needs_instead_of_curtailing():
    """60 kW of PV at the end of the line lifts bus 1 above 1.05 p.u. By hand, at unity
    power factor V1 ~ 1.02 + R P / (Z_base V) ~ 1.056; the plan's voltage limit is 1.05 minus
    its 0.003 p.u. safety, so the inverter must absorb (V1 - 1.047) / (X / (Z_base V)) kvar.
    Exporting is paid, so curtailing would cost money: the LP uses Q, curtails nothing, and
    the twin, running that Q, sees bus 1 inside the band."""
    s = two_bus_scenario(60.0, 75.0)  # kVA 75: 45 kvar beside 60 kW
    twin = SteppedTwin(s)
    pf = s.powerflow()
    res0, _ = pf.solve(np.array([0.0, -60.0]), np.zeros(2))
    v_unity = float(res0.vm_pu[1])
    assert v_unity > 1.05  # the case is an over-voltage
    ctrl = MPCController(PerfectForecaster(), LP_ONLY)
    ctrl.reset(s)
    obs = twin.observe()
    sp = ctrl.act(obs)
    plan = ctrl.last_plan
    need_kvar = (v_unity - (1.05 - 0.003)) / (X_OHM / Z_BASE_OHM / 1000 / v_unity)
    assert plan.pv_curtail_kw[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert -plan.pv_kvar[0, 0] == pytest.approx(need_kvar, rel=0.15)
    rec = twin.advance(obs, sp)
    assert rec.curtailed_kw.sum() == pytest.approx(0.0, abs=1e-6)
    assert rec.vm_pu[1] <= 1.05 + 1e-4
    assert rec.pv_kvar[0] == pytest.approx(sp.pv_kvar[0])


def test_mpc_p_leaves_reactive_power_alone_and_curtails():
    """The same case for ``mpc-p``: no Q dispatched, so the over-voltage is curtailed away."""
    from gridsync.sim.registry import make_controller

    s = two_bus_scenario(60.0, 75.0)
    twin = SteppedTwin(s)
    ctrl = make_controller("mpc-p")
    assert ctrl.config == MPCConfig(reactive=False, taps=False)
    ctrl = MPCController(PerfectForecaster(), dataclasses.replace(LP_ONLY, reactive=False))
    ctrl.reset(s)
    obs = twin.observe()
    sp = ctrl.act(obs)
    assert sp.pv_kvar is None and sp.tap_pos is None
    assert sp.pv_curtail_kw[0] > 1.0
