"""``gridsync forecast`` end to end through click."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from gridsync.cli.main import cli
from tests.forecast.conftest import double_seasonal


def _write(tmp_path, series: pd.Series, name="meter.csv"):
    path = tmp_path / name
    pd.DataFrame({"timestamp": series.index.strftime("%Y-%m-%dT%H:%M:%S%z"), "kw": series}).to_csv(
        path, sep=";", index=False
    )
    return path


def test_backtest_on_a_user_csv_writes_the_documented_json(tmp_path):
    y = double_seasonal(days=24, per_day=96, noise=2.0).tz_localize("Europe/Berlin")
    path = _write(tmp_path, y)
    out = tmp_path / "bt.json"
    result = CliRunner().invoke(
        cli,
        [
            "forecast",
            "backtest",
            "--csv",
            str(path),
            "--time-col",
            "timestamp",
            "--value-col",
            "kw",
            "--freq",
            "30min",
            "--horizon-h",
            "6",
            "--train-days",
            "15",
            "--issue-every-h",
            "24",
            "--model",
            "seasonal_naive_day",
            "--model",
            "holt_winters",
            "--json",
            str(out),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "averaged 0 days 00:15:00 readings onto 0 days 00:30:00" in result.output
    assert "UTC offsets" in result.output
    report = json.loads(out.read_text())
    models = report["models"]
    assert set(models) == {"seasonal_naive_day", "holt_winters"}
    for m in models.values():
        assert list(m["mape_by_lead_h"]) == ["1", "2", "3", "4", "5", "6"]
        assert 0 < m["mape_mean"] < 10
        assert 0 <= m["coverage_p10_p90"] <= 100
        assert m["pinball_mean"] > 0
    assert "MAPE % by lead hour" in result.output


def test_backtest_bad_input_exits_with_the_reason(tmp_path):
    y = double_seasonal(days=20)
    frame = pd.DataFrame({"t": y.index.astype(str), "v": y.to_numpy().astype(str)})
    frame.loc[7, "v"] = "ERR"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    result = CliRunner().invoke(
        cli, ["forecast", "backtest", "--csv", str(path), "--time-col", "t", "--value-col", "v"]
    )
    assert result.exit_code == 2
    assert "non-numeric value 'ERR' at CSV line(s) 9" in result.output


def test_backtest_too_short_for_training_window(tmp_path):
    path = _write(tmp_path, double_seasonal(days=10).tz_localize("UTC"))
    result = CliRunner().invoke(
        cli,
        [
            "forecast",
            "backtest",
            "--csv",
            str(path),
            "--time-col",
            "timestamp",
            "--value-col",
            "kw",
            "--train-days",
            "28",
        ],
    )
    assert result.exit_code == 2 and "needs at least 29 days" in result.output


def test_help_teaches():
    result = CliRunner().invoke(cli, ["forecast", "backtest", "--help"])
    assert result.exit_code == 0
    assert "--train-days" in result.output and "P10-P90" in result.output


@pytest.mark.slow
def test_run_issues_the_dispatch_forecast(tmp_path):
    out = tmp_path / "fc.json"
    result = CliRunner().invoke(cli, ["forecast", "run", "--days", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())
    assert summary["model"] == "lightgbm"  # the default scenario has 28 days of history
    assert len(summary["rows"]) == 96
    assert summary["load_mape_pct"] < 35 and summary["load_coverage_pct"] > 50
    # PV day-ahead energy depends on the synthetic weather-forecast draw (+53 % on this day:
    # the seeded GHI-index error is about +0.3 at noon); bound it loosely
    assert abs(summary["pv_energy_error_pct"]) < 80


def test_bundled_taylor_half_hourly_backtest(tmp_path):
    out = tmp_path / "taylor.json"
    args = ["forecast", "backtest", "--csv", "bundled:taylor", "--max-origins", "2"]
    args += ["--model", "seasonal_naive_week", "--json", str(out), "--quiet"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "4032 readings at 0 days 00:30:00 from 2000-06-05 00:00:00" in result.output
    report = json.loads(out.read_text())
    assert report["n_origins"] == 2
    assert list(report["models"]["seasonal_naive_week"]["mape_by_lead_h"]) == [
        str(h) for h in range(1, 25)
    ]


def test_unknown_bundled_name_lists_the_choices():
    result = CliRunner().invoke(cli, ["forecast", "backtest", "--csv", "bundled:nope"])
    assert result.exit_code == 2
    assert "bundled:taylor" in result.output and "bundled:vic" in result.output


def test_default_models_skip_the_hybrid_when_the_window_is_too_short(tmp_path):
    path = _write(tmp_path, double_seasonal(days=18, noise=1.0).tz_localize("UTC"))
    out = tmp_path / "bt.json"
    args = ["forecast", "backtest", "--csv", str(path), "--time-col", "timestamp"]
    args += ["--value-col", "kw", "--horizon-h", "6", "--train-days", "15", "--max-origins"]
    args += ["1", "--json", str(out), "--quiet"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    models = json.loads(out.read_text())["models"]
    assert "hybrid" not in models and {"holt_winters", "lightgbm"} <= set(models)
    # asked for explicitly, the too-short window is an error that says what it needs
    result = CliRunner().invoke(cli, [*args[:-3], "--model", "hybrid"])
    assert result.exit_code == 2 and "15-day training window is too short" in result.output


def _user_csv(tmp_path, days=30):
    y = double_seasonal(days=days, per_day=24, noise=1.0)
    path = tmp_path / "hourly.csv"
    pd.DataFrame({"t": y.index.strftime("%Y-%m-%d %H:%M"), "kw": y}).to_csv(path, index=False)
    return path


def _backtest(path, *extra):
    return CliRunner().invoke(
        cli,
        ["forecast", "backtest", "--csv", str(path), "--time-col", "t", "--value-col", "kw"]
        + ["--quiet", *extra],
    )


def test_start_end_score_a_window_and_the_default_issue_spacing_is_6h(tmp_path):
    out = tmp_path / "bt.json"
    result = _backtest(
        _user_csv(tmp_path),
        *("--train-days", "14", "--horizon-h", "12", "--model", "seasonal_naive_day"),
        *("--start", "2024-01-20", "--end", "2024-01-25 23:00", "--json", str(out)),
    )
    assert result.exit_code == 0, result.output
    # targets 20 Jan 00:00 .. 25 Jan 23:00 (144 h), horizon 12 h: origins at 19 Jan 23:00 and
    # every 6 h while origin + 12 h <= 25 Jan 23:00, i.e. up to 25 Jan 11:00: (132 / 6) + 1
    assert json.loads(out.read_text())["n_origins"] == 23
    assert "from 2024-01-06 00:00" in result.output  # the 14 training days before --start


def test_start_without_enough_history_is_a_clear_error(tmp_path):
    result = _backtest(_user_csv(tmp_path), "--train-days", "14", "--start", "2024-01-10")
    assert result.exit_code == 2
    assert "--start" in result.output and "needs 14" in result.output


def test_mstl_without_statsforecast_names_the_missing_package(tmp_path, monkeypatch):
    import gridsync.forecast.models as models

    monkeypatch.setattr(models, "statsforecast_available", lambda: False)
    result = _backtest(_user_csv(tmp_path), "--train-days", "14", "--model", "mstl_autoets")
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "needs the 'statsforecast' package, which is not installed" in text
    assert "'gridsync[dev]'" in text and "Traceback" not in text


def test_results_table_shows_full_model_names_at_80_columns(tmp_path):
    result = _backtest(
        _user_csv(tmp_path, days=20),
        *("--train-days", "15", "--horizon-h", "6", "--issue-every-h", "24"),
        *("--model", "seasonal_naive_day", "--model", "seasonal_naive_week"),
        *("--model", "holt_winters"),
    )
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    for part in ("seasonal_", "naive_", "day", "week", "holt_", "winters"):
        assert part in result.output
