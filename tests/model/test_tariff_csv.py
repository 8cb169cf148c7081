"""Measured carbon intensity and real-time prices from CSV onto a scenario's steps."""

from __future__ import annotations

import pandas as pd
import pytest

from gridsync.model.scenario_config import CarbonConfig, TariffConfig
from gridsync.model.tariff import build_tariff, carbon_intensity

INDEX = pd.date_range("2024-03-01 00:00", periods=8, freq="15min")


def test_measured_carbon_csv_is_held_forward_onto_the_steps(tmp_path):
    pd.DataFrame({"time": ["2024-03-01 00:00", "2024-03-01 01:00"],
                  "carbon_g_per_kwh": [300.0, 120.0]}).to_csv(tmp_path / "ci.csv", index=False)
    ci = carbon_intensity(CarbonConfig(csv="ci.csv"), INDEX, ghi_w_m2=None, base_dir=tmp_path)
    assert list(ci) == [300.0] * 4 + [120.0] * 4


def test_carbon_csv_errors_name_the_field_and_the_gap(tmp_path):
    pd.DataFrame({"time": ["2024-03-01 01:00"], "carbon_g_per_kwh": [1.0]}).to_csv(
        tmp_path / "late.csv", index=False)
    with pytest.raises(ValueError, match=r"carbon\.csv late\.csv does not cover 2024-03-01 00:00"):
        carbon_intensity(CarbonConfig(csv="late.csv"), INDEX, None, tmp_path)
    pd.DataFrame({"time": ["2024-03-01 00:00"], "g": [1.0]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="carbon_g_per_kwh"):
        carbon_intensity(CarbonConfig(csv="bad.csv"), INDEX, None, tmp_path)


def test_real_time_price_csv_still_replaces_the_tou_prices(tmp_path):
    pd.DataFrame({"time": ["2024-03-01 00:00"], "price_eur_per_kwh": [0.31]}).to_csv(
        tmp_path / "p.csv", index=False)
    tariff = build_tariff(TariffConfig(real_time_csv="p.csv"), INDEX, tmp_path)
    assert list(tariff.import_eur_per_kwh) == [0.31] * 8
