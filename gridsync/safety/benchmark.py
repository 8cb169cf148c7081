"""A labelled anomaly benchmark built from the twin: long clean runs plus injected events.

Windows of telemetry (several seasons, optionally stressed scenarios) are split into
*calibration* windows, on which the monitor learns its scales, isolation forest and
thresholds, and disjoint *evaluation* windows, on which it is scored: false alarms per step
(by detector and overall) on the clean data, then every event type (``events``) injected
alone into a copy of an evaluation window and scored for detection, time to detect and
whether the alert named the measurement at fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import chi2, norm

from gridsync.grid.estimation.wls import estimate
from gridsync.model import physics
from gridsync.safety.anomaly import setpoint_flags
from gridsync.safety.config import raise_if_stopped
from gridsync.safety.detectors import tod_block
from gridsync.safety.events import EVENT_TYPES, EventInjector, Injected
from gridsync.safety.monitor import MIN_REDUNDANCY, AnomalyMonitor, Window
from gridsync.safety.telemetry import Telemetry, scenario_telemetry

IDENTIFY_TYPES = ("gross_error", "fdia")


@dataclass
class BenchWindow:
    label: str
    scenario: object
    tel: Telemetry
    window: Window
    steps: np.ndarray


@dataclass
class EventOutcome:
    kind: str
    detected: bool
    by: list[str]
    time_to_detect_min: float = float("nan")
    bad_rows: int = 0
    named_bad: int = 0
    bad_redundant: int = 0
    named_bad_redundant: int = 0
    named: int = 0
    extra: dict = field(default_factory=dict)


def make_window(
    monitor: AnomalyMonitor | None, scenario, label: str, load=None, stop=None
) -> tuple[AnomalyMonitor, BenchWindow]:
    """Telemetry of ``scenario``'s window (calibrated on its own history) and its evidence;
    ``load`` as in ``scenario_telemetry``. A new monitor is made when ``monitor`` is None; a
    set ``stop`` event ends the estimator runs between steps (``FitCancelled``).

    Scored steps leave out the last one, whose delayed meter readings have not arrived."""
    tel = scenario_telemetry(scenario, load=load)
    if monitor is None:
        monitor = AnomalyMonitor(
            scenario.powerflow(), tel.plan, bus_names=scenario.feeder.bus_names
        )
    elif not (
        np.array_equal(monitor.plan.kind, tel.plan.kind)
        and np.array_equal(monitor.plan.loc, tel.plan.loc)
    ):
        msg = f"window {label}: its device layout differs from the monitor's"
        raise ValueError(msg)
    steps = np.arange(scenario.start_step, scenario.end_step - 1)
    pre = np.arange(scenario.start_step - 8, scenario.start_step)  # temporal checks' memory
    aligned = tel.aligned()
    tod = tod_block(tel.step_of_day, scenario.steps_per_day)
    w = monitor.window(
        tel.plan, aligned, tel.pseudo_p_kw, tel.pseudo_q_kvar, tod, np.r_[pre, steps], stop=stop
    )
    return monitor, BenchWindow(label, scenario, tel, w, steps)


def simulated_window(path, start: str, days: int, history_days: int = 7, stop=None):
    """The scenario at ``path`` (None: the default) over ``days`` from ``start``, with the bus
    consumption ``(p_kw, q_kvar, flexible_kw)`` of an uncontrolled run of every asset (heat
    pumps, EVs, appliances ...) over its history and window: the telemetry truth of a feeder
    whose flexible load runs as it would without GridSync, and what the flexible assets'
    own telemetry reports (``make_window(..., load=...)``). A set ``stop`` event ends the run
    between the scenario builds and twin steps (``FitCancelled``)."""
    from gridsync.dispatch.rules import UncontrolledController
    from gridsync.sim.builder import load_scenario
    from gridsync.sim.twin import SteppedTwin, flexible_bus_kw

    tele = load_scenario(path, start=start, days=days, history_days=history_days)
    raise_if_stopped(stop)
    first = str(tele.index[0].date())
    sim = load_scenario(path, start=first, days=history_days + days, history_days=1)
    ctrl = UncontrolledController()
    ctrl.reset(sim)
    twin = SteppedTwin(sim)
    p, q, flex = [], [], []
    while not twin.finished:
        raise_if_stopped(stop)
        obs = twin.observe()
        rec = twin.advance(obs, ctrl.act(obs))
        p.append(rec.p_bus_kw)
        q.append(rec.q_bus_kvar)
        flex.append(flexible_bus_kw(twin.fleet, rec))
    return tele, (np.array(p), np.array(q), np.array(flex))


def calibrate(monitor: AnomalyMonitor, windows: list[BenchWindow], stop=None) -> None:
    """Fit on alternate days of the calibration windows: even days fit the scales and the
    isolation forest, odd days set the thresholds (``stop`` as in ``AnomalyMonitor.fit``)."""
    fit, thr = [], []
    for bw in windows:
        day = (bw.steps - bw.steps[0]) // bw.scenario.steps_per_day
        fit.append(bw.steps[day % 2 == 0])
        thr.append(bw.steps[day % 2 == 1])
    monitor.fit([bw.window for bw in windows], fit, thr, stop=stop)


def clean_rates(groups: list[tuple[AnomalyMonitor, list[BenchWindow]]]) -> dict:
    """Share of clean evaluation steps on which each detector, and any, alarms (each window
    scored by its group's monitor)."""
    counts: dict[str, int] = {}
    overall = 0
    n = 0
    for monitor, bw in ((m, bw) for m, ws in groups for bw in ws):
        alarms = monitor.alarms(monitor.scores(bw.window))
        any_alarm = np.zeros(len(bw.steps), dtype=bool)
        for name, a in alarms.items():
            counts[name] = counts.get(name, 0) + int(a[bw.steps].sum())
            any_alarm |= a[bw.steps]
        overall += int(any_alarm.sum())
        n += len(bw.steps)
    rates = {k: v / n for k, v in counts.items()}
    return {
        "steps": n,
        "alarm_steps": {**counts, "overall": overall},
        "rate": {**rates, "overall": overall / n},
    }


def chi2_nominal(monitor: AnomalyMonitor, bw: BenchWindow, alphas=(0.1, 0.01, 1e-3)) -> dict:
    """Chi-squared rejection rates on clean steps: time-aligned snapshots (readings at the
    instant they describe) against current-time snapshots (late readings as if current,
    variance inflated by their drift)."""
    z_aligned = bw.window.feats.chi2_z[bw.steps]
    pf, tel = monitor.pf, bw.tel
    p_now, v = [], None
    for t in bw.steps:
        est = estimate(pf, tel.snapshot(int(t)), v0=v, bad_data="off", check=False)
        v = est.v
        p_now.append(chi2.sf(est.objective, est.dof))
    out = {"steps": len(bw.steps)}
    # the Wilson-Hilferty score is standard normal when the snapshot passes at nominal rates
    p_aligned = norm.sf(z_aligned)
    for a in alphas:
        out[f"alpha_{a:g}"] = {
            "time_aligned": float(np.mean(p_aligned < a)),
            "current_time": float(np.mean(np.array(p_now) < a)),
        }
    return out


def score_event(
    monitor: AnomalyMonitor, bw: BenchWindow, ev: Injected, clean_alarms: dict
) -> EventOutcome:
    """Detect ``ev`` in ``bw``: alarms that clean data did not raise, on the event's steps
    (plus two for delayed checks); identification from the alerts of the first three."""
    w = bw.window
    lo, hi = int(ev.steps[0]), int(ev.steps[-1])
    new = monitor.refresh(w, ev.aligned, np.arange(lo - 1, hi + 3))
    sl = slice(max(lo - 96, int(bw.steps[0]) - 8), min(hi + 12, len(ev.aligned)))
    sub = new.sliced(sl)
    scores = monitor.scores(sub)
    alarms = monitor.alarms(scores)
    span = np.arange(lo, hi + 3) - sl.start
    fired = {n: a[span] & ~clean_alarms[n][span + sl.start] for n, a in alarms.items()}
    by = sorted(n for n, f in fired.items() if f.any())
    out = EventOutcome(ev.kind, bool(by), by)
    out.extra["touches_redundant"] = bool(np.any(monitor.redundancy[ev.rows] >= MIN_REDUNDANCY))
    if not by:
        return out
    hit = np.zeros(len(span), dtype=bool)
    for f in fired.values():
        hit |= f
    first = [int(span[i]) for i in np.flatnonzero(hit)[:3]]
    alerts = [monitor.alert_at(sub, scores, alarms, t) for t in first]
    out.time_to_detect_min = (alerts[0].raised_step + sl.start - lo) * bw.scenario.dt_h * 60
    named = set().union(*(a.named_rows for a in alerts))
    bad = set(ev.rows.tolist())
    red = {r for r in bad if monitor.redundancy[r] >= MIN_REDUNDANCY}
    out.bad_rows, out.named_bad = len(bad), len(bad & named)
    out.bad_redundant, out.named_bad_redundant = len(red), len(red & named)
    out.named = len(named)
    if ev.silent_buses is not None:
        names = monitor.labels
        silent = set().union(*(a.silent_devices for a in alerts))
        want = {f"meter@{names[int(r)].split('@', 1)[1]}" for r in ev.rows}
        out.extra["silent_devices_listed"] = len(want & silent) / len(want)
    return out


def run_events(
    monitor: AnomalyMonitor, windows: list[BenchWindow], per_type: int, seed: int = 11
) -> list[EventOutcome]:
    rng = np.random.default_rng(seed)
    clean = [monitor.alarms(monitor.scores(bw.window)) for bw in windows]
    injectors = [
        EventInjector(monitor.pf, bw.tel.plan, bw.tel.truth, bw.window.aligned, bw.steps, rng)
        for bw in windows
    ]
    out = []
    for kind in EVENT_TYPES:
        for i in range(per_type):
            k = i % len(windows)
            ev = injectors[k].draw(kind)
            out.append(score_event(monitor, windows[k], ev, clean[k]))
    return out


def summarise(outcomes: list[EventOutcome]) -> dict:
    res = {}
    for kind in dict.fromkeys(o.kind for o in outcomes):
        ev = [o for o in outcomes if o.kind == kind]
        row = {"events": len(ev), "detection_rate": float(np.mean([o.detected for o in ev]))}
        by: dict[str, int] = {}
        for o in ev:
            for d in o.by:
                by[d] = by.get(d, 0) + 1
        row["caught_by"] = {k: v / len(ev) for k, v in sorted(by.items())}
        if kind in IDENTIFY_TYPES:  # readings without redundancy: only their forecast sees them
            for key, want in (
                ("with_a_redundant_reading", True),
                ("critical_readings_only", False),
            ):
                sub = [o.detected for o in ev if o.extra["touches_redundant"] == want]
                row[f"detection_{key}"] = {
                    "events": len(sub),
                    "rate": float(np.mean(sub)) if sub else None,
                }
        ttd = np.array([o.time_to_detect_min for o in ev if o.detected])
        if len(ttd):
            row["time_to_detect_min"] = {
                "median": float(np.median(ttd)),
                "p95": float(np.percentile(ttd, 95)),
                "max": float(ttd.max()),
            }
        bad = sum(o.bad_rows for o in ev)
        if bad:
            row["identification_rate"] = sum(o.named_bad for o in ev) / bad
            red = sum(o.bad_redundant for o in ev)
            if red:
                row["identification_rate_redundant"] = sum(o.named_bad_redundant for o in ev) / red
                row["faulty_readings_redundant"] = red
            row["faulty_readings"] = bad
            named = sum(o.named for o in ev)
            row["named_per_detected_event"] = named / max(sum(o.detected for o in ev), 1)
            row["named_precision"] = sum(o.named_bad for o in ev) / max(named, 1)
        listed = [
            o.extra["silent_devices_listed"] for o in ev if "silent_devices_listed" in o.extra
        ]
        if listed:
            row["silent_devices_listed"] = float(np.mean(listed))
        res[kind] = row
    return res


def identifiability(monitor: AnomalyMonitor) -> dict:
    """Which device readings the snapshot estimator can check (``1 - K_ii`` >= 0.1) and which
    it cannot by design (no redundancy: only their own forecast can contradict them)."""
    red = monitor.redundancy
    dev = monitor.device
    groups: dict[str, dict[str, int]] = {}
    for r in np.flatnonzero(dev):
        key = monitor.labels[r].split("@", 1)[0]
        g = groups.setdefault(key, {"readings": 0, "redundant": 0})
        g["readings"] += 1
        g["redundant"] += int(red[r] >= MIN_REDUNDANCY)
    not_ident = [monitor.labels[r] for r in np.flatnonzero(dev & ~(red >= MIN_REDUNDANCY))]
    return {
        "criterion": f"1 - K_ii >= {MIN_REDUNDANCY} (share of an error left in its own residual)",
        "by_kind": groups,
        "not_identifiable_by_the_estimator": not_ident,
    }


def setpoint_benchmark(scenario, n_steps: int, events: int, seed: int = 5) -> dict:
    """Battery commands vs telemetry: per-step false alarms (any battery) and ``events``
    batteries ignoring their commands for 6-12 steps (>= 2 with a material command)."""
    bat = scenario.fleet.battery
    n_b = len(bat)
    rng = np.random.default_rng(seed)
    level = rng.uniform(0.3, 1.0, (n_steps // 4 + 1, n_b)) * rng.choice(
        [-1.0, 1.0], (n_steps // 4 + 1, n_b)
    )
    cmd = np.repeat(level, 4, axis=0)[:n_steps] * bat.power_kw
    energy = bat.capacity_kwh * bat.soc_initial_frac
    applied = np.zeros((n_steps, n_b))
    for t in range(n_steps):
        applied[t], energy = physics.battery_step(bat, energy, cmd[t], scenario.dt_h)
    measured = applied + rng.standard_normal(applied.shape) * 0.01 * bat.power_kw
    clean = setpoint_flags(applied, measured, bat.power_kw)
    hits = []
    while len(hits) < events:
        asset = int(rng.integers(n_b))
        start = int(rng.integers(0, n_steps - 12))
        win = np.arange(start, start + int(rng.integers(6, 13)))
        material = np.abs(applied[win, asset]) > 0.05 * bat.power_kw[asset] + 0.1
        if material.sum() < 2:  # the detector tolerates single-step misses by design
            continue
        m = measured.copy()
        m[win, asset] = 0.0
        hits.append(bool(setpoint_flags(applied, m, bat.power_kw)[win, asset][material].any()))
    return {
        "steps": n_steps,
        "batteries": n_b,
        "false_alarm_rate_per_step": float(clean.any(axis=1).mean()),
        "events": events,
        "detection_rate": float(np.mean(hits)),
    }


__all__ = [
    "BenchWindow",
    "EventOutcome",
    "calibrate",
    "chi2_nominal",
    "clean_rates",
    "identifiability",
    "make_window",
    "run_events",
    "setpoint_benchmark",
    "summarise",
]
