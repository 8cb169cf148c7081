"""Vectorised asset physics: apply requested powers within limits and advance the state.

Every function takes the whole fleet's arrays, clips each request to what the asset can
physically do this step, and returns ``(applied_power_kw, new_state)``. Load convention:
positive power is drawn from the grid.
"""

from __future__ import annotations

import numpy as np

from gridsync.model.assets import BatteryFleet, DeferrableFleet, EVFleet, ThermalFleet


def battery_power_bounds_kw(
    fleet: BatteryFleet, energy_kwh: np.ndarray, dt_h: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-battery power range (kW, discharge negative) for the next ``dt_h`` hours: the
    rating, narrowed to what keeps the stored energy inside the SoC limits."""
    max_charge_kw = np.maximum(fleet.energy_max_kwh - energy_kwh, 0.0) / (
        fleet.efficiency_charge * dt_h
    )
    max_discharge_kw = (
        np.maximum(energy_kwh - fleet.energy_min_kwh, 0.0) * fleet.efficiency_discharge / dt_h
    )
    return np.maximum(-fleet.power_kw, -max_discharge_kw), np.minimum(fleet.power_kw, max_charge_kw)


def battery_step(
    fleet: BatteryFleet, energy_kwh: np.ndarray, request_kw: np.ndarray, dt_h: float
) -> tuple[np.ndarray, np.ndarray]:
    """Charge (+) or discharge (-) each battery for ``dt_h`` hours.

    Stored energy moves by ``eta_c * p * dt`` when charging and by ``p * dt / eta_d`` when
    discharging; power is cut back so the stored energy stays inside the SoC limits.
    """
    p = np.clip(request_kw, *battery_power_bounds_kw(fleet, energy_kwh, dt_h))
    charge = np.maximum(p, 0.0)
    discharge = np.maximum(-p, 0.0)
    new_energy = (
        energy_kwh
        + fleet.efficiency_charge * charge * dt_h
        - discharge * dt_h / fleet.efficiency_discharge
    )
    return p, new_energy


def ev_step(
    fleet: EVFleet,
    delivered_kwh: np.ndarray,
    active: np.ndarray,
    request_kw: np.ndarray,
    dt_h: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Charge the car plugged into each charger; ``active[i]`` is its session index or -1.

    ``delivered_kwh`` is per session: energy added to the car's battery since arrival (negative
    after V2G discharge). Returns the power per charger and the updated per-session array.
    """
    plugged = active >= 0
    sess = np.where(plugged, active, 0)
    s = fleet.sessions
    delivered = delivered_kwh[sess] if len(delivered_kwh) else np.zeros(len(active))
    eta = fleet.efficiency
    can_v2g = fleet.v2g & (s.v2g_floor_kwh[sess] > 0) if len(s) else fleet.v2g & False
    p_min = np.where(can_v2g, -fleet.max_power_kw, 0.0)
    p = np.clip(request_kw, p_min, fleet.max_power_kw)
    if len(s):
        max_charge_kw = np.maximum(s.headroom_kwh[sess] - delivered, 0.0) / (eta * dt_h)
        max_discharge_kw = np.maximum(delivered + s.v2g_floor_kwh[sess], 0.0) * eta / dt_h
        p = np.clip(p, -max_discharge_kw, max_charge_kw)
    p = np.where(plugged, p, 0.0)
    gained = eta * np.maximum(p, 0.0) * dt_h - np.maximum(-p, 0.0) * dt_h / eta
    new_delivered = delivered_kwh.copy()
    new_delivered[active[plugged]] += gained[plugged]
    return p, new_delivered


def deferrable_step(
    fleet: DeferrableFleet,
    done_kwh: np.ndarray,
    hour_of_day: float,
    request_kw: np.ndarray,
    dt_h: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Run each appliance inside its daily window, never past the energy its job needs."""
    in_window = (fleet.window_start_h <= hour_of_day) & (hour_of_day < fleet.window_end_h)
    remaining_kw = np.maximum(fleet.energy_kwh - done_kwh, 0.0) / dt_h
    p = np.clip(request_kw, 0.0, np.minimum(fleet.power_kw, remaining_kw))
    p = np.where(in_window, p, 0.0)
    return p, done_kwh + p * dt_h


def hvac_mode(
    outdoor_temp_c: np.ndarray, steps_per_day: int, balance_c: float = 18.0
) -> np.ndarray:
    """Season mode per step: +1 heating when the mean outdoor temperature of the 24 h before
    the step is below the balance point, else -1 cooling (heat pumps do not flip mode between
    day and night). Step t's mode depends only on temperatures before t, so a device knows it
    at the start of the step; the first step uses its own temperature."""
    t = np.asarray(outdoor_temp_c, dtype=float)
    c = np.cumsum(np.r_[0.0, t])
    end = np.maximum(np.arange(len(t)), 1)
    lo = np.maximum(end - steps_per_day, 0)
    mean = (c[end] - c[lo]) / (end - lo)
    return np.where(mean < balance_c, 1.0, -1.0)


def forecast_hvac_mode(
    past_temp_c: np.ndarray, future_temp_c: np.ndarray, steps_per_day: int, balance_c: float = 18.0
) -> np.ndarray:
    """Season mode over a horizon from measured past temperatures (up to the step before the
    horizon) and forecast ones: ``hvac_mode`` of the joined series, horizon part only."""
    past = np.asarray(past_temp_c, dtype=float)[-steps_per_day:]
    joined = np.r_[past, np.asarray(future_temp_c, dtype=float)]
    return hvac_mode(joined, steps_per_day, balance_c)[len(past) :]


def thermal_step(
    fleet: ThermalFleet,
    temp_c: np.ndarray,
    request_kw: np.ndarray,
    outdoor_temp_c: float,
    dt_h: float,
    mode: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact discretisation of the RC model over ``dt_h`` with constant heat flow.

    ``T' = a T + (1 - a)(T_out + R Q)`` with ``a = exp(-dt / (R C))`` and ``Q = mode * cop * p``
    (``mode`` +1 heating, -1 cooling).
    """
    p = np.clip(request_kw, 0.0, fleet.max_power_kw)
    q_kw = mode * fleet.cop * p
    a = np.exp(-dt_h / (fleet.resistance_c_per_kw * fleet.capacitance_kwh_per_c))
    new_temp = a * temp_c + (1.0 - a) * (outdoor_temp_c + fleet.resistance_c_per_kw * q_kw)
    return p, new_temp


def comfort_violation_c(fleet: ThermalFleet, temp_c: np.ndarray) -> np.ndarray:
    """Degrees outside the comfort band per building (0 inside the band)."""
    return np.maximum(fleet.comfort_min_c - temp_c, 0.0) + np.maximum(
        temp_c - fleet.comfort_max_c, 0.0
    )
