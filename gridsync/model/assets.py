"""Asset fleets as arrays: one dataclass per kind, one array element per asset.

Sign convention everywhere: positive power is consumption (load convention), negative is
injection into the grid. Every asset sits on a bus given as a position in ``Feeder.bus_ids``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np


def _check_lengths(obj: object) -> None:
    sizes = {f.name: len(getattr(obj, f.name)) for f in fields(obj) if f.name != "name"}
    if len(set(sizes.values())) > 1:
        msg = f"{type(obj).__name__}: arrays differ in length: {sizes}"
        raise ValueError(msg)


@dataclass
class PVFleet:
    """Rooftop PV systems; available power per step comes from pvlib (see ``gridsync.data.weather``)."""

    bus: np.ndarray
    peak_kw: np.ndarray
    tilt_deg: np.ndarray
    azimuth_deg: np.ndarray

    def __post_init__(self) -> None:
        _check_lengths(self)

    def __len__(self) -> int:
        return len(self.bus)


@dataclass
class BatteryFleet:
    """Stationary batteries with round-trip losses split into charge/discharge efficiency."""

    bus: np.ndarray
    capacity_kwh: np.ndarray
    power_kw: np.ndarray
    efficiency_charge: np.ndarray
    efficiency_discharge: np.ndarray
    soc_min_frac: np.ndarray
    soc_max_frac: np.ndarray
    soc_initial_frac: np.ndarray
    degradation_eur_per_kwh: np.ndarray

    def __post_init__(self) -> None:
        _check_lengths(self)

    def __len__(self) -> int:
        return len(self.bus)

    @property
    def energy_min_kwh(self) -> np.ndarray:
        return self.capacity_kwh * self.soc_min_frac

    @property
    def energy_max_kwh(self) -> np.ndarray:
        return self.capacity_kwh * self.soc_max_frac


@dataclass
class EVSessions:
    """Charging sessions; steps are indices into the scenario's full time index.

    ``energy_need_kwh`` must reach the car's battery by ``departure_step`` (exclusive).
    ``headroom_kwh`` caps what the battery can take; ``v2g_floor_kwh`` (>= 0) is how much the car
    may give back below its arrival energy (0 when the charger or car does not allow V2G).
    """

    charger: np.ndarray
    arrival_step: np.ndarray
    departure_step: np.ndarray
    energy_need_kwh: np.ndarray
    headroom_kwh: np.ndarray
    v2g_floor_kwh: np.ndarray

    def __post_init__(self) -> None:
        _check_lengths(self)

    def __len__(self) -> int:
        return len(self.charger)


@dataclass
class EVFleet:
    """EV chargers (one car at a time each) and the sessions they serve."""

    bus: np.ndarray
    max_power_kw: np.ndarray
    efficiency: np.ndarray
    v2g: np.ndarray
    sessions: EVSessions = field(repr=False)
    # EUR per kWh discharged to the grid (battery wear of discharging and recharging it)
    v2g_degradation_eur_per_kwh: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.v2g_degradation_eur_per_kwh is None:
            self.v2g_degradation_eur_per_kwh = np.zeros(len(self.bus))
        if len(self.sessions) and self.sessions.charger.max() >= len(self.bus):
            msg = "EVSessions.charger refers to a charger that does not exist"
            raise ValueError(msg)

    def __len__(self) -> int:
        return len(self.bus)

    def active_session(self, step: int) -> np.ndarray:
        """Index of the session plugged into each charger at ``step``, or -1."""
        s = self.sessions
        active = np.flatnonzero((s.arrival_step <= step) & (step < s.departure_step))
        out = np.full(len(self.bus), -1, dtype=np.int64)
        out[s.charger[active]] = active
        return out


@dataclass
class DeferrableFleet:
    """Appliances that must run ``energy_kwh`` between window start and end (one job per day)."""

    bus: np.ndarray
    power_kw: np.ndarray
    energy_kwh: np.ndarray
    window_start_h: np.ndarray
    window_end_h: np.ndarray

    def __post_init__(self) -> None:
        _check_lengths(self)
        if np.any(self.window_end_h <= self.window_start_h):
            msg = "DeferrableFleet: window_end_h must be after window_start_h"
            raise ValueError(msg)

    def __len__(self) -> int:
        return len(self.bus)


@dataclass
class ThermalFleet:
    """Heat pumps / HVAC on first-order (RC) buildings, kept inside a comfort band.

    Indoor temperature follows ``C dT/dt = (T_out - T)/R + Q`` with ``Q = ±cop * p_el``: heating
    or cooling by season (see ``physics.hvac_mode``).
    """

    bus: np.ndarray
    max_power_kw: np.ndarray
    cop: np.ndarray
    resistance_c_per_kw: np.ndarray
    capacitance_kwh_per_c: np.ndarray
    comfort_min_c: np.ndarray
    comfort_max_c: np.ndarray
    initial_temp_c: np.ndarray

    def __post_init__(self) -> None:
        _check_lengths(self)

    def __len__(self) -> int:
        return len(self.bus)


@dataclass
class Fleet:
    """Every controllable and uncontrollable asset of a scenario."""

    pv: PVFleet
    battery: BatteryFleet
    ev: EVFleet
    deferrable: DeferrableFleet
    thermal: ThermalFleet

    @property
    def size(self) -> int:
        return (
            len(self.pv)
            + len(self.battery)
            + len(self.ev)
            + len(self.deferrable)
            + len(self.thermal)
        )

    def counts(self) -> dict[str, int]:
        return {
            "pv": len(self.pv),
            "battery": len(self.battery),
            "ev_charger": len(self.ev),
            "ev_session": len(self.ev.sessions),
            "deferrable": len(self.deferrable),
            "thermal": len(self.thermal),
        }
