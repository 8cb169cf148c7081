"""Device telemetry of a live twin, watched by the anomaly monitor, for the operator console.

The console's twin knows the true grid state; an operator only sees device readings (SCADA,
PMUs, smart meters one interval late, dropouts). ``TwinTelemetryFeed`` turns each step's true
state into those readings, exactly as the anomaly benchmark does in batch (``MeasurementPlan``
noise, hold, latency and dropouts), and runs ``LiveAnomalyMonitor`` on them. The monitor is
fitted on days before the console's first day (``fit_on_history``), so nothing from the live
window leaks into its thresholds.

``inject(...)`` queues a fault on named measurements (a gross error or a constant offset over
steps), which is how an operator or a test rehearses an alarm end to end.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from gridsync.grid.estimation.twin import truth_from_loads
from gridsync.safety.alerts import AnomalyAlert
from gridsync.safety.benchmark import calibrate, make_window, simulated_window
from gridsync.safety.config import raise_if_stopped
from gridsync.safety.detectors import tod_block
from gridsync.safety.live import LiveAnomalyMonitor
from gridsync.safety.monitor import AnomalyMonitor
from gridsync.safety.telemetry import steps_of_day

MIN_PSEUDO_DAYS = 2  # scenario_telemetry's own history need (pseudo-measurements + plan)


@dataclass
class Fault:
    """An offset added to the readings *of* steps ``first..last`` of the plan ``rows``."""

    rows: np.ndarray
    offset: np.ndarray
    first: int
    last: int


@dataclass
class Calibration:
    """A monitor fitted on clean history and the simulated bus consumption (load convention,
    kW/kvar by time ``index``) of those days up to the twin's first step."""

    monitor: AnomalyMonitor
    index: pd.DatetimeIndex
    p_kw: np.ndarray
    q_kvar: np.ndarray
    flexible_kw: np.ndarray
    fit_days: tuple[pd.Timestamp, pd.Timestamp]


def fit_on_history(
    path, scenario, first_step: int, days: int = 10, history_days: int = 2, stop=None
) -> Calibration:
    """Fit the monitor on the ``days`` before the day of ``first_step``: the scenario at
    ``path`` (None: the default; ``scenario`` is its live window) re-run uncontrolled with
    every flexible asset, so EVs and heat pumps switching are part of what its thresholds call
    normal. The run goes on to ``first_step`` (the history the live monitor starts from); the
    day of ``first_step`` is never part of the fit. A set ``stop`` event (``threading.Event``)
    ends the fit between twin steps, estimator steps or fit stages with ``FitCancelled``."""
    spd = scenario.steps_per_day
    day = scenario.index[first_step].normalize()
    start = day - pd.Timedelta(days=days)
    first_needed = start - pd.Timedelta(days=history_days)
    if first_needed < scenario.index[0]:
        msg = (
            f"anomaly monitor: calibrating on the {days} days before {day.date()} needs "
            f"history from {first_needed.date()}, but the scenario starts "
            f"{scenario.index[0].date()}: raise time.history_days"
        )
        raise ValueError(msg)
    tele, load = simulated_window(path, str(start.date()), days + 1, history_days, stop=stop)
    fit_view = replace(tele, n_steps=days * spd)
    monitor, bw = make_window(None, fit_view, "console calibration", load, stop=stop)
    calibrate(monitor, [bw], stop=stop)
    fitted = (fit_view.window[0], fit_view.window[-1])
    return Calibration(monitor, tele.index[: len(load[0])], *load, fit_days=fitted)


class TwinTelemetryFeed:
    """Readings of a stepped twin and the alerts the fitted anomaly monitor raises on them.

    ``scenario`` is the console's scenario, ``first_step`` the twin's first step and
    ``calibration`` a monitor fitted on the same feeder with the history before
    ``first_step`` (``fit_on_history``). ``stop`` as in ``fit_on_history`` (the history
    replay is part of the start-up).
    """

    def __init__(
        self, scenario, first_step: int, calibration: Calibration, seed: int = 0, stop=None
    ) -> None:
        spd = scenario.steps_per_day
        if first_step < MIN_PSEUDO_DAYS * spd:
            msg = (
                f"anomaly monitor: the twin starts at step {first_step}; pseudo-measurements "
                f"need {MIN_PSEUDO_DAYS} days of history ({MIN_PSEUDO_DAYS * spd} steps)"
            )
            raise ValueError(msg)
        monitor, self.calibration = calibration.monitor, calibration
        self.monitor, self.plan = monitor, monitor.plan
        self.pf = scenario.powerflow()
        self.spd = spd
        n_t = len(scenario.index)
        self.pv_kw = scenario.pv_by_bus_kw(slice(0, n_t))
        # actual consumption per bus (load convention): the calibration run before the twin
        self.p_kw = scenario.net_inflexible_kw(slice(0, n_t)).copy()
        self.q_kvar = scenario.base_load_kvar[:n_t].copy()
        pos = scenario.index.get_indexer(calibration.index)
        ok = (pos >= 0) & (pos < first_step)
        self.flexible_kw = np.zeros_like(self.p_kw)
        self.p_kw[pos[ok]] = calibration.p_kw[ok]
        self.q_kvar[pos[ok]] = calibration.q_kvar[ok]
        self.flexible_kw[pos[ok]] = calibration.flexible_kw[ok]
        self.pv_used_kw = self.pv_kw.copy()
        self.pseudo_p_kw = np.zeros_like(self.p_kw)
        self.pseudo_q_kvar = np.zeros_like(self.q_kvar)
        self.noisy = np.full((n_t, len(self.plan)), np.nan)
        self.rng = np.random.default_rng(seed)
        self.faults: list[Fault] = []
        tod = tod_block(steps_of_day(scenario.index, scenario.dt_h), spd)
        self.live = LiveAnomalyMonitor(
            monitor, self.plan, self.pseudo_p_kw, self.pseudo_q_kvar, tod
        )
        self._fill_history(first_step, stop)

    def describe(self) -> str:
        """One line for the console: what the monitor was fitted on and watches."""
        first, last = self.calibration.fit_days
        budget = self.monitor.cfg.false_alarm_budget_per_step
        return (
            f"{len(self.plan)} device readings watched; thresholds fitted on {first.date()}.."
            f"{last.date()} (clean, before the twin started) for a false-alarm budget of "
            f"{budget:g} per step"
        )

    @property
    def labels(self) -> list[str]:
        """Plan rows by name (``kind@bus``), as alerts name them."""
        return list(self.monitor.labels)

    def _noisy(self, steps: np.ndarray) -> None:
        truth = truth_from_loads(self.pf, self.p_kw[steps], self.q_kvar[steps])
        self.noisy[steps] = self.plan.with_noise(self.plan.exact(truth), self.rng)

    def _fill_history(self, first_step: int, stop=None) -> None:
        """Readings of the steps just before the twin starts (the monitor's memory)."""
        lo = max(first_step - self.live.memory - 2, self.spd)
        steps = np.arange(lo, first_step)
        self._noisy(steps)
        for s in steps:
            self.pseudo_p_kw[s] = self._pseudo(s)
            self.pseudo_q_kvar[s] = self.q_kvar[s - self.spd]
        for s in steps[len(steps) // 2 :]:
            raise_if_stopped(stop)
            self.live.push(int(s), self._arrivals(int(s)))

    def _pseudo(self, step: int) -> np.ndarray:
        """Yesterday's consumption (PV added back, flexible assets taken out) minus today's PV
        from irradiance, plus what the flexible assets report today."""
        day = step - self.spd
        yesterday = self.p_kw[day] + self.pv_used_kw[day] - self.flexible_kw[day]
        return yesterday - self.pv_kw[step] + self.flexible_kw[step]

    def _arrivals(self, step: int) -> np.ndarray:
        """What arrives at ``step``: each device's latest sample, ``latency`` steps old."""
        plan = self.plan
        sampled = step - step % plan.period - plan.latency
        out = np.full(len(plan), np.nan)
        ok = sampled >= 0
        out[ok] = self.noisy[sampled[ok], np.flatnonzero(ok)]
        for f in self.faults:
            hit = (sampled[f.rows] >= f.first) & (sampled[f.rows] <= f.last)
            out[f.rows[hit]] += f.offset[hit]
        out[self.rng.random(len(plan)) < plan.dropout] = np.nan
        return out

    def inject(self, rows: np.ndarray, offset: np.ndarray, first: int, last: int | None = None):
        """Falsify the readings of plan ``rows`` describing steps ``first..last`` by ``offset``
        (in each row's unit: p.u., kW, kvar, rad, kA)."""
        rows = np.atleast_1d(np.asarray(rows, dtype=int))
        offset = np.broadcast_to(np.asarray(offset, dtype=float), rows.shape).copy()
        bad = rows[(rows < 0) | (rows >= len(self.plan))]
        if len(bad):
            msg = f"inject: rows {bad.tolist()} are outside the plan's 0..{len(self.plan) - 1}"
            raise ValueError(msg)
        self.faults.append(Fault(rows, offset, first, first if last is None else last))

    def observe(
        self,
        step: int,
        p_bus_kw: np.ndarray,
        q_bus_kvar: np.ndarray,
        pv_bus_kw: np.ndarray,
        flexible_bus_kw: np.ndarray,
    ) -> list[AnomalyAlert]:
        """Record the twin's true state of ``step`` (bus consumption, load convention; the PV
        actually produced and the flexible assets' power per bus, as their own telemetry
        reports it) and return the alerts raised with its readings."""
        self.p_kw[step], self.q_kvar[step] = p_bus_kw, q_bus_kvar
        self.pv_used_kw[step], self.flexible_kw[step] = pv_bus_kw, flexible_bus_kw
        self.pseudo_p_kw[step] = self._pseudo(step)
        self.pseudo_q_kvar[step] = self.q_kvar[step - self.spd]
        self._noisy(np.array([step]))
        return self.live.push(step, self._arrivals(step))
