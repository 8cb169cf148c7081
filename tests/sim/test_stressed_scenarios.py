"""The bundled stressed scenarios: selectable by name, and stressed where they claim to be."""

import datetime as dt
import json

import numpy as np
import pytest
from click.testing import CliRunner

from gridsync.cli.main import cli
from gridsync.dispatch.rules import UncontrolledController
from gridsync.model.scenario_config import ScenarioError
from gridsync.sim.builder import bundled_scenarios, load_scenario, resolve_scenario_path
from gridsync.sim.simulator import simulate


def _daily(result, scenario, mask_fn):
    days = scenario.n_steps // scenario.steps_per_day
    return mask_fn(result).reshape(days, scenario.steps_per_day, -1).sum(axis=(1, 2))


def test_bundled_names_resolve_and_files_still_win(tmp_path):
    assert {"default", "winter-electrified", "summer-high-pv"} <= set(bundled_scenarios())
    assert resolve_scenario_path("winter-electrified").name == "winter-electrified.toml"
    own = tmp_path / "winter-electrified"
    own.write_text("")
    assert resolve_scenario_path(str(own)) == own
    with pytest.raises(ScenarioError, match="neither a file nor a bundled scenario.*default"):
        resolve_scenario_path("no-such-scenario")


def test_winter_electrified_uncontrolled_undervoltage_and_overload_most_days():
    s = load_scenario("winter-electrified")
    lim = s.config.limits
    r = simulate(s, UncontrolledController())
    under = _daily(r, s, lambda r: r.vm_pu < lim.voltage_min_pu)
    overload = _daily(r, s, lambda r: r.branch_loading_pct > lim.loading_max_pct)
    assert (under > 0).sum() >= 5 and (overload > 0).sum() >= 4, (under, overload)
    transformer = [i for i, name in enumerate(s.powerflow().branch_names) if "trafo" in name]
    assert (r.branch_loading_pct[:, transformer] > lim.loading_max_pct).any()
    assert np.nanmax(r.vm_pu) <= lim.voltage_max_pu
    # Undervoltage is caused by load: the worst bus-step is at a high-import step.
    worst_step = np.unravel_index(np.nanargmin(r.vm_pu), r.vm_pu.shape)[0]
    assert r.feeder_kw[worst_step] > np.quantile(r.feeder_kw, 0.9)


def test_summer_high_pv_uncontrolled_overvoltage_most_days_at_midday():
    s = load_scenario("summer-high-pv")
    lim = s.config.limits
    r = simulate(s, UncontrolledController())
    over = _daily(r, s, lambda r: r.vm_pu > lim.voltage_max_pu)
    assert (over > 0).sum() >= 5, over
    hours = s.window.hour.to_numpy()
    bad_steps = np.flatnonzero((r.vm_pu > lim.voltage_max_pu).any(axis=1))
    assert np.all((hours[bad_steps] >= 8) & (hours[bad_steps] <= 17))
    assert np.all(r.feeder_kw[bad_steps] < 0), "overvoltage happens under reverse flow"


def test_window_without_history_names_the_key_and_first_date():
    # The profiles start 2016-01-01; 28 days of history -> 2016-01-29 is the first start.
    with pytest.raises(
        ScenarioError, match=r"time\.history_days = 28.*first start that works is 2016-01-29"
    ):
        load_scenario(start=dt.date(2016, 1, 11), days=1)
    s = load_scenario(start=dt.date(2016, 1, 11), days=1, history_days=10)
    assert s.index[0] == s.index[0].normalize() and str(s.index[0].date()) == "2016-01-01"
    load_scenario(start=dt.date(2016, 1, 29), days=1)


def test_simulate_cli_takes_a_scenario_name(tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--scenario",
            "summer-high-pv",
            "--days",
            "1",
            "--quiet",
            "--no-report",
            "--controller",
            "uncontrolled",
            "--json",
            str(tmp_path / "k.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert '"name": "summer-high-pv"' in (tmp_path / "k.json").read_text()


@pytest.mark.parametrize(
    ("name", "side"), [("winter-electrified", "under"), ("summer-high-pv", "over")]
)
def test_stressed_scenarios_run_three_phase(tmp_path, name, side):
    """Smoke: one day of each stressed scenario on the three-phase twin through the CLI, with
    the unbalance KPIs in the JSON; the worst-phase violation count lies between the largest
    single phase's and the sum over the phases, and the stress shows on some phase."""
    out = tmp_path / "k.json"
    args = ["simulate", "--scenario", name, "--phases", "3", "--days", "1", "--quiet"]
    args += ["--controller", "uncontrolled", "--no-report", "--json", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["scenario"]["phases"] == 3
    k = data["controllers"]["uncontrolled"]
    per_phase = [k[f"voltage_violation_bus_steps_phase_{p}"] for p in "abc"]
    assert max(per_phase) <= k["voltage_violation_bus_steps"] <= sum(per_phase)
    assert k["voltage_violation_bus_steps"] > 0
    assert 0 < k["p95_vuf_pct"] <= k["max_vuf_pct"]
    assert k["max_neutral_current_a"] > 0
    lim = load_scenario(name, days=1).config.limits
    if side == "under":
        assert k["min_voltage_pu"] < lim.voltage_min_pu
    else:
        assert k["max_voltage_pu"] > lim.voltage_max_pu
