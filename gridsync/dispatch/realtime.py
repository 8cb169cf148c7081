"""Per-step correction of a dispatch plan against the newest measurements.

A plan is solved on forecasts; by the time a step starts, the last interval's meters show how
far the inflexible load minus PV has drifted from what the plan assumed. The step itself is not
measured yet, so the controller estimates it (``StepEstimate``: e.g. ``sim.forecasts.nowcast``
or the MPC's damped persistence of the last measured forecast error). ``rebalance`` moves the
step's setpoints so that the feeder import follows the plan under that estimate: the expected
deviation is absorbed by the batteries (``track_gain`` of it; 1 = all), and the import is held
at or below the plan's peak target by discharging batteries further, then by slowing
appliances and EV charging that can still finish in their window / by declared departure.
Optionally heat pumps are first raised to what keeps each building in its comfort band at the
estimated outdoor temperature. Everything stays inside power ratings and state-of-charge
limits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gridsync.dispatch.rules import ev_remaining_kwh, thermostat_kw
from gridsync.model import physics
from gridsync.sim.controller import Observation, Setpoints
from gridsync.sim.forecasts import StepEstimate


@dataclass(frozen=True)
class PlanTarget:
    """What the plan expects at one step (kW at the feeder head, import positive)."""

    feeder_kw: float  # the plan's feeder import at this step (AC-checked, losses included)
    inflexible_kw: float  # the net inflexible load (base load minus available PV) it assumed
    peak_kw: float  # import above this raises the demand charge the plan paid for


@dataclass
class Correction:
    """What ``rebalance`` did: deviation seen and power moved (kW, load convention)."""

    deviation_kw: float
    battery_delta_kw: float
    flex_delta_kw: float  # appliances and EV charging slowed for the peak
    expected_feeder_kw: float


def ev_floor_kw(
    fleet, obs: Observation, later_share: float = 1.0, margin_steps: int = 0
) -> np.ndarray:
    """Per charger: the least charging power now that still lets the car get its energy by
    departure charging at ``later_share`` of full power afterwards (0 for empty chargers).
    ``margin_steps`` moves the deadline that much before the declared departure, but never
    before the end of this step: a car past that earlier deadline and still short gets full
    power (up to what it still needs) until it actually leaves."""
    ev, dt = fleet.ev, obs.dt_h
    need_kwh, hours_left = ev_remaining_kwh(ev, obs)
    hours_left = np.minimum(hours_left, np.maximum(hours_left - margin_steps * dt, dt))
    later_kwh = later_share * ev.efficiency * ev.max_power_kw * np.maximum(hours_left - dt, 0.0)
    floor = np.maximum(need_kwh - later_kwh, 0.0) / (ev.efficiency * dt)
    return np.where(np.asarray(obs.ev_active_session) >= 0, np.minimum(floor, ev.max_power_kw), 0.0)


def deferrable_floor_kw(fleet, obs: Observation, later_share: float = 1.0) -> np.ndarray:
    """Per appliance: the least power now that still finishes its job inside the window at
    ``later_share`` of its rating afterwards (0 outside the window)."""
    d, dt, hour = fleet.deferrable, obs.dt_h, obs.hour_of_day
    in_window = (d.window_start_h <= hour) & (hour < d.window_end_h)
    remaining = np.maximum(d.energy_kwh - obs.deferrable_done_kwh, 0.0)
    later_h = np.maximum(d.window_end_h - hour - dt, 0.0)
    floor = np.maximum(remaining - later_share * d.power_kw * later_h, 0.0) / dt
    return np.where(in_window, np.minimum(floor, d.power_kw), 0.0)


def _spread(current: np.ndarray, lo: np.ndarray, hi: np.ndarray, delta: float) -> np.ndarray:
    """Move ``current`` by ``delta`` in total within [lo, hi], in proportion to each asset's
    room in that direction (clipped to what the room allows)."""
    room = np.maximum(hi - current, 0.0) if delta > 0 else np.maximum(current - lo, 0.0)
    total = float(room.sum())
    if total <= 1e-12 or delta == 0.0:
        return current.copy()
    share = min(abs(delta) / total, 1.0)
    return current + np.sign(delta) * share * room


def rebalance(
    fleet,
    obs: Observation,
    sp: Setpoints,
    target: PlanTarget,
    estimate: StepEstimate,
    track_gain: float = 1.0,
    later_share: float = 0.25,
    comfort_guard: bool = False,
    discharge_for_deviation: bool = True,
    ev_margin_steps: int = 0,
) -> tuple[Setpoints, Correction]:
    """Setpoints ``sp`` corrected for the deviation from the plan's forecast expected at this
    step (``estimate`` of its load, PV and outdoor temperature, made before the step).

    Appliances and EVs are slowed for the peak only as far as their job still fits in the
    time left at ``later_share`` of their rating (a margin for later plans that also hold the
    peak down). ``comfort_guard`` raises heat-pump power to what keeps each building inside
    its comfort band at the end of the step with the estimated outdoor temperature (the plan
    assumed an older forecast); the extra load is then balanced like any other deviation.
    ``discharge_for_deviation=False`` (the stored energy is worth more than this step's
    import price) covers extra load from the grid instead of from the batteries, which are
    then discharged beyond the plan only to hold the peak target. ``ev_margin_steps``: EVs
    are slowed only as far as they still finish that many steps before declared departure
    (the deadline the plan used, see ``ev_floor_kw``).
    """
    expected_kw = float(np.sum(estimate.base_load_kw) - np.sum(estimate.pv_available_kw))
    deviation = expected_kw - target.inflexible_kw
    expected = target.feeder_kw + deviation
    lo, hi = physics.battery_power_bounds_kw(fleet.battery, obs.battery_energy_kwh, obs.dt_h)
    bat0 = np.clip(np.asarray(sp.battery_kw, float), lo, hi)
    expected += float(bat0.sum() - np.sum(sp.battery_kw))
    th_kw, extra = np.asarray(sp.thermal_kw, float), 0.0
    if comfort_guard and len(th_kw):
        th = fleet.thermal
        edge = np.where(obs.hvac_mode < 0, th.comfort_max_c, th.comfort_min_c)
        need = thermostat_kw(
            th, np.asarray(obs.thermal_temp_c, float), edge, obs, estimate.outdoor_temp_c
        )
        guarded = np.maximum(th_kw, need)
        extra = float(guarded.sum() - th_kw.sum())
        expected += extra
        th_kw = guarded
    delta = -track_gain * (deviation + extra)
    if not discharge_for_deviation:
        delta = max(delta, 0.0)
    delta = min(delta, target.peak_kw - expected)  # never buy above the peak target
    bat = _spread(bat0, lo, hi, delta)
    moved_bat = float(bat.sum() - bat0.sum())
    expected += moved_bat
    dfr_kw, ev_kw = np.asarray(sp.deferrable_kw, float), np.asarray(sp.ev_kw, float)
    moved_flex = 0.0
    for kind, floor_of in (("deferrable", deferrable_floor_kw), ("ev", ev_floor_kw)):
        excess = expected - target.peak_kw
        if excess <= 1e-9:
            break
        now = dfr_kw if kind == "deferrable" else ev_kw
        margin = {"margin_steps": ev_margin_steps} if kind == "ev" else {}
        floor = np.minimum(floor_of(fleet, obs, later_share, **margin), np.maximum(now, 0.0))
        new = _spread(now, floor, now, -excess)
        moved = float(new.sum() - now.sum())
        moved_flex += moved
        expected += moved
        if kind == "deferrable":
            dfr_kw = new
        else:
            ev_kw = new
    out = replace(
        sp,
        battery_kw=bat,
        ev_kw=ev_kw,
        deferrable_kw=dfr_kw,
        thermal_kw=th_kw,
        pv_curtail_kw=np.asarray(sp.pv_curtail_kw, float),
    )
    return out, Correction(deviation, moved_bat, moved_flex, expected)
