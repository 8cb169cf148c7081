"""A PettingZoo ``ParallelEnv`` over the stepped twin, with the safety shield in the loop.

Each step: every agent's action (``learning.agents``) becomes setpoints for its assets, the
joint setpoints pass ``SafetyShield.project`` (when ``shield`` is on) and the twin advances one
interval with its AC power flow. Rewards are minus the step's share of the terms the KPIs sum
(``sim.kpi.compute_kpis``), in EUR:

- network terms, split among agents by their share of the flexible capacity
  (``share = "capacity"``) or equally: feeder-head energy at the tariff, the increase of the
  window's demand charge when the peak import rises, emissions at the carbon price, and
  ``violation_eur`` per voltage-violation bus-step and overloaded branch-step;
- local terms of the agent's own assets: battery and V2G degradation, comfort violation at the
  objective's weight, EV energy a departing car did not get, appliance energy a closing window
  did not get, curtailment at the objective's weight, and optionally the shield's correction
  (``shield_penalty_eur_per_kwh`` x |safe - requested| kWh);
- on the last step, the end-of-window settlement (``sim.accounting``) by capacity share and
  the pro-rata energy owed by appliance jobs still open.

So the agents' summed return is minus ``total_cost_incl_penalties_eur`` (up to the violation
penalty, which the KPI counts instead of pricing).

Randomisation per episode (``Randomisation``): the window start is drawn from ``starts`` (train
on other weeks than you evaluate on), telemetry latency and loss, the plant's noise seed and
extra multiplicative noise on the observed features; the plant mismatch itself (``[plant]``)
stays as the scenario sets it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from dataclasses import dataclass, field

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from gridsync.learning.agents import (
    N_ACTIONS,
    N_FEATURES,
    OBS_BOUND,
    AgentFeatures,
    make_layout,
)
from gridsync.model import physics
from gridsync.sim.accounting import deferrable_owed_fraction, settle_end_state
from gridsync.sim.twin import SteppedTwin


@dataclass(frozen=True)
class Randomisation:
    """Per-episode draws (all off by default): ``latency_steps_max`` (telemetry latency drawn in
    0..max), ``loss_frac_max`` (telemetry loss drawn in 0..max), ``plant_seed`` (redraw the
    plant's per-step noise streams), ``obs_noise_frac`` (Gaussian noise, relative, on the
    load/PV/price features)."""

    latency_steps_max: int = 0
    loss_frac_max: float = 0.0
    plant_seed: bool = False
    obs_noise_frac: float = 0.0


@dataclass(frozen=True)
class EnvConfig:
    """Environment settings; ``starts`` are window start dates (one drawn per episode)."""

    scenario: str | None = None
    starts: tuple[dt.date, ...] = ()
    days: int = 1
    history_days: int = 7
    agents: str = "building"
    n_groups: int = 8
    shield: bool = True
    shield_penalty_eur_per_kwh: float = 0.0
    violation_eur: float = 1.0
    share: str = "capacity"
    reward_scale: float = 10.0  # rewards are EUR x reward_scale
    randomisation: Randomisation = field(default_factory=Randomisation)

    def __post_init__(self) -> None:
        if self.share not in ("capacity", "equal"):
            msg = f"share = {self.share!r}: expected 'capacity' or 'equal'"
            raise ValueError(msg)
        if self.days < 1:
            msg = f"days = {self.days}: expected >= 1"
            raise ValueError(msg)


@functools.lru_cache(maxsize=16)
def _load(scenario: str | None, start: dt.date | None, days: int, history_days: int):
    from gridsync.sim.builder import load_scenario

    kw = {"days": days, "history_days": history_days}
    if start is not None:
        kw["start"] = start
    return load_scenario(scenario, **kw)


def randomised(scenario, rnd: Randomisation, rng: np.random.Generator):
    """``scenario`` with this episode's telemetry latency/loss and plant noise seed."""
    cfg = scenario.config
    tel = cfg.telemetry.model_copy(
        update={
            "latency_steps": int(rng.integers(0, rnd.latency_steps_max + 1)),
            "loss_frac": float(rng.uniform(0.0, rnd.loss_frac_max)) if rnd.loss_frac_max else 0.0,
        }
    )
    out = dataclasses.replace(scenario, config=cfg.model_copy(update={"telemetry": tel}))
    if rnd.plant_seed and scenario.plant is not None:
        pc = scenario.plant.config.model_copy(update={"seed": int(rng.integers(2**31))})
        out = dataclasses.replace(out, plant=dataclasses.replace(scenario.plant, config=pc))
    return out


class GridParallelEnv(ParallelEnv):
    """Agents (buildings or groups of them) dispatching their flexible assets on the twin."""

    metadata = {"name": "gridsync_twin_v0", "render_modes": []}
    render_mode = None

    def __init__(self, config: EnvConfig | None = None, scenario=None) -> None:
        self.config = config or EnvConfig()
        self._fixed = scenario
        base = scenario if scenario is not None else self._scenario_for(self._starts()[0])
        self.layout = make_layout(
            base.fleet, base.feeder.n_bus, self.config.agents, self.config.n_groups
        )
        self.possible_agents = list(self.layout.names)
        self.agents: list[str] = []
        self._obs_space = spaces.Box(-OBS_BOUND, OBS_BOUND, (N_FEATURES,), np.float32)
        self._act_space = spaces.Box(-1.0, 1.0, (N_ACTIONS,), np.float32)
        self._rng = np.random.default_rng()
        self.scenario = base
        self.twin: SteppedTwin | None = None

    def observation_space(self, agent):
        return self._obs_space

    def action_space(self, agent):
        return self._act_space

    def _starts(self) -> tuple:
        return self.config.starts or (None,)

    def _scenario_for(self, start):
        if self._fixed is not None:
            return self._fixed
        c = self.config
        return _load(c.scenario, start, c.days, c.history_days)

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        starts = self._starts()
        start = (options or {}).get("start", starts[int(self._rng.integers(len(starts)))])
        sc = randomised(self._scenario_for(start), self.config.randomisation, self._rng)
        self.scenario = sc
        self.features = AgentFeatures(sc, self.layout)
        self.twin = SteppedTwin(sc)
        self._bat_start = self.twin.energy_kwh.copy()
        self._temp_start = self.twin.temp_c.copy()
        self._peak_kw = 0.0
        self._days = sc.n_steps * sc.dt_h / 24.0
        self._shield = None
        if self.config.shield:
            from gridsync.safety.shield import SafetyShield

            self._shield = SafetyShield()
            self._shield.reset(sc)
        n = self.layout.n_agents
        self.share = (
            self.features.capacity_share if self.config.share == "capacity" else np.full(n, 1 / n)
        )
        self.agents = list(self.possible_agents)
        self._obs = self.twin.observe()
        obs = self._observe()
        infos = {a: {} for a in self.agents}
        return obs, infos

    def _observe(self) -> dict:
        x = self.features.features(self._obs)
        sd = self.config.randomisation.obs_noise_frac
        if sd > 0:
            x = np.clip(
                x * (1.0 + sd * self._rng.standard_normal(x.shape)), -OBS_BOUND, OBS_BOUND
            ).astype(np.float32)
        return {a: x[i] for i, a in enumerate(self.possible_agents)}

    def joint_actions(self, actions: dict) -> np.ndarray:
        """(n_agents, N_ACTIONS) from a dict (missing agents act 0)."""
        a = np.zeros((self.layout.n_agents, N_ACTIONS), np.float32)
        for i, name in enumerate(self.possible_agents):
            if name in actions:
                a[i] = np.asarray(actions[name], np.float32).reshape(N_ACTIONS)
        return a

    def step(self, actions: dict):
        if self.twin is None or not self.agents:
            msg = "step() called before reset() or after the episode ended"
            raise RuntimeError(msg)
        obs_t = self._obs
        requested = self.features.setpoints(obs_t, self.joint_actions(actions))
        safe, decision = requested, None
        if self._shield is not None:
            safe, decision = self._shield.project(obs_t, requested)
        rec = self.twin.advance(obs_t, safe)
        cost, parts = self._step_cost(obs_t, rec, requested, safe)
        done = self.twin.finished
        if done:
            cost = cost + self._end_cost()
        rewards = -cost * self.config.reward_scale
        shield_info = self._shield_info(decision, requested, safe)
        names = self.possible_agents
        infos = {
            a: {
                **shield_info,
                "agent_shield_kw": float(parts["agent_shield_kw"][i]),
                "cost_eur": float(cost[i]),
                "violations": parts["violations"],
            }
            for i, a in enumerate(names)
        }
        if done:
            obs = {a: np.zeros(N_FEATURES, np.float32) for a in names}
        else:
            self._obs = self.twin.observe()
            obs = self._observe()
        term = {a: done for a in names}
        trunc = {a: False for a in names}
        rew = {a: float(rewards[i]) for i, a in enumerate(names)}
        if done:
            self.agents = []
        return obs, rew, term, trunc, infos

    def _shield_info(self, decision, requested, safe) -> dict:
        if decision is None:
            return {"shield_status": "off", "shield_changes": 0, "shield_intervention_kw": 0.0}
        n_changes = int(sum(len(b.asset) for b in decision.blocks))
        return {
            "shield_status": decision.status,
            "shield_changes": n_changes,
            "shield_intervention_kw": float(decision.intervention_kw),
        }

    def _step_cost(self, obs_t, rec, requested, safe) -> tuple[np.ndarray, dict]:
        """Per-agent cost of the step just run (EUR; see the module docstring)."""
        sc, c, n = self.scenario, self.config, self.layout.n_agents
        dt_h = float(sc.dt_h)
        step = rec.step
        w, lim = sc.config.objective, sc.config.limits
        fleet = self.twin.fleet
        ag = self.layout.agent_of
        p = float(rec.feeder_kw)
        energy = sc.tariff.energy_cost_eur(np.array([p]), dt_h, start=step)
        peak = max(self._peak_kw, p, 0.0)
        demand = sc.tariff.demand_charge_eur(peak, self._days) - sc.tariff.demand_charge_eur(
            self._peak_kw, self._days
        )
        self._peak_kw = peak
        carbon = w.carbon_price_eur_per_kg * max(p, 0.0) * dt_h * sc.carbon_g_per_kwh[step] / 1e3
        with np.errstate(invalid="ignore"):
            vm, ld = rec.vm_pu, rec.branch_loading_pct
            bad = int(((vm < lim.voltage_min_pu) | (vm > lim.voltage_max_pu) | np.isnan(vm)).sum())
            bad += int(((ld > lim.loading_max_pct) | np.isnan(ld)).sum())
        network = energy + demand + carbon + c.violation_eur * bad
        agg = lambda kind, v: np.bincount(ag[kind], weights=v, minlength=n)  # noqa: E731
        degradation = agg(
            "battery", np.abs(rec.battery_kw) * dt_h * fleet.battery.degradation_eur_per_kwh
        ) + agg("ev", np.maximum(-rec.ev_kw, 0.0) * dt_h * fleet.ev.v2g_degradation_eur_per_kwh)
        comfort = (
            w.comfort_eur_per_degree_hour
            * dt_h
            * agg("thermal", physics.comfort_violation_c(fleet.thermal, self.twin.temp_c))
        )
        s = fleet.ev.sessions
        leaving = np.flatnonzero(s.departure_step == step + 1)
        unmet_ev = np.maximum(s.energy_need_kwh[leaving] - self.twin.delivered_kwh[leaving], 0.0)
        ev_cost = w.unmet_ev_eur_per_kwh * np.bincount(
            ag["ev"][s.charger[leaving]], weights=unmet_ev, minlength=n
        )
        dfr = self.twin.deferrable_fleet(step)
        hour = self.twin.hour(step)
        inside = (dfr.window_start_h <= hour) & (hour < dfr.window_end_h)
        after = (dfr.window_start_h <= hour + dt_h) & (hour + dt_h < dfr.window_end_h)
        closes = inside & ~after
        unmet_dfr = np.where(closes, np.maximum(dfr.energy_kwh - self.twin.done_kwh, 0.0), 0.0)
        dfr_cost = w.unmet_deferrable_eur_per_kwh * agg("deferrable", unmet_dfr)
        curtail = w.curtailment_eur_per_kwh * dt_h * agg("pv", rec.curtailed_kw)
        shield_kw = sum(
            agg(k, np.abs(np.asarray(getattr(safe, f)) - np.asarray(getattr(requested, f))))
            for k, f in (
                ("battery", "battery_kw"),
                ("ev", "ev_kw"),
                ("deferrable", "deferrable_kw"),
                ("thermal", "thermal_kw"),
                ("pv", "pv_curtail_kw"),
            )
        )
        shield_cost = c.shield_penalty_eur_per_kwh * dt_h * shield_kw
        cost = self.share * network + degradation + comfort + ev_cost + dfr_cost + curtail
        return cost + shield_cost, {"agent_shield_kw": shield_kw, "violations": bad}

    def _end_cost(self) -> np.ndarray:
        t = self.twin
        end = settle_end_state(
            self.scenario,
            self._bat_start,
            t.energy_kwh,
            t.delivered_kwh,
            self._temp_start,
            t.temp_c,
            fleet=t.fleet,
        )
        # appliance jobs still open at the end owe their energy pro rata (as the KPIs count)
        sc, dt_h = self.scenario, float(self.scenario.dt_h)
        last = t.deferrable_fleet(sc.end_step - 1)
        open_jobs, part = deferrable_owed_fraction(
            last, t.hour(sc.end_step - 1) + dt_h, sc.n_steps * dt_h
        )
        owed = np.where(open_jobs, np.maximum(last.energy_kwh * part - t.done_kwh, 0.0), 0.0)
        dfr = sc.config.objective.unmet_deferrable_eur_per_kwh * np.bincount(
            self.layout.agent_of["deferrable"], weights=owed, minlength=self.layout.n_agents
        )
        return self.share * end.adjustment_eur + dfr

    def render(self) -> None:
        return None

    def close(self) -> None:
        self.twin = None

    def state(self) -> np.ndarray:
        """Global state: every agent's features stacked (for centralised critics)."""
        return self.features.features(self._obs).ravel()
