"""A labelled anomaly benchmark built from the twin: clean telemetry plus injected events.

False positives are counted on the clean evaluation window (every device reading of every
step); detection is scored per injected event, each applied alone to a copy of the clean
telemetry so that events never mask one another. Event types:

``gross_error``    1-3 readings grossly wrong for one step (2-8 % |V|, 3-10 kW, ...)
``frozen``         a sensor repeats its last value for 6-16 steps
``load_jump``      a real, unscheduled 5-12 kW load at a metered bus for 6-16 steps
``fdia``           offsets of 6-15 std on 3-6 SCADA/meter readings (not crafted)
``stealthy_fdia``  a = h(x + c) - h(x) on all SCADA/meter rows for a fake 6-12 kW load
                   (passes the residual test); PMUs stay honest
``stealthy_fdia_ramped``  the same attack ramped in over 8 steps (no jump to see)
``stealthy_fdia_all``     the same, abrupt, with the PMUs compromised too
``dropout``        8-15 meters (a data concentrator) silent for 4-12 steps
``setpoint``       a battery ignoring its commands for 6-12 steps (>= 2 of them with a
                   material command, since single-step misses are tolerated)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gridsync.grid.estimation.measurements import VA, VM, P, Q
from gridsync.grid.estimation.twin import truth_from_loads
from gridsync.model import physics
from gridsync.safety.anomaly import (
    StateChecker,
    calibrate_load_jumps,
    device_rows_of,
    dropout_flags,
    frozen_flags,
    load_jump_flags,
    setpoint_flags,
    spike_flags,
)
from gridsync.safety.telemetry import Telemetry

SERIES_TYPES = ("frozen", "load_jump", "dropout")
SNAPSHOT_TYPES = (
    "gross_error",
    "fdia",
    "stealthy_fdia",
    "stealthy_fdia_ramped",
    "stealthy_fdia_all",
)
ALL_TYPES = (*SNAPSHOT_TYPES[:2], *SERIES_TYPES, *SNAPSHOT_TYPES[2:], "setpoint")


@dataclass
class EventResult:
    kind: str
    detected: bool
    by: list[str] = field(default_factory=list)
    identified_frac: float = float("nan")


@dataclass
class BenchmarkReport:
    fpr: dict[str, float]
    step_alarm_rate: dict[str, float]
    events: list[EventResult]
    n_clean_readings: int
    n_clean_steps: int

    def detection_rates(self) -> dict[str, dict[str, float]]:
        out = {}
        for kind in ALL_TYPES:
            ev = [e for e in self.events if e.kind == kind]
            if not ev:
                continue
            by: dict[str, int] = {}
            for e in ev:
                for d in e.by:
                    by[d] = by.get(d, 0) + 1
            row = {"events": len(ev), "detection_rate": float(np.mean([e.detected for e in ev]))}
            row.update({f"caught_by_{k}": v / len(ev) for k, v in sorted(by.items())})
            ident = [e.identified_frac for e in ev if np.isfinite(e.identified_frac)]
            if ident:
                row["identified_frac"] = float(np.mean(ident))
            out[kind] = row
        return out


class AnomalyBenchmark:
    """Runs every detector on clean telemetry and on injected events over ``eval_steps``."""

    def __init__(self, tel: Telemetry, scenario, eval_steps: np.ndarray, seed: int = 11) -> None:
        self.tel, self.scenario = tel, scenario
        self.plan = tel.plan
        self.pf = scenario.powerflow()
        self.steps = np.asarray(eval_steps)
        self.rng = np.random.default_rng(seed)
        hist = slice(scenario.steps_per_day + 1, int(self.steps[0]))
        self.jumps = calibrate_load_jumps(
            self.plan, tel.readings[hist], tel.pseudo_p_kw[hist], tel.pseudo_q_kvar[hist]
        )
        self.device = np.isin(self.plan.source, ("scada", "pmu", "meter"))

    # --- detectors -------------------------------------------------------------------
    def series_flags(self, readings: np.ndarray) -> dict[str, np.ndarray]:
        pseudo = (self.tel.pseudo_p_kw, self.tel.pseudo_q_kvar)
        return {
            "frozen": frozen_flags(readings, self.plan.period),
            "dropout": dropout_flags(readings),
            "load_jump": load_jump_flags(self.jumps, self.plan, readings, *pseudo),
            "spike": spike_flags(self.jumps, self.plan, readings, *pseudo),
        }

    def snapshot(self, readings: np.ndarray, step: int, checker: StateChecker):
        ms = self.tel.snapshot(step, readings)
        return checker.check(ms, device_rows_of(readings[step], ms))

    # --- clean run ---------------------------------------------------------------------
    def clean(self) -> tuple[dict[str, float], dict[str, float], int, int]:
        r = self.tel.readings
        win = self.steps
        present = np.isfinite(r[win]) & self.device
        n_read = int(present.sum())
        fpr = {}
        flags = self.series_flags(r)
        for name, f in flags.items():
            fpr[name] = float((f[win] & self.device).sum() / n_read)
        checker = StateChecker(self.pf, self.plan)
        rejected = chi2 = pmu = 0
        for t in win:
            v = self.snapshot(r, int(t), checker)
            rejected += len(v.rejected_rows)
            chi2 += v.chi2_alarm
            pmu += v.pmu_alarm
        fpr["gross_error_lnr"] = rejected / n_read
        any_flag = np.zeros_like(present)
        for f in flags.values():
            any_flag |= f[win]
        fpr["all_series_detectors"] = float((any_flag & self.device).sum() / n_read)
        rates = {"chi2": chi2 / len(win), "pmu_crosscheck": pmu / len(win)}
        bat_fp, bat_cells = self._setpoint_run(None)
        fpr["setpoint"] = bat_fp / bat_cells
        return fpr, rates, n_read, len(win)

    # --- events ------------------------------------------------------------------------
    def _window(self, lo: int, hi: int) -> tuple[int, np.ndarray]:
        length = int(self.rng.integers(lo, hi + 1))
        start = int(self.rng.choice(self.steps[2 : len(self.steps) - length - 1]))
        return start, np.arange(start, start + length)

    def _rows(self, sources: tuple[str, ...]) -> np.ndarray:
        return np.flatnonzero(np.isin(self.plan.source, sources))

    def _series_event(self, kind: str) -> EventResult:
        r = self.tel.readings.copy()
        plan = self.plan
        if kind == "frozen":
            start, win = self._window(6, 16)
            rows = self._rows(("scada", "pmu", "meter"))
            row = int(self.rng.choice(rows[np.isfinite(r[start - 1, rows])]))
            r[win, row] = r[start - 1, row]
            cells = (win, np.array([row]))
        elif kind == "dropout":
            start, win = self._window(4, 12)
            buses = self.rng.choice(plan.meter_buses, int(self.rng.integers(8, 16)), replace=False)
            rows = np.flatnonzero(np.isin(plan.loc, buses) & (plan.source == "meter"))
            r[np.ix_(win, rows)] = np.nan
            cells = (win, rows)
        else:  # load_jump: a real load, so every reading changes consistently
            start, win = self._window(6, 16)
            bus = int(self.rng.choice(plan.meter_buses))
            extra = np.zeros((len(win), len(plan.pf.ppc_of_bus)))
            extra[:, bus] = self.rng.uniform(5.0, 12.0)
            r = self._replace_truth(r, win, extra)
            rows = np.flatnonzero((plan.kind == P) & (plan.loc == bus) & (plan.source == "meter"))
            cells = (win + plan.latency[rows[0]], rows)
        flags = self.series_flags(r)
        t_idx, rows = cells
        t_idx = t_idx[t_idx < len(r)]
        by = [name for name, f in flags.items() if f[np.ix_(t_idx, rows)].any()]
        return EventResult(kind, kind in by, by)

    def _replace_truth(self, r: np.ndarray, win: np.ndarray, extra_kw: np.ndarray, rows=None):
        """Readings after adding ``extra_kw`` consumption during ``win`` (same noise draws)."""
        tel, plan = self.tel, self.plan
        p = tel.truth.p_kw[win] + extra_kw
        new = truth_from_loads(self.pf, p, tel.truth.q_kvar[win])
        delta = np.array(
            [plan.fn.h(a) - plan.fn.h(b) for a, b in zip(new.v, tel.truth.v[win], strict=True)]
        )
        out = r.copy()
        rows = np.arange(len(plan)) if rows is None else rows
        when = win[:, None] + plan.latency[None, rows]
        ok = when < len(r)
        cols = np.broadcast_to(rows, when.shape)
        out[when[ok], cols[ok]] += delta[:, rows][ok]
        return out

    def _gross_size(self, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Physically gross errors: 2-8 % on |V|, 0.6-1.7 deg on angles, 3-10 kW/kvar on
        powers, 20-50 % on currents (a few std would hide inside normal noise and variation)."""
        k = self.plan.kind[rows]
        u = self.rng.uniform(0.0, 1.0, len(rows))
        return np.select(
            [k == VM, k == VA, (k == P) | (k == Q)],
            [0.02 + 0.06 * u, 0.01 + 0.02 * u, 3.0 + 7.0 * u],
            (0.2 + 0.3 * u) * np.abs(values) + 0.01,
        )

    def _snapshot_event(self, kind: str, checker: StateChecker) -> EventResult:
        plan = self.plan
        r = self.tel.readings.copy()
        step = int(self.rng.choice(self.steps[8:]))
        std = plan.device_std(np.nan_to_num(r[step]), step)
        present = np.flatnonzero(np.isfinite(r[step]) & self.device)
        bad: np.ndarray = np.zeros(0, dtype=np.int64)
        if kind in ("gross_error", "fdia"):
            if kind == "gross_error":
                bad = self.rng.choice(present, int(self.rng.integers(1, 4)), replace=False)
                size = self._gross_size(bad, r[step, bad])
            else:
                pool = present[plan.source[present] != "pmu"]
                bad = self.rng.choice(pool, int(self.rng.integers(3, 7)), replace=False)
                size = self.rng.uniform(6.0, 15.0, len(bad)) * std[bad]
            r[step, bad] += self.rng.choice([-1.0, 1.0], len(bad)) * size
            steps = [step]
        else:
            bus = int(self.rng.choice(plan.meter_buses))
            win = np.arange(step - 7, step + 1)
            ramp = np.linspace(1 / 8, 1.0, 8) if kind == "stealthy_fdia_ramped" else np.ones(8)
            extra = np.zeros((8, len(plan.pf.ppc_of_bus)))
            extra[:, bus] = self.rng.uniform(6.0, 12.0) * ramp
            sources = (
                ("scada", "pmu", "meter") if kind == "stealthy_fdia_all" else ("scada", "meter")
            )
            r = self._replace_truth(r, win, extra, rows=self._rows(sources))
            steps = [step - 7, step - 6, step]
            flags = self.series_flags(r)
            rows = np.flatnonzero((plan.kind == P) & (plan.loc == bus) & (plan.source == "meter"))
            seen_at = win + plan.latency[rows[0]]
            seen_at = seen_at[seen_at < len(r)]
            jump_seen = flags["load_jump"][np.ix_(seen_at, rows)].any()
        by: set[str] = set()
        ident = []
        for t in steps:
            checker.reset()
            v = self.snapshot(r, t, checker)
            if v.chi2_alarm:
                by.add("chi2")
            if v.pmu_alarm:
                by.add("pmu_crosscheck")
            if len(bad) and t == step:
                hit = np.isin(bad, v.rejected_rows)
                if hit.any():
                    by.add("lnr")
                ident.append(hit.mean())
        if kind.startswith("stealthy") and jump_seen:
            by.add("load_jump")
        if len(bad) and self.series_flags(r)["spike"][step, bad].any():
            by.add("spike")
        return EventResult(
            kind, bool(by), sorted(by), float(np.mean(ident)) if ident else float("nan")
        )

    def _setpoint_run(self, event: tuple[int, np.ndarray] | None) -> tuple[int, int]:
        """Battery commands vs telemetry over the window; returns (flagged cells outside the
        event, total cells) or, with an event, (1 if detected else 0, 1)."""
        s = self.scenario
        bat = s.fleet.battery
        n_t, n_b = len(self.steps), len(bat)
        rng = np.random.default_rng(5)
        level = rng.uniform(0.3, 1.0, (n_t // 4 + 1, n_b)) * rng.choice(
            [-1.0, 1.0], (n_t // 4 + 1, n_b)
        )
        cmd = np.repeat(level, 4, axis=0)[:n_t] * bat.power_kw
        energy = bat.capacity_kwh * bat.soc_initial_frac
        applied = np.zeros((n_t, n_b))
        for t in range(n_t):
            applied[t], energy = physics.battery_step(bat, energy, cmd[t], s.dt_h)
        expected = applied.copy()
        measured = applied + rng.standard_normal(applied.shape) * 0.01 * bat.power_kw
        if event is not None:
            asset, win = event
            measured[win, asset] = 0.0
        flags = setpoint_flags(expected, measured, bat.power_kw)
        if event is None:
            return int(flags.sum()), flags.size
        asset, win = event
        material = np.abs(expected[win, asset]) > 0.05 * bat.power_kw[asset] + 0.1
        if material.sum() < 2:  # the detector tolerates single-step misses by design
            return -1, 1
        return int(flags[win, asset][material].any()), 1

    def run(self, events_per_type: int = 10) -> BenchmarkReport:
        fpr, rates, n_read, n_steps = self.clean()
        results = []
        checker = StateChecker(self.pf, self.plan)
        for kind in ALL_TYPES:
            for _ in range(events_per_type):
                if kind in SERIES_TYPES:
                    results.append(self._series_event(kind))
                elif kind == "setpoint":
                    hit = -1
                    while hit < 0:  # redraw windows where the command was ~0 anyway
                        asset = int(self.rng.integers(len(self.scenario.fleet.battery)))
                        start = int(self.rng.integers(0, len(self.steps) - 12))
                        win = np.arange(start, start + int(self.rng.integers(6, 13)))
                        hit, _ = self._setpoint_run((asset, win))
                    results.append(EventResult(kind, bool(hit), ["setpoint"] if hit else []))
                else:
                    results.append(self._snapshot_event(kind, checker))
        return BenchmarkReport(fpr, rates, results, n_read, n_steps)
