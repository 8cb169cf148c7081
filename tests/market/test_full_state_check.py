"""The market's network check sees every asset on the bus, not only inflexible load and PV.

Hand-solved case: a 0.4 kV slack bus feeding one customer bus through a purely resistive line
(R = 0.1 ohm, X ~ 0). With a purely active load P the voltages stay in phase and the receiving-end
line voltage solves V1 * (V0 - V1) / R = P, i.e. V1 = (V0 + sqrt(V0^2 - 4 R P)) / 2.

* base load 10 kW + heat pump and EV 50 kW = 60 kW: V1 = 384.39 V = 0.9610 pu (in band);
* a battery bought 20 kW more from a neighbour: 80 kW, V1 = 378.89 V = 0.9472 pu < 0.95,
  so the trade must be rejected;
* without the heat pump and EV (what the old check saw) the same trade gives 30 kW,
  V1 = 392.30 V = 0.9808 pu and would have passed;
* a 5 kW battery trade (65 kW, V1 = 383.03 V = 0.9576 pu) is accepted.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gridsync.market.network import FLEX, Limits, enforce_limits
from gridsync.market.orders import BUY, SELL, OrderBook

NET = 0
V0_V, R_OHM = 400.0, 0.1


def _v1_pu(p_kw: float) -> float:
    p_w = p_kw * 1e3
    return (V0_V + math.sqrt(V0_V**2 - 4 * R_OHM * p_w)) / 2 / V0_V


@pytest.fixture(scope="module")
def two_bus():
    import pandapower as pp

    from gridsync.grid.powerflow import build_powerflow_model
    from gridsync.model.network import feeder_from_net

    net = pp.create_empty_network()
    b0 = pp.create_bus(net, vn_kv=0.4)
    b1 = pp.create_bus(net, vn_kv=0.4)
    pp.create_ext_grid(net, b0, vm_pu=1.0)
    pp.create_line_from_parameters(
        net,
        b0,
        b1,
        length_km=1.0,
        r_ohm_per_km=R_OHM,
        x_ohm_per_km=1e-6,  # pandapower needs X > 0; negligible here
        c_nf_per_km=0.0,
        max_i_ka=1.0,
    )
    pp.create_load(net, b1, p_mw=0.0)
    return build_powerflow_model(feeder_from_net(net, "two-bus"))


def test_power_flow_matches_the_hand_solution(two_bus):
    for p_kw in (30.0, 60.0, 65.0, 80.0):
        res, _ = two_bus.solve(np.array([0.0, p_kw]), np.zeros(2))
        assert res.vm_pu[1] == pytest.approx(_v1_pu(p_kw), abs=1e-6)
    assert _v1_pu(60.0) > 0.95 > _v1_pu(80.0)
    assert _v1_pu(30.0) > 0.95 and _v1_pu(65.0) > 0.95


def _book(charge_kwh: float) -> OrderBook:
    # participant 0 (bus 1) charges its battery from participant 1's PV surplus (also bus 1:
    # the PV is already in the reference, the trade only re-labels it)
    return OrderBook.build(
        participant=[0, 1],
        side=[BUY, SELL],
        energy_kwh=[charge_kwh, charge_kwh],
        price_eur_per_kwh=[0.20, 0.10],
        interval=[0, 0],
        kind=[FLEX, NET],
    )


def test_trade_pushing_the_bus_under_the_band_is_rejected_only_with_all_assets(two_bus):
    dt_h, limits = 0.25, Limits()
    bus_of = np.array([1, 1])
    base_kw, assets_kw = 10.0, 50.0
    full = np.array([0.0, base_kw + assets_kw])
    q = np.zeros(2)
    _, res, rejected = enforce_limits(two_bus, _book(20.0 * dt_h), full, q, bus_of, dt_h, limits)
    assert [r.participant for r in rejected] == [0]
    assert rejected[0].reason.startswith("under-voltage at bus 1")
    # the reason carries the voltage the trade would have caused, as solved by hand
    assert float(rejected[0].reason.split(": ")[1].split()[0]) == pytest.approx(
        _v1_pu(80.0), abs=1e-4
    )
    assert res.traded_kwh.sum() == 0
    # The check that left out the heat pump and the EV would have accepted it.
    blind = np.array([0.0, base_kw])
    _, res, rejected = enforce_limits(two_bus, _book(20.0 * dt_h), blind, q, bus_of, dt_h, limits)
    assert rejected == [] and res.traded_kwh.sum() == pytest.approx(5.0)
    # A smaller trade keeps the bus in band with every asset counted and goes through.
    _, res, rejected = enforce_limits(two_bus, _book(5.0 * dt_h), full, q, bus_of, dt_h, limits)
    assert rejected == [] and res.traded_kwh.sum() == pytest.approx(1.25)
