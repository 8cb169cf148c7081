"""Read a CityLearn 1.3 dataset (``schema.json`` and its CSVs) into arrays.

CityLearn 1.3 reads its CSVs by column position, not by header, so this reader does too
(both the 1.3 headers such as ``Equipment Electric Power [kWh]`` and the later snake_case
headers work): building files are month, hour, day_type, daylight_savings_status, three
indoor columns, non_shiftable_load (kWh), dhw, cooling and heating demand (kWh) and
solar_generation (W per kW of PV); pricing files are the price (per kWh) and its 6 h, 12 h and
24 h predictions; carbon-intensity files one column in kg CO2 per kWh; weather files the
outdoor temperature, humidity, diffuse and direct irradiance, then their 6/12/24 h
predictions. Rows ``simulation_start_time_step .. simulation_end_time_step`` are kept.

Supported: buildings with non-shiftable load, PV (``citylearn.energy_model.PV``) and a
battery (``citylearn.energy_model.Battery``). Anything else that would change the simulated
consumption (heat pumps, thermal storage, autosizing, EVs, ...) is a ``CityLearnSchemaError``
naming the field, never silently ignored. Buildings with ``include: false`` are skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gridsync.model.citylearn_battery import CityLearnBatteryParams

# Top-level keys that configure CityLearn's RL machinery or episode bookkeeping only.
_IGNORED_TOP = {
    "random_seed", "root_directory", "central_agent", "episodes", "episode_time_steps",
    "rolling_episode_split", "random_episode_split", "observations", "actions", "agent",
    "reward_function",
}
_REQUIRED_TOP = ("simulation_start_time_step", "simulation_end_time_step", "buildings")
_BUILDING_KEYS = {
    "include", "energy_simulation", "weather", "carbon_intensity", "pricing",
    "inactive_observations", "inactive_actions", "electrical_storage", "pv", "type",
}
_BATTERY_ATTRIBUTES = {
    "capacity": "capacity_kwh", "nominal_power": "nominal_power_kw", "efficiency": "efficiency",
    "capacity_loss_coefficient": "capacity_loss_coefficient",
    "loss_coefficient": "loss_coefficient", "initial_soc": "initial_soc_kwh",
    "efficiency_scaling": "efficiency_scaling", "power_efficiency_curve": "power_efficiency_curve",
    "capacity_power_curve": "capacity_power_curve",
}
_BUILDING_COLUMNS = 12
_PRICING_COLUMNS = 4
_WEATHER_COLUMNS = 16


class CityLearnSchemaError(ValueError):
    """A schema field or data file this reader cannot honour; the message names it."""


@dataclass
class CityLearnBuilding:
    """One included building: its demand, PV output and battery, all hourly over the episode."""

    name: str
    non_shiftable_load_kwh: np.ndarray
    solar_generation_kwh: np.ndarray  # PV output, >= 0 (CityLearn books it as negative load)
    pv_kw: float
    battery: CityLearnBatteryParams | None
    price_per_kwh: np.ndarray
    price_predicted_per_kwh: np.ndarray  # (hours, 3): the price 6, 12 and 24 h ahead, as issued
    carbon_kg_per_kwh: np.ndarray
    weather: np.ndarray  # (hours, 16) in the file's column order
    hour_of_day: np.ndarray  # CityLearn's 1..24

    @property
    def base_net_kwh(self) -> np.ndarray:
        """Net consumption without battery: load minus PV (kWh per hour, + import)."""
        return self.non_shiftable_load_kwh - self.solar_generation_kwh


@dataclass
class CityLearnDataset:
    name: str
    root: Path
    buildings: list[CityLearnBuilding]

    @property
    def hours(self) -> int:
        return len(self.buildings[0].non_shiftable_load_kwh)

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.buildings]

    def stack(self, attr: str) -> np.ndarray:
        """(buildings, hours) array of one per-building series."""
        return np.stack([getattr(b, attr) for b in self.buildings])

    def truncated(self, hours: int) -> CityLearnDataset:
        """The first ``hours`` hours of every series."""
        buildings = []
        for b in self.buildings:
            fields = {k: (v[:hours] if isinstance(v, np.ndarray) else v) for k, v in vars(b).items()}
            buildings.append(CityLearnBuilding(**fields))
        return CityLearnDataset(self.name, self.root, buildings)


def _csv(root: Path, rel: object, field: str, columns: int, rows: slice) -> np.ndarray:
    if not isinstance(rel, str):
        raise CityLearnSchemaError(f"{field}: expected a CSV file name, got {rel!r}")
    path = root / rel
    if not path.is_file():
        raise CityLearnSchemaError(f"{field}: file {path} does not exist")
    frame = pd.read_csv(path)
    if frame.shape[1] < columns:
        raise CityLearnSchemaError(
            f"{field}: {path.name} has {frame.shape[1]} columns, CityLearn 1.3 expects {columns}"
        )
    values = frame.iloc[rows].to_numpy(dtype=float)
    if len(values) < rows.stop - rows.start:
        raise CityLearnSchemaError(
            f"{field}: {path.name} has {len(frame)} rows, the schema simulates rows "
            f"{rows.start}..{rows.stop - 1}"
        )
    return values


def _device(spec: object, field: str, expected_type: str) -> dict:
    if not isinstance(spec, dict):
        raise CityLearnSchemaError(f"{field}: expected an object, got {spec!r}")
    unknown = set(spec) - {"type", "autosize", "attributes", "autosize_attributes"}
    if unknown:
        raise CityLearnSchemaError(f"{field}.{sorted(unknown)[0]}: unsupported field")
    if spec.get("type") != expected_type:
        raise CityLearnSchemaError(
            f"{field}.type: {spec.get('type')!r} is not supported (expected {expected_type!r})"
        )
    if spec.get("autosize"):
        raise CityLearnSchemaError(f"{field}.autosize: autosizing is not supported; give the size")
    return dict(spec.get("attributes") or {})


def _battery(spec: object, field: str) -> CityLearnBatteryParams:
    attrs = _device(spec, field, "citylearn.energy_model.Battery")
    kwargs = {}
    for key, value in attrs.items():
        if key not in _BATTERY_ATTRIBUTES:
            raise CityLearnSchemaError(f"{field}.attributes.{key}: unsupported battery attribute")
        if value is None:
            continue
        if key.endswith("curve"):
            value = tuple(tuple(float(v) for v in point) for point in value)
        else:
            value = float(value)
        kwargs[_BATTERY_ATTRIBUTES[key]] = value
    for key in ("capacity", "nominal_power"):
        if key not in attrs:
            raise CityLearnSchemaError(f"{field}.attributes.{key}: required")
    try:
        return CityLearnBatteryParams(**kwargs)
    except ValueError as exc:
        raise CityLearnSchemaError(f"{field}.attributes: {exc}") from exc


def _building(name: str, spec: dict, root: Path, rows: slice) -> CityLearnBuilding:
    field = f"buildings.{name}"
    for key in spec:
        if key not in _BUILDING_KEYS:
            raise CityLearnSchemaError(f"{field}.{key}: unsupported field (only load, PV and battery)")
    energy = _csv(root, spec.get("energy_simulation"), f"{field}.energy_simulation", _BUILDING_COLUMNS, rows)
    thermal = np.nan_to_num(energy[:, 8:11])
    if np.any(thermal != 0):
        raise CityLearnSchemaError(
            f"{field}.energy_simulation: non-zero dhw/cooling/heating demand needs heat pumps, "
            "which are not supported"
        )
    hours = len(energy)
    weather = _csv(root, spec.get("weather"), f"{field}.weather", _WEATHER_COLUMNS, rows)
    if spec.get("pricing") is not None:
        pricing = _csv(root, spec["pricing"], f"{field}.pricing", _PRICING_COLUMNS, rows)[:, :4]
    else:
        pricing = np.zeros((hours, 4))
    if spec.get("carbon_intensity") is not None:
        carbon = _csv(root, spec["carbon_intensity"], f"{field}.carbon_intensity", 1, rows)[:, 0]
    else:
        carbon = np.zeros(hours)
    pv_kw = 0.0
    if spec.get("pv") is not None:
        attrs = _device(spec["pv"], f"{field}.pv", "citylearn.energy_model.PV")
        for key in attrs:
            if key != "nominal_power":
                raise CityLearnSchemaError(f"{field}.pv.attributes.{key}: unsupported PV attribute")
        pv_kw = float(attrs.get("nominal_power") or 0.0)
    battery = None
    if spec.get("electrical_storage") is not None:
        battery = _battery(spec["electrical_storage"], f"{field}.electrical_storage")
    return CityLearnBuilding(
        name=name,
        non_shiftable_load_kwh=np.nan_to_num(energy[:, 7]),
        solar_generation_kwh=pv_kw * np.nan_to_num(energy[:, 11]) / 1000.0,
        pv_kw=pv_kw,
        battery=battery,
        price_per_kwh=pricing[:, 0],
        price_predicted_per_kwh=pricing[:, 1:4],
        carbon_kg_per_kwh=carbon,
        weather=weather[:, :_WEATHER_COLUMNS],
        hour_of_day=energy[:, 1],
    )


def read_dataset(directory: str | Path) -> CityLearnDataset:
    """Read ``directory/schema.json`` (or a schema file path) and every included building."""
    path = Path(directory)
    schema_path = path / "schema.json" if path.is_dir() else path
    if not schema_path.is_file():
        raise CityLearnSchemaError(f"schema: {schema_path} does not exist")
    try:
        schema = json.loads(schema_path.read_text())
    except json.JSONDecodeError as exc:
        raise CityLearnSchemaError(f"schema: {schema_path} is not valid JSON ({exc})") from exc
    for key in schema:
        if key not in _IGNORED_TOP and key not in (*_REQUIRED_TOP, "seconds_per_time_step"):
            raise CityLearnSchemaError(f"{key}: unsupported schema field")
    for key in _REQUIRED_TOP:
        if key not in schema:
            raise CityLearnSchemaError(f"{key}: required")
    seconds = schema.get("seconds_per_time_step", 3600)
    if seconds != 3600:
        raise CityLearnSchemaError(f"seconds_per_time_step: {seconds} given, only 3600 (hourly) is supported")
    start, end = int(schema["simulation_start_time_step"]), int(schema["simulation_end_time_step"])
    if end < start:
        raise CityLearnSchemaError(f"simulation_end_time_step: {end} is before the start {start}")
    root = Path(schema.get("root_directory") or schema_path.parent)
    rows = slice(start, end + 1)
    buildings = [
        _building(name, spec, root, rows)
        for name, spec in schema["buildings"].items()
        if spec.get("include", True)
    ]
    if not buildings:
        raise CityLearnSchemaError("buildings: no building has include: true")
    return CityLearnDataset(schema_path.parent.name, root, buildings)
