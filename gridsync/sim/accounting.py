"""End-of-window accounting: what the state left at the end of a run is worth.

A run that drains the batteries, leaves cars crossing the window end half charged or lets the
buildings drift out of temperature looks cheap unless the state it hands over is settled.
These functions settle it the same way for the KPIs (``sim.kpi``) and for the optimizers'
terminal values (``dispatch.terminal``), so the perfect-foresight bound and the KPI it bounds
use one arithmetic (``AccountingConfig`` in the scenario selects the rule):

- batteries: ``mean_import_price`` credits (charges) stored energy above (below) the start
  level at the window's mean import price; ``start_level`` charges only the shortfall, at
  ``shortfall_eur_per_kwh``;
- EV sessions that cross the window end owe the share of their need that falls inside the
  window, pro rata to the plugged time (need x (end - arrival) / (departure - arrival)).
  What they got short counts in the unmet EV energy, but is priced as end state (at the
  mean import price, or the shortfall price), not at the unmet-energy weight: the car is
  still plugged in and can get it after the window. What they got beyond it (up to their
  whole need) is credited at the mean import price (``mean_import_price`` only);
- appliance jobs whose window is still open at the end owe their energy pro rata likewise;
- a building below (heating) or above (cooling) its start temperature, clipped into its
  comfort band, is charged the heat-pump electricity that restores it, ``C * dT / COP`` kWh
  (RC model capacitance), at the mean import price (or the shortfall price).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.model.assets import DeferrableFleet, EVSessions, ThermalFleet


@dataclass(frozen=True)
class EndPrices:
    """EUR per kWh of end-state credit and of end-state shortfall (``AccountingConfig``)."""

    credit_eur_per_kwh: float
    shortfall_eur_per_kwh: float

    @classmethod
    def from_scenario(cls, scenario) -> EndPrices:
        acc = scenario.config.accounting
        if acc.end_valuation == "mean_import_price":
            mean = window_mean_import_price(scenario)
            return cls(mean, mean)
        return cls(0.0, acc.shortfall_eur_per_kwh)


def window_mean_import_price(scenario) -> float:
    """Mean import price over the simulated window (EUR/kWh)."""
    prices = scenario.tariff.import_eur_per_kwh[scenario.start_step : scenario.end_step]
    return float(np.mean(prices))


def ev_owed_kwh(sessions: EVSessions, start_step: int, end_step: int) -> np.ndarray:
    """Energy each session owes inside ``[start_step, end_step)`` (kWh, 0 when it does not
    overlap): its whole need if it leaves by the end, else the need pro rata to the plugged
    steps inside the window (counted from the later of arrival and window start)."""
    arr = np.maximum(sessions.arrival_step, start_step).astype(float)
    dep = sessions.departure_step.astype(float)
    overlaps = (sessions.arrival_step < end_step) & (sessions.departure_step > start_step)
    share = np.where(dep > end_step, (end_step - arr) / np.maximum(dep - arr, 1e-9), 1.0)
    return np.where(overlaps, sessions.energy_need_kwh * np.clip(share, 0.0, 1.0), 0.0)


def deferrable_owed_fraction(
    fleet: DeferrableFleet, end_hour: float, window_h: float
) -> tuple[np.ndarray, np.ndarray]:
    """Jobs whose daily window is still open at the end (mask) and the share of their energy
    that falls before the end. ``end_hour`` is the hour of day the window ends at (in
    ``(0, 24]``), ``window_h`` the simulated hours (a job open since before the start is
    counted from the start, as the twin does)."""
    open_at_end = (fleet.window_start_h < end_hour) & (end_hour < fleet.window_end_h)
    opened_h = np.maximum(fleet.window_start_h, end_hour - window_h)
    share = (end_hour - opened_h) / np.maximum(fleet.window_end_h - opened_h, 1e-9)
    return open_at_end, np.where(open_at_end, np.clip(share, 0.0, 1.0), 0.0)


def thermal_kwh_per_c(fleet: ThermalFleet) -> np.ndarray:
    """Heat-pump electricity (kWh) that moves each building's stored heat by 1 °C: C / COP."""
    return fleet.capacitance_kwh_per_c / fleet.cop


def thermal_reference_c(fleet: ThermalFleet, start_temp_c: np.ndarray) -> np.ndarray:
    """Temperature each building must be handed back at: its start, clipped into its band."""
    return np.clip(start_temp_c, fleet.comfort_min_c, fleet.comfort_max_c)


@dataclass
class EndState:
    """Settlement of the state at the end of a window (kWh and EUR; adjustment > 0 costs)."""

    battery_delta_kwh: float  # stored energy at the end minus at the start, all batteries
    battery_shortfall_kwh: float  # below the start level, summed per battery
    ev_owed_kwh: np.ndarray  # per session
    ev_unmet_kwh: np.ndarray  # per session: owed minus delivered, >= 0
    ev_shortfall_kwh: float  # the part of ev_unmet_kwh owed by sessions crossing the end
    ev_credit_kwh: float  # delivered beyond what crossing sessions owe, up to their need
    thermal_deficit_kwh: float  # electricity to restore the buildings' reference temperatures
    adjustment_eur: float


def settle_end_state(
    scenario,
    battery_start_kwh: np.ndarray,
    battery_end_kwh: np.ndarray,
    ev_delivered_kwh: np.ndarray,
    temp_start_c: np.ndarray,
    temp_end_c: np.ndarray,
    fleet=None,
) -> EndState:
    """Settle the window's end state under the scenario's ``AccountingConfig``. Unmet energy
    of sessions that left inside the window is not in the adjustment: the KPI prices it at
    the objective's weight. ``fleet`` is the one the twin ran (the true plant's; default the
    scenario's model)."""
    f = scenario.fleet if fleet is None else fleet
    prices = EndPrices.from_scenario(scenario)
    s = f.ev.sessions
    owed = ev_owed_kwh(s, scenario.start_step, scenario.end_step)
    delivered = ev_delivered_kwh if len(ev_delivered_kwh) else np.zeros(len(s))
    unmet = np.maximum(owed - delivered, 0.0)
    crossing = (s.arrival_step < scenario.end_step) & (s.departure_step > scenario.end_step)
    extra = np.clip(delivered - owed, 0.0, np.maximum(s.energy_need_kwh - owed, 0.0))
    ev_credit = float(extra[crossing].sum())
    ev_short = float(unmet[crossing].sum())
    delta = float(np.sum(battery_end_kwh - battery_start_kwh))
    short = float(np.maximum(battery_start_kwh - battery_end_kwh, 0.0).sum())
    mode = float(scenario.hvac_mode[scenario.end_step - 1]) if len(temp_end_c) else 0.0
    ref = thermal_reference_c(f.thermal, temp_start_c)
    deficit_c = np.maximum(mode * (ref - temp_end_c), 0.0)
    thermal_kwh = float(thermal_kwh_per_c(f.thermal) @ deficit_c) if len(deficit_c) else 0.0
    if scenario.config.accounting.end_valuation == "mean_import_price":
        battery_eur = -prices.credit_eur_per_kwh * delta
    else:
        battery_eur = prices.shortfall_eur_per_kwh * short
    adjustment = (
        battery_eur
        - prices.credit_eur_per_kwh * ev_credit
        + prices.shortfall_eur_per_kwh * (ev_short + thermal_kwh)
    )
    return EndState(
        battery_delta_kwh=delta,
        battery_shortfall_kwh=short,
        ev_owed_kwh=owed,
        ev_unmet_kwh=unmet,
        ev_shortfall_kwh=ev_short,
        ev_credit_kwh=ev_credit,
        thermal_deficit_kwh=thermal_kwh,
        adjustment_eur=float(adjustment),
    )
