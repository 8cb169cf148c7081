"""Decision-time information: no controller's decision at step t depends on anything realised at
or after t. Every registered controller runs twice, once on the scenario and once on a copy
whose load, PV, weather, carbon and future EV sessions are garbage from t on (overwritten
before ``reset``, so cached copies are poisoned too); the setpoints of every step up to t must
be identical. The oracle is the exception that proves the poison reaches something: it reads
the future by design, so its decision at t must change."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from gridsync.sim.registry import CONTROLLERS, SHIELD_SUFFIX, make_controller
from gridsync.sim.twin import SteppedTwin

T_OFFSET = 44  # 11:00 on the first day: PV, loads and voltages all move
RUN_STEPS = 8  # the twin starts this many steps before t (from the window's initial states)
# perfect-foresight bounds: they read the future by design
ORACLES = {n for n in CONTROLLERS if n.removesuffix(SHIELD_SUFFIX).startswith("oracle")}


def poison(s, t: int, seed: int = 1):
    """A copy of scenario ``s`` with everything realised from step ``t`` on replaced by garbage
    of the same scale (so power flows still converge), and future EV arrivals redrawn."""
    rng = np.random.default_rng(seed)
    bad = copy.copy(s)
    bad._pf = None
    for name in ("base_load_kw", "base_load_kvar", "pv_per_kwp", "ghi_w_m2", "carbon_g_per_kwh"):
        arr = np.array(getattr(s, name), dtype=float)
        arr[t:] *= rng.uniform(0.0, 3.0, arr[t:].shape)
        setattr(bad, name, arr)
    temp = np.array(s.outdoor_temp_c, dtype=float)
    temp[t:] += rng.normal(0.0, 15.0, temp[t:].shape)
    bad.outdoor_temp_c = temp
    mode = np.array(s.hvac_mode, dtype=float)
    mode[t + 1 :] = rng.choice([-1.0, 1.0], len(mode) - t - 1)  # modes from t+1 on follow temps
    bad.hvac_mode = mode
    ses = s.fleet.ev.sessions
    future = ses.arrival_step > t
    arrival = np.where(future, ses.arrival_step + rng.integers(1, 8, len(ses)), ses.arrival_step)
    dwell = ses.departure_step - ses.arrival_step
    departure = np.where(future, arrival + rng.integers(1, 2 * dwell + 2), ses.departure_step)
    need = np.where(future, ses.energy_need_kwh * rng.uniform(0, 3, len(ses)), ses.energy_need_kwh)
    sessions = dataclasses.replace(
        ses, arrival_step=arrival, departure_step=departure, energy_need_kwh=need
    )
    ev = dataclasses.replace(s.fleet.ev, sessions=sessions)
    bad.fleet = dataclasses.replace(s.fleet, ev=ev)
    return bad


def _fast(controller):
    """Short MPC horizons so the suite stays quick (the information rule does not depend on it)."""
    inner = getattr(controller, "inner", controller)
    inner = getattr(inner, "base", inner)
    if hasattr(inner, "config") and hasattr(inner.config, "horizon_steps"):
        inner.config = dataclasses.replace(inner.config, horizon_steps=16, fine_steps=16)
    return controller


def run_to(scenario, name: str, t: int) -> list:
    """Setpoints (as one flat array per step) from ``t - RUN_STEPS`` through step ``t``."""
    ctrl = _fast(make_controller(name))
    twin = SteppedTwin(scenario, step=t - RUN_STEPS)
    ctrl.reset(scenario)
    out = []
    while True:
        obs = twin.observe()
        sp = ctrl.act(obs)
        out.append(
            np.concatenate(
                [sp.battery_kw, sp.ev_kw, sp.deferrable_kw, sp.thermal_kw, sp.pv_curtail_kw]
            )
        )
        if obs.step == t:
            return out
        twin.advance(obs, sp)


@pytest.fixture(scope="module")
def poisoned_pair(scenario_1day):
    t = scenario_1day.start_step + T_OFFSET
    return scenario_1day, poison(scenario_1day, t), t


@pytest.mark.parametrize("name", sorted(set(CONTROLLERS) - ORACLES))
def test_decision_at_t_ignores_everything_from_t_on(poisoned_pair, name):
    clean, bad, t = poisoned_pair
    # each run on its own power-flow model: a shared one starts every Newton solve from the
    # last voltages an earlier test left, which moves results within the solver tolerance
    a = run_to(dataclasses.replace(clean, _pf=None), name, t)
    b = run_to(dataclasses.replace(bad, _pf=None), name, t)
    assert len(a) == len(b) == RUN_STEPS + 1
    for k, (x, y) in enumerate(zip(a, b, strict=True)):
        assert np.array_equal(x, y), f"{name}: setpoints differ at window step {k}"


@pytest.mark.parametrize("name", sorted(n for n in ORACLES if not n.endswith(SHIELD_SUFFIX)))
def test_the_oracle_does_read_the_future(poisoned_pair, name):
    clean, bad, t = poisoned_pair
    a, b = run_to(clean, name, t), run_to(bad, name, t)
    assert not all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _with_telemetry(s, **kw):
    cfg = s.config.model_copy(update={"telemetry": s.config.telemetry.model_copy(update=kw)})
    return dataclasses.replace(s, config=cfg, _pf=None)


def test_telemetry_latency_delivers_an_older_interval(scenario_1day):
    late = _with_telemetry(scenario_1day, latency_steps=2)
    twin, ctrl = SteppedTwin(late, step=late.start_step + 1), make_controller("tou")
    ctrl.reset(late)
    for _ in range(6):
        obs = twin.observe()
        tel = obs.telemetry
        assert tel.step == obs.step - 3
        assert np.array_equal(tel.base_load_kw, late.base_load_kw[obs.step - 3])
        assert tel.outdoor_temp_c == late.outdoor_temp_c[obs.step - 3]
        if obs.step - 3 > late.start_step:  # a step this run simulated: the twin's grid readings
            assert tel.feeder_kw is not None and tel.vm_pu is not None
        else:
            assert tel.feeder_kw is None
        twin.advance(obs, ctrl.act(obs))


def test_lost_readings_hold_their_last_value(scenario_1day):
    lossy = _with_telemetry(scenario_1day, loss_frac=0.3)
    twin, ctrl = SteppedTwin(lossy), make_controller("uncontrolled")
    ctrl.reset(lossy)
    prev, lost = None, 0
    for _ in range(12):
        obs = twin.observe()
        tel = obs.telemetry
        true = lossy.base_load_kw[tel.step]
        fresh = tel.fresh_bus
        assert np.array_equal(tel.base_load_kw[fresh], true[fresh])
        if prev is not None:
            assert np.array_equal(tel.base_load_kw[~fresh], prev.base_load_kw[~fresh])
            lost += int((~fresh).sum())
        prev = tel
        twin.advance(obs, ctrl.act(obs))
    n = 11 * lossy.feeder.n_bus
    assert 0.2 * n < lost < 0.4 * n  # about loss_frac of the readings
