"""The console's live loop: controller -> approvals -> overrides -> shield -> twin, every step.

Each step the controller proposes setpoints, the grid guard turns large remedial actions into
approval requests (pending requests apply their no-action alternative, decided ones apply the
decision for ``policy.hold_steps`` steps), overrides are applied, then the safety shield (when
``gridsync.safety`` is present) has the last word: it corrects anything unsafe, warns about
overrides it had to move, and its larger grid corrections become requests to confirm. Then the
twin advances and the dashboard snapshot is rebuilt. Listeners get ``("state", snapshot)``
after every step and ``("approval", request_dict)`` the moment a request changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from gridsync.dispatch.rules import UncontrolledController
from gridsync.hitl.approvals import SETPOINT_FIELD, ApprovalManager, ApprovalRequest, AuditSink
from gridsync.hitl.assets import SHIELD_REASON, describe_change
from gridsync.hitl.gates import (
    FIELD_KIND,
    GRID_REASONS,
    propose_plan_curtailment,
    shield_action,
)
from gridsync.hitl.guard import (
    GuardContext,
    propose_consent,
    propose_curtailment,
    propose_load_shedding,
)
from gridsync.hitl.lookahead import naive_error_quantiles, outlook
from gridsync.hitl.overrides import OverrideStore, OverrideTable
from gridsync.hitl.policy import ApprovalPolicy
from gridsync.hitl.snapshot import build_snapshot, topology
from gridsync.sim.controller import Setpoints
from gridsync.sim.twin import SteppedTwin, StepRecord, bus_sum, flexible_bus_kw

log = logging.getLogger(__name__)
Listener = Callable[[str, dict[str, Any]], None]
HISTORY_STEPS = 96
OUTLOOK_STEPS = 16
CLEARED = {
    "high": "no bus above the voltage limit",
    "low": "no bus below the voltage limit",
    "over": "no branch overloaded",
    "pf": "power flow converges again",
}


def default_shield():
    """``gridsync.safety``'s shield when that package is installed, else None."""
    try:
        from gridsync.safety.shield import SafetyShield
    except ImportError:
        return None
    return SafetyShield()


class ConsoleSession:
    """One live twin with its approval queue, overrides, KPIs and dashboard snapshot."""

    def __init__(
        self,
        scenario,
        controller,
        policy: ApprovalPolicy | None = None,
        audit: AuditSink | None = None,
        start_step: int | None = None,
        clock: Callable[[], float] = time.time,
        shield: Any = "auto",
        overrides_store: OverrideStore | None = None,
        anomaly_feed: Any = None,
    ) -> None:
        """``overrides_store`` (e.g. the runtime's store) keeps overrides across restarts:
        the ones stored there are restored now. ``anomaly_feed``
        (``gridsync.safety.console_feed.TwinTelemetryFeed``, fitted on the history before
        the twin's first step) turns each step into device readings and its alarms into
        console alerts that name the suspect measurements."""
        self.scenario = scenario
        self.controller = controller
        self.natural = UncontrolledController()
        self.controller.reset(scenario)
        self.natural.reset(scenario)
        self.policy = policy or ApprovalPolicy()
        self.clock = clock
        self.audit_sink = audit
        self.twin = SteppedTwin(scenario, start_step)
        self.approvals = ApprovalManager(self.policy, audit, clock)
        names = scenario.feeder.bus_names
        self.overrides = OverrideTable(
            scenario.fleet, audit, clock, store=overrides_store, bus_names=names
        )
        self.approvals.subscribe(self._on_approval)
        self.pf = scenario.powerflow()
        self.shield = default_shield() if shield == "auto" else shield
        if self.shield is not None:
            self.shield.reset(scenario)
        self.last_shield = None
        self._shield_active = False
        self.anomaly_feed = None
        self._feed_lock = threading.Lock()
        self._telemetry_log: deque[tuple] = deque(maxlen=2 * scenario.steps_per_day)
        if anomaly_feed is not None:
            self.attach_anomaly_feed(anomaly_feed)
        self.error_q = naive_error_quantiles(scenario)
        self.listeners: list[Listener] = []
        self.alerts: deque[dict[str, Any]] = deque(maxlen=60)
        self.history: deque[tuple[str, float]] = deque(maxlen=HISTORY_STEPS)
        self.kpi = {
            "steps": 0,
            "energy_cost_eur": 0.0,
            "degradation_eur": 0.0,
            "peak_import_kw": 0.0,
            "import_kwh": 0.0,
            "export_kwh": 0.0,
            "emissions_kg": 0.0,
            "voltage_violation_bus_steps": 0,
            "overload_branch_steps": 0,
            "curtailed_kwh": 0.0,
            "approvals_raised": 0,
            "approvals_expired": 0,
            "auto_actions": 0,
        }
        self._alert_seq = 0
        self._conditions: set[str] = set()
        self.snapshot: dict[str, Any] = {}
        self.last_outlook = None
        self.last_proposed: Setpoints | None = None  # the controller's own setpoints
        self.last_applied: Setpoints | None = None  # what the twin got after shield/overrides
        self.step_times_s: deque[float] = deque(maxlen=200)
        #: name -> fn(step, sim_time): twins stepped with this one (e.g. the FLISR drill's MV
        #: feeder); what each returns goes into the snapshot under its name
        self.companions: dict[str, Callable[[int, Any], dict[str, Any]]] = {}
        for why in self.overrides.restore():
            self.alert("warning", "overrides", why)

    # listeners -------------------------------------------------------------------------
    def add_listener(self, fn: Listener) -> None:
        self.listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        if fn in self.listeners:
            self.listeners.remove(fn)

    def _notify(self, event: str, payload: dict[str, Any]) -> None:
        for fn in list(self.listeners):
            try:
                fn(event, payload)
            except Exception:  # a broken listener must not stop the twin
                log.exception("console listener failed")

    def _on_approval(self, event: str, req: ApprovalRequest) -> None:
        if event == "raised":
            self.kpi["approvals_raised"] += 1
        if event == "expired":
            self.kpi["approvals_expired"] += 1
            self.alert(
                "warning",
                "approvals",
                f"No answer within {self.policy.timeout_s:g} s on '{req.action.title}': "
                f"fail-safe '{req.fail_safe}' applied",
            )
        self._notify("approval", {"event": event, "request": req.to_dict(self.clock())})

    def alert(
        self, severity: str, source: str, message: str, details: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Record and broadcast an alert; ``details`` (e.g. an anomaly's evidence and
        suspects) ride along under their own keys."""
        self._alert_seq += 1
        t = self.scenario.index[min(self.twin.step, len(self.scenario.index) - 1)]
        a = {
            "id": self._alert_seq,
            "severity": severity,
            "source": source,
            "message": message,
            "sim_time": t.isoformat(),
            "wall_s": self.clock(),
            **(details or {}),
        }
        self.alerts.appendleft(a)
        self._notify("alert", a)
        return a

    # the step ----------------------------------------------------------------------------
    def _apply_requests(self, sp: Setpoints, step: int) -> Setpoints:
        for req in self.approvals.pending():
            a = req.action
            if a.asset_kind in SETPOINT_FIELD:
                getattr(sp, SETPOINT_FIELD[a.asset_kind])[a.asset_index] = a.no_action_kw
        for req in self.approvals.in_force(step):
            a = req.action
            if a.asset_kind in SETPOINT_FIELD and req.applied_kw is not None:
                getattr(sp, SETPOINT_FIELD[a.asset_kind])[a.asset_index] = req.applied_kw
        return sp

    def _propose(self, ctx: GuardContext, sp: Setpoints) -> Setpoints:
        step = ctx.obs.step
        found = []
        guards = [("curtailment:pv", propose_plan_curtailment)]
        if self.shield is None:  # with a shield, over-voltage is the shield's to correct
            guards.append(("curtailment:pv", propose_curtailment))
        guards.append(("load_shedding:ev", propose_load_shedding))
        for key, fn in guards:
            if not self.approvals.blocks(key, step) and key not in {a.key for a in found}:
                action = fn(replace(ctx, setpoints=sp))
                if action is not None:
                    found.append(action)
        found += propose_consent(replace(ctx, setpoints=sp))
        for action in found:
            if self.approvals.blocks(action.key, step):
                continue
            attr = SETPOINT_FIELD[action.asset_kind]
            if self.policy.needs_approval(action.kind, action.magnitude_kw):
                self.approvals.raise_request(action)
                getattr(sp, attr)[action.asset_index] = action.no_action_kw
            else:
                getattr(sp, attr)[action.asset_index] = action.proposed_kw
                self.kpi["auto_actions"] += 1
                if self.audit_sink is not None:
                    self.audit_sink.audit(
                        "system",
                        "system",
                        "action.auto",
                        action.key,
                        {"title": action.title, "magnitude_kw": action.magnitude_kw},
                    )
        return sp

    def _after_shield(
        self, ctx: GuardContext, requested: Setpoints, safe: Setpoints, decision
    ) -> None:
        """Warn about overrides the shield moved; raise a request for large grid corrections."""
        why_by_asset = {(c.kind, c.asset): c.reason for c in decision.changes}
        for ov in self.overrides.list():
            attr = SETPOINT_FIELD[ov.asset_kind]
            want = float(getattr(requested, attr)[ov.index])
            got = float(getattr(safe, attr)[ov.index])
            if abs(want - got) > 1e-6:
                reason = why_by_asset.get((attr, ov.index), "")
                why = SHIELD_REASON.get(reason, "to keep the grid within its limits")
                msg = f"shield moved this override from {want:.2f} to {got:.2f} kW: {why}"
                if msg not in ov.warnings:
                    ov.warnings = [w for w in ov.warnings if not w.startswith("shield moved")]
                    ov.warnings.append(msg)
                    self.alert("warning", "shield", f"{ov.label} ({ov.mode}): {msg}")
        correcting = decision.status in ("corrected", "unresolved")
        if correcting and not self._shield_active:
            self.alert(
                "warning",
                "shield",
                f"shield correcting setpoints: highest voltage {decision.vm_max_before_pu:.3f} -> "
                f"{decision.vm_max_pu:.3f} p.u., loading {decision.loading_max_before_pct:.0f} -> "
                f"{decision.loading_max_pct:.0f} %, {decision.intervention_kw:.1f} kW moved",
            )
        elif not correcting and self._shield_active:
            self.alert("info", "shield", "shield no longer needs to correct setpoints")
        self._shield_active = correcting
        if decision.status == "unresolved":
            self.alert(
                "critical",
                "shield",
                "shield could not remove every violation: "
                + "; ".join(
                    describe_change(c, self.scenario.fleet, self.scenario.feeder.bus_names)
                    for c in decision.changes[:3]
                ),
            )
        step = ctx.obs.step
        moved: dict[str, float] = {}
        for c in decision.changes:
            if c.reason in GRID_REASONS:
                kind = FIELD_KIND[c.kind]
                moved[kind] = moved.get(kind, 0.0) + abs(c.applied_kw - c.requested_kw)
        for kind, kw in sorted(moved.items(), key=lambda kv: -kv[1]):
            if not self.policy.needs_approval("shield_clip", kw):
                continue
            if self.approvals.blocks(f"shield_clip:{kind}", step):
                continue
            action = shield_action(replace(ctx, setpoints=safe), safe, decision, kind)
            if action is not None:
                self.approvals.raise_request(action)

    def step(self) -> dict[str, Any]:
        """Advance the twin one step; returns the new dashboard snapshot."""
        t0 = time.perf_counter()
        if self.twin.finished:
            return self.snapshot
        self.approvals.expire_due()
        obs = self.twin.observe()
        self.approvals.current_step = obs.step
        raw = self.controller.act(obs)
        natural = self.natural.act(obs)
        sp = replace(
            raw, **{f: np.array(getattr(raw, f), dtype=float) for f in SETPOINT_FIELD.values()}
        )
        sp = self._apply_requests(sp, obs.step)
        ctx = GuardContext(
            self.twin,
            obs,
            sp,
            natural,
            self.policy,
            plan=getattr(self.controller, "last_plan", None),
            controller_name=getattr(self.controller, "name", "controller"),
        )
        sp = self._propose(ctx, sp)
        sp = self.overrides.apply(sp, natural)
        if self.shield is not None:
            requested = sp
            sp, self.last_shield = self.shield.project(obs, sp)
            self._after_shield(ctx, requested, sp, self.last_shield)
        rec = self.twin.advance(obs, sp)
        self.last_proposed, self.last_applied = raw, sp
        self._account(rec, obs)
        self._watch_telemetry(rec)
        self._check_overrides(rec)
        self.last_outlook = outlook(
            self.scenario, self.controller, obs, OUTLOOK_STEPS, self.error_q
        )
        extras = {}  # companions step first: requests they raise are in this snapshot
        for name, fn in list(self.companions.items()):
            try:
                extras[name] = fn(rec.step, self.scenario.index[rec.step])
            except Exception as err:  # a broken companion must not stop the twin
                log.exception("companion %s failed", name)
                self.alert("critical", name, f"{name} stopped stepping: {err}")
                del self.companions[name]
        self.snapshot = self._build_snapshot(rec, obs) | extras
        self.step_times_s.append(time.perf_counter() - t0)
        self._notify("state", self.snapshot)
        return self.snapshot

    def _account(self, rec: StepRecord, obs) -> None:
        k, dt, lim = self.kpi, obs.dt_h, self.scenario.config.limits
        imp, exp = max(rec.feeder_kw, 0.0), max(-rec.feeder_kw, 0.0)
        k["steps"] += 1
        k["energy_cost_eur"] += (
            imp * obs.import_price_eur_per_kwh - exp * obs.export_price_eur_per_kwh
        ) * dt
        k["degradation_eur"] += rec.degradation_eur
        k["peak_import_kw"] = max(k["peak_import_kw"], imp)
        k["import_kwh"] += imp * dt
        k["export_kwh"] += exp * dt
        k["emissions_kg"] += imp * self.scenario.carbon_g_per_kwh[rec.step] * dt / 1000
        with np.errstate(invalid="ignore"):
            high = rec.vm_pu > lim.voltage_max_pu
            low = rec.vm_pu < lim.voltage_min_pu
            over = rec.branch_loading_pct > lim.loading_max_pct
        k["voltage_violation_bus_steps"] += int(high.sum() + low.sum())
        k["overload_branch_steps"] += int(over.sum())
        k["curtailed_kwh"] += float(rec.curtailed_kw.sum()) * dt
        names = self.scenario.feeder.bus_names
        now = {
            "high": bool(high.any()),
            "low": bool(low.any()),
            "over": bool(over.any()),
            "pf": rec.pf_failed,
        }
        msgs = {
            "high": lambda: (
                f"{int(high.sum())} buses above {lim.voltage_max_pu:.2f} p.u., highest "
                f"{np.nanmax(rec.vm_pu):.3f} at {names[int(np.nanargmax(rec.vm_pu))]}"
            ),
            "low": lambda: (
                f"{int(low.sum())} buses below {lim.voltage_min_pu:.2f} p.u., lowest "
                f"{np.nanmin(rec.vm_pu):.3f} at {names[int(np.nanargmin(rec.vm_pu))]}"
            ),
            "over": lambda: (
                f"{int(over.sum())} branches above {lim.loading_max_pct:.0f} % loading, "
                f"worst {np.nanmax(rec.branch_loading_pct):.0f} % on "
                f"{self.pf.branch_names[int(np.nanargmax(rec.branch_loading_pct))]}"
            ),
            "pf": lambda: "power flow did not converge this step",
        }
        for key, active in now.items():
            if active and key not in self._conditions:
                self.alert("warning" if key != "pf" else "critical", "twin", msgs[key]())
            if not active and key in self._conditions:
                self.alert("info", "twin", f"cleared: {CLEARED[key]}")
        self._conditions = {k for k, v in now.items() if v}

    def attach_anomaly_feed(self, feed) -> None:
        """Start watching device readings with ``feed`` (safe while the twin runs, e.g. from
        the thread that fitted it): the steps run meanwhile are replayed into it first."""
        with self._feed_lock:
            for entry in self._telemetry_log:
                feed.observe(*entry)  # alarms on steps before the monitor was on are dropped
            self.anomaly_feed = feed
        self.alert("info", "anomaly", f"anomaly monitor on: {feed.describe()}")

    def _watch_telemetry(self, rec: StepRecord) -> None:
        """Device readings of this step through the anomaly monitor; its alarms as alerts."""
        fleet = self.twin.fleet
        pv_bus = bus_sum(fleet.pv.bus, rec.pv_kw, len(rec.p_bus_kw))
        entry = (rec.step, rec.p_bus_kw, rec.q_bus_kvar, pv_bus, flexible_bus_kw(fleet, rec))
        with self._feed_lock:
            self._telemetry_log.append(entry)
            alarms = [] if self.anomaly_feed is None else self.anomaly_feed.observe(*entry)
        for alarm in alarms:
            d = json.loads(json.dumps(alarm.to_dict(), default=lambda x: x.item()))
            described = self.scenario.index[alarm.step].strftime("%H:%M")
            self.alert(
                d.pop("severity"),
                d.pop("source"),
                f"readings of {described}: {d.pop('message')}",
                details=d,
            )

    def _check_overrides(self, rec: StepRecord) -> None:
        """The override check after the power flow: voltage out of band at an overridden
        asset's bus is reported (the override stays: the operator decides)."""
        lim = self.scenario.config.limits
        names = self.scenario.feeder.bus_names
        for bus, ovs in self.overrides.assets_by_bus().items():
            v = float(rec.vm_pu[bus])
            bad = not (lim.voltage_min_pu <= v <= lim.voltage_max_pu)
            for ov in ovs:
                msg = f"override check: voltage {v:.3f} p.u. at {names[bus]} is outside the band"
                if bad and msg not in ov.warnings[-1:]:
                    ov.warnings = [w for w in ov.warnings if not w.startswith("override check")]
                    ov.warnings.append(msg)
                    self.alert("warning", "overrides", f"{ov.label} ({ov.mode}): {msg}")

    # snapshot ----------------------------------------------------------------------------
    def _build_snapshot(self, rec: StepRecord, obs) -> dict[str, Any]:
        t = self.scenario.index[rec.step]
        self.history.append((t.isoformat(), rec.feeder_kw))
        return build_snapshot(self, rec, obs)

    def topology(self) -> dict[str, Any]:
        """Static feeder geometry for the one-line diagram."""
        return topology(self.scenario, self.pf)

    # the loop -----------------------------------------------------------------------------
    async def run(
        self,
        step_interval_s: float,
        expiry_tick_s: float = 0.2,
        start: asyncio.Event | None = None,
    ) -> None:
        """Step every ``step_interval_s`` seconds and apply fail-safes as deadlines pass.

        Steps run in a worker thread so that a slow solve (the MPC) never delays the web
        server or the delivery of approval events. With ``start`` the twin waits for that
        event first (the demo waits for the first
        browser, so a newcomer sees the morning's events rather than their aftermath)."""
        if start is not None:
            await start.wait()
        next_step = time.monotonic()
        while not self.twin.finished:
            now = time.monotonic()
            if now >= next_step:
                await asyncio.to_thread(self.step)
                next_step = now + step_interval_s
            self.approvals.expire_due()
            await asyncio.sleep(min(expiry_tick_s, max(next_step - time.monotonic(), 0.0)))
        self.alert("info", "twin", "end of the scenario window: the twin has stopped")
        while True:
            self.approvals.expire_due()
            await asyncio.sleep(expiry_tick_s)
