"""The controller interface every dispatcher implements: observe, then return setpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from gridsync.model.assets import Fleet


@dataclass
class Setpoints:
    """Requested power per asset for one step (kW, load convention).

    ``pv_curtail_kw`` is how much of each PV system's available power to spill (>= 0).
    The twin clips every request to what the asset can physically do.
    """

    battery_kw: np.ndarray
    ev_kw: np.ndarray
    deferrable_kw: np.ndarray
    thermal_kw: np.ndarray
    pv_curtail_kw: np.ndarray

    @classmethod
    def zeros(cls, fleet: Fleet) -> Setpoints:
        return cls(
            battery_kw=np.zeros(len(fleet.battery)),
            ev_kw=np.zeros(len(fleet.ev)),
            deferrable_kw=np.zeros(len(fleet.deferrable)),
            thermal_kw=np.zeros(len(fleet.thermal)),
            pv_curtail_kw=np.zeros(len(fleet.pv)),
        )


@dataclass
class Observation:
    """What a controller sees at the start of step ``step`` (an index into ``Scenario.index``).

    Asset states are exact (they are the controller's own devices). ``base_load_kw`` and
    ``pv_available_kw`` are this step's metered averages, as a home energy manager reacting to
    its meter within the step would see them; forecasts of later steps are the controller's job.
    """

    step: int
    time: pd.Timestamp
    dt_h: float
    battery_energy_kwh: np.ndarray
    ev_active_session: np.ndarray
    ev_delivered_kwh: np.ndarray
    deferrable_done_kwh: np.ndarray
    thermal_temp_c: np.ndarray
    base_load_kw: np.ndarray
    pv_available_kw: np.ndarray
    outdoor_temp_c: float
    hvac_mode: float
    import_price_eur_per_kwh: float
    export_price_eur_per_kwh: float
    carbon_g_per_kwh: float
    last_vm_pu: np.ndarray | None = None
    last_branch_loading_pct: np.ndarray | None = None
    last_feeder_kw: float | None = None

    @property
    def hour_of_day(self) -> float:
        t = self.time
        return t.hour + t.minute / 60 + t.second / 3600


@runtime_checkable
class Controller(Protocol):
    """A dispatcher. ``reset`` is called once per run with the scenario, ``act`` every step."""

    name: str

    def reset(self, scenario) -> None: ...

    def act(self, obs: Observation) -> Setpoints: ...
