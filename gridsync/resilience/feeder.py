"""The switchable MV feeder of the FLISR study: pandapower net, switches, customers, conditions.

``load_feeder_study`` reads a study file (``gridsync/data/reliability/cigre_mv_flisr.toml``),
builds the pandapower network it names and returns a ``SwitchableFeeder`` with per-line failure
data, which lines carry remote-controlled switches and fault-current indicators, the customers
and priority of every load, and the microgrid sections. ``Conditions`` gives the operating point
at any hour of a year from bundled real data: SimBench 2016 household (H0) and commercial (G)
load profiles, and PV output and weather from the pvlib-bundled TMY3 (Greensboro, NC).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gridsync.model.scenario_config import format_validation_errors, read_config_mapping
from gridsync.resilience.system import DATA_DIR

CIGRE_STUDY = DATA_DIR / "cigre_mv_flisr.toml"
PROFILE_FILE = DATA_DIR.parent / "profiles" / "simbench_lv_semiurb5_load_2016.csv.gz"
TMY = "pvlib:723170TYA.CSV"


class FeederStudyError(ValueError):
    """The study file is invalid or names elements the network does not have."""


class LineType(BaseModel):
    model_config = ConfigDict(extra="forbid")
    failure_rate_per_km_yr: float = Field(ge=0)
    repair_time_h: float = Field(gt=0)
    wind_sensitive: bool = False


class Upstream(BaseModel):
    """Loss of the supply behind the substation: no feeder switching can restore it."""

    model_config = ConfigDict(extra="forbid")
    failure_rate_per_yr: float = Field(ge=0)
    restoration_time_h: float = Field(gt=0)
    wind_sensitive: bool = True


class Switching(BaseModel):
    model_config = ConfigDict(extra="forbid")
    breakers: list[str] = Field(min_length=1)
    remote: list[str] = []


class Microgrid(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    buses: list[int] = Field(min_length=1)
    battery: str
    battery_energy_kwh: float = Field(gt=0)


class FeederStudy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    manual_switching_time_h: float = Field(gt=0)
    remote_switching_time_h: float = Field(gt=0)
    momentary_threshold_h: float = Field(0.0833, ge=0)
    voltage_min_pu: float = Field(0.90, gt=0.5, lt=1.0)
    voltage_max_pu: float = Field(1.10, gt=1.0, lt=1.5)
    loading_max_percent: float = Field(100.0, gt=0)
    line_types: dict[str, LineType]
    upstream: Upstream | None = None
    switching: Switching
    customers: dict[str, int]
    priority: dict[str, float] = {}
    microgrids: list[Microgrid] = []

    @model_validator(mode="after")
    def _times(self) -> FeederStudy:
        if self.remote_switching_time_h >= self.manual_switching_time_h:
            msg = (f"remote_switching_time_h ({self.remote_switching_time_h}) must be shorter than "
                   f"manual_switching_time_h ({self.manual_switching_time_h})")
            raise ValueError(msg)
        return self


@dataclass
class SwitchableFeeder:
    """Arrays over the MV lines (index = pandapower line index) and the feeder loads."""

    study: FeederStudy
    net: object
    line_from: np.ndarray
    line_to: np.ndarray
    line_name: list[str]
    r_pu: np.ndarray
    x_pu: np.ndarray
    s_max_kva: np.ndarray
    normally_closed: np.ndarray
    remote: np.ndarray
    breaker: np.ndarray
    failure_rate_per_yr: np.ndarray
    repair_time_h: np.ndarray
    wind_sensitive: np.ndarray
    sources: np.ndarray
    source_trafo: np.ndarray
    load_index: np.ndarray
    load_bus: np.ndarray
    customers: np.ndarray
    priority: np.ndarray
    commercial: np.ndarray
    n_bus: int

    def line_by_name(self, name: str) -> int:
        return self.line_name.index(name)


def _study(path: Path) -> FeederStudy:
    data = read_config_mapping(path, "feeder study", FeederStudyError)
    try:
        return FeederStudy.model_validate(data)
    except ValidationError as err:
        raise FeederStudyError(format_validation_errors(path.name, err)) from None


def load_feeder_study(path: str | Path = CIGRE_STUDY) -> SwitchableFeeder:
    """Build the CIGRE MV network and the study's switching, customer and failure data."""
    import pandapower.networks as pn

    study = _study(Path(path))
    net = pn.create_cigre_network_mv(with_der="all")
    net.switch.loc[net.switch.et == "l", "closed"] = True  # line status is modelled by in_service
    open_lines = {14: False, 12: False, 13: False}  # S1, S2, S3 of the benchmark
    names = net.line.name.tolist()
    for kind, listed in (("breakers", study.switching.breakers), ("remote", study.switching.remote)):
        for n in listed:
            if n not in names:
                msg = f"switching.{kind}: line {n!r} is not in the network (lines: {names})"
                raise FeederStudyError(msg)
    unknown = [t for t in net.line.std_type.unique() if t not in study.line_types]
    if unknown:
        msg = f"line_types: the network uses {unknown}, which the study does not define"
        raise FeederStudyError(msg)
    vn_kv = net.bus.vn_kv.to_numpy()
    fb, tb = net.line.from_bus.to_numpy(), net.line.to_bus.to_numpy()
    z_base = vn_kv[fb] ** 2 / 1.0  # ohm on a 1 MVA base
    length = net.line.length_km.to_numpy()
    types = [study.line_types[t] for t in net.line.std_type]
    load_names = net.load.name.tolist()
    for kind, table in (("customers", study.customers), ("priority", study.priority)):
        for n in table:
            if n not in load_names:
                msg = f"{kind}: load {n!r} is not in the network"
                raise FeederStudyError(msg)
    feeder_loads = np.array([i for i, n in enumerate(load_names) if n in study.customers])
    storage_names = net.storage.name.tolist()
    for i, mg in enumerate(study.microgrids):
        if mg.battery not in storage_names:
            msg = f"microgrids.{i} ({mg.name}): battery {mg.battery!r} not in {storage_names}"
            raise FeederStudyError(msg)
    sources = net.trafo.lv_bus.to_numpy()
    return SwitchableFeeder(
        study=study,
        net=net,
        line_from=fb,
        line_to=tb,
        line_name=names,
        r_pu=net.line.r_ohm_per_km.to_numpy() * length / z_base,
        x_pu=net.line.x_ohm_per_km.to_numpy() * length / z_base,
        s_max_kva=np.sqrt(3) * vn_kv[fb] * net.line.max_i_ka.to_numpy() * 1000.0,
        normally_closed=np.array([open_lines.get(i, True) for i in range(len(names))]),
        remote=np.array([n in study.switching.remote for n in names]),
        breaker=np.array([n in study.switching.breakers for n in names]),
        failure_rate_per_yr=np.array([t.failure_rate_per_km_yr for t in types]) * length,
        repair_time_h=np.array([t.repair_time_h for t in types]),
        wind_sensitive=np.array([t.wind_sensitive for t in types]),
        sources=sources,
        source_trafo=np.arange(len(sources)),
        load_index=feeder_loads,
        load_bus=net.load.bus.to_numpy()[feeder_loads],
        customers=np.array([study.customers[load_names[i]] for i in feeder_loads], dtype=float),
        priority=np.array([study.priority.get(load_names[i], 1.0) for i in feeder_loads]),
        commercial=np.array([load_names[i].startswith("Load CI") for i in feeder_loads]),
        n_bus=len(net.bus),
    )


@dataclass(frozen=True)
class Conditions:
    """Hourly operating conditions of one year (8760 rows, hour 0 = Jan 1 00:00)."""

    residential_pu: np.ndarray
    commercial_pu: np.ndarray
    pv_per_kwp: np.ndarray
    temp_air_c: np.ndarray
    wind_speed_m_s: np.ndarray

    def window(self, hour: float, duration_h: float) -> slice:
        start = int(hour) % 8760
        return slice(start, start + max(1, int(np.ceil(duration_h))) + 1)


@lru_cache(maxsize=1)
def year_conditions() -> Conditions:
    """Real profiles for 2016 hours (wrapped past the year end by repeating January)."""
    from gridsync.data.profiles import read_load_profiles
    from gridsync.data.weather import pv_output_per_kwp, read_weather

    prof = read_load_profiles(PROFILE_FILE)
    hourly = prof.resample("1h").mean().iloc[:8760]
    p_cols = [c for c in hourly.columns if c.endswith("_pload")]
    res = hourly[[c for c in p_cols if c.startswith("H0")]].mean(axis=1).to_numpy()
    com = hourly[[c for c in p_cols if c.startswith("G")]].mean(axis=1).to_numpy()
    index = pd.date_range("2015-01-01", periods=8760, freq="1h")
    weather = read_weather(TMY, index)
    pv = pv_output_per_kwp(weather, np.array([30.0]), np.array([180.0]))[:, 0]

    def wrap(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a, a[:24 * 31]])

    return Conditions(
        residential_pu=wrap(res / res.max()),
        commercial_pu=wrap(com / com.max()),
        pv_per_kwp=wrap(np.clip(pv, 0.0, None)),
        temp_air_c=wrap(weather.frame.temp_air_c.to_numpy()),
        wind_speed_m_s=wrap(weather.frame.wind_speed_m_s.to_numpy()),
    )
