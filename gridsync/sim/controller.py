"""The controller interface every dispatcher implements: observe, then return setpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from gridsync.model.assets import Fleet
from gridsync.model.inverter import InverterConfig
from gridsync.sim.telemetry import Telemetry


@dataclass
class Setpoints:
    """Requested power per asset for one step (kW, load convention).

    ``pv_curtail_kw`` is how much of each PV system's available power to spill (>= 0).
    The twin clips every request to what the asset can physically do. ``inverter``: the
    voltage function every PV inverter runs (IEEE 1547 mode settings); None keeps the
    scenario's ``[fleet.pv.inverter]``. ``pv_kvar``/``battery_kvar``: reactive power each PV
    or battery inverter injects (kvar, generator convention: < 0 absorbs), held inside its
    kVA rating by the twin with active-power priority; None leaves the inverters to their mode.
    ``tap_pos``: the position commanded to a dispatch-controlled OLTC (``grid.oltc.control =
    "dispatch"``); None holds it.
    """

    battery_kw: np.ndarray
    ev_kw: np.ndarray
    deferrable_kw: np.ndarray
    thermal_kw: np.ndarray
    pv_curtail_kw: np.ndarray
    inverter: InverterConfig | None = None
    pv_kvar: np.ndarray | None = None
    battery_kvar: np.ndarray | None = None
    tap_pos: int | None = None

    @classmethod
    def zeros(cls, fleet: Fleet) -> Setpoints:
        return cls(
            battery_kw=np.zeros(len(fleet.battery)),
            ev_kw=np.zeros(len(fleet.ev)),
            deferrable_kw=np.zeros(len(fleet.deferrable)),
            thermal_kw=np.zeros(len(fleet.thermal)),
            pv_curtail_kw=np.zeros(len(fleet.pv)),
        )


@dataclass
class Observation:
    """Everything a controller may know when it decides step ``step`` (index into
    ``Scenario.index``), and nothing more.

    - ``telemetry``: the newest measured interval (t-1, or earlier with a telemetry latency):
      per-bus base load, PV per system, outdoor temperature, voltages, loadings, feeder power.
      This step's load, PV and weather are not known yet; predicting them is the controller's
      job (a forecaster issued before t, e.g. ``sim.forecasts.nowcast``).
    - Asset states as the devices report them at the start of the step: battery energy, which
      EV session is plugged in and what it has received, appliance progress, indoor
      temperatures and the heat pumps' season mode (chosen from past outdoor temperatures).
    - EV sessions only as declared at plug-in: ``ev_departure_step`` and
      ``ev_energy_need_kwh`` per charger (-1 and 0 when unplugged).
    - The published tariff of this step and the day-ahead carbon signal for it (issued the
      day before, ``sim.forecasts.carbon_day_ahead``).
    """

    step: int
    time: pd.Timestamp
    dt_h: float
    battery_energy_kwh: np.ndarray
    ev_active_session: np.ndarray
    ev_delivered_kwh: np.ndarray
    deferrable_done_kwh: np.ndarray
    thermal_temp_c: np.ndarray
    hvac_mode: float
    import_price_eur_per_kwh: float
    export_price_eur_per_kwh: float
    carbon_g_per_kwh: float
    telemetry: Telemetry
    ev_departure_step: np.ndarray
    ev_energy_need_kwh: np.ndarray

    @property
    def hour_of_day(self) -> float:
        t = self.time
        return t.hour + t.minute / 60 + t.second / 3600

    @property
    def last_vm_pu(self) -> np.ndarray | None:
        return self.telemetry.vm_pu

    @property
    def last_branch_loading_pct(self) -> np.ndarray | None:
        return self.telemetry.branch_loading_pct

    @property
    def last_feeder_kw(self) -> float | None:
        return self.telemetry.feeder_kw


def declared_ev(fleet: Fleet, active_session: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Declared departure step and energy need per charger for the plugged sessions."""
    s = fleet.ev.sessions
    plugged = active_session >= 0
    if len(s) == 0:
        return np.full(len(active_session), -1, dtype=np.int64), np.zeros(len(active_session))
    sess = np.where(plugged, active_session, 0)
    departure = np.where(plugged, s.departure_step[sess], -1)
    need = np.where(plugged, s.energy_need_kwh[sess], 0.0)
    return departure.astype(np.int64), need.astype(float)


def observe(
    scenario,
    step: int,
    states: dict,
    telemetry: Telemetry,
    active_session: np.ndarray | None = None,
) -> Observation:
    """The observation at ``step`` from device-reported ``states`` (keys ``battery_energy_kwh``,
    ``ev_delivered_kwh``, ``deferrable_done_kwh``, ``thermal_temp_c``), received ``telemetry``
    and the session plugged into each charger (``active_session``, what the chargers report;
    default: the declared sessions). EV sessions are described as declared
    (``scenario.fleet``). Reads no scenario series at or after ``step`` except the tariff."""
    from gridsync.sim.forecasts import carbon_day_ahead

    active = scenario.fleet.ev.active_session(step) if active_session is None else active_session
    departure, need = declared_ev(scenario.fleet, active)
    return Observation(
        step=step,
        time=scenario.index[step],
        dt_h=scenario.dt_h,
        battery_energy_kwh=np.asarray(states["battery_energy_kwh"], float),
        ev_active_session=active,
        ev_delivered_kwh=np.asarray(states["ev_delivered_kwh"], float),
        deferrable_done_kwh=np.asarray(states["deferrable_done_kwh"], float),
        thermal_temp_c=np.asarray(states["thermal_temp_c"], float),
        hvac_mode=float(scenario.hvac_mode[step]),
        import_price_eur_per_kwh=float(scenario.tariff.import_eur_per_kwh[step]),
        export_price_eur_per_kwh=float(scenario.tariff.export_eur_per_kwh[step]),
        carbon_g_per_kwh=float(carbon_day_ahead(scenario, step, 1)[0]),
        telemetry=telemetry,
        ev_departure_step=departure,
        ev_energy_need_kwh=need,
    )


@runtime_checkable
class Controller(Protocol):
    """A dispatcher. ``reset`` is called once per run with the scenario, ``act`` every step."""

    name: str

    def reset(self, scenario) -> None: ...

    def act(self, obs: Observation) -> Setpoints: ...
