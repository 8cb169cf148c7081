"""The "smart rule" baseline: what a well-configured home energy manager runs today.

Self-consumption and peak-shaving rules as OpenEMS / EMHASS / inverter vendors ship them,
plus the German grid rules that come with them, applied to every home at once:

- Batteries self-consume (charge from the home's PV surplus, discharge to cover its import).
  When the last measured interval was congested (feeder import above ``peak_cap_frac`` of the
  transformer rating, a branch above ``loading_alert_pct`` or a bus near the lower voltage
  limit) they discharge at full power to shave the peak; near the upper limit they charge at
  full power to absorb PV.
- EVs get what the driver declared by the declared departure, spread evenly over the
  off-peak time left ("load spread"), never in the peak-price period unless the off-peak time
  left cannot deliver it, and dimmed to ``dim_kw`` (4.2 kW, the EnWG §14a floor for
  controllable devices) while the grid is congested unless that would miss the departure.
- Heat pumps pre-heat in the cheapest hours, pre-heat (pre-cool) in the ``preheat_h`` before
  a peak-price period, coast through the peak, move their target by at most
  ``recovery_c_per_h`` towards more heating (no synchronised rebound after the peak), and are
  dimmed to ``dim_kw`` under congestion.
- Appliances start on PV surplus or in the cheapest hours, or when their deadline forces.
- PV inverters are limited to ``pv_limit_frac`` (70 %) of their peak (the EEG feed-in limit
  for systems without remote control).

Every decision at step t uses only the interval t-1 as measured (home meters, inverters,
feeder voltages/loadings), the published tariff, device states and what drivers declared.
"""

from __future__ import annotations

import numpy as np

from gridsync.dispatch.rules import _RuleBase, ev_remaining_kwh, thermostat_kw
from gridsync.sim.controller import Observation, Setpoints


class SmartRuleController(_RuleBase):
    """Self-consumption + peak shaving + spread EV charging + pre-heating (see module doc)."""

    name = "smart-rule"
    peak_cap_frac = 0.85
    loading_alert_pct = 90.0
    voltage_margin_pu = 0.01
    dim_kw = 4.2
    pv_limit_frac = 0.7
    preheat_h = 2.0
    ev_margin_h = 1.0
    recovery_c_per_h = 0.5

    def reset(self, scenario) -> None:
        super().reset(scenario)
        self.limits = scenario.config.limits
        trafo = scenario.feeder.net.trafo
        rating_kva = float((trafo.sn_mva * trafo.get("parallel", 1)).sum()) * 1e3
        self.peak_cap_kw = self.peak_cap_frac * rating_kva if rating_kva > 0 else np.inf
        price = scenario.tariff.import_eur_per_kwh
        self.offpeak = price < self.peak_eur_per_kwh - 1e-9
        # Off-peak steps before index k, so the off-peak time in [t, departure) is one subtraction.
        self.offpeak_before = np.r_[0, np.cumsum(self.offpeak)]
        steps_ahead = int(round(self.preheat_h / scenario.dt_h))
        peak = ~self.offpeak
        soon = np.zeros(len(price), dtype=bool)
        for k in range(1, steps_ahead + 1):
            soon[:-k] |= peak[k:]
        self.preheat = soon & self.offpeak
        self._last_net_kw = np.zeros(self.n_bus)
        self._last_pv_kw = np.zeros(len(self.fleet.pv))

    def _bus_net_kw(self, obs: Observation) -> np.ndarray:
        """Home meters' net load per bus in the last measured interval (t-1)."""
        return self._last_net_kw

    def _remember(self, obs: Observation) -> None:
        """The newest measured interval's meter readings (``obs.telemetry``, t-1)."""
        tel = obs.telemetry
        pv = np.bincount(self.fleet.pv.bus, weights=tel.pv_available_kw, minlength=self.n_bus)
        self._last_net_kw = np.asarray(tel.base_load_kw, float) - pv
        self._last_pv_kw = np.asarray(tel.pv_available_kw, float).copy()

    def _grid_state(self, obs: Observation) -> tuple[bool, bool]:
        """(import congestion, over-voltage risk) from the last measured interval."""
        vm, loading, feeder = obs.last_vm_pu, obs.last_branch_loading_pct, obs.last_feeder_kw
        if vm is None or feeder is None:
            return False, False
        lim, margin = self.limits, self.voltage_margin_pu
        heavy = np.nanmax(loading) > self.loading_alert_pct if loading is not None else False
        congested = bool(
            feeder > self.peak_cap_kw
            or (heavy and feeder > 0)
            or np.nanmin(vm) < lim.voltage_min_pu + margin
        )
        return congested, bool(np.nanmax(vm) > lim.voltage_max_pu - margin)

    def _battery_kw(self, obs: Observation, congested: bool, high_voltage: bool) -> np.ndarray:
        bat = self.fleet.battery
        p = self._self_consumption_kw(obs)
        if congested:
            p = -bat.power_kw
        elif high_voltage:
            p = np.maximum(p, bat.power_kw)
        return p

    def _ev_kw(self, obs: Observation, congested: bool) -> np.ndarray:
        ev = self.fleet.ev
        remaining, hours_left = ev_remaining_kwh(ev, obs)
        plugged = obs.ev_active_session >= 0
        sess = np.where(plugged, obs.ev_active_session, 0)
        dep = ev.sessions.departure_step[sess] if len(ev.sessions) else np.zeros(len(sess), int)
        dep = np.clip(dep, obs.step, len(self.offpeak))
        offpeak_h = (self.offpeak_before[dep] - self.offpeak_before[obs.step]) * obs.dt_h
        rate_kwh_per_h = ev.efficiency * ev.max_power_kw
        usable_h = np.maximum(offpeak_h - self.ev_margin_h, obs.dt_h)
        spread_kw = remaining / (ev.efficiency * usable_h)
        # Hours at full power still needed vs all the time left: no slack -> charge now.
        must = remaining > rate_kwh_per_h * np.maximum(hours_left - self.ev_margin_h, 0.0)
        fits_offpeak = remaining <= rate_kwh_per_h * np.maximum(offpeak_h - self.ev_margin_h, 0.0)
        # Not enough off-peak time left: spread the energy over all the time left instead.
        all_h = np.maximum(hours_left - self.ev_margin_h, obs.dt_h)
        p = np.where(
            fits_offpeak,
            spread_kw if self.offpeak[obs.step] else 0.0,
            remaining / (ev.efficiency * all_h),
        )
        if congested:
            p = np.where(must, p, np.minimum(p, self.dim_kw))
        p = np.where(must, ev.max_power_kw, p)
        return np.clip(p, 0.0, np.minimum(ev.max_power_kw, remaining / (ev.efficiency * obs.dt_h)))

    def _thermal_kw(self, obs: Observation, congested: bool) -> np.ndarray:
        th = self.fleet.thermal
        heating = obs.hvac_mode > 0
        store = np.where(heating, th.comfort_max_c - 0.5, th.comfort_min_c + 1.5)
        coast = np.where(heating, th.comfort_min_c + 0.5, th.comfort_max_c - 0.5)
        mid = 0.5 * (th.comfort_min_c + th.comfort_max_c)
        t = obs.step
        cheap = obs.import_price_eur_per_kwh <= self.cheap_eur_per_kwh + 1e-9
        if not self.offpeak[t] or congested:
            target = coast
        elif self.preheat[t] or (cheap and heating):
            # Pre-cooling at night would drift below the band once the air outside is cooler.
            target = store
        else:
            target = mid
        # Move towards a warmer (heating) or cooler (cooling) target at most recovery_c_per_h,
        # so the fleet does not recover all at once after the peak (the rebound peak).
        sign = 1.0 if heating else -1.0
        temp = obs.thermal_temp_c
        step_c = self.recovery_c_per_h * obs.dt_h
        target = temp + sign * np.minimum(sign * (target - temp), step_c)
        p = thermostat_kw(th, temp, target, obs, obs.telemetry.outdoor_temp_c)
        return np.minimum(p, self.dim_kw) if congested else p

    def _deferrable_kw(self, obs: Observation) -> np.ndarray:
        d = self.fleet.deferrable
        rest_h = np.maximum(d.energy_kwh - obs.deferrable_done_kwh, 0.0) / d.power_kw
        forced = d.window_end_h - obs.hour_of_day - rest_h <= 2 * obs.dt_h
        surplus = self._last_net_kw[d.bus] < -d.power_kw
        cheap = obs.import_price_eur_per_kwh <= self.cheap_eur_per_kwh + 1e-9
        return np.where(forced | surplus | cheap, d.power_kw, 0.0)

    def act(self, obs: Observation) -> Setpoints:
        self._remember(obs)
        congested, high_voltage = self._grid_state(obs)
        pv = self.fleet.pv
        setpoints = Setpoints(
            battery_kw=self._battery_kw(obs, congested, high_voltage),
            ev_kw=self._ev_kw(obs, congested),
            deferrable_kw=self._deferrable_kw(obs),
            thermal_kw=self._thermal_kw(obs, congested),
            pv_curtail_kw=np.maximum(self._last_pv_kw - self.pv_limit_frac * pv.peak_kw, 0.0),
        )
        return setpoints
