"""Tariffs and the grid carbon signal, as arrays over a time index."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gridsync.model.scenario_config import CarbonConfig, TariffConfig


@dataclass
class Tariff:
    """Prices seen at the feeder head, one value per step of the scenario index."""

    import_eur_per_kwh: np.ndarray
    export_eur_per_kwh: np.ndarray
    demand_charge_eur_per_kw_month: float

    def demand_charge_eur(self, peak_kw: float, days: float) -> float:
        """Demand charge on ``peak_kw``, prorated from a 30-day month to ``days``."""
        return max(peak_kw, 0.0) * self.demand_charge_eur_per_kw_month * days / 30.0

    def energy_cost_eur(self, import_kw: np.ndarray, dt_h: float, start: int = 0) -> float:
        """Cost of a feeder-head power series (+ import, - export) starting at step ``start``."""
        p = np.asarray(import_kw)
        sl = slice(start, start + len(p))
        return float(
            np.sum(np.maximum(p, 0) * self.import_eur_per_kwh[sl]) * dt_h
            - np.sum(np.maximum(-p, 0) * self.export_eur_per_kwh[sl]) * dt_h
        )


def tou_prices(cfg: TariffConfig, index: pd.DatetimeIndex) -> np.ndarray:
    """Import price per step from time-of-use periods; every step must be covered."""
    hour = np.asarray(index.hour + index.minute / 60 + index.second / 3600)
    weekend = np.asarray(index.dayofweek >= 5)
    price = np.full(len(index), np.nan)
    for p in cfg.periods:
        day_ok = {"all": np.ones_like(weekend), "weekday": ~weekend, "weekend": weekend}[p.days]
        price[(hour >= p.start_h) & (hour < p.end_h) & day_ok] = p.price_eur_per_kwh
    if np.isnan(price).any():
        gap = index[np.isnan(price)][0]
        msg = f"tariff.periods do not cover {gap} (hour {gap.hour + gap.minute / 60:.2f}); periods must span 0-24 h"
        raise ValueError(msg)
    return price


def _csv_series(
    name: str, column: str, field: str, index: pd.DatetimeIndex, base_dir: Path | None
) -> np.ndarray:
    """A ``time,<column>`` CSV held forward onto ``index``; gaps at the start are errors."""
    path = Path(name)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    frame = pd.read_csv(path, parse_dates=["time"])
    if column not in frame.columns:
        msg = f"{field} {path.name}: column {column!r} missing (has {list(frame.columns)})"
        raise ValueError(msg)
    series = frame.set_index("time")[column].reindex(index, method="ffill")
    if series.isna().any():
        msg = f"{field} {path.name} does not cover {series.index[series.isna()][0]}"
        raise ValueError(msg)
    return series.to_numpy(dtype=float)


def build_tariff(
    cfg: TariffConfig, index: pd.DatetimeIndex, base_dir: Path | None = None
) -> Tariff:
    price = tou_prices(cfg, index)
    if cfg.real_time_csv:
        price = _csv_series(cfg.real_time_csv, "price_eur_per_kwh", "tariff.real_time_csv", index, base_dir)
    return Tariff(
        import_eur_per_kwh=price,
        export_eur_per_kwh=np.full(len(index), cfg.export_price_eur_per_kwh),
        demand_charge_eur_per_kw_month=cfg.demand_charge_eur_per_kw_month,
    )


def carbon_intensity(
    cfg: CarbonConfig, index: pd.DatetimeIndex, ghi_w_m2: np.ndarray, base_dir: Path | None = None
) -> np.ndarray:
    """Average grid carbon intensity (g CO2 per kWh imported), measured or modelled.

    With ``cfg.csv`` (columns ``time,carbon_g_per_kwh``) the measured series is held forward
    onto the scenario's steps. Otherwise a model: solar output displaces fossil generation in
    proportion to irradiance; evening ramps are met by peakers.
    """
    if cfg.csv:
        return _csv_series(cfg.csv, "carbon_g_per_kwh", "carbon.csv", index, base_dir)
    hour = np.asarray(index.hour + index.minute / 60)
    evening = np.exp(-0.5 * ((hour - 19.0) / 1.5) ** 2)
    return (
        cfg.base_g_per_kwh
        - cfg.solar_dip_g_per_kwh * np.clip(ghi_w_m2 / 1000.0, 0, 1)
        + cfg.evening_peak_g_per_kwh * evening
    )
