"""Rule-based controllers: the uncontrolled baseline and a time-of-use rule set.

They are the yardsticks every optimizer is measured against, and the rule-based fallback the
dispatch agent publishes when the optimizer cannot.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gridsync.model.inverter import VOLT_VAR_B
from gridsync.sim.controller import Observation, Setpoints
from gridsync.sim.forecasts import nowcast


def thermostat_kw(fleet, temp_c, target_c, obs: Observation, outdoor_temp_c: float) -> np.ndarray:
    """Electric power that brings each building to ``target_c`` at the end of the step if the
    outdoor temperature over it is ``outdoor_temp_c`` (an estimate: the step is not measured
    yet)."""
    a = np.exp(-obs.dt_h / (fleet.resistance_c_per_kw * fleet.capacitance_kwh_per_c))
    q_kw = ((target_c - a * temp_c) / (1.0 - a) - outdoor_temp_c) / fleet.resistance_c_per_kw
    p = obs.hvac_mode * q_kw / fleet.cop
    return np.clip(p, 0.0, fleet.max_power_kw)


def ev_finish_kw(fleet, remaining_kwh: np.ndarray, dt_h: float) -> np.ndarray:
    """Full charger power, cut on the last step to what delivers exactly the energy still
    needed (a full step would over-charge the car by up to one step's energy)."""
    return np.minimum(fleet.max_power_kw, remaining_kwh / (fleet.efficiency * dt_h))


def ev_remaining_kwh(fleet, obs: Observation) -> tuple[np.ndarray, np.ndarray]:
    """Energy still needed (kWh, per charger) and hours until the declared departure (0 when
    unplugged), from what the drivers declared at plug-in."""
    active = obs.ev_active_session
    plugged = active >= 0
    if len(fleet.sessions) == 0:
        zero = np.zeros(len(active))
        return zero, zero
    sess = np.where(plugged, active, 0)
    delivered = obs.ev_delivered_kwh[sess]
    remaining = np.where(plugged, np.maximum(obs.ev_energy_need_kwh - delivered, 0.0), 0.0)
    hours_left = np.where(plugged, np.maximum(obs.ev_departure_step - obs.step, 0) * obs.dt_h, 0.0)
    return remaining, hours_left


class _RuleBase:
    name = "rules"

    def reset(self, scenario) -> None:
        self.scenario = scenario
        self.fleet = scenario.fleet
        self.n_bus = scenario.feeder.n_bus
        fleet = self.fleet
        self.bat_per_bus = np.maximum(np.bincount(fleet.battery.bus, minlength=self.n_bus), 1)
        prices = scenario.tariff.import_eur_per_kwh[scenario.start_step : scenario.end_step]
        self.cheap_eur_per_kwh = float(prices.min())
        self.peak_eur_per_kwh = float(prices.max())

    def _bus_net_kw(self, obs: Observation) -> np.ndarray:
        """Inflexible load minus PV per bus expected this step (``forecasts.nowcast`` of the
        home meter's last reading)."""
        now = nowcast(self.scenario, obs)
        pv = np.bincount(self.fleet.pv.bus, weights=now.pv_available_kw, minlength=self.n_bus)
        return now.base_load_kw - pv

    def _outdoor_c(self, obs: Observation) -> float:
        return nowcast(self.scenario, obs).outdoor_temp_c

    def _self_consumption_kw(self, obs: Observation, allow_discharge: bool = True) -> np.ndarray:
        bat = self.fleet.battery
        share = self._bus_net_kw(obs)[bat.bus] / self.bat_per_bus[bat.bus]
        p = np.clip(-share, -bat.power_kw, bat.power_kw)
        return p if allow_discharge else np.maximum(p, 0.0)

    def _deferrable_rest_kw(self, obs: Observation) -> np.ndarray:
        d = self.fleet.deferrable
        return np.maximum(d.energy_kwh - obs.deferrable_done_kwh, 0.0) / obs.dt_h


class UncontrolledController(_RuleBase):
    """No coordination: EVs charge at full power on arrival, appliances start when allowed,
    thermostats hold the comfort band's middle and home batteries self-consume PV."""

    name = "uncontrolled"

    def act(self, obs: Observation) -> Setpoints:
        f = self.fleet
        remaining, _ = ev_remaining_kwh(f.ev, obs)
        mid = 0.5 * (f.thermal.comfort_min_c + f.thermal.comfort_max_c)
        return Setpoints(
            battery_kw=self._self_consumption_kw(obs),
            ev_kw=ev_finish_kw(f.ev, remaining, obs.dt_h),
            deferrable_kw=f.deferrable.power_kw.copy(),
            thermal_kw=thermostat_kw(f.thermal, obs.thermal_temp_c, mid, obs, self._outdoor_c(obs)),
            pv_curtail_kw=np.zeros(len(f.pv)),
        )


class VoltVarController(UncontrolledController):
    """The uncontrolled devices with every PV inverter on the IEEE 1547-2018 Category B
    default Volt-VAR curve (local control: each inverter reads its own terminal voltage)."""

    name = "volt-var"

    def reset(self, scenario) -> None:
        if scenario.three_phase is not None:
            msg = (
                "controller 'volt-var' needs the balanced twin (grid.phases = 1, --phases 1): "
                "the three-phase twin does not model inverter reactive power yet"
            )
            raise ValueError(msg)
        super().reset(scenario)

    def act(self, obs: Observation) -> Setpoints:
        return dataclasses.replace(super().act(obs), inverter=VOLT_VAR_B)


class TouController(_RuleBase):
    """Time-of-use rules: shift EVs and appliances into the cheapest hours (each with its own
    randomised start delay, as smart chargers do, to soften the rebound) unless a deadline
    forces them; top batteries up off-peak to half full, leaving room for PV, and otherwise
    self-consume; pre-heat or pre-cool in cheap hours and coast through the peak."""

    name = "tou"
    max_start_delay_h = 3.0
    battery_offpeak_target_frac = 0.5

    def reset(self, scenario) -> None:
        super().reset(scenario)
        rng = np.random.default_rng(scenario.config.seed + 1)
        self.ev_delay_h = rng.uniform(0, self.max_start_delay_h, len(self.fleet.ev))
        self.dfr_delay_h = rng.uniform(0, self.max_start_delay_h, len(self.fleet.deferrable))
        cheap = scenario.tariff.import_eur_per_kwh <= self.cheap_eur_per_kwh + 1e-9
        hours = np.asarray(scenario.index.hour + scenario.index.minute / 60)
        starts = np.flatnonzero(cheap & ~np.r_[False, cheap[:-1]])
        self.cheap_start_h = float(np.median(hours[starts])) if len(starts) else 0.0

    def act(self, obs: Observation) -> Setpoints:
        f = self.fleet
        price = obs.import_price_eur_per_kwh
        cheap = price <= self.cheap_eur_per_kwh + 1e-9
        peak = price >= self.peak_eur_per_kwh - 1e-9
        since_cheap_h = (obs.hour_of_day - self.cheap_start_h) % 24

        bat = self._self_consumption_kw(obs)
        if cheap:
            target = f.battery.capacity_kwh * self.battery_offpeak_target_frac
            topup = (target - obs.battery_energy_kwh) / (f.battery.efficiency_charge * obs.dt_h)
            bat = np.maximum(bat, np.clip(topup, 0.0, f.battery.power_kw))

        remaining, hours_left = ev_remaining_kwh(f.ev, obs)
        rate_kwh_per_h = f.ev.max_power_kw * f.ev.efficiency
        laxity_h = hours_left - remaining / rate_kwh_per_h
        must = (remaining > 0) & (laxity_h <= 2 * obs.dt_h)
        ev_go = cheap & (since_cheap_h >= self.ev_delay_h)
        ev = np.where(ev_go | must, ev_finish_kw(f.ev, remaining, obs.dt_h), 0.0)

        d = f.deferrable
        rest_h = np.maximum(d.energy_kwh - obs.deferrable_done_kwh, 0.0) / d.power_kw
        window_left_h = d.window_end_h - obs.hour_of_day
        dfr_go = cheap & (since_cheap_h >= self.dfr_delay_h)
        dfr = np.where(dfr_go | (window_left_h - rest_h <= 2 * obs.dt_h), d.power_kw, 0.0)

        th = f.thermal
        mode = obs.hvac_mode
        mid = 0.5 * (th.comfort_min_c + th.comfort_max_c)
        store = np.where(mode > 0, th.comfort_max_c - 0.5, th.comfort_min_c + 0.5)
        coast = np.where(mode > 0, th.comfort_min_c + 0.5, th.comfort_max_c - 0.5)
        target = store if cheap else coast if peak else mid
        return Setpoints(
            battery_kw=bat,
            ev_kw=ev,
            deferrable_kw=dfr,
            thermal_kw=thermostat_kw(th, obs.thermal_temp_c, target, obs, self._outdoor_c(obs)),
            pv_curtail_kw=np.zeros(len(f.pv)),
        )
