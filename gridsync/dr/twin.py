"""DR in the digital twin: customers respond stochastically, devices follow physically.

``DemandResponseController`` wraps any controller (the home energy managers' normal
behaviour). Each step it meters every customer (base load plus the power each device really
drew in the twin's step, handed over by the simulator through ``plant_stepped``), lets the
``DRAgent`` plan, and, while an event runs, overrides the devices of customers who took part:

* EV chargers pause unless the car would otherwise miss its departure energy;
* thermostats let the home drift up to the customer's own comfort setback past the band;
* appliances and water heaters pause unless their window would close unfinished;
* batteries (direct control and emergency programs) discharge.

Whether a called customer takes part is drawn per event from their hidden traits (never seen
by the agent), so predictions meet an honest, imperfect response. Rebound is not scripted: it
is the devices catching up after the event.
"""

from __future__ import annotations

import numpy as np

from gridsync.dispatch.rules import ev_remaining_kwh, thermostat_kw
from gridsync.dr.agent import DRAgent, DREvent
from gridsync.dr.config import DRConfig, load_dr_config
from gridsync.dr.customers import END_USES, EU, build_customer_book
from gridsync.dr.response import CustomerTraits, shed_fraction
from gridsync.sim.controller import Observation, Setpoints
from gridsync.sim.forecasts import nowcast
from gridsync.sim.twin import StepRecord

# Rounds of call -> answers -> top-up per event (the last round's answers are final).
TOP_UP_ROUNDS = 4


class CustomerTwin:
    """Hidden customer behaviour: who takes part in each event (seeded)."""

    def __init__(self, config: DRConfig, n: int, seed: int) -> None:
        self.traits = CustomerTraits.draw(config.customers, n, seed)
        self.rng = np.random.default_rng(seed + 1)
        self.participations = np.zeros(n, dtype=int)

    def respond(
        self,
        customers: np.ndarray,
        program_idx: np.ndarray,
        levels_eur_per_kwh: np.ndarray,
        programs,
        normal_price: float,
        recent: np.ndarray,
    ) -> np.ndarray:
        """Draw which called customers take part (Bernoulli on their true shed fraction);
        ``recent`` counts each customer's earlier calls in the fatigue window."""
        t, c = self.traits, customers
        p = np.zeros(len(c))
        for j, prog in enumerate(programs):
            m = program_idx == j
            if m.any():
                cm = c[m]
                p[m] = shed_fraction(
                    prog.kind,
                    levels_eur_per_kwh[m],
                    normal_price,
                    t.elasticity[cm],
                    t.opt_out[cm],
                    t.fatigue[cm],
                    recent[cm],
                )
        take = self.rng.random(len(c)) < p
        np.add.at(self.participations, c[take], 1)
        return take


class DemandResponseController:
    """A controller wrapper that runs the DR agent and the customers' response in the twin.

    ``enabled=False`` only meters (the no-DR counterfactual with identical metering).
    ``first_event_day`` keeps the first days event-free so baselines have history.
    """

    def __init__(
        self,
        base=None,
        config: DRConfig | None = None,
        first_event_day: int = 0,
        enabled: bool = True,
        truth_seed: int | None = None,
    ) -> None:
        if base is None:
            from gridsync.dispatch.rules import TouController

            base = TouController()
        self.base = base
        self.config = config or load_dr_config()
        self.first_event_day = first_event_day
        self.enabled = enabled
        self.truth_seed = self.config.seed + 100 if truth_seed is None else truth_seed
        self.name = f"{base.name}+dr" if enabled else base.name

    def reset(self, scenario) -> None:
        self.base.reset(scenario)
        self.scenario = scenario
        self.book = build_customer_book(scenario, self.config)
        self.agent = DRAgent(
            self.config, first_event_step=self.first_event_day * scenario.steps_per_day
        )
        self.agent.reset(scenario, self.book)
        self.twin = CustomerTwin(self.config, self.book.n, self.truth_seed)
        self.pending: list[DREvent] = []
        self.active: list[DREvent] = []
        self.unverified: list[DREvent] = []

    # ---- the step ---------------------------------------------------------------------------
    def act(self, obs: Observation) -> Setpoints:
        scen, agent = self.scenario, self.agent
        i = obs.step - scen.start_step
        agent.record_feeder(i - 1, obs.last_feeder_kw)
        if self.enabled:
            self._verify_due(i)
            for ev in agent.plan(i, obs.hour_of_day, obs.last_branch_loading_pct):
                self._call(i, ev)
                self.pending.append(ev)
            self._start_due(i)
        sp = self.base.act(obs)
        ctrl = self._controlled_end_uses(i)
        if ctrl is not None:
            sp = self._override(sp, obs, ctrl)
        return sp

    def finish(self) -> list[DREvent]:
        """Verify events whose rebound window reached the end of the run; return all events."""
        for ev in list(self.unverified):
            self.agent.verify(ev)
        self.unverified.clear()
        return self.agent.events

    def _verify_due(self, i: int) -> None:
        rb = self.agent._rebound_steps()
        for ev in [e for e in self.unverified if e.end + rb <= i]:
            self.agent.verify(ev)
            self.unverified.remove(ev)

    def _call(self, i: int, ev: DREvent) -> None:
        """Notify the called customers; they answer (opt in or out) at once, and the agent
        tops the event up (or releases surplus customers) on those answers."""
        answered = 0
        for _ in range(TOP_UP_ROUNDS):
            self._answer(ev, answered)
            answered = len(ev.customers)
            if not self.agent.top_up(i, ev):
                break
        else:
            self._answer(ev, answered)
        ev.results["committed_kw"] = float(self.agent.committed_kw_each(ev).sum())

    def _answer(self, ev: DREvent, first: int) -> None:
        """Draw the answers of ``ev.customers[first:]`` (those not asked yet)."""
        scen = self.scenario
        normal = float(
            scen.tariff.import_eur_per_kwh[
                scen.start_step + ev.start : scen.start_step + ev.end
            ].mean()
        )
        c = ev.customers[first:]
        take = self.twin.respond(
            c,
            ev.programs[first:],
            ev.levels_eur_per_kwh[first:],
            self.agent.programs,
            normal,
            self.agent._recent_calls(ev.start),
        )
        done = ev.responding[:first] if ev.responding is not None else np.zeros(0, bool)
        ev.responding = np.r_[done, take]

    def _start_due(self, i: int) -> None:
        for ev in [e for e in self.pending if e.start <= i]:
            self.pending.remove(ev)
            self.active.append(ev)
            self.unverified.append(ev)
        self.active = [e for e in self.active if e.end > i]

    def _controlled_end_uses(self, i: int) -> np.ndarray | None:
        live = [e for e in self.active if e.start <= i < e.end]
        if not live:
            return None
        ctrl = np.zeros((self.book.n, len(END_USES)), dtype=bool)
        for ev in live:
            take = ev.responding
            ctrl[ev.customers[take]] |= self.agent.end_use_mask[ev.programs[take]]
        return ctrl

    def _must_run(self, obs: Observation, pause_h: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """EVs and appliances that could not pause for ``pause_h`` hours (plus two steps of
        slack) and still finish by their deadline."""
        f, slack = self.scenario.fleet, 2 * obs.dt_h + pause_h
        remaining, hours_left = ev_remaining_kwh(f.ev, obs)
        must_ev = hours_left - remaining / (f.ev.max_power_kw * f.ev.efficiency) <= slack
        d = f.deferrable
        rest_h = np.maximum(d.energy_kwh - obs.deferrable_done_kwh, 0.0) / d.power_kw
        must_d = d.window_end_h - obs.hour_of_day - rest_h <= slack
        return must_ev, must_d

    def _override(self, sp: Setpoints, obs: Observation, ctrl: np.ndarray) -> Setpoints:
        f, book = self.scenario.fleet, self.book
        must_ev, must_d = self._must_run(obs)
        ev_kw = np.where(ctrl[book.ev_customer, EU["ev"]] & ~must_ev, 0.0, sp.ev_kw)

        th = f.thermal
        setback = self.twin.traits.setback_c[book.thermal_customer]
        limit = np.where(obs.hvac_mode > 0, th.comfort_min_c - setback, th.comfort_max_c + setback)
        hold = thermostat_kw(
            th, obs.thermal_temp_c, limit, obs, nowcast(self.scenario, obs).outdoor_temp_c
        )
        th_on = ctrl[book.thermal_customer, EU["hvac"]]
        thermal_kw = np.where(th_on, np.minimum(sp.thermal_kw, hold), sp.thermal_kw)

        eu = np.where(book.water_heater, EU["water_heater"], EU["deferrable"])
        dfr_kw = np.where(ctrl[book.deferrable_customer, eu] & ~must_d, 0.0, sp.deferrable_kw)

        bat = f.battery
        bat_kw = np.where(ctrl[book.battery_customer, EU["battery"]], -bat.power_kw, sp.battery_kw)
        return Setpoints(
            battery_kw=bat_kw,
            ev_kw=ev_kw,
            deferrable_kw=dfr_kw,
            thermal_kw=thermal_kw,
            pv_curtail_kw=sp.pv_curtail_kw,
        )

    def plant_stepped(self, rec: StepRecord, fleet, battery_energy_kwh: np.ndarray) -> None:
        """The customers' meters, part of the plant: per-customer consumption of the step the
        twin just ran (``rec``, the devices' realised power; PV metered apart), and each home
        battery's usable energy at its end (``fleet``, ``battery_energy_kwh``: the plant's own,
        faded by ageing). The agent reads the record only from the next step on."""
        book, n = self.book, self.book.n
        w = book.water_heater
        dev = np.zeros((n, len(END_USES)))
        dev[:, EU["ev"]] = np.bincount(book.ev_customer, rec.ev_kw, n)
        dev[:, EU["hvac"]] = np.bincount(book.thermal_customer, rec.thermal_kw, n)
        dev[:, EU["deferrable"]] = np.bincount(
            book.deferrable_customer[~w], rec.deferrable_kw[~w], n
        )
        dev[:, EU["water_heater"]] = np.bincount(
            book.deferrable_customer[w], rec.deferrable_kw[w], n
        )
        dev[:, EU["battery"]] = np.bincount(book.battery_customer, rec.battery_kw, n)
        bat = fleet.battery
        usable = np.maximum(battery_energy_kwh - bat.energy_min_kwh, 0.0) * bat.efficiency_discharge
        self.agent.record(
            rec.step - self.scenario.start_step,
            book.base_kw[rec.step] + dev.sum(axis=1),
            dev,
            np.bincount(book.battery_customer, usable, n),
        )

def tou_dr() -> DemandResponseController:
    """``tou+dr`` for ``gridsync simulate``: time-of-use devices plus the DR agent."""
    from gridsync.dispatch.rules import TouController

    return DemandResponseController(TouController())


def uncontrolled_dr() -> DemandResponseController:
    """``uncontrolled+dr`` for ``gridsync simulate``: uncontrolled devices plus the DR agent."""
    from gridsync.dispatch.rules import UncontrolledController

    return DemandResponseController(UncontrolledController())
