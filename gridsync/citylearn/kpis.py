"""CityLearn's KPIs, normalised by the same buildings without batteries.

All inputs are (buildings, hours) arrays in kWh per hour (+ import), price per kWh and
carbon intensity in kg CO2 per kWh, as in the dataset's files.

- 2022 score: the mean of the district cost ratio (per hour ``max(0, sum_b net_b * price_b)``,
  summed) and the emission ratio (per building and hour ``max(0, net_b * intensity)``, summed),
  which is CityLearn 1.3's ``evaluate()`` price and emission terms.
- 2023 KPIs on the district net consumption: ramping (sum of |hour-to-hour change|),
  1 - load factor (mean over 730-hour blocks of 1 - mean/max), average daily peak (mean of
  the 24-hour blocks' maxima), all-time peak (mean of the 8760-hour blocks' maxima), plus the
  per-building cost (``sum max(0, net * price)``) and emission ratios and their means.
"""

from __future__ import annotations

import numpy as np


def _blocks(series: np.ndarray, size: int) -> list[np.ndarray]:
    return [series[i : i + size] for i in range(0, len(series), size)]


def district_cost(net_kwh: np.ndarray, price: np.ndarray) -> float:
    return float(np.clip((net_kwh * price).sum(axis=0), 0, None).sum())


def emissions_kg(net_kwh: np.ndarray, carbon_kg_per_kwh: np.ndarray) -> float:
    return float(np.clip(net_kwh * carbon_kg_per_kwh, 0, None).sum())


def ramping(district_kwh: np.ndarray) -> float:
    return float(np.abs(np.diff(district_kwh)).sum())


def one_minus_load_factor(district_kwh: np.ndarray, window: int = 730) -> float:
    return float(np.mean([1 - b.mean() / b.max() for b in _blocks(district_kwh, window)]))


def average_daily_peak(district_kwh: np.ndarray) -> float:
    return float(np.mean([b.max() for b in _blocks(district_kwh, 24)]))


def all_time_peak(district_kwh: np.ndarray) -> float:
    return float(np.mean([b.max() for b in _blocks(district_kwh, 8760)]))


def _ratio(value: float, baseline: float) -> float:
    return float(value / baseline) if baseline != 0 else float("nan")


def kpis(
    net_kwh: np.ndarray,
    base_net_kwh: np.ndarray,
    price: np.ndarray,
    carbon_kg_per_kwh: np.ndarray,
    names: list[str],
) -> dict:
    """Raw and normalised KPIs of ``net_kwh`` against the no-battery ``base_net_kwh``."""
    district, base_district = net_kwh.sum(axis=0), base_net_kwh.sum(axis=0)
    cost, cost0 = district_cost(net_kwh, price), district_cost(base_net_kwh, price)
    co2, co20 = (
        emissions_kg(net_kwh, carbon_kg_per_kwh),
        emissions_kg(base_net_kwh, carbon_kg_per_kwh),
    )
    cost_ratio, co2_ratio = _ratio(cost, cost0), _ratio(co2, co20)
    per_building = {}
    for i, name in enumerate(names):
        b_cost = float(np.clip(net_kwh[i] * price[i], 0, None).sum())
        b_cost0 = float(np.clip(base_net_kwh[i] * price[i], 0, None).sum())
        b_co2 = emissions_kg(net_kwh[i], carbon_kg_per_kwh[i])
        b_co20 = emissions_kg(base_net_kwh[i], carbon_kg_per_kwh[i])
        per_building[name] = {
            "cost_ratio": _ratio(b_cost, b_cost0),
            "co2_ratio": _ratio(b_co2, b_co20),
        }
    grid = {
        "ramping": (ramping(district), ramping(base_district)),
        "one_minus_load_factor": (
            one_minus_load_factor(district),
            one_minus_load_factor(base_district),
        ),
        "daily_peak": (average_daily_peak(district), average_daily_peak(base_district)),
        "all_time_peak": (all_time_peak(district), all_time_peak(base_district)),
    }
    return {
        "score_2022": float(np.mean([cost_ratio, co2_ratio])),
        "cost_ratio": cost_ratio,
        "co2_ratio": co2_ratio,
        **{f"{k}_ratio": _ratio(v, v0) for k, (v, v0) in grid.items()},
        "building_cost_ratio_mean": float(
            np.mean([v["cost_ratio"] for v in per_building.values()])
        ),
        "building_co2_ratio_mean": float(np.mean([v["co2_ratio"] for v in per_building.values()])),
        "district_cost": cost,
        "district_cost_no_battery": cost0,
        "emissions_kg": co2,
        "emissions_kg_no_battery": co20,
        "peak_import_kw": float(district.max()),
        "peak_import_kw_no_battery": float(base_district.max()),
        "per_building": per_building,
    }


# KPI keys with the label the CLI table and the HTML report print
KPI_LABELS = (
    ("score_2022", "2022 score: mean of cost and CO2 ratios (lower is better)"),
    ("cost_ratio", "district cost / no battery"),
    ("co2_ratio", "emissions / no battery"),
    ("ramping_ratio", "ramping / no battery"),
    ("one_minus_load_factor_ratio", "1 - load factor / no battery"),
    ("daily_peak_ratio", "average daily peak / no battery"),
    ("all_time_peak_ratio", "all-time peak / no battery"),
    ("building_cost_ratio_mean", "mean per-building cost ratio"),
    ("building_co2_ratio_mean", "mean per-building CO2 ratio"),
    ("peak_import_kw", "district peak import, kW"),
    ("peak_import_kw_no_battery", "district peak import without batteries, kW"),
)
