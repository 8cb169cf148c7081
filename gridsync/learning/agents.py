"""Agents over the twin: who controls which assets, what each sees, what its action means.

Shared by the training environment (``learning.env``) and the deployed policy
(``learning.policy``), so a trained policy sees exactly the features it was trained on, built
from a ``sim.controller.Observation`` alone (decision-time information: telemetry to t-1, the
published tariff, the day-ahead carbon signal, yesterday's metered load as the seasonal-naive
forecast, declared EV sessions, device-reported states). Nothing here reads the twin.

Agents: ``building`` mode makes one agent per bus with flexible assets (a building / customer
connection); ``group`` mode splits those buses into ``n_groups`` contiguous groups. Every agent
has the same observation (``N_FEATURES``) and action (``ACTION_KINDS``) layout, so one policy
can be shared by all of them (parameter sharing).

Actions are 5 numbers in [-1, 1] per agent, residuals on a safe heuristic so that 0 is a sane
default (all kW in load convention):

- ``battery``: power = a x the power the reported state of charge allows in that direction
  (at most the rating; charge > 0, discharge < 0);
- ``ev``: power = max power x clip(u + a, 0, 1), u = declared energy still needed / (max power x
  hours to declared departure) (the just-in-time rate);
- ``deferrable``: power = rating x clip(u + a, 0, 1), u = energy left / (rating x hours left in
  the window), at most the energy left (0 outside the window);
- ``thermal``: power = max power x clip(u + a, 0, 1), u = the heat pump's power holding the
  band's middle at the last measured outdoor temperature plus a proportional correction;
- ``pv``: curtail max(a, 0) x the system's output metered in the last interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.sim.controller import Observation, Setpoints

ACTION_KINDS = ("battery", "ev", "deferrable", "thermal", "pv")
FEATURES = (
    "hour_sin",
    "hour_cos",
    "weekend",
    "import_price",
    "export_price",
    "price_next_4h",
    "price_next_24h",
    "carbon",
    "feeder_kw",
    "feeder_kw_yesterday_next_1h",
    "vm_min",
    "vm_max",
    "loading_max",
    "outdoor_temp",
    "hvac_mode",
    "local_load",
    "local_pv",
    "local_vm",
    "battery_share",
    "battery_soc",
    "ev_share",
    "ev_plugged",
    "ev_urgency",
    "ev_need",
    "deferrable_share",
    "deferrable_urgency",
    "thermal_share",
    "thermal_position",
    "pv_share",
)
N_FEATURES = len(FEATURES)
N_ACTIONS = len(ACTION_KINDS)
OBS_BOUND = 10.0  # features are clipped to [-OBS_BOUND, OBS_BOUND]


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, float)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=np.abs(b) > 1e-9)


@dataclass(frozen=True)
class AgentLayout:
    """Which agent owns each asset (``agent_of[kind]``: agent index per asset)."""

    mode: str
    names: tuple[str, ...]
    buses: tuple[np.ndarray, ...]  # bus positions of each agent
    bus_agent: np.ndarray  # (n_bus,) agent of each bus, -1 when it has no flexible asset
    agent_of: dict[str, np.ndarray]

    @property
    def n_agents(self) -> int:
        return len(self.names)


MODES = ("building", "group")


def make_layout(fleet, n_bus: int, mode: str = "building", n_groups: int = 8) -> AgentLayout:
    """Agents for ``fleet`` on a feeder of ``n_bus`` buses (see the module docstring)."""
    if mode not in MODES:
        msg = f"agents = {mode!r}: expected one of {', '.join(MODES)}"
        raise ValueError(msg)
    buses_of_kind = {
        "battery": fleet.battery.bus,
        "ev": fleet.ev.bus,
        "deferrable": fleet.deferrable.bus,
        "thermal": fleet.thermal.bus,
        "pv": fleet.pv.bus,
    }
    flexible = np.unique(np.concatenate([np.asarray(b, int) for b in buses_of_kind.values()]))
    if len(flexible) == 0:
        msg = "the scenario has no flexible asset: there is nothing for an agent to control"
        raise ValueError(msg)
    if mode == "building":
        groups = [np.array([b]) for b in flexible]
        names = tuple(f"bus_{b}" for b in flexible)
    else:
        if n_groups < 1:
            msg = f"n_groups = {n_groups}: expected >= 1"
            raise ValueError(msg)
        groups = [g for g in np.array_split(flexible, min(n_groups, len(flexible))) if len(g)]
        names = tuple(f"group_{i}" for i in range(len(groups)))
    bus_agent = np.full(n_bus, -1, dtype=np.int64)
    for i, g in enumerate(groups):
        bus_agent[g] = i
    agent_of = {k: bus_agent[np.asarray(b, int)] for k, b in buses_of_kind.items()}
    return AgentLayout(mode, names, tuple(groups), bus_agent, agent_of)


class AgentFeatures:
    """Per-agent observation features and action-to-setpoint mapping for one scenario model
    (``scenario.fleet``: datasheet values and declared sessions, what a deployed agent knows)."""

    def __init__(self, scenario, layout: AgentLayout) -> None:
        self.scenario = scenario
        self.layout = layout
        f = scenario.fleet
        self.fleet = f
        n = layout.n_agents
        self.n = n
        self.dt_h = scenario.dt_h
        self.spd = scenario.steps_per_day
        tariff = scenario.tariff
        self.price_scale = max(float(np.max(tariff.import_eur_per_kwh)), 1e-6)
        cum = np.concatenate([[0.0], np.cumsum(tariff.import_eur_per_kwh)])
        self._price_cum = cum
        rating = float(getattr(scenario.feeder, "trafo_kva", 0.0) or 0.0)
        net = scenario.net_inflexible_kw(slice(0, scenario.start_step))
        hist_peak = float(np.abs(np.asarray(net).sum(axis=-1)).max()) if len(net) else 0.0
        self.feeder_scale = max(rating, hist_peak, 1.0)
        ag = layout.agent_of
        self._sum = lambda kind, v: np.bincount(ag[kind], weights=v, minlength=n)  # noqa: E731
        bus_load = np.asarray(scenario.base_load_kw[: scenario.start_step], float)
        peak_bus = np.abs(bus_load).max(axis=0) if len(bus_load) else np.ones(scenario.feeder.n_bus)
        self.load_scale = np.maximum(
            np.bincount(
                np.maximum(layout.bus_agent, 0),
                weights=np.where(layout.bus_agent >= 0, peak_bus, 0.0),
                minlength=n,
            ),
            1.0,
        )
        self.bat_power = self._sum("battery", f.battery.power_kw)
        self.bat_cap = self._sum("battery", f.battery.capacity_kwh)
        self.ev_power = self._sum("ev", f.ev.max_power_kw)
        self.dfr_power = self._sum("deferrable", f.deferrable.power_kw)
        self.th_power = self._sum("thermal", f.thermal.max_power_kw)
        self.pv_peak = self._sum("pv", f.pv.peak_kw)
        flex = self.bat_power + self.ev_power + self.dfr_power + self.th_power + self.pv_peak
        self.flex_scale = np.maximum(flex, 1e-6)
        # each agent's share of the feeder's flexible capacity: its share of network terms
        self.capacity_share = flex / max(float(flex.sum()), 1e-9)

    def _price_mean(self, step: int, steps: int) -> float:
        end = min(step + steps, len(self._price_cum) - 1)
        return float((self._price_cum[end] - self._price_cum[step]) / max(end - step, 1))

    def ev_urgency(self, obs: Observation) -> tuple[np.ndarray, np.ndarray]:
        """Per charger: the just-in-time fraction of max power and the declared kWh still needed."""
        f = self.fleet.ev
        plugged = obs.ev_active_session >= 0
        sess = np.where(plugged, obs.ev_active_session, 0)
        delivered = obs.ev_delivered_kwh[sess] if len(obs.ev_delivered_kwh) else np.zeros(len(f))
        need = np.where(plugged, np.maximum(obs.ev_energy_need_kwh - delivered, 0.0), 0.0)
        hours = np.maximum((obs.ev_departure_step - obs.step) * self.dt_h, self.dt_h)
        rate = _safe_div(need, f.max_power_kw * f.efficiency * hours)
        return np.where(plugged, np.clip(rate, 0.0, 1.0), 0.0), need

    def deferrable_open(self, obs: Observation) -> np.ndarray:
        """Appliances whose window is open with energy left (only those can run)."""
        d = self.fleet.deferrable
        hour = obs.hour_of_day
        inside = (d.window_start_h <= hour) & (hour < d.window_end_h)
        return inside & (obs.deferrable_done_kwh < d.energy_kwh - 1e-9)

    def deferrable_urgency(self, obs: Observation) -> np.ndarray:
        d = self.fleet.deferrable
        hour = obs.hour_of_day
        inside = (d.window_start_h <= hour) & (hour < d.window_end_h)
        left_h = np.maximum(d.window_end_h - hour, self.dt_h)
        remaining = np.maximum(d.energy_kwh - obs.deferrable_done_kwh, 0.0)
        return np.where(inside, np.clip(_safe_div(remaining, d.power_kw * left_h), 0.0, 1.0), 0.0)

    def thermal_baseline(self, obs: Observation) -> np.ndarray:
        th = self.fleet.thermal
        mid = 0.5 * (th.comfort_min_c + th.comfort_max_c)
        half = np.maximum(0.5 * (th.comfort_max_c - th.comfort_min_c), 0.1)
        mode = obs.hvac_mode
        t_out = obs.telemetry.outdoor_temp_c
        hold_kw = _safe_div(mode * (mid - t_out), th.resistance_c_per_kw * th.cop)
        u = _safe_div(hold_kw, th.max_power_kw) + 0.5 * mode * (mid - obs.thermal_temp_c) / half
        return np.clip(u, 0.0, 1.0)

    def features(self, obs: Observation) -> np.ndarray:
        """(n_agents, N_FEATURES) float32 features of ``obs``."""
        n, sc, tel = self.n, self.scenario, obs.telemetry
        step = obs.step
        angle = 2 * np.pi * obs.hour_of_day / 24.0
        feeder_kw = (
            tel.feeder_kw
            if tel.feeder_kw is not None
            else float(np.sum(tel.base_load_kw) - np.sum(tel.pv_kw))
        )
        # seasonal-naive feeder forecast: yesterday's metered inflexible net load, next hour
        y0 = max(step - self.spd, 0)
        y1 = max(min(y0 + int(round(1 / self.dt_h)), step - 1), y0 + 1)
        yesterday = float(np.asarray(sc.net_inflexible_kw(slice(y0, y1))).sum(axis=-1).mean())
        vm = tel.vm_pu
        vm_min = float(np.nanmin(vm)) if vm is not None else 1.0
        vm_max = float(np.nanmax(vm)) if vm is not None else 1.0
        loading = float(np.nanmax(tel.branch_loading_pct)) if vm is not None else 0.0
        common = np.array(
            [
                np.sin(angle),
                np.cos(angle),
                float(obs.time.dayofweek >= 5),
                obs.import_price_eur_per_kwh / self.price_scale,
                obs.export_price_eur_per_kwh / self.price_scale,
                self._price_mean(step, int(4 / self.dt_h)) / self.price_scale,
                self._price_mean(step, self.spd) / self.price_scale,
                obs.carbon_g_per_kwh / 500.0,
                feeder_kw / self.feeder_scale,
                yesterday / self.feeder_scale,
                (vm_min - 1.0) / 0.05,
                (vm_max - 1.0) / 0.05,
                loading / 100.0,
                tel.outdoor_temp_c / 30.0,
                obs.hvac_mode,
            ]
        )
        lay = self.layout
        own = lay.bus_agent >= 0
        idx = np.maximum(lay.bus_agent, 0)
        bus_count = np.maximum(np.bincount(idx, weights=own.astype(float), minlength=n), 1.0)
        local_load = np.bincount(idx, weights=np.where(own, tel.base_load_kw, 0.0), minlength=n)
        local_vm = (
            np.bincount(idx, weights=np.where(own, vm - 1.0, 0.0), minlength=n) / bus_count / 0.05
            if vm is not None
            else np.zeros(n)
        )
        f = self.fleet
        soc = _safe_div(self._sum("battery", obs.battery_energy_kwh), self.bat_cap)
        ev_u, ev_need = self.ev_urgency(obs)
        plugged = (obs.ev_active_session >= 0).astype(float)
        ev_count = np.maximum(self._sum("ev", np.ones(len(f.ev))), 1.0)
        dfr_u = self.deferrable_urgency(obs)
        dfr_count = np.maximum(self._sum("deferrable", np.ones(len(f.deferrable))), 1.0)
        th = f.thermal
        mid = 0.5 * (th.comfort_min_c + th.comfort_max_c)
        half = np.maximum(0.5 * (th.comfort_max_c - th.comfort_min_c), 0.1)
        th_count = np.maximum(self._sum("thermal", np.ones(len(th))), 1.0)
        local = np.column_stack(
            [
                local_load / self.load_scale,
                self._sum("pv", tel.pv_available_kw) / self.flex_scale,
                local_vm,
                self.bat_power / self.flex_scale,
                soc,
                self.ev_power / self.flex_scale,
                self._sum("ev", plugged) / ev_count,
                self._sum("ev", ev_u) / ev_count,
                _safe_div(self._sum("ev", ev_need), np.maximum(self.ev_power, 1e-6) * 4.0),
                self.dfr_power / self.flex_scale,
                self._sum("deferrable", dfr_u) / dfr_count,
                self.th_power / self.flex_scale,
                self._sum("thermal", (obs.thermal_temp_c - mid) / half) / th_count,
                self.pv_peak / self.flex_scale,
            ]
        )
        out = np.concatenate([np.broadcast_to(common, (n, len(common))), local], axis=1)
        out = np.nan_to_num(out, nan=0.0, posinf=OBS_BOUND, neginf=-OBS_BOUND)
        return np.clip(out, -OBS_BOUND, OBS_BOUND).astype(np.float32)

    def battery_room_kw(self, obs: Observation) -> tuple[np.ndarray, np.ndarray]:
        """Per battery: the charge and discharge power (kW) its reported state of charge
        allows this step (``physics.battery_step``'s SoC cut, on the model's capacity)."""
        from gridsync.model.physics import battery_power_bounds_kw

        lo, hi = battery_power_bounds_kw(self.fleet.battery, obs.battery_energy_kwh, self.dt_h)
        return np.maximum(hi, 0.0), np.maximum(-lo, 0.0)

    def setpoints(self, obs: Observation, actions: np.ndarray) -> Setpoints:
        """Setpoints (kW) for ``actions`` (n_agents, N_ACTIONS) in [-1, 1] (clipped). Battery
        actions scale the power the state of charge allows in that direction, appliance
        actions stop at the job's remaining energy, curtailment is a fraction of the PV output
        metered in the last interval: requests stay inside what the devices report."""
        a = np.clip(np.asarray(actions, float).reshape(self.n, N_ACTIONS), -1.0, 1.0)
        f, ag = self.fleet, self.layout.agent_of
        ev_u, _ = self.ev_urgency(obs)
        up, down = self.battery_room_kw(obs)
        ab = a[ag["battery"], 0]
        d = f.deferrable
        dfr_left_kw = np.maximum(d.energy_kwh - obs.deferrable_done_kwh, 0.0) / self.dt_h
        return Setpoints(
            battery_kw=np.where(ab >= 0, ab * up, ab * down),
            ev_kw=f.ev.max_power_kw
            * np.clip(ev_u + a[ag["ev"], 1], 0.0, 1.0)
            * (obs.ev_active_session >= 0),
            deferrable_kw=np.minimum(
                d.power_kw * np.clip(self.deferrable_urgency(obs) + a[ag["deferrable"], 2], 0, 1),
                dfr_left_kw,
            )
            * self.deferrable_open(obs),
            thermal_kw=f.thermal.max_power_kw
            * np.clip(self.thermal_baseline(obs) + a[ag["thermal"], 3], 0.0, 1.0),
            pv_curtail_kw=np.maximum(a[ag["pv"], 4], 0.0) * obs.telemetry.pv_kw,
        )

    def actions_of(self, obs: Observation, sp: Setpoints) -> np.ndarray:
        """The agents' actions that reproduce ``sp`` as closely as this action space can
        (per agent: rating-weighted mean residual per kind): how a teacher controller's
        setpoints become imitation targets."""
        f, n = self.fleet, self.n
        ev_u, _ = self.ev_urgency(obs)
        plugged = obs.ev_active_session >= 0
        ev_frac = _safe_div(np.asarray(sp.ev_kw, float), f.ev.max_power_kw) - ev_u
        dfr_frac = _safe_div(np.asarray(sp.deferrable_kw, float), f.deferrable.power_kw)
        dfr_frac = dfr_frac - self.deferrable_urgency(obs)
        th_frac = _safe_div(np.asarray(sp.thermal_kw, float), f.thermal.max_power_kw)
        th_frac = th_frac - self.thermal_baseline(obs)
        ev_w = f.ev.max_power_kw * plugged
        up, down = self.battery_room_kw(obs)
        p_bat = np.asarray(sp.battery_kw, float)
        bat_frac = np.clip(
            np.where(p_bat >= 0, _safe_div(p_bat, up), _safe_div(p_bat, down)), -1.0, 1.0
        )
        pv_frac = _safe_div(np.asarray(sp.pv_curtail_kw, float), obs.telemetry.pv_kw)
        cols = [
            _safe_div(self._sum("battery", bat_frac * f.battery.power_kw), self.bat_power),
            _safe_div(self._sum("ev", ev_frac * ev_w), self._sum("ev", ev_w)),
            _safe_div(self._sum("deferrable", dfr_frac * f.deferrable.power_kw), self.dfr_power),
            _safe_div(self._sum("thermal", th_frac * f.thermal.max_power_kw), self.th_power),
            _safe_div(self._sum("pv", np.clip(pv_frac, 0, 1) * f.pv.peak_kw), self.pv_peak),
        ]
        return np.clip(np.column_stack(cols), -1.0, 1.0).reshape(n, N_ACTIONS).astype(np.float32)
