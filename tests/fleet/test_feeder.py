"""Feeder replicas and one feeder's loop: shared series, own assets, exact resume."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.data.weather import pv_output_per_kwp, read_weather
from gridsync.fleet.feeder import SETPOINT_KINDS, FeederRuntime
from gridsync.fleet.forecast import SharedForecaster, train_shared_model
from gridsync.fleet.replicas import FeederSpec


@pytest.fixture
def factory(fleet_factory):
    return fleet_factory


def test_replicas_share_series_and_network_but_draw_their_own_assets(factory):
    a = factory.build(FeederSpec("fa", 1))
    b = factory.build(FeederSpec("fb", 2))
    assert a.base_load_kw is b.base_load_kw is factory.base.base_load_kw
    assert a.powerflow() is b.powerflow()
    assert a.fleet.battery.capacity_kwh.tolist() != b.fleet.battery.capacity_kwh.tolist()
    assert a.config.seed == 1 and b.config.seed == 2
    # the same seed draws the same feeder again (a restarted worker rebuilds it)
    again = factory.build(FeederSpec("fa", 1))
    np.testing.assert_array_equal(
        again.fleet.ev.sessions.arrival_step, a.fleet.ev.sessions.arrival_step
    )


def test_replica_pv_is_pvlib_output_at_each_systems_own_orientation(factory):
    sc = factory.build(FeederSpec("fc", 3))
    weather = read_weather(sc.config.weather.tmy, sc.index)
    pv = sc.fleet.pv
    direct = pv_output_per_kwp(weather, pv.tilt_deg[:5], pv.azimuth_deg[:5]) * pv.peak_kw[:5]
    step = sc.start_step + 48  # noon
    np.testing.assert_allclose(sc.pv_available_kw(step)[:5], direct[step], rtol=1e-9)


def test_a_restored_feeder_continues_exactly_as_the_uninterrupted_one(factory):
    spec = FeederSpec("fd", 4)
    fc = SharedForecaster(train_shared_model(factory.base, "naive"), factory.base)
    straight = FeederRuntime(spec, factory.build(spec), fc)
    first = FeederRuntime(spec, factory.build(spec), fc)
    ref = [straight.step() for _ in range(6)]
    for _ in range(3):
        first.step()
    blob = first.checkpoint()
    # a restarted worker: a fresh scenario object built from the spec, then the checkpoint
    resumed = FeederRuntime.restore(blob, spec, factory.build(spec), fc)
    assert resumed.step_index == 3
    for want in ref[3:]:  # crosses the re-plan at step 4
        got = resumed.step()
        assert got.step == want.step
        assert got.plan["replanned"] == want.plan["replanned"]
        assert got.telemetry["feeder_kw"] == pytest.approx(want.telemetry["feeder_kw"], rel=1e-9)
        for kind in SETPOINT_KINDS:
            np.testing.assert_allclose(got.plan[kind], want.plan[kind], atol=1e-9)
    assert any(o.plan["replanned"] for o in ref[3:])


def test_restoring_another_feeders_checkpoint_is_refused(factory):
    fc = SharedForecaster(train_shared_model(factory.base, "naive"), factory.base)
    spec = FeederSpec("fe", 5)
    blob = FeederRuntime(spec, factory.build(spec), fc).checkpoint()
    with pytest.raises(ValueError, match="restored as 'ff'"):
        FeederRuntime.restore(blob, FeederSpec("ff", 5), factory.build(spec), fc)
