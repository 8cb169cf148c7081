"""Scenario glue: the true grid trajectory of a scenario, its pseudo-measurements and a
calibrated measurement plan, ready for the estimator and the anomaly detectors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridsync.grid.estimation.twin import (
    MeasurementConfig,
    MeasurementPlan,
    Truth,
    truth_from_loads,
)


@dataclass
class Telemetry:
    """Everything the operator side sees for steps ``0..T`` of a scenario's index.

    ``readings`` (T, m) are device readings (NaN = nothing arrived); ``pseudo_p_kw`` /
    ``pseudo_q_kvar`` (T, n_bus) are pseudo-measurements (yesterday's load minus today's PV
    estimated from irradiance and the PV registry); ``step_of_day`` (T,) each step's
    position in its day; ``truth`` is kept for scoring only.
    """

    plan: MeasurementPlan
    truth: Truth
    readings: np.ndarray
    pseudo_p_kw: np.ndarray
    pseudo_q_kvar: np.ndarray
    first_step: int
    step_of_day: np.ndarray

    def snapshot(self, step: int, readings: np.ndarray | None = None, aligned: bool = False):
        """The estimator's input at ``step``; ``aligned=True`` reads ``readings`` (default:
        ``self.aligned()``) as rows of the time they describe (``MeasurementPlan.align``)."""
        if readings is None:
            readings = self.aligned() if aligned else self.readings
        p, q = self.pseudo_p_kw[step], self.pseudo_q_kvar[step]
        return self.plan.snapshot(readings, step, p, q, aligned=aligned)

    def aligned(self) -> np.ndarray:
        """Readings by the time they describe (``MeasurementPlan.align``)."""
        return self.plan.align(self.readings)


def steps_of_day(index: pd.DatetimeIndex, dt_h: float) -> np.ndarray:
    """Each time stamp's step within its day (0 at midnight)."""
    since = (index - index.normalize()) / pd.Timedelta(hours=dt_h)
    return np.floor(np.asarray(since, dtype=float) + 1e-9).astype(np.int64)


def scenario_telemetry(
    scenario,
    config: MeasurementConfig | None = None,
    end_step: int | None = None,
    load: tuple[np.ndarray, np.ndarray] | None = None,
) -> Telemetry:
    """True flows, pseudo-measurements, and a plan calibrated on the history before
    ``scenario.start_step``.

    The truth is the scenario's inflexible load and PV (no flexible assets) unless ``load``
    gives the actual bus consumption ``(p_kw, q_kvar)`` for steps ``0..end_step`` (e.g. a
    simulated run with heat pumps and EVs); pseudo-measurements are then yesterday's actual
    consumption (PV added back) minus today's PV. ``load = (p_kw, q_kvar, flexible_kw)`` also
    gives the per-bus power the flexible assets' own telemetry reports (chargers, inverters,
    heat-pump controllers): the pseudo-measurements then take yesterday's consumption without
    it and add today's, so a car that plugs in is not mistaken for an unknown load. Needs at
    least two days of history (one for pseudo-measurements, one to calibrate).
    """
    spd = scenario.steps_per_day
    if scenario.start_step < 2 * spd:
        msg = (
            f"scenario has {scenario.start_step / spd:g} history days; "
            "telemetry needs >= 2 (load_scenario(history_days=2) or more)"
        )
        raise ValueError(msg)
    end = scenario.end_step if end_step is None else end_step
    pf = scenario.powerflow()
    steps = slice(0, end)
    pv = scenario.pv_by_bus_kw(steps)
    if load is None:
        p_kw, q_kvar = scenario.net_inflexible_kw(steps), scenario.base_load_kvar[steps]
        consumed = scenario.base_load_kw[steps]
    else:
        p_kw, q_kvar, *known = (np.asarray(x, dtype=float)[:end] for x in load)
        if any(x.shape != pv.shape for x in (p_kw, q_kvar, *known)):
            got = "/".join(str(x.shape) for x in (p_kw, q_kvar, *known))
            msg = f"load: expected (p_kw, q_kvar[, flexible_kw]) of shape {pv.shape}, got {got}"
            raise ValueError(msg)
        consumed = p_kw + pv
    flexible = known[0] if load is not None and known else np.zeros_like(pv)
    truth = truth_from_loads(pf, p_kw, q_kvar)
    pseudo_p = np.zeros_like(truth.p_kw)
    pseudo_q = np.zeros_like(truth.q_kvar)
    pseudo_p[spd:] = (consumed - flexible)[: end - spd] - pv[spd:] + flexible[spd:]
    pseudo_q[spd:] = q_kvar[: end - spd]
    feeder = scenario.feeder
    plan = MeasurementPlan(pf, feeder.slack_pos, feeder.customer_buses, config)
    hist = slice(spd, scenario.start_step)
    plan.calibrate(
        Truth(truth.v[hist], truth.p_kw[hist], truth.q_kvar[hist]), pseudo_p[hist], pseudo_q[hist]
    )
    return Telemetry(
        plan,
        truth,
        plan.readings(truth),
        pseudo_p,
        pseudo_q,
        scenario.start_step,
        steps_of_day(scenario.index[:end], scenario.dt_h),
    )
