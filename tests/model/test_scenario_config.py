"""Scenario validation: every error names the field and what was wrong."""

import numpy as np
import pandas as pd
import pytest

from gridsync.model.scenario_config import ScenarioError, load_scenario_config, parse_scenario
from gridsync.sim.builder import build_scenario, default_scenario_path


def test_default_scenario_file_is_valid():
    cfg = load_scenario_config(default_scenario_path())
    assert cfg.time.resolution_s == 900
    total = sum(
        getattr(cfg.fleet, k).count for k in ("pv", "battery", "ev", "deferrable", "thermal")
    )
    assert total >= 300


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"fleet": {"ev": {"count": -3}}}, "fleet.ev.count"),
        ({"time": {"resolution_s": 700}}, "resolution_s=700 must divide 3600"),
        ({"fleet": {"pv": {"peak_kw": {"min": 5, "max": 2}}}}, "fleet.pv.peak_kw"),
        (
            {"tariff": {"periods": [{"start_h": 5, "end_h": 3, "price_eur_per_kwh": 0.2}]}},
            "tariff.periods.0",
        ),
        ({"limits": {"voltage_max_pu": 0.9}}, "limits.voltage_max_pu"),
        (
            {"fleet": {"battery": {"soc_min_frac": 0.6, "soc_initial_frac": 0.5}}},
            "soc_min_frac <= soc_initial_frac",
        ),
    ],
)
def test_invalid_values_are_named(data, needle):
    with pytest.raises(ScenarioError, match=None) as err:
        parse_scenario(data, source="x.toml")
    assert needle in str(err.value)
    assert str(err.value).startswith("x.toml:")


def test_unknown_key_is_an_error_not_ignored():
    with pytest.raises(ScenarioError) as err:
        parse_scenario({"fleet": {"evs": {"count": 3}}})
    assert "fleet.evs" in str(err.value)


def test_yaml_and_bad_syntax(tmp_path):
    good = tmp_path / "s.yaml"
    good.write_text("name: y\nfleet:\n  ev:\n    count: 5\n")
    assert load_scenario_config(good).fleet.ev.count == 5
    bad = tmp_path / "s.toml"
    bad.write_text("name = [unclosed\n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario_config(bad)
    with pytest.raises(ScenarioError, match="does not exist"):
        load_scenario_config(tmp_path / "missing.toml")


def test_tariff_gap_and_window_outside_profiles_are_diagnosed():
    cfg = parse_scenario(
        {
            "tariff": {"periods": [{"start_h": 0, "end_h": 20, "price_eur_per_kwh": 0.2}]},
            "time": {"days": 1, "history_days": 0},
        }
    )
    with pytest.raises(ValueError, match="do not cover"):
        build_scenario(cfg)
    cfg = parse_scenario({"time": {"start": "2015-12-31", "days": 2}})
    with pytest.raises(ScenarioError, match="first start that works is 2016-01-29"):
        build_scenario(cfg)


def test_past_the_profiles_end_the_profile_year_repeats_with_its_weekdays():
    wrapped = build_scenario(parse_scenario({"time": {"start": "2016-12-31", "days": 3}}))
    # Monday 2017-01-02 10:00 reads the profiles 52 weeks earlier: Monday 2016-01-04 10:00.
    ref = build_scenario(
        parse_scenario({"time": {"start": "2016-01-04", "days": 1, "history_days": 0}})
    )
    k_wrapped = wrapped.index.get_loc(pd.Timestamp("2017-01-02 10:00"))
    k_ref = ref.index.get_loc(pd.Timestamp("2016-01-04 10:00"))
    assert np.allclose(wrapped.base_load_kw[k_wrapped], ref.base_load_kw[k_ref])
    k_last = wrapped.index.get_loc(pd.Timestamp("2016-12-31 10:00"))
    assert not np.allclose(wrapped.base_load_kw[k_last], wrapped.base_load_kw[k_wrapped])
