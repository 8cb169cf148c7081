"""`gridsync simulate` writes the documented JSON and a report."""

import json

from click.testing import CliRunner

from gridsync.cli.main import cli
from gridsync.sim.kpi import KPI_UNITS, UNBALANCE_KPIS


def test_simulate_json_schema_and_report(tmp_path):
    out = tmp_path / "k.json"
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--days",
            "1",
            "--quiet",
            "--json",
            str(out),
            "--report-dir",
            str(tmp_path / "rep"),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert set(data["controllers"]) == {"uncontrolled", "tou"}
    for kpis in data["controllers"].values():
        assert set(kpis) == set(KPI_UNITS) - set(UNBALANCE_KPIS)  # a balanced twin
        assert all(isinstance(v, int | float) for v in kpis.values())
    assert data["scenario"]["n_assets"] >= 300
    report = tmp_path / "rep" / f"simulate_{data['scenario']['name']}.html"
    assert report.exists() and "plotly" in report.read_text()[:5_000_000]


def test_bad_scenario_gives_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[fleet.ev]\ncount = -1\n")
    result = CliRunner().invoke(cli, ["simulate", "--scenario", str(bad), "--quiet"])
    assert result.exit_code != 0
    assert "fleet.ev.count" in result.output


def test_volt_var_on_the_three_phase_twin_is_a_usage_error():
    args = ["simulate", "--scenario", "summer-high-pv", "--days", "1", "--phases", "3"]
    result = CliRunner().invoke(cli, [*args, "--controller", "volt-var", "--quiet"])
    assert result.exit_code == 2
    assert "not in the three-phase twin" in result.output
    assert "Traceback" not in result.output
