"""Varied copies of one scenario: the feeders of a fleet, cheap to build and to hold.

Every feeder of a fleet runs on the same network, load profiles, weather and tariff as the
base scenario (shared by reference, so a fleet of 100 costs 100 asset fleets, not 100 copies
of the time series) but draws its own customers' assets (PV, batteries, EVs and their
sessions, appliances, heat pumps) and its own plant mismatch from a per-feeder seed. PV output
per kWp is computed once for every orientation the builder can draw, so all feeders index one
table and the shared forecast model applies to each of them unchanged.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from gridsync.data.weather import pv_output_per_kwp, read_weather
from gridsync.model.scenario_config import FleetConfig, ScenarioError, load_scenario_config
from gridsync.sim.builder import (
    PV_AZIMUTHS_DEG,
    PV_TILTS_DEG,
    build_fleet,
    build_scenario,
    resolve_scenario_path,
)
from gridsync.sim.plant import build_plant
from gridsync.sim.scenario import Scenario

_FEEDER_ID_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


def check_feeder_id(feeder_id: str) -> str:
    """Feeder ids become NATS subject tokens and table keys: lower-case letters, digits, _ -."""
    if not _FEEDER_ID_RE.match(feeder_id):
        msg = (
            f"feeder id {feeder_id!r}: expected a lower-case letter then up to 39 lower-case "
            "letters, digits, '_' or '-' (it is a NATS subject token)"
        )
        raise ValueError(msg)
    return feeder_id


@dataclass(frozen=True)
class FeederSpec:
    """One feeder of the fleet: its id and the seed its assets and plant are drawn from."""

    feeder_id: str
    seed: int

    def __post_init__(self) -> None:
        check_feeder_id(self.feeder_id)


def fleet_specs(n_feeders: int, base_seed: int = 1000) -> list[FeederSpec]:
    """``n_feeders`` feeders ``f0000, f0001, ...`` with consecutive seeds."""
    if n_feeders < 1:
        msg = f"n_feeders = {n_feeders!r}: expected >= 1"
        raise ValueError(msg)
    return [FeederSpec(f"f{i:04d}", base_seed + i) for i in range(n_feeders)]


@dataclass(frozen=True)
class ScenarioSource:
    """Where the base scenario comes from: a scenario file or bundled name, and the window."""

    scenario: str | None = None
    days: int = 1
    start: str | None = None
    history_days: int | None = None  # None: the file's (the learned forecast needs ~4 weeks)
    asset_scale: float = 1.0  # multiplies every asset count of the file (smaller feeders)

    def __post_init__(self) -> None:
        if self.days < 1:
            msg = f"days = {self.days!r}: expected >= 1"
            raise ValueError(msg)
        if not 0.0 < self.asset_scale <= 10.0:
            msg = f"asset_scale = {self.asset_scale!r}: expected in (0, 10]"
            raise ValueError(msg)
        if self.history_days is not None and self.history_days < 1:
            msg = f"history_days = {self.history_days!r}: expected >= 1 (forecasts need a day)"
            raise ValueError(msg)

    def overrides(self) -> dict:
        """``time`` fields this source overrides in the scenario file."""
        out: dict = {"days": self.days}
        if self.start is not None:
            out["start"] = self.start
        if self.history_days is not None:
            out["history_days"] = self.history_days
        return out


class ReplicaFactory:
    """Builds the base scenario once (per process) and the feeders' varied copies from it."""

    _cache: dict[ScenarioSource, ReplicaFactory] = {}

    def __init__(self, source: ScenarioSource) -> None:
        self.source = source

    @classmethod
    def for_source(cls, source: ScenarioSource) -> ReplicaFactory:
        """The process's factory for ``source`` (the coordinator, an in-process shard and a
        test share one base scenario instead of building it again)."""
        if source not in cls._cache:
            cls._cache[source] = cls(source)
        return cls._cache[source]

    @cached_property
    def base(self) -> Scenario:
        """The base scenario on the all-orientations PV table (its own fleet re-indexed)."""
        path = resolve_scenario_path(self.source.scenario)
        cfg = load_scenario_config(path)
        cfg = cfg.model_copy(
            update={
                "time": cfg.time.model_copy(update=self.source.overrides()),
                "fleet": _scaled_fleet(cfg.fleet, self.source.asset_scale),
            }
        )
        sc = build_scenario(cfg, base_dir=path.parent)
        sc.powerflow()
        return self._with_fleet(sc, sc.fleet, sc.config.seed, sc.config.plant.seed)

    @cached_property
    def _orientations(self) -> np.ndarray:
        tilt, azim = np.meshgrid(PV_TILTS_DEG, PV_AZIMUTHS_DEG, indexing="ij")
        # the network's own PV systems are registered at 30 deg / south (builder._pv_fleet)
        return np.unique(np.r_[np.c_[tilt.ravel(), azim.ravel()], [[30.0, 180.0]]], axis=0)

    def _with_fleet(self, sc: Scenario, fleet, seed: int, plant_seed: int) -> Scenario:
        table = getattr(self, "_per_kwp", None)
        if table is None:
            weather = read_weather(sc.config.weather.tmy, sc.index)
            o = self._orientations
            table = pv_output_per_kwp(weather, o[:, 0], o[:, 1])
            self._per_kwp, self._weather_obj = table, weather
        pv = fleet.pv
        orient = _orientation_index(self._orientations, pv.tilt_deg, pv.azimuth_deg)
        cfg = sc.config.model_copy(
            update={"seed": seed, "plant": sc.config.plant.model_copy(update={"seed": plant_seed})}
        )
        weather = self._weather_obj
        plant = build_plant(
            cfg.plant,
            fleet,
            sc.dt_h,
            len(sc.index),
            table,
            orient,
            lambda tilts, azimuths: pv_output_per_kwp(weather, tilts, azimuths),
        )
        return dataclasses.replace(
            sc,
            config=cfg,
            fleet=fleet,
            pv_per_kwp=table,
            pv_orientation=orient,
            pv_orientations_deg=self._orientations,
            plant=plant,
            _pf=sc.powerflow(),
            _pv_weights=None,
        )

    def build(self, spec: FeederSpec) -> Scenario:
        """The feeder ``spec``: the base's network and series, its own assets and plant."""
        base = self.base
        fleet = build_fleet(
            base.config.fleet, spec.seed, base.feeder, base.index, base.start_step, base.dt_h
        )
        return self._with_fleet(base, fleet, spec.seed, spec.seed + 7919)


def _scaled_fleet(fleet: FleetConfig, scale: float) -> FleetConfig:
    """``fleet`` with every asset count times ``scale`` (rounded, at least 1 if it had any)."""
    if scale == 1.0:
        return fleet
    kinds = ("pv", "battery", "ev", "deferrable", "thermal")
    update = {}
    for kind in kinds:
        part = getattr(fleet, kind)
        count = max(1, round(part.count * scale)) if part.count else 0
        update[kind] = part.model_copy(update={"count": count})
    return fleet.model_copy(update=update)


def _orientation_index(table: np.ndarray, tilt: np.ndarray, azimuth: np.ndarray) -> np.ndarray:
    """Row of ``table`` (tilt, azimuth) for every PV system; an orientation the table does
    not hold is a scenario error (the builder only draws from the table's values)."""
    key = np.c_[tilt, azimuth]
    match = np.all(np.isclose(key[:, None, :], table[None, :, :]), axis=2)
    missing = ~match.any(axis=1)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        msg = (
            f"PV system {i}: orientation tilt={tilt[i]} deg, azimuth={azimuth[i]} deg is not "
            "one the fleet builder draws; replicas need the shared orientation table"
        )
        raise ScenarioError(msg)
    return match.argmax(axis=1).astype(int)
