"""A materialised scenario: feeder, fleet and every exogenous series on one time index."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gridsync.grid.powerflow import PowerFlowModel, build_powerflow_model
from gridsync.model.assets import Fleet
from gridsync.model.network import Feeder
from gridsync.model.scenario_config import ScenarioConfig
from gridsync.model.tariff import Tariff

if TYPE_CHECKING:
    from gridsync.grid.threephase.feeder import ThreePhaseFeeder
    from gridsync.sim.plant import Plant


@dataclass
class Scenario:
    """Everything the twin needs, over ``index`` = history + simulated window + look-ahead.

    ``start_step`` is the position in ``index`` of the first simulated step; steps are
    ``dt_h`` hours long. Series shaped ``(T, ...)`` are aligned with ``index``.
    ``fleet`` and the series are the model controllers are given; ``plant`` (None: the model
    itself) is what the twin's physics really runs on.
    """

    config: ScenarioConfig
    feeder: Feeder
    index: pd.DatetimeIndex
    start_step: int
    n_steps: int
    dt_h: float
    base_load_kw: np.ndarray
    base_load_kvar: np.ndarray
    pv_per_kwp: np.ndarray
    pv_orientation: np.ndarray
    outdoor_temp_c: np.ndarray
    hvac_mode: np.ndarray
    ghi_w_m2: np.ndarray
    tariff: Tariff
    carbon_g_per_kwh: np.ndarray
    fleet: Fleet
    weather_station: str = ""
    plant: Plant | None = None
    # (n_orientations, 2) tilt/azimuth (deg) of ``pv_per_kwp``'s columns; None: the fleet's
    # unique orientations in sorted order (how the builder makes the table)
    pv_orientations_deg: np.ndarray | None = None
    three_phase: ThreePhaseFeeder | None = None  # [grid] phases = 3: the twin solves it
    sgen_kvar: np.ndarray | None = None  # the network's PV sgens' share of base_load_kvar
    _pf: PowerFlowModel | None = field(default=None, repr=False)
    _pv_weights: np.ndarray | None = field(default=None, repr=False)

    @property
    def end_step(self) -> int:
        return self.start_step + self.n_steps

    @property
    def window(self) -> pd.DatetimeIndex:
        return self.index[self.start_step : self.end_step]

    @property
    def steps_per_day(self) -> int:
        return int(round(24 / self.dt_h))

    def powerflow(self) -> PowerFlowModel:
        """The feeder's admittance model, built on first use."""
        if self._pf is None:
            self._pf = build_powerflow_model(self.feeder)
        return self._pf

    def load_zip_kw(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The network's own loads at ``step`` (kW, kvar by bus): the voltage-dependent part
        of the consumption when the network's loads have ZIP shares."""
        q = self.base_load_kvar[step]
        if self.sgen_kvar is not None:
            q = q - self.sgen_kvar[step]
        return self.base_load_kw[step], q

    def pv_available_kw(self, steps: int | slice) -> np.ndarray:
        """Available PV power per system: (n_pv,) for one step or (len, n_pv) for a slice."""
        per_kwp = self.pv_per_kwp[steps][..., self.pv_orientation]
        return per_kwp * self.fleet.pv.peak_kw

    def pv_by_bus_kw(self, steps: int | slice) -> np.ndarray:
        """Available PV aggregated per bus (before curtailment)."""
        if self._pv_weights is None:
            # sum over systems of peak * profile[orientation] == profile @ (orientation x bus)
            fleet = self.fleet.pv
            weights = np.zeros((self.pv_per_kwp.shape[-1], self.feeder.n_bus))
            np.add.at(weights, (self.pv_orientation, fleet.bus), fleet.peak_kw)
            self._pv_weights = weights
        return self.pv_per_kwp[steps] @ self._pv_weights

    def net_inflexible_kw(self, steps: int | slice) -> np.ndarray:
        """Inflexible load minus available PV, per bus: what forecasters predict."""
        return self.base_load_kw[steps] - self.pv_by_bus_kw(steps)
