"""Tiny hand-solvable dispatch cases: a 3-bus LV feeder and fleets built asset by asset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridsync.model.assets import (
    BatteryFleet,
    DeferrableFleet,
    EVFleet,
    EVSessions,
    Fleet,
    PVFleet,
    ThermalFleet,
)
from gridsync.model.scenario_config import ScenarioConfig
from gridsync.model.tariff import Tariff
from gridsync.sim.scenario import Scenario


def _ints(n: int = 0) -> np.ndarray:
    return np.zeros(n, dtype=int)


def _floats(n: int = 0) -> np.ndarray:
    return np.zeros(n)


def empty_fleet() -> Fleet:
    return Fleet(
        pv=PVFleet(_ints(), _floats(), _floats(), _floats()),
        battery=BatteryFleet(_ints(), *[_floats()] * 8),
        ev=EVFleet(
            _ints(),
            _floats(),
            _floats(),
            np.zeros(0, bool),
            EVSessions(_ints(), _ints(), _ints(), _floats(), _floats(), _floats()),
        ),
        deferrable=DeferrableFleet(_ints(), *[_floats()] * 4),
        thermal=ThermalFleet(_ints(), *[_floats()] * 7),
    )


def battery(bus=2, capacity_kwh=10.0, power_kw=5.0, eta=1.0, soc0=0.0) -> BatteryFleet:
    one = np.ones(1)
    return BatteryFleet(
        bus=np.array([bus]),
        capacity_kwh=one * capacity_kwh,
        power_kw=one * power_kw,
        efficiency_charge=one * eta,
        efficiency_discharge=one * eta,
        soc_min_frac=one * 0.0,
        soc_max_frac=one * 1.0,
        soc_initial_frac=one * soc0,
        degradation_eur_per_kwh=one * 0.0,
    )


def ev(bus=2, power_kw=7.0, eta=1.0, arrival=0, departure=6, need_kwh=10.0, v2g_floor=0.0):
    return EVFleet(
        bus=np.array([bus]),
        max_power_kw=np.array([power_kw]),
        efficiency=np.array([eta]),
        v2g=np.array([v2g_floor > 0]),
        sessions=EVSessions(
            charger=np.array([0]),
            arrival_step=np.array([arrival]),
            departure_step=np.array([departure]),
            energy_need_kwh=np.array([need_kwh]),
            headroom_kwh=np.array([60.0]),
            v2g_floor_kwh=np.array([v2g_floor]),
        ),
    )


def tiny_feeder(line_max_i_ka: float = 0.2):
    """ext_grid (0.4 kV, 1.0 p.u.) - bus 1 - bus 2 by two short cables; loads at buses 1, 2."""
    import pandapower as pp

    from gridsync.model.network import Feeder

    net = pp.create_empty_network()
    b = [pp.create_bus(net, vn_kv=0.4, name=f"bus{i}") for i in range(3)]
    pp.create_ext_grid(net, b[0], vm_pu=1.0)
    for i in range(2):
        pp.create_line_from_parameters(
            net,
            b[i],
            b[i + 1],
            length_km=0.1,
            r_ohm_per_km=0.206,
            x_ohm_per_km=0.08,
            c_nf_per_km=0.0,
            max_i_ka=line_max_i_ka,
            name=f"cable{i}",
        )
    for i in (1, 2):
        pp.create_load(net, b[i], p_mw=0.005, q_mvar=0.0)
    return Feeder(
        name="tiny",
        net=net,
        bus_ids=np.array(b),
        bus_names=np.array([f"bus{i}" for i in range(3)]),
        vn_kv=np.full(3, 0.4),
        slack_pos=0,
        load_bus_pos=np.array([1, 2]),
        load_profile=np.array(["", ""], dtype=object),
        load_p_kw=np.array([5.0, 5.0]),
        load_q_kvar=np.zeros(2),
        bus_xy=np.full((3, 2), np.nan),
    )


def tiny_scenario(
    fleet: Fleet,
    import_eur_per_kwh,
    base_kw_bus2: float = 5.0,
    dt_h: float = 1.0,
    line_max_i_ka: float = 0.2,
    demand_eur_per_kw_month: float = 0.0,
    pv_per_kwp=None,
    n_steps: int | None = None,
    export_eur_per_kwh: float = 0.0,
) -> Scenario:
    """A scenario on ``tiny_feeder`` starting at step 0; prices cover steps and look-ahead."""
    prices = np.asarray(import_eur_per_kwh, dtype=float)
    T = len(prices)
    index = pd.date_range("2016-06-06", periods=T, freq=pd.Timedelta(hours=dt_h))
    base = np.zeros((T, 3))
    base[:, 2] = base_kw_bus2
    per_kwp = np.zeros((T, 1)) if pv_per_kwp is None else np.asarray(pv_per_kwp)[:, None]
    cfg = ScenarioConfig(
        objective={"carbon_price_eur_per_kg": 0.0},
        time={"resolution_s": int(dt_h * 3600), "days": 1},
    )
    return Scenario(
        config=cfg,
        feeder=tiny_feeder(line_max_i_ka),
        index=index,
        start_step=0,
        n_steps=T if n_steps is None else n_steps,
        dt_h=dt_h,
        base_load_kw=base,
        base_load_kvar=np.zeros((T, 3)),
        pv_per_kwp=per_kwp,
        pv_orientation=np.zeros(len(fleet.pv), dtype=int),
        outdoor_temp_c=np.full(T, 20.0),
        hvac_mode=np.ones(T),
        ghi_w_m2=np.zeros(T),
        tariff=Tariff(prices, np.full(T, export_eur_per_kwh), demand_eur_per_kw_month),
        carbon_g_per_kwh=np.zeros(T),
        fleet=fleet,
    )


@pytest.fixture
def make_tiny():
    return tiny_scenario


def steady_pv_scenario(feeder, fleet: Fleet, pv_frac: float, T: int, grid=None) -> Scenario:
    """``T`` hourly steps from 2016-06-06 10:00 with no base load, every PV at ``pv_frac`` of
    its peak, a flat 0.30/0.10 EUR/kWh tariff and carbon unpriced; ``grid`` the scenario's
    ``[grid]`` table (e.g. an OLTC)."""
    cfg = ScenarioConfig(
        objective={"carbon_price_eur_per_kg": 0.0},
        time={"resolution_s": 3600, "days": 1},
        **({"grid": grid} if grid is not None else {}),
    )
    n_bus, n_pv = len(feeder.bus_ids), len(fleet.pv.bus)
    return Scenario(
        config=cfg,
        feeder=feeder,
        index=pd.date_range("2016-06-06 10:00", periods=T, freq="1h"),
        start_step=0,
        n_steps=T,
        dt_h=1.0,
        base_load_kw=np.zeros((T, n_bus)),
        base_load_kvar=np.zeros((T, n_bus)),
        pv_per_kwp=np.full((T, n_pv), pv_frac),
        pv_orientation=np.zeros(n_pv, dtype=int),
        outdoor_temp_c=np.full(T, 20.0),
        hvac_mode=np.ones(T),
        ghi_w_m2=np.zeros(T),
        tariff=Tariff(np.full(T, 0.3), np.full(T, 0.1), 0.0),
        carbon_g_per_kwh=np.zeros(T),
        fleet=fleet,
    )
