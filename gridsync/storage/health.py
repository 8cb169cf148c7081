"""State of health in the twin: faded batteries for the physics, projections and alerts.

Fade feeds back into the physics: a battery's usable capacity is its nominal capacity times
its capacity fraction, and resistance growth raises its losses (each leg's loss ``1 - eta``
scales with the resistance factor: the ohmic share of losses grows with R at the same current;
treating all of the loss as ohmic is the assumption).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from gridsync.model.assets import BatteryFleet, EVFleet
from gridsync.storage.ageing import (
    AgeingState,
    advance,
    capacity_frac,
    resistance_factor,
    segment_stress,
)
from gridsync.storage.cells import Cell

END_OF_LIFE_FRAC = 0.8


def faded_batteries(
    fleet: BatteryFleet, nominal_kwh: np.ndarray, state: AgeingState, cell: Cell
) -> BatteryFleet:
    """The fleet as aged: capacity = nominal x state of health, losses x resistance factor."""
    r = resistance_factor(state, cell)
    return dataclasses.replace(
        fleet,
        capacity_kwh=nominal_kwh * capacity_frac(state, cell),
        efficiency_charge=1.0 - (1.0 - fleet.efficiency_charge) * r,
        efficiency_discharge=1.0 - (1.0 - fleet.efficiency_discharge) * r,
    )


@dataclass(frozen=True)
class HealthReport:
    """Per battery: state of health now, projected at the warranty's end, and the alert."""

    soh_frac: np.ndarray
    resistance_factor: np.ndarray
    efc: np.ndarray
    projected_soh_at_warranty: np.ndarray
    years_to_end_of_life: np.ndarray  # inf when 80 % is not reached within the projection
    warranty_years: float

    @property
    def alert(self) -> np.ndarray:
        """Batteries projected below 80 % before their warranty years."""
        return self.years_to_end_of_life < self.warranty_years

    def rows(self) -> list[dict]:
        return [
            {
                "battery": i,
                "soh_pct": round(100 * float(self.soh_frac[i]), 3),
                "resistance_factor": round(float(self.resistance_factor[i]), 4),
                "efc": round(float(self.efc[i]), 2),
                "projected_soh_at_warranty_pct": round(
                    100 * float(self.projected_soh_at_warranty[i]), 2
                ),
                "years_to_80pct": None
                if not np.isfinite(self.years_to_end_of_life[i])
                else round(float(self.years_to_end_of_life[i]), 1),
                "alert": bool(self.alert[i]),
            }
            for i in range(len(self.soh_frac))
        ]


def health_report(
    cell: Cell,
    soc: np.ndarray,
    temp_c: np.ndarray | float,
    dt_h: float,
    warranty_years: float,
    state: AgeingState | None = None,
    horizon_years: float = 20.0,
) -> HealthReport:
    """Age batteries over a window of present-capacity SoC ((n, T+1) points incl. the start,
    cut into days) and project the window's daily stresses, repeated, to ``horizon_years``:
    the state of health now, at the warranty's end, and when 80 % is reached. The window's
    fade *rate* is extrapolated (a summer week projects a summer-like life; the deeper SoC
    swing of a faded battery is not), which is what an operator's early warning needs."""
    soc = np.atleast_2d(np.asarray(soc, dtype=float))
    n = soc.shape[0]
    temp_c = np.broadcast_to(np.asarray(temp_c, dtype=float), soc.shape)
    state = state or AgeingState.fresh(n)
    per = max(int(round(24.0 / dt_h)), 1)
    stresses = []
    for a in range(0, soc.shape[1] - 1, per):
        b = min(a + per, soc.shape[1] - 1)
        cap = capacity_frac(state, cell)
        st = segment_stress(cell, soc[:, a : b + 1], temp_c[:, a : b + 1], dt_h, cap)
        stresses.append(st)
        state = advance(state, cell, st)
    now = state
    window_days = max(sum(st.days for st in stresses), 1e-9)
    years, caps = [0.0], [capacity_frac(state, cell)]
    t_days = float(np.max(state.t_days)) if n else 0.0
    while t_days < horizon_years * 365.0 and stresses:
        for st in stresses:
            state = advance(state, cell, st)
        t_days += window_days
        years.append(t_days / 365.0)
        caps.append(capacity_frac(state, cell))
    years_arr = np.asarray(years)
    years_arr[0] = float(np.max(now.t_days)) / 365.0 if n else 0.0
    caps_arr = np.asarray(caps).T  # (n, points)
    at_warranty = np.array([np.interp(warranty_years, years_arr, caps_arr[i]) for i in range(n)])
    eol = np.full(n, np.inf)
    for i in range(n):
        below = np.flatnonzero(caps_arr[i] < END_OF_LIFE_FRAC)
        if len(below):
            k = below[0]
            k0 = max(k - 1, 0)
            eol[i] = np.interp(
                END_OF_LIFE_FRAC, [caps_arr[i, k], caps_arr[i, k0]], [years_arr[k], years_arr[k0]]
            )
    return HealthReport(
        capacity_frac(now, cell),
        resistance_factor(now, cell),
        now.efc,
        at_warranty,
        eol,
        warranty_years,
    )


class BatteryAgeing:
    """Ages a twin's batteries as it steps and hands back the faded fleet once a day.

    ``record(energy_kwh)`` after every step; on a day boundary it returns the fleet with the
    day's fade and resistance applied (else None). ``report()`` is the health so far with the
    projection of the recorded use. SoC is taken against the present (faded) capacity.
    """

    def __init__(
        self,
        fleet: BatteryFleet,
        cell: Cell,
        dt_h: float,
        temp_c: float = 25.0,
        warranty_years: float = 10.0,
    ) -> None:
        self.nominal_fleet = fleet
        self.nominal_kwh = fleet.capacity_kwh.astype(float).copy()
        self.cell, self.dt_h, self.temp_c = cell, dt_h, temp_c
        self.warranty_years = warranty_years
        self.per_day = max(int(round(24.0 / dt_h)), 1)
        self.state = AgeingState.fresh(len(fleet))
        self.fleet = fleet
        self.soc: list[np.ndarray] = [self._soc(fleet.capacity_kwh * fleet.soc_initial_frac)]
        self._day_start = 0

    def _soc(self, energy_kwh: np.ndarray) -> np.ndarray:
        cap = np.maximum(self.fleet.capacity_kwh, 1e-9)
        return np.clip(energy_kwh / cap, 0.0, 1.0)

    def record(self, energy_kwh: np.ndarray) -> BatteryFleet | None:
        self.soc.append(self._soc(energy_kwh))
        if len(self.soc) - 1 - self._day_start < self.per_day:
            return None
        day = np.array(self.soc[self._day_start :]).T
        cap = capacity_frac(self.state, self.cell)
        stress = segment_stress(self.cell, day, self.temp_c, self.dt_h, cap)
        self.state = advance(self.state, self.cell, stress)
        self._day_start = len(self.soc) - 1
        self.fleet = faded_batteries(self.nominal_fleet, self.nominal_kwh, self.state, self.cell)
        return self.fleet

    def report(self) -> HealthReport:
        """Health of the recorded window from new, projected (see ``health_report``)."""
        soc = np.array(self.soc).T
        return health_report(self.cell, soc, self.temp_c, self.dt_h, self.warranty_years)


class EVPackAgeing:
    """Ages each charger's car pack from what the twin sees and hands back the faded EV fleet
    once a day.

    The car's SoC is known only while plugged in: its arrival SoC (the builder's convention,
    ``headroom = pack x (0.95 - arrival SoC)``) plus what the session delivered (negative after
    V2G); between sessions it is held, so the drive shows up as the step down to the next
    arrival SoC. Before its first session a car is taken at 60 %. Feedback: sessions that have
    not started yet can take ``SoH`` times their headroom and give back ``SoH`` times their V2G
    floor (the same SoC window of a smaller pack), and the charger-to-pack efficiency loses
    ``1 - eta`` times the resistance factor.
    """

    def __init__(
        self,
        fleet: EVFleet,
        cell: Cell,
        pack_kwh: float,
        dt_h: float,
        temp_c: float = 25.0,
        warranty_years: float = 8.0,
    ) -> None:
        n = len(fleet)
        self.nominal = fleet
        self.pack_kwh = pack_kwh
        s = fleet.sessions
        self.arrival_soc = np.clip(0.95 - s.headroom_kwh / pack_kwh, 0.0, 1.0)
        packs = BatteryFleet(
            bus=fleet.bus,
            capacity_kwh=np.full(n, pack_kwh),
            power_kw=fleet.max_power_kw,
            efficiency_charge=fleet.efficiency,
            efficiency_discharge=fleet.efficiency,
            soc_min_frac=np.zeros(n),
            soc_max_frac=np.ones(n),
            soc_initial_frac=np.full(n, 0.6),
            degradation_eur_per_kwh=np.zeros(n),
        )
        self.packs = BatteryAgeing(packs, cell, dt_h, temp_c, warranty_years)
        self.soc = np.full(n, 0.6)

    def record(self, step: int, delivered_kwh: np.ndarray) -> EVFleet | None:
        """After the twin advanced ``step``: the faded EV fleet on a day boundary, else None."""
        active = self.nominal.active_session(step)
        on = active >= 0
        sess = active[on]
        self.soc[on] = np.clip(
            self.arrival_soc[sess] + delivered_kwh[sess] / self.pack_kwh, 0.0, 1.0
        )
        faded = self.packs.record(self.soc * self.packs.fleet.capacity_kwh)
        if faded is None:
            return None
        soh = faded.capacity_kwh / self.pack_kwh
        s = self.nominal.sessions
        later = s.arrival_step > step
        scale = np.where(later, soh[s.charger], 1.0)
        sessions = dataclasses.replace(
            s, headroom_kwh=s.headroom_kwh * scale, v2g_floor_kwh=s.v2g_floor_kwh * scale
        )
        return dataclasses.replace(
            self.nominal, efficiency=faded.efficiency_charge, sessions=sessions
        )

    def report(self) -> HealthReport:
        return self.packs.report()
