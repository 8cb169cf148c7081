"""The FLISR study feeder run live next to the console's twin: fault drills and the risk map.

The console's own feeder (LV) has no sectionalisers or ties, so FLISR runs on the CIGRE MV
study feeder the resilience bench uses. :class:`FeederDrill` is stepped with the console's
twin (``ConsoleSession.companions``) at the same simulated time: the loads follow the bundled
household and commercial profiles of that hour of the year.

A drill fault injected by an operator happens in the next step, on the field side: the
feeder-head breaker trips, voltage is lost downstream (AC power flow of the tripped network)
and the fault-current indicators flag where fault current passed. The FLISR agent
(:class:`~gridsync.resilience.controller.FlisrController`) sees only those readings and the
switch positions: it locates the faulted section, isolates it by remote switching and raises
the restoration plan for approval with its justification; an approved plan is applied in the
next step. ``repair`` is the crew finishing: the feeder returns to its normal configuration.

:meth:`FeederDrill.risk_map` is the day's outage risk per line from the weather-driven
failure-rate model (:mod:`gridsync.resilience.risk`) with its drivers and the proactive posture.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from gridsync.hitl.approvals import ApprovalManager
from gridsync.resilience import flisr as F
from gridsync.resilience import risk as R
from gridsync.resilience.controller import FlisrController
from gridsync.resilience.feeder import Conditions, SwitchableFeeder, year_conditions
from gridsync.resilience.study import energised_by, trip_state


class DrillError(ValueError):
    """A drill action that cannot be done; ``status_code`` is the matching HTTP status."""

    status_code = 422


class DrillConflict(DrillError):
    status_code = 409


def hour_of_year(when: pd.Timestamp) -> int:
    return ((when.dayofyear - 1) * 24 + when.hour) % 8760


class FeederDrill:
    """One switchable feeder, its FLISR agent and what the console shows of them."""

    def __init__(self, feeder: SwitchableFeeder, manager: ApprovalManager,
                 cond: Conditions | None = None, model: R.RiskModel | None = None) -> None:
        self.feeder = feeder
        self.cond = cond or year_conditions()
        self.model = model or R.RiskModel()
        self.risk = R.line_risk(feeder, self.cond, self.model)
        self.agent = FlisrController(feeder, manager)
        self.manager = manager
        self._lock = threading.Lock()
        self._op = lru_cache(maxsize=48)(self._operating_point)
        self.mv = np.asarray(feeder.net.bus.vn_kv < 100)
        xy = [json.loads(g)["coordinates"] for g in feeder.net.bus.geo]
        self.xy = np.array(xy, dtype=float)
        self.step_index = -1
        self.sim_time: pd.Timestamp | None = None
        self.injected: tuple[int, str] | None = None  # (line, by) waiting for the next step
        self.fault: dict[str, Any] | None = None
        self.lost = np.zeros(feeder.n_bus, dtype=bool)  # lost voltage when the breaker tripped
        self.request_id: str | None = None
        self.events: deque[str] = deque(maxlen=12)
        self.fresh_events: list[str] = []  # what the agent did in the last step
        self.ac: F.ACResult | None = None
        self._ac_key: tuple | None = None
        self.op: F.OperatingPoint | None = None

    def _operating_point(self, hour: int) -> F.OperatingPoint:
        return F.operating_point(self.feeder, float(self.cond.residential_pu[hour]),
                                 float(self.cond.commercial_pu[hour]))

    # operator actions ------------------------------------------------------------------------
    def inject(self, line_name: str, by: str) -> dict[str, Any]:
        """Queue a drill fault on ``line_name``; it happens in the next twin step."""
        names = self.feeder.line_name
        if line_name not in names:
            raise DrillError(f"line: {line_name!r} is not a line of the drill feeder; "
                             f"expected one of {', '.join(names)}")
        line = names.index(line_name)
        if not self.feeder.normally_closed[line]:
            raise DrillError(f"line: {line_name} is a normally open tie; a fault there interrupts "
                             "no one (choose a closed line)")
        with self._lock:
            if self.injected is not None or self.fault is not None:
                raise DrillConflict("a drill fault is already active: repair it first")
            self.injected = (line, by)
        self.events.appendleft(f"drill fault on {line_name} injected by {by}; it happens in the "
                               "next twin step")
        return {"line": line_name, "injected_by": by, "happens_at_step": self.step_index + 1}

    def repair(self, by: str) -> dict[str, Any]:
        """The crew has repaired the faulted line: back to the normal configuration."""
        with self._lock:
            if self.fault is None:
                raise DrillConflict("no drill fault to repair")
            if self.request_id is not None and self.manager.get(self.request_id).pending:
                raise DrillConflict("the switching plan still waits for a decision: decide it first")
            line = self.fault["line"]
            self.agent.state.closed = self.feeder.normally_closed.copy()
            self.agent.state.energised = energised_by(self.feeder, self.feeder.normally_closed)
            self.agent.pending.clear()  # a plan approved but not yet applied is moot now
            self.fault, self.request_id = None, None
            self.lost[:] = False
        self.events.appendleft(f"{line} repaired (reported by {by}): normal configuration")
        return {"repaired": line}

    # the step ------------------------------------------------------------------------------
    def step(self, step: int, when: pd.Timestamp) -> dict[str, Any]:
        """One twin step: apply decided plans, let an injected fault happen, measure."""
        with self._lock:
            self.step_index, self.sim_time = step, when
            op = self.op = self._op(hour_of_year(when))
            before = len(self.agent.state.events)
            self.agent.step(step)
            if self.injected is not None:
                self._fault(*self.injected, op, step)
                self.injected = None
            self.fresh_events = self.agent.state.events[before:]
            self.events.extendleft(self.fresh_events)
            st = self.agent.state
            key = (hour_of_year(when), st.closed.tobytes(), st.energised.tobytes())
            if key != self._ac_key:  # the AC flow only changes with the hour or the switching
                self.ac, self._ac_key = F.ac_check(self.feeder, st.closed, st.energised, op), key
            return self.state()

    def _fault(self, line: int, by: str, op: F.OperatingPoint, step: int) -> None:
        """Field side: protection trips, voltage is lost, FCIs flag; then the agent responds."""
        feeder = self.feeder
        tripped = trip_state(feeder, line)
        measured = F.ac_check(feeder, tripped, energised_by(feeder, tripped), op)
        self.lost = self.mv & ~(measured.vm_pu > 0.5)  # NaN (dead) counts as lost
        self.lost[feeder.sources] = False
        readings = F.fci_signature(feeder, F.radial_paths(feeder, feeder.normally_closed), line)
        breaker = feeder.line_name[int(np.flatnonzero(feeder.breaker & ~tripped)[0])]
        names = feeder.net.bus.name.to_numpy()
        lost_text = (f"breaker {breaker} tripped; voltage lost at "
                     f"{', '.join(names[self.lost])}")
        self.request_id = self.agent.respond(tripped, readings, op, step, lost_voltage=lost_text)
        iso = self.agent.isolation
        self.fault = {
            "line": feeder.line_name[line],
            "injected_by": by,
            "step": step,
            "breaker": breaker,
            "fci_tripped": int(readings.sum()),
            "lost_voltage": names[self.lost].tolist(),
            "located": [feeder.line_name[e] for e in self.agent.located],
            "section_buses": names[iso.buses].tolist(),
            "isolating_switches": [feeder.line_name[e] for e in F.isolating_switches(feeder, iso)],
            "request_id": self.request_id,
        }

    # views -----------------------------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        """:meth:`state` for readers outside the stepping thread."""
        with self._lock:
            return self.state()

    def state(self) -> dict[str, Any]:
        """Buses, lines, customers and the fault as the console shows them."""
        f, st = self.feeder, self.agent.state
        names = f.net.bus.name.to_numpy()
        zone = np.zeros(f.n_bus, dtype=bool)
        if self.fault is not None and self.agent.isolation is not None:
            zone[self.agent.isolation.buses] = True
        status = np.where(st.energised, np.where(self.lost, "restored", "normal"),
                          np.where(zone, "faulted", "off"))
        vm = self.ac.vm_pu if self.ac is not None else np.full(f.n_bus, np.nan)
        loading = (self.ac.line_loading_percent if self.ac is not None
                   else np.full(len(f.line_name), np.nan))
        located = set(self.fault["located"]) if self.fault else set()
        lines = []
        for e, name in enumerate(f.line_name):
            live = st.closed[e] and st.energised[f.line_from[e]] and st.energised[f.line_to[e]]
            kind = ("faulted" if name in located else "energised" if live
                    else "closed, dead" if st.closed[e] else "open")
            lines.append({"name": name, "from": int(f.line_from[e]), "to": int(f.line_to[e]),
                          "closed": bool(st.closed[e]), "normally_closed": bool(f.normally_closed[e]),
                          "remote": bool(f.remote[e]), "breaker": bool(f.breaker[e]),
                          "status": kind, "loading_pct": float(loading[e]) if live else None})
        kw = (self.op.load_p_mw[f.load_index] * 1000.0 if self.op is not None
              else np.zeros(len(f.load_index)))
        load_status = status[f.load_bus]
        by_status = {s: {"customers": int(f.customers[load_status == s].sum()),
                         "kw": float(kw[load_status == s].sum())}
                     for s in ("normal", "restored", "off", "faulted")}
        request = None
        if self.request_id is not None:
            req = self.manager.get(self.request_id)
            request = {"id": req.id, "status": req.status, "decided_by": req.decided_by,
                       "explanation": req.action.justification.text()}
        return {
            "feeder": f.study.name,
            "step": self.step_index,
            "sim_time": None if self.sim_time is None else self.sim_time.isoformat(),
            "buses": [{"name": str(names[b]), "x": float(self.xy[b, 0]), "y": float(self.xy[b, 1]),
                       "status": str(status[b]), "vm_pu": float(vm[b]), "source": bool(b in f.sources)}
                      for b in np.flatnonzero(self.mv)],
            "lines": lines,
            "loads": [{"name": str(f.net.load.name.iloc[i]), "bus": str(names[b]),
                       "customers": int(c), "kw": float(k), "status": str(s)}
                      for i, b, c, k, s in zip(f.load_index, f.load_bus, f.customers, kw,
                                               load_status, strict=True)],
            "by_status": by_status,
            "fault": self.fault,
            "pending_fault": None if self.injected is None else f.line_name[self.injected[0]],
            "request": request,
            "events": list(self.events),
        }

    def risk_map(self, day: int, peak_gust_m_s: float | None = None) -> dict[str, Any]:
        """Outage risk of ``day`` (0-364) per line, from the bundled year's weather for that
        day taken as the forecast; ``peak_gust_m_s`` overlays a what-if storm on the day."""
        if not 0 <= day <= 364:
            raise DrillError(f"day: {day} is outside 0..364 (day of the year, 0 = Jan 1)")
        hours = slice(24 * day, 24 * day + 24)
        wind = self.cond.wind_speed_m_s[:8760].copy()
        if peak_gust_m_s is not None:
            if not 0 < peak_gust_m_s <= 80:
                raise DrillError(f"peak_gust_m_s: {peak_gust_m_s} is outside (0, 80] m/s")
            storm = peak_gust_m_s / self.model.gust_factor * np.sin(np.linspace(0, np.pi, 24)) ** 2
            wind[hours] = np.maximum(wind[hours], storm)
        risk = (self.risk if peak_gust_m_s is None
                else R.line_risk(self.feeder, self.cond, self.model, wind_m_s=wind))
        daily = R.daily_risk(self.feeder, risk, day, self.model)
        per = risk.expected_faults(hours)
        average = R.base_rates(self.feeder) / 365.0
        gust = float(self.model.gust_factor * wind[hours].max())
        temp = float(self.cond.temp_air_c[hours].max())
        age = self.model.reference_age_years
        f = self.feeder
        lines = []
        for e, name in enumerate(f.line_name):
            overhead = bool(f.wind_sensitive[e])
            lines.append({
                "name": name, "from": int(f.line_from[e]), "to": int(f.line_to[e]),
                "kind": "overhead" if overhead else "cable",
                "expected_faults": float(per[e]),
                "average_day_faults": float(average[e]),
                "risk_ratio": float(per[e] / average[e]) if average[e] > 0 else None,
                "drivers": {"peak_gust_m_s": gust, "max_temp_c": temp, "age_years": age,
                            "driven_by": "wind gust" if overhead else "heat"},
                "normally_open": not bool(f.normally_closed[e]),
            })
        return {
            "day": day,
            "forecast": "the bundled TMY weather of that day" + (
                f" with a what-if storm peaking at {peak_gust_m_s:g} m/s" if peak_gust_m_s else ""),
            "lines": lines,
            "upstream_expected_faults": float(per[-1]),
            "expected_faults": daily.expected_faults,
            "p_any_fault": daily.p_any_fault,
            "risk_ratio": daily.risk_ratio,
            "peak_element_ratio": daily.peak_element_ratio,
            "threshold_ratio": self.model.risk_ratio_threshold,
            "posture": {"high_risk": daily.precharge, "actions": daily.actions},
            "text": daily.text(),
        }
