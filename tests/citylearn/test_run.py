"""Stepping a dataset: the rule on a hand-solved district, the CLI and its actions CSV."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gridsync.citylearn.dataset import read_dataset
from gridsync.citylearn.simulate import NoBattery, SelfConsumptionRule, run
from gridsync.cli.main import cli
from tests.citylearn.conftest import write_dataset

EFF_AT_40 = math.sqrt(0.83 + 0.1 * 0.07 / 0.4)


def test_rule_stores_this_hours_surplus_and_covers_the_next_deficit(tmp_path):
    # 4 kW PV at 750 W/kW = 3 kWh against 1 kWh of load, then 2 kWh load in the dark
    root = write_dataset(tmp_path / "d", hours=2, n_buildings=1, load=np.array([1.0, 2.0]),
                         solar_w_per_kw=np.array([750.0, 0.0]), price=np.array([0.2, 0.5]),
                         carbon=np.array([0.1, 0.3]))
    result = run(read_dataset(root), SelfConsumptionRule())
    stored = 2.0 * EFF_AT_40
    assert result.request_kwh[0] == pytest.approx([2.0, -2.0])
    # hour 1 asks for 2 kWh but the battery only holds `stored`: it delivers stored x eff
    assert result.net_kwh[0] == pytest.approx([0.0, 2.0 - stored * EFF_AT_40])
    cost = 0.5 * (2.0 - stored * EFF_AT_40)
    assert result.kpis["cost_ratio"] == pytest.approx(cost / (0.5 * 2.0))
    assert result.kpis["co2_ratio"] == pytest.approx(0.3 * (2.0 - stored * EFF_AT_40) / (0.3 * 2.0))


def test_no_battery_scores_one(dataset_dir):
    result = run(read_dataset(dataset_dir), NoBattery())
    assert result.kpis["score_2022"] == pytest.approx(1.0)
    assert np.all(result.request_kwh == 0)


def test_cli_writes_actions_csv_and_json(dataset_dir, tmp_path):
    out, js = tmp_path / "actions.csv", tmp_path / "kpis.json"
    res = CliRunner().invoke(cli, ["citylearn", "run", str(dataset_dir), "--controller", "rule",
                                   "--hours", "48", "--actions-csv", str(out), "--json", str(js)])
    assert res.exit_code == 0, res.output
    actions = pd.read_csv(out)
    assert list(actions.columns) == ["hour", "building", "battery_request_kwh"]
    assert len(actions) == 48 * 3
    ds = read_dataset(dataset_dir)
    first = actions[actions.building == "Building_2"].battery_request_kwh.to_numpy()
    assert first == pytest.approx(-ds.buildings[1].base_net_kwh[:48])
    assert "score_2022" in js.read_text()


def test_cli_reports_schema_errors_without_traceback(tmp_path):
    root = write_dataset(tmp_path / "d", hours=24, n_buildings=1,
                         mutate=lambda s: s["buildings"]["Building_1"].update(heating_device={}))
    res = CliRunner().invoke(cli, ["citylearn", "run", str(root)])
    assert res.exit_code != 0
    assert "buildings.Building_1.heating_device" in res.output


def test_cli_report_has_imports_soc_and_kpis(dataset_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["citylearn", "run", str(dataset_dir), "--controller", "rule",
                                   "--controller", "no-battery", "--hours", "48", "--report"])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "reports" / "citylearn_district.html").read_text()
    for text in ("no battery", "rule SoC", "2022 score", "District net import"):
        assert text in page
