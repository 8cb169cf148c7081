"""The perfect-foresight bound: one LP over the whole window with everything known.

``PerfectForesightBound`` (``--controller oracle``) solves the dispatch LP once, at the first
step, over every step of the window at the native resolution, with the realised load, PV,
weather and every EV session, and the window-end settlement of the KPIs as its terminal value
(``dispatch.terminal`` with ``pro_rata_end``). Its objective has the terms of
``total_cost_incl_penalties_eur`` (energy, carbon, demand charge on the window's peak,
battery and V2G wear, unmet energy, comfort, curtailment, end state), so its optimum
``bound_eur`` is a lower bound on that KPI for every controller on the nominal model:

- it is a relaxation: appliances, heat pumps and chargers are continuous in the LP as in the
  twin, and nothing the twin enforces is missing from the LP except what is listed here;
- the network enters as the MPC's linearised voltage/loading rows and the losses of an AC
  power flow of the plan (fixed per step, from a second solve at the first plan's operating
  point), so the bound holds up to that linearisation; the AC check of the plan re-solves
  tighter on a violation as the MPC does;
- it says nothing about a plant that differs from the model (parameter error, noise,
  latency, drivers who leave early): there the bound's plan is not even feasible.

Played on the twin, the plan is followed step by step without corrections, so the KPIs of
the ``oracle`` row show how close the simulated plan comes to the LP's figure.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from gridsync.dispatch.mpc import MPCConfig, MPCController
from gridsync.dispatch.terminal import TerminalValue
from gridsync.sim.controller import Observation, Setpoints
from gridsync.sim.forecasts import PerfectForecaster


class PerfectForesightBound(MPCController):
    """One full-window perfect-information LP; ``bound_eur`` is its optimum in KPI terms."""

    name = "oracle"

    def __init__(
        self, config: MPCConfig | None = None, name: str | None = None, time_limit_s: float = 900
    ) -> None:
        super().__init__(PerfectForecaster(), config or MPCConfig(), name)
        self._base = self.config
        self.time_limit_s = time_limit_s
        self.bound_eur = float("nan")

    def reset(self, scenario) -> None:
        n = scenario.n_steps
        self.config = replace(
            self._base,
            horizon_steps=n,
            fine_steps=n,
            resolve_every=n,
            known_future_sessions=True,
            realtime=False,
            ac_correct=False,
            battery_reserve_frac=0.0,
            ev_deadline_margin_steps=0,
            peak_margin_quantile=None,
            time_limit_s=self.time_limit_s,
            settle_at_window_end=True,
            min_network_passes=2,
            max_network_passes=max(self._base.max_network_passes, 2),
        )
        super().reset(scenario)
        self.bound_eur = float("nan")

    def act(self, obs: Observation) -> Setpoints:
        first = self.last_plan is None
        sp = super().act(obs)
        if first:
            plan = self.last_plan
            if plan.status == "optimal":
                e0 = np.asarray(obs.battery_energy_kwh, float)
                tv = TerminalValue.from_scenario(self.scenario)
                self.bound_eur = plan.objective_eur + tv.battery_constant_eur(e0)
        return sp
