"""Small CityLearn-format datasets written to tmp dirs (CityLearn 1.3 column layout)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BUILDING_HEADER = [
    "Month", "Hour", "Day Type", "Daylight Savings Status", "Indoor Temperature [C]",
    "Average Unmet Cooling Setpoint Difference [C]", "Indoor Relative Humidity [%]",
    "Equipment Electric Power [kWh]", "DHW Heating [kWh]", "Cooling Load [kWh]",
    "Heating Load [kWh]", "Solar Generation [W/kW]",
]
WEATHER_HEADER = [f"w{i}" for i in range(16)]


def battery_spec(capacity: float = 6.4, power: float = 5.0, **extra: object) -> dict:
    attrs = {"capacity": capacity, "efficiency": 0.9, "capacity_loss_coefficient": 1e-5,
             "loss_coefficient": 0.0, "nominal_power": power, **extra}
    return {"type": "citylearn.energy_model.Battery", "autosize": False, "attributes": attrs}


def write_dataset(
    root: Path,
    hours: int = 96,
    n_buildings: int = 3,
    seed: int = 0,
    mutate=None,  # noqa: ANN001 - callable(schema) -> None
    load: np.ndarray | None = None,
    solar_w_per_kw: np.ndarray | None = None,
    price: np.ndarray | None = None,
    carbon: np.ndarray | None = None,
) -> Path:
    """A district with daily load / PV / price / carbon shapes plus noise; returns its dir."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    hod = np.arange(hours) % 24
    if price is None:
        price = np.where((hod >= 16) & (hod < 21), 0.54, 0.22)
    if carbon is None:
        carbon = 0.15 + 0.05 * np.cos(2 * np.pi * (hod - 18) / 24) + rng.normal(0, 0.005, hours)
    if solar_w_per_kw is None:
        solar_w_per_kw = np.clip(800 * np.sin(np.pi * (hod - 6) / 12), 0, None)
    schema = {
        "root_directory": None, "central_agent": False, "simulation_start_time_step": 0,
        "simulation_end_time_step": hours - 1, "seconds_per_time_step": 3600,
        "observations": {}, "actions": {"electrical_storage": {"active": True}},
        "agent": {"type": "citylearn.agents.rbc.BasicRBC"},
        "reward_function": {"type": "citylearn.reward_function.RewardFunction"},
        "buildings": {},
    }
    for i in range(n_buildings):
        if load is None:
            b_load = 0.8 + 0.6 * np.sin(np.pi * (hod - 14) / 12) ** 2 + rng.uniform(0, 0.5, hours)
        else:
            b_load = np.asarray(load[i] if np.ndim(load) == 2 else load, dtype=float)
        frame = pd.DataFrame(np.zeros((hours, 12)), columns=BUILDING_HEADER)
        frame["Month"] = 1
        frame["Hour"] = hod + 1
        frame["Day Type"] = (np.arange(hours) // 24) % 7 + 1
        frame.iloc[:, 4:7] = np.nan
        frame["Equipment Electric Power [kWh]"] = b_load
        frame["Solar Generation [W/kW]"] = solar_w_per_kw
        name = f"Building_{i + 1}"
        frame.to_csv(root / f"{name}.csv", index=False)
        schema["buildings"][name] = {
            "include": True, "energy_simulation": f"{name}.csv", "weather": "weather.csv",
            "carbon_intensity": "carbon_intensity.csv", "pricing": "pricing.csv",
            "inactive_observations": [], "inactive_actions": [],
            "electrical_storage": battery_spec(),
            "pv": {"type": "citylearn.energy_model.PV", "autosize": False,
                   "attributes": {"nominal_power": 4.0 + i}},
        }
    pd.DataFrame({
        "Electricity Pricing [$]": price,
        "6h Prediction Electricity Pricing [$]": np.roll(price, -6),
        "12h Prediction Electricity Pricing [$]": np.roll(price, -12),
        "24h Prediction Electricity Pricing [$]": np.roll(price, -24),
    }).to_csv(root / "pricing.csv", index=False)
    pd.DataFrame({"kg_CO2/kWh": carbon}).to_csv(root / "carbon_intensity.csv", index=False)
    weather = np.tile(20 + 5 * np.sin(2 * np.pi * hod / 24)[:, None], (1, 16))
    pd.DataFrame(weather, columns=WEATHER_HEADER).to_csv(root / "weather.csv", index=False)
    if mutate is not None:
        mutate(schema)
    (root / "schema.json").write_text(json.dumps(schema, indent=1))
    return root


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "district")
