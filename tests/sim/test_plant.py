"""The mismatched plant: off it is the model exactly; on, each effect is there with the
statistics its configuration asks for, seeded, and impossible settings are named errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

from gridsync.data.weather import pv_output_per_kwp, read_weather
from gridsync.dispatch.rules import TouController, UncontrolledController
from gridsync.model.scenario_config import PlantConfig, ScenarioError, parse_scenario
from gridsync.sim.controller import Setpoints
from gridsync.sim.kpi import compute_kpis
from gridsync.sim.plant import CommandDelay, build_plant
from gridsync.sim.simulator import simulate
from gridsync.sim.twin import SteppedTwin

NONE = {
    "battery_capacity_error_frac": 0.0,
    "battery_efficiency_error": 0.0,
    "thermal_rc_error_frac": 0.0,
    "pv_soiling_max_frac": 0.0,
    "pv_tilt_error_deg": 0.0,
    "pv_azimuth_error_deg": 0.0,
    "meter_noise_frac": 0.0,
    "meter_dropout_prob": 0.0,
    "command_latency_steps": 0,
    "tracking_error_frac": 0.0,
    "ev_departure_error_sd_min": 0.0,
    "ev_energy_error_frac": 0.0,
    "deferrable_noshow_prob": 0.0,
}


def with_plant(scenario, **parts):
    """``scenario`` with a plant that has only ``parts`` switched on."""
    cfg = PlantConfig(**{**NONE, **parts})
    weather = read_weather(scenario.config.weather.tmy, scenario.index)
    plant = build_plant(
        cfg,
        scenario.fleet,
        scenario.dt_h,
        len(scenario.index),
        scenario.pv_per_kwp,
        scenario.pv_orientation,
        lambda tilts, azimuths: pv_output_per_kwp(weather, tilts, azimuths),
    )
    return dataclasses.replace(scenario, plant=plant)


class Scripted:
    """Battery 0 kW until ``switch`` steps into the run, then ``kw`` on every battery."""

    name = "scripted"

    def __init__(self, switch: int, kw: float) -> None:
        self.switch, self.kw = switch, kw

    def reset(self, scenario) -> None:
        self.fleet, self.t0 = scenario.fleet, scenario.start_step

    def act(self, obs):
        sp = Setpoints.zeros(self.fleet)
        sp.battery_kw[:] = self.kw if obs.step - self.t0 >= self.switch else 0.0
        return sp


@pytest.mark.parametrize("ctrl", [UncontrolledController, TouController])
def test_plant_with_every_part_off_is_the_model_exactly(scenario_1day, ctrl):
    ref = simulate(scenario_1day, ctrl())
    off = simulate(with_plant(scenario_1day), ctrl())
    np.testing.assert_allclose(off.feeder_kw, ref.feeder_kw, rtol=0, atol=1e-9)
    np.testing.assert_allclose(off.vm_pu, ref.vm_pu, rtol=0, atol=1e-9)
    for k in ("battery_kw", "ev_kw", "deferrable_kw", "thermal_kw", "pv_kw", "battery_soc_frac"):
        np.testing.assert_allclose(getattr(off, k), getattr(ref, k), rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        off.unmet_ev_kwh_per_session, ref.unmet_ev_kwh_per_session, atol=1e-9
    )


def test_disabled_plant_is_none_and_the_shipped_one_is_seeded(scenario_1day_plant):
    from gridsync.sim.builder import build_scenario

    cfg = scenario_1day_plant.config
    off = cfg.model_copy(update={"plant": cfg.plant.model_copy(update={"enabled": False})})
    assert build_scenario(off).plant is None
    again = build_scenario(cfg).plant
    p = scenario_1day_plant.plant
    assert np.array_equal(again.fleet.battery.capacity_kwh, p.fleet.battery.capacity_kwh)
    assert np.array_equal(
        again.fleet.ev.sessions.departure_step, p.fleet.ev.sessions.departure_step
    )
    assert np.array_equal(again.pv_per_kwp, p.pv_per_kwp)
    other = build_scenario(
        cfg.model_copy(update={"plant": cfg.plant.model_copy(update={"seed": 8})})
    ).plant
    assert not np.allclose(other.fleet.battery.capacity_kwh, p.fleet.battery.capacity_kwh)


def test_battery_capacity_and_efficiency_errors_have_the_configured_spread(scenario_1day):
    s = with_plant(scenario_1day, battery_capacity_error_frac=0.05, battery_efficiency_error=0.02)
    nom, true = s.fleet.battery, s.plant.fleet.battery
    ratio = true.capacity_kwh / nom.capacity_kwh
    # uniform on [0.95, 1.05]: Kolmogorov-Smirnov against that law (seeded, so deterministic)
    assert stats.kstest(ratio, stats.uniform(0.95, 0.10).cdf).pvalue > 0.05
    rt_err = true.efficiency_charge * true.efficiency_discharge - (
        nom.efficiency_charge * nom.efficiency_discharge
    )
    assert np.abs(rt_err).max() <= 0.02 + 1e-12
    assert stats.kstest(rt_err, stats.uniform(-0.02, 0.04).cdf).pvalue > 0.05
    assert true.efficiency_charge.max() <= 1.0 and true.efficiency_discharge.max() <= 1.0


def test_battery_fills_to_its_true_capacity_and_reports_soc_in_model_kwh(scenario_1day):
    s = with_plant(scenario_1day, battery_capacity_error_frac=0.05)
    twin = SteppedTwin(s)
    sp = Setpoints.zeros(s.fleet)
    sp.battery_kw[:] = 1e3
    for _ in range(40):
        twin.advance(twin.observe(), sp)
    true, nom = s.plant.fleet.battery, s.fleet.battery
    np.testing.assert_allclose(twin.energy_kwh, true.energy_max_kwh, rtol=1e-9)
    np.testing.assert_allclose(twin.observe().battery_energy_kwh, nom.energy_max_kwh, rtol=1e-9)


def test_command_latency_shows_a_step_change_one_step_later(scenario_1day):
    s = with_plant(scenario_1day, command_latency_steps=1)
    r = simulate(s, Scripted(switch=8, kw=-0.5))
    ref = simulate(scenario_1day, Scripted(switch=8, kw=-0.5))
    assert np.all(r.battery_kw[:9] == 0.0) and r.battery_kw[9] < -1.0
    assert ref.battery_kw[8] < -1.0
    np.testing.assert_allclose(r.battery_kw[9:20], ref.battery_kw[8:19], rtol=1e-12)
    delay = CommandDelay(2)
    assert [delay(k) for k in "abcde"] == ["a", "a", "a", "b", "c"]


def test_tracking_error_has_the_configured_spread_and_spares_appliances(scenario_1day):
    s = with_plant(scenario_1day, tracking_error_frac=0.02)
    sp = Setpoints.zeros(s.fleet)
    for k in ("battery_kw", "ev_kw", "thermal_kw", "pv_curtail_kw", "deferrable_kw"):
        getattr(sp, k)[:] = 2.0
    rel = []
    for step in range(200):
        got = s.plant.track(sp, step)
        assert np.array_equal(got.deferrable_kw, sp.deferrable_kw)
        rel.append(got.battery_kw / 2.0 - 1.0)
        assert np.array_equal(s.plant.track(sp, step).ev_kw, got.ev_kw)  # seeded per step
    rel = np.concatenate(rel)
    assert rel.mean() == pytest.approx(0.0, abs=0.002)
    assert rel.std() == pytest.approx(0.02, rel=0.05)


def test_meter_noise_and_dropouts(scenario_1day):
    s = with_plant(scenario_1day, meter_noise_frac=0.015, meter_dropout_prob=0.005)
    values, held = np.full(200_000, 4.0), np.full(200_000, -1.0)
    read = s.plant.corrupt_meter(values, 5, "x", held)
    lost = read == -1.0
    assert lost.mean() == pytest.approx(0.005, abs=0.001)
    assert (read[~lost] / 4.0 - 1.0).std() == pytest.approx(0.015, rel=0.02)
    assert not np.array_equal(read, s.plant.corrupt_meter(values, 5, "y", held))
    # in the twin: the controller sees the true load through the meter, not the load itself
    twin = SteppedTwin(s)
    tel = twin.observe().telemetry
    true = s.base_load_kw[tel.step]
    rel = tel.base_load_kw[true > 0] / true[true > 0] - 1.0
    assert 0.005 < rel.std() < 0.03


def test_pv_soiling_and_orientation(scenario_1day):
    s = with_plant(scenario_1day, pv_soiling_max_frac=0.05, pv_azimuth_error_deg=15.0)
    p = s.plant
    assert np.all((p.pv_derate >= 0.95) & (p.pv_derate <= 1.0)) and p.pv_derate.std() > 0.01
    assert np.array_equal(p.fleet.pv.tilt_deg, s.fleet.pv.tilt_deg)
    sl = slice(s.start_step, s.end_step)
    nominal = s.pv_per_kwp[sl][:, s.pv_orientation]
    true = p.pv_per_kwp[sl][:, p.pv_orientation]
    # a south-east to south-west system turned east of its model produces a larger share of
    # its energy in the morning
    morning = np.asarray(s.window.hour < 12)
    share = lambda x: x[morning].sum(axis=0) / x.sum(axis=0)  # noqa: E731
    shift = p.fleet.pv.azimuth_deg - s.fleet.pv.azimuth_deg
    big = (np.abs(shift) > 5) & (np.abs(s.fleet.pv.azimuth_deg - 180.0) <= 45.0)
    assert big.sum() > 20
    assert np.all(np.sign(share(true) - share(nominal))[big] == -np.sign(shift[big]))
    step = s.start_step + 48
    np.testing.assert_allclose(
        p.pv_available_kw(step), true[48] * s.fleet.pv.peak_kw * p.pv_derate, rtol=1e-12
    )


def test_thermal_rc_errors_drive_the_true_temperature(scenario_1day):
    s = with_plant(scenario_1day, thermal_rc_error_frac=0.15)
    nom, true = s.fleet.thermal, s.plant.fleet.thermal
    for attr in ("resistance_c_per_kw", "capacitance_kwh_per_c"):
        ratio = getattr(true, attr) / getattr(nom, attr)
        assert ratio.min() >= 0.85 and ratio.max() <= 1.15 and ratio.std() > 0.05
    twin = SteppedTwin(s)
    t0, step = twin.temp_c.copy(), twin.step
    twin.advance(twin.observe(), Setpoints.zeros(s.fleet))
    # unheated RC building: T' = a T + (1 - a) T_out, a = exp(-dt / (R C)) with the TRUE R, C
    a = np.exp(-s.dt_h / (true.resistance_c_per_kw * true.capacitance_kwh_per_c))
    expected = a * t0 + (1 - a) * s.outdoor_temp_c[step]
    np.testing.assert_allclose(twin.temp_c, expected, rtol=1e-12)


def test_ev_departures_and_energy_differ_from_declarations(scenario_1day):
    s = with_plant(scenario_1day, ev_departure_error_sd_min=45.0, ev_energy_error_frac=0.15)
    nom, true = s.fleet.ev.sessions, s.plant.fleet.ev.sessions
    shift_h = (true.departure_step - nom.departure_step) * s.dt_h
    assert shift_h.std() == pytest.approx(0.75, rel=0.2)
    assert np.all(true.departure_step > true.arrival_step)
    assert np.all(true.energy_need_kwh <= nom.energy_need_kwh + 1e-12)
    free = true.headroom_kwh < nom.headroom_kwh - 1e-9  # actual need below the battery limit
    factor = true.headroom_kwh[free] / nom.energy_need_kwh[free]
    assert factor.std() == pytest.approx(0.15, rel=0.25)

    twin, records = run_twin(s)
    ref, ref_records = run_twin(scenario_1day)
    early = true.departure_step < nom.departure_step
    # a driver leaving early takes what was delivered: never more than on the declared plan
    assert np.all(twin.delivered_kwh[early] <= ref.delivered_kwh[early] + 1e-9)
    assert np.any(twin.delivered_kwh[early] < ref.delivered_kwh[early] - 0.1)
    # the car's own limit caps what it takes at the actual need
    assert np.all(twin.delivered_kwh <= true.headroom_kwh + 1e-9)
    ev_kwh = sum(r.ev_kw.sum() for r in records)
    assert ev_kwh < sum(r.ev_kw.sum() for r in ref_records)


def run_twin(scenario, ctrl=UncontrolledController):
    """Step a twin over the window; return it and its step records."""
    twin, c, records = SteppedTwin(scenario), ctrl(), []
    c.reset(scenario)
    while not twin.finished:
        obs = twin.observe()
        records.append(twin.advance(obs, c.act(obs)))
    return twin, records


def test_appliance_no_shows_draw_nothing(scenario_1day):
    s = with_plant(scenario_1day, deferrable_noshow_prob=0.1)
    shows = s.plant.deferrable_shows
    assert (~shows).mean() == pytest.approx(0.1, abs=0.02)
    _, records = run_twin(s)
    drawn = sum(r.deferrable_kw for r in records) * s.dt_h
    unmet = sum(r.unmet_deferrable_kwh for r in records)
    day = shows[:, s.start_step // s.steps_per_day]
    assert np.all(drawn[~day] == 0.0) and (~day).any()
    np.testing.assert_allclose(drawn[day], s.fleet.deferrable.energy_kwh[day], rtol=1e-9)
    assert unmet == pytest.approx(0.0, abs=1e-9)


def test_shipped_plant_changes_what_really_happens(scenario_1day, scenario_1day_plant):
    nominal = compute_kpis(simulate(scenario_1day, TouController()), scenario_1day)
    real = compute_kpis(simulate(scenario_1day_plant, TouController()), scenario_1day_plant)
    assert real["comfort_violation_degree_hours"] > nominal["comfort_violation_degree_hours"]
    assert real["import_kwh"] != pytest.approx(nominal["import_kwh"], rel=1e-3)


@pytest.mark.parametrize(
    ("plant", "needle"),
    [
        (
            {"meter_noise_frac": -0.01},
            "plant.meter_noise_frac: Input should be greater than or equal to 0 (got -0.01)",
        ),
        (
            {"meter_dropout_prob": 1.0},
            "plant.meter_dropout_prob: Input should be less than 1 (got 1.0)",
        ),
        (
            {"command_latency_steps": -1},
            "plant.command_latency_steps: Input should be greater than or equal to 0",
        ),
        (
            {"battery_efficiency_error": 0.2},
            "plant.battery_efficiency_error = 0.2 would push a battery efficiency above 1",
        ),
        ({"ev_departure_error_sd_min": -5}, "plant.ev_departure_error_sd_min"),
        ({"deferrable_noshow_prob": 1.5}, "plant.deferrable_noshow_prob"),
        ({"latency": 1}, "plant.latency: Extra inputs are not permitted"),
    ],
)
def test_impossible_plant_settings_are_named(plant, needle):
    with pytest.raises(ScenarioError) as err:
        parse_scenario({"plant": plant}, source="x.toml")
    assert needle in str(err.value)


def test_efficiency_error_bound_names_the_limit():
    with pytest.raises(ScenarioError, match=r"expected 0 <= value <= 0\.0975"):
        parse_scenario({"plant": {"battery_efficiency_error": 0.1}})
    ok = parse_scenario({"plant": {"battery_efficiency_error": 0.0975}})
    assert ok.plant.battery_efficiency_error == 0.0975


def test_every_controller_meets_the_same_plant(scenario_1day_plant):
    """Noise is drawn per (seed, step, stream), not per call: runs of different controllers
    read the same meter errors, so 'violations caused by dispatch' compares like with like."""
    s = scenario_1day_plant
    seen = []
    for ctrl in (UncontrolledController(), TouController()):
        twin, readings = SteppedTwin(s), []
        ctrl.reset(s)
        for _ in range(12):
            obs = twin.observe()
            readings.append((obs.telemetry.base_load_kw, obs.telemetry.pv_available_kw))
            twin.advance(obs, ctrl.act(obs))
        seen.append(readings)
    for (load_a, pv_a), (load_b, pv_b) in zip(*seen, strict=True):
        np.testing.assert_array_equal(load_a, load_b)
        np.testing.assert_allclose(pv_a, pv_b, rtol=1e-12)
    true = s.base_load_kw[s.start_step + 10]
    assert not np.allclose(seen[0][11][0][true > 0], true[true > 0])
