"""The demand-response agent: forecast peaks, plan events, learn from measured results.

The agent sees what a utility sees: smart-meter readings per customer, 15-minute telemetry of
enrolled devices (EV chargers, thermostats, appliances, batteries; power and battery energy,
no EV deadlines), the feeder-head meter of the previous interval, and the customers' answers
to a call (OpenADR optIn/optOut when notified). It never reads the customers' hidden response
parameters: it starts from the declared priors and, after each event, learns each customer's
participation rate (observed opt-ins against the response model); device flexibility comes
from the devices' own telemetry on recent days, heat pumps scaled to the weather. Once the
answers to a call are in, it tops the event up with more customers (or releases surplus
ones) until what the opted-in customers are expected to shed meets the target.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gridsync.dr.config import DRConfig, Program
from gridsync.dr.customers import END_USES, EU, CustomerBook
from gridsync.dr.estimates import TelemetryEstimates
from gridsync.dr.mv import control_group_shed_kw, delivered_kw_by_baseline
from gridsync.dr.offers import make_offers
from gridsync.dr.planner import Offers, Plan, plan_event
from gridsync.dr.resource import FlexibleResource
from gridsync.dr.response import CustomerTraits

INTRADAY_LOOKAHEAD_H = 2.0
# Shortfall (share of the target) below which an answered call is not topped up further.
TOP_UP_TOLERANCE = 0.03
# Prior strength (in expected participations) of the response model per customer.
PARTICIPATION_PRIOR = 3.0


@dataclass
class DREvent:
    """One called event: its window (absolute steps), target, the plan and, later, results."""

    id: int
    reason: str
    start: int
    end: int
    target_kw: float
    planned_at: int
    customers: np.ndarray
    programs: np.ndarray
    levels_eur_per_kwh: np.ndarray
    predicted_kw_each: np.ndarray
    predicted_rebound_kw: float
    planned_cost_eur: float
    responding: np.ndarray | None = None
    results: dict = field(default_factory=dict)

    @property
    def predicted_kw(self) -> float:
        return float(self.predicted_kw_each.sum())

    def extend(self, customers, programs, levels, predicted_kw_each, modelled) -> None:
        """Add customers called for the same window (a top-up after opt-outs)."""
        self.customers = np.r_[self.customers, customers]
        self.programs = np.r_[self.programs, programs]
        self.levels_eur_per_kwh = np.r_[self.levels_eur_per_kwh, levels]
        self.predicted_kw_each = np.r_[self.predicted_kw_each, predicted_kw_each]
        self.results["modelled_participation"] = np.r_[
            self.results["modelled_participation"], modelled
        ]
        answered = self.responding if self.responding is not None else np.zeros(0, bool)
        self.responding = np.r_[answered, np.zeros(len(customers), bool)]

    def drop(self, keep: np.ndarray) -> None:
        """Release customers (event cancelled for them before it starts)."""
        self.customers = self.customers[keep]
        self.programs = self.programs[keep]
        self.levels_eur_per_kwh = self.levels_eur_per_kwh[keep]
        self.predicted_kw_each = self.predicted_kw_each[keep]
        self.results["modelled_participation"] = self.results["modelled_participation"][keep]
        self.responding = self.responding[keep]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous ``True`` runs of a boolean array as ``(start, end)`` pairs."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


class DRAgent(TelemetryEstimates):
    """Plans and verifies DR events over a scenario run (driven step by step by the twin)."""

    def __init__(self, config: DRConfig, first_event_step: int = 0) -> None:
        self.cfg = config
        self.programs: list[Program] = [p for p in config.programs if p.dispatchable]
        self.first_event_step = first_event_step

    def reset(self, scenario, book: CustomerBook) -> None:
        self.scenario, self.book = scenario, book
        self.spd = scenario.steps_per_day
        self.dt_h = scenario.dt_h
        n, n_steps, n_p = book.n, scenario.n_steps, len(self.programs)
        self.meter_kw = np.zeros((n_steps, n))
        self.device_kw = np.zeros((n_steps, n, len(END_USES)))
        self.battery_usable_kwh = np.zeros((n_steps, n))
        self.feeder_kw = np.full(n_steps, np.nan)
        self.addback_kw = np.zeros(n_steps)
        self.reconstituted = np.zeros(n_steps, dtype=bool)
        self.excluded = np.zeros(n_steps, dtype=bool)
        self.called = np.zeros((n_steps, n), dtype=bool)
        idx = scenario.index[scenario.start_step : scenario.end_step]
        self.weekend = np.asarray(idx.dayofweek >= 5)
        self.temp_c = scenario.outdoor_temp_c[scenario.start_step : scenario.end_step]
        self.beliefs = CustomerTraits.prior(self.cfg.customers, n)
        self.participation_scale = np.ones(n)
        self._participated = np.zeros(n)
        self._modelled = np.zeros(n)
        self.events: list[DREvent] = []
        self.calls_per_program = np.zeros((n, n_p), dtype=int)
        rng = np.random.default_rng(self.cfg.seed + 1)
        self.enrolled = np.zeros((n, n_p), dtype=bool)
        self.end_use_mask = np.zeros((n_p, len(END_USES)), dtype=bool)
        for j, p in enumerate(self.programs):
            self.end_use_mask[j, [EU[e] for e in p.end_uses]] = True
            eligible = book.has_end_use(p.end_uses)
            if p.segments is not None:
                eligible &= np.isin(book.segment, p.segments)
            self.enrolled[:, j] = eligible & (rng.random(n) < p.enrolment_share)
        trafo = scenario.feeder.net.trafo
        self.trafo_kva = float(trafo.sn_mva.sum() * 1e3) if len(trafo) else np.inf
        pct = self.cfg.dispatch.feeder_limit_pct_of_transformer
        self.limit_kw = (
            pct / 100 * self.trafo_kva
            if pct is not None and np.isfinite(self.trafo_kva)
            else self.cfg.dispatch.feeder_limit_kw
        )
        self._next_id = 0
        self._pending_upstream: list[tuple[int, int, int, float]] = []

    # ---- metering -------------------------------------------------------------------------
    def record(
        self,
        i: int,
        meter_kw: np.ndarray,
        device_kw: np.ndarray,
        battery_usable_kwh: np.ndarray,
    ) -> None:
        """Store one interval's per-customer meter reading and enrolled-device telemetry (step
        ``i`` of the run, delivered when the interval ends: planning at ``i + 1`` is the first
        to use it).

        ``device_kw`` (n, 5) is the 15-minute mean power each enrolled device reported, nothing
        more: no EV departure times or energy needs, so how much of that power could really
        pause is learned from events (``calibration``), not read from the devices."""
        self.meter_kw[i] = meter_kw
        self.device_kw[i] = device_kw
        self.battery_usable_kwh[i] = battery_usable_kwh

    def record_feeder(self, i: int, feeder_kw: float | None) -> None:
        if feeder_kw is not None and 0 <= i < len(self.feeder_kw):
            self.feeder_kw[i] = feeder_kw

    # ---- forecasting ----------------------------------------------------------------------
    def _recent_calls(self, step: int) -> np.ndarray:
        window = self.cfg.customers.fatigue_window_days * self.spd
        counts = np.zeros(self.book.n, dtype=int)
        for ev in self.events:
            if step - window <= ev.start < step:
                np.add.at(counts, ev.customers, 1)
        return counts

    def _calls_this_week(self, step: int) -> np.ndarray:
        counts = np.zeros((self.book.n, len(self.programs)), dtype=int)
        for ev in self.events:
            if step - 7 * self.spd <= ev.start < step + 7 * self.spd:
                np.add.at(counts, (ev.customers, ev.programs), 1)
        return counts

    def build_offers(self, i: int, start: int, end: int) -> Offers:
        """Every (customer, program, incentive level) the agent may offer for [start, end)."""
        scen = self.scenario
        dur_h = (end - start) * self.dt_h
        flex = self._calibrated_flex_kw(i, start, end)
        normal = float(
            scen.tariff.import_eur_per_kwh[scen.start_step + start : scen.start_step + end].mean()
        )
        return make_offers(
            self.programs,
            self.end_use_mask,
            self.enrolled & (self._calls_this_week(start) < self._week_caps()),
            flex,
            self.beliefs,
            self._recent_calls(start),
            normal,
            lead_h=(start - i) * self.dt_h,
            dur_h=dur_h,
            rebound_share=np.array([self.cfg.dispatch.rebound_share.get(e, 1.0) for e in END_USES]),
            rebound_h=max(self.cfg.dispatch.rebound_h, self.dt_h),
            participation_scale=self.participation_scale,
        )

    def _week_caps(self) -> np.ndarray:
        return np.array([p.max_events_per_week for p in self.programs])

    def _new_event(
        self, i: int, start: int, end: int, target: float, reason: str
    ) -> DREvent | None:
        if start < self.first_event_step or end <= start or target <= 0:
            return None
        if any(start < ev.end + self._rebound_steps() and ev.start < end for ev in self.events):
            return None
        offers = self.build_offers(i, start, end)
        rebound_steps = np.arange(end, end + self._rebound_steps())
        fc = self.forecast_feeder_kw(i, end + self._rebound_steps() - i)
        after = fc[rebound_steps - i] if len(rebound_steps) else np.zeros(0)
        after = after[np.isfinite(after)]
        headroom = self.limit_kw - (after.max() if len(after) else 0.0)
        plan: Plan = plan_event(
            offers,
            target,
            rebound_headroom_kw=max(headroom, 0.0),
            shortfall_eur_per_kw=self.cfg.dispatch.shortfall_eur_per_kw,
        )
        if plan.n_customers == 0:
            return None
        ch = plan.chosen
        ev = DREvent(
            id=self._next_id,
            reason=reason,
            start=start,
            end=end,
            target_kw=float(target),
            planned_at=i,
            customers=offers.customer[ch],
            programs=offers.program[ch],
            levels_eur_per_kwh=offers.level_eur_per_kwh[ch],
            predicted_kw_each=offers.expected_kw[ch],
            predicted_rebound_kw=plan.predicted_rebound_kw,
            planned_cost_eur=plan.cost_eur,
            results={"plan_solve_s": plan.solve_s, "n_offers": plan.n_offers},
        )
        ev.results["modelled_participation"] = self._modelled_participation(
            i, ev, ev.customers, ev.programs, ev.predicted_kw_each
        )
        self._next_id += 1
        self.events.append(ev)
        stop = min(end + self._rebound_steps(), len(self.excluded))
        self.excluded[start:stop] = True
        self.called[start:stop, ev.customers] = True
        return ev

    def _modelled_participation(self, i, ev, customers, programs, expected_kw) -> np.ndarray:
        eu_total = (
            self._calibrated_flex_kw(i, ev.start, ev.end)[customers] * self.end_use_mask[programs]
        ).sum(axis=1)
        rate = np.where(eu_total > 1e-9, expected_kw / np.maximum(eu_total, 1e-9), 0.0)
        return rate / self.participation_scale[customers]

    def committed_kw_each(self, ev: DREvent) -> np.ndarray:
        """What each opted-in customer of ``ev`` is expected to shed (kW, 0 for opt-outs): their
        calibrated device flexibility in the event's programs, as estimated when planned."""
        flex = self._calibrated_flex_kw(ev.planned_at, ev.start, ev.end)
        each = (flex[ev.customers] * self.end_use_mask[ev.programs]).sum(axis=1)
        return np.where(ev.responding, each, 0.0)

    def top_up(self, i: int, ev: DREvent) -> bool:
        """After the answers to ``ev``: if the opted-in customers are expected to shed less
        than the target, call more customers for the same window (least expected cost for the
        shortfall, same programs' rules); if clearly more, release opted-in customers, largest
        first, while that brings the expected reduction closer to the target. Returns whether
        new customers were called (their answers are then awaited)."""
        each = self.committed_kw_each(ev)
        short = ev.target_kw - each.sum()
        if short < -TOP_UP_TOLERANCE * ev.target_kw:
            keep = np.ones(len(ev.customers), dtype=bool)
            for k in np.argsort(-each):
                total = each[keep].sum()
                if each[k] > 0 and abs(total - each[k] - ev.target_kw) < abs(total - ev.target_kw):
                    keep[k] = False
            released = ev.customers[~keep]
            stop = min(ev.end + self._rebound_steps(), len(self.called))
            self.called[ev.start : stop, released] = False
            ev.drop(keep)
            ev.results["released"] = ev.results.get("released", 0) + len(released)
            return False
        if short <= TOP_UP_TOLERANCE * ev.target_kw:
            return False
        offers = self.build_offers(i, ev.start, ev.end)
        offers = offers.take(np.flatnonzero(~np.isin(offers.customer, ev.customers)))
        plan = plan_event(
            offers, short, shortfall_eur_per_kw=self.cfg.dispatch.shortfall_eur_per_kw
        )
        if plan.n_customers == 0:
            return False
        ch = plan.chosen
        cust, prog = offers.customer[ch], offers.program[ch]
        ev.extend(
            cust,
            prog,
            offers.level_eur_per_kwh[ch],
            offers.expected_kw[ch],
            self._modelled_participation(i, ev, cust, prog, offers.expected_kw[ch]),
        )
        ev.planned_cost_eur += plan.cost_eur
        ev.results["top_up_calls"] = ev.results.get("top_up_calls", 0) + len(ch)
        stop = min(ev.end + self._rebound_steps(), len(self.called))
        self.called[ev.start : stop, cust] = True
        return True

    def _rebound_steps(self) -> int:
        return int(round(self.cfg.dispatch.rebound_h / self.dt_h))

    def request(self, received_step: int, start: int, end: int, target_kw: float) -> None:
        """Queue an upstream request (e.g. from an OpenADR VTN) for run steps [start, end)."""
        self._pending_upstream.append((received_step, start, end, target_kw))

    def plan(self, i: int, hour: float, last_loading_pct: np.ndarray | None) -> list[DREvent]:
        """Check the forecast and call events; returns the events created at run step ``i``."""
        new: list[DREvent] = []
        d = self.cfg.dispatch
        for item in list(self._pending_upstream):
            if item[0] <= i:
                self._pending_upstream.remove(item)
                ev = self._new_event(i, item[1], item[2], item[3], "upstream")
                new += [ev] if ev else []
        loading = (
            float(np.nanmax(last_loading_pct))
            if last_loading_pct is not None and len(last_loading_pct)
            else 0.0
        )
        if loading > d.emergency_loading_pct and np.isfinite(self.feeder_kw[i - 1]):
            target = self.feeder_kw[i - 1] * (1 - d.emergency_loading_pct / loading)
            dur = int(round(1.0 / self.dt_h))
            ev = self._new_event(i, i, i + dur, target, "emergency")
            new += [ev] if ev else []
        on_hour = abs(hour - round(hour)) < 1e-6
        day_ahead = abs(hour - d.planning_hour) < self.dt_h / 2
        if not (on_hour or day_ahead):
            return new
        horizon = self.spd if day_ahead else int(round(INTRADAY_LOOKAHEAD_H / self.dt_h))
        horizon = min(horizon, len(self.feeder_kw) - i)
        if horizon <= 0:
            return new
        fc = self.forecast_feeder_kw(i, horizon) + self.peak_offset_kw(i)
        abs_i = self.scenario.start_step + i
        price = self.scenario.tariff.import_eur_per_kwh[abs_i : abs_i + horizon]
        over = np.nan_to_num(fc - self.limit_kw, nan=0.0)
        spike = (
            (price >= d.price_spike_eur_per_kwh)
            if d.price_spike_eur_per_kwh
            else np.zeros(horizon, bool)
        )
        max_steps = (
            int(round(max(p.max_duration_h for p in self.programs) / self.dt_h))
            if self.programs
            else 0
        )
        min_steps = int(round(d.min_event_h / self.dt_h))
        for lo, hi in _runs((over > 0) | spike):
            pad = max(min_steps - (hi - lo), 0)
            lo, hi = max(lo - pad // 2, 0), min(hi + pad - pad // 2, horizon)
            for s in range(lo, hi, max(max_steps, 1)):
                e = min(s + max_steps, hi)
                target = float(over[s:e].max())
                reason = "feeder_peak"
                if spike[s:e].any() and target <= 0:
                    target, reason = 0.15 * float(np.nanmean(fc[s:e])), "price_spike"
                ev = self._new_event(i, i + s, i + e, target, reason)
                new += [ev] if ev else []
        return new

    # ---- verification ----------------------------------------------------------------------
    def verify(self, ev: DREvent) -> dict:
        """M&V of a finished event: baselines, delivered kW per customer, payments; then learn."""
        delivered_each, regression_each = delivered_kw_by_baseline(
            self.meter_kw,
            ev.start,
            ev.end,
            ev.customers,
            self.excluded,
            self.weekend,
            self.temp_c,
            self.spd,
        )
        self._reconstitute(ev, delivered_each)
        shed_each = self._device_shed_kw(ev)
        paid = self._incentives_eur(ev, delivered_each)
        self._learn(ev)
        ev.results.update(
            {
                "delivered_mv_kw_each": delivered_each,
                "delivered_regression_kw_each": regression_each,
                "incentive_paid_eur_each": paid,
                "device_shed_kw_each": shed_each.sum(axis=1),
            }
        )
        return ev.results

    def _incentives_eur(self, ev: DREvent, delivered_each_kw: np.ndarray) -> np.ndarray:
        """Payment per called customer: the program's per-event fee plus its rate (or, for
        peak-time rebates, the offered level) times the energy delivered against the baseline."""
        dur_h = (ev.end - ev.start) * self.dt_h
        paid = np.zeros(len(ev.customers))
        for j, p in enumerate(self.programs):
            m = ev.programs == j
            if not m.any():
                continue
            per_kwh = (
                ev.levels_eur_per_kwh[m]
                if p.kind == "peak_time_rebate"
                else np.full(m.sum(), p.cost_eur_per_kwh)
            )
            got = np.nan_to_num(np.maximum(delivered_each_kw[m], 0.0))
            paid[m] = p.cost_eur_per_customer_event + per_kwh * got * dur_h
        return paid

    def _learn(self, ev: DREvent) -> None:
        """Learn each customer's response rate from a finished event.

        Who took part is observed (OpenADR opt-in/opt-out). Each customer's response rate is
        scaled by (prior + times they took part) / (prior + times the response model
        expected), a shrunk ratio estimator that soaks up individual elasticity, opt-out habit
        and fatigue the priors do not know. Device flexibility needs no event-level factor:
        it is re-estimated from telemetry before every call (a per-end-use factor learned
        from the control-group shed doubled the per-event error on winter-electrified)."""
        c, took_part = ev.customers, ev.responding
        np.add.at(self._participated, c, took_part.astype(float))
        np.add.at(self._modelled, c, ev.results["modelled_participation"])
        self.participation_scale = np.clip(
            (PARTICIPATION_PRIOR + self._participated) / (PARTICIPATION_PRIOR + self._modelled),
            0.2,
            3.0,
        )

    def _device_shed_kw(self, ev: DREvent) -> np.ndarray:
        """Shed of the called devices per customer and end use (k, 5), by control group."""
        control = np.ones(self.book.n, dtype=bool)
        for other in self.events:
            if other.start < ev.end and ev.start < other.end:
                control[other.customers] = False
        shed = control_group_shed_kw(
            self.device_kw[ev.start : ev.end].mean(axis=0),
            self.book.device_kw,
            self.book.segment,
            control,
            ev.customers,
            battery_before_kw=self.device_kw[max(ev.start - 1, 0), ev.customers, EU["battery"]],
            battery_col=EU["battery"],
        )
        return shed * self.end_use_mask[ev.programs]

    def forecast_adjustment_kw(self, i: int, horizon: int) -> np.ndarray:
        """Expected change of feeder import (kW) over run steps ``i..i+horizon-1`` from committed
        events: minus the predicted reduction during events, plus the rebound after them. An
        MPC adds this to its net-load forecast."""
        adj = np.zeros(horizon)
        rb = self._rebound_steps()
        for ev in self.events:
            lo, hi = max(ev.start - i, 0), min(ev.end - i, horizon)
            if lo < hi:
                adj[lo:hi] -= ev.predicted_kw
            lo, hi = max(ev.end - i, 0), min(ev.end + rb - i, horizon)
            if lo < hi:
                adj[lo:hi] += ev.predicted_rebound_kw
        return adj

    def flexible_resources(self, i: int, start: int, end: int) -> list[FlexibleResource]:
        """The callable flexibility for [start, end) as supply blocks per program and level,
        cheapest first: what an MPC may buy as a resource instead of a forecast adjustment."""
        offers = self.build_offers(i, start, end)
        dur_h = (end - start) * self.dt_h
        blocks = []
        for j, p in enumerate(self.programs):
            for level in np.unique(offers.level_eur_per_kwh[offers.program == j]):
                m = (offers.program == j) & (offers.level_eur_per_kwh == level)
                kw = float(offers.expected_kw[m].sum())
                if kw <= 1e-6:
                    continue
                blocks.append(
                    FlexibleResource(
                        program=p.name,
                        level_eur_per_kwh=float(level),
                        start_step=self.scenario.start_step + start,
                        end_step=self.scenario.start_step + end,
                        reduction_kw=kw,
                        cost_eur_per_kwh=float(offers.cost_eur[m].sum()) / (kw * dur_h),
                        rebound_kw=float(offers.rebound_kw[m].sum()),
                        rebound_h=self.cfg.dispatch.rebound_h,
                        notice_h=p.notice_h,
                        n_customers=int(m.sum()),
                    )
                )
        return sorted(blocks, key=lambda b: b.cost_eur_per_kwh)
