"""Anomaly detectors on hand-built series, and the estimator-based checks on the twin."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.grid.estimation import VM, P, estimate
from gridsync.safety.anomaly import (
    LoadJumpModel,
    StateChecker,
    device_rows_of,
    dropout_flags,
    frozen_flags,
    load_jump_flags,
    setpoint_flags,
    spike_flags,
)
from gridsync.safety.telemetry import scenario_telemetry


def test_frozen_sensor_flagged_only_when_repeating():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(20, 3))
    r[5:11, 1] = r[4, 1]  # stuck from step 4 on: 7 equal values
    r[8:9, 2] = r[7, 2]  # one repeat is not a frozen sensor
    f = frozen_flags(r, np.ones(3, dtype=int), min_run=3)
    assert f[5:11, 1].all()
    assert not f[:, 0].any() and not f[:, 2].any()
    assert not f[:4, 1].any() and not f[11:, 1].any()
    with pytest.raises(ValueError, match="min_run"):
        frozen_flags(r, np.ones(3, dtype=int), min_run=1)


def test_dropout_needs_a_run_not_a_lost_packet():
    r = np.ones((12, 2))
    r[3, 0] = np.nan  # one lost packet
    r[5:9, 1] = np.nan  # outage of 4 steps
    f = dropout_flags(r, min_run=3)
    assert not f[:, 0].any()
    assert f[5:9, 1].all() and f[:, 1].sum() == 4


class _Plan:
    """Just what the load detectors read from a plan: two meter P rows, no latency."""

    kind = np.array([P, P, VM])
    loc = np.array([0, 1, 0])
    source = np.array(["meter", "meter", "meter"], dtype=object)
    latency = np.zeros(3, dtype=int)


def test_load_jump_and_spike_are_told_apart():
    t = 30
    pseudo = np.zeros((t, 2))
    r = np.zeros((t, 3))
    r[:, :2] = np.random.default_rng(1).normal(0, 0.1, (t, 2))
    r[10:20, 0] += 6.0  # an unscheduled 6 kW load at bus 0
    r[15, 1] += 8.0  # a one-step gross reading at bus 1
    model = LoadJumpModel(np.array([0, 1]), np.array([0, 1]), np.array([2.0, 2.0]))
    jump = load_jump_flags(model, _Plan, r, pseudo)
    spike = spike_flags(model, _Plan, r, pseudo)
    assert jump[10, 0] and not jump[15, 1]
    assert spike[15, 1] and not spike[10, 0]
    assert jump.sum() == 2 and spike.sum() == 1  # load on, load off; one spike
    assert not jump[:, 2].any()
    # the onset reading is lost: the jump is still seen against the last reading that arrived
    r[10, 0] = np.nan
    assert load_jump_flags(model, _Plan, r, pseudo)[11, 0]


def test_setpoint_following():
    cmd = np.tile(np.array([2.0, -3.0]), (10, 1))
    meas = cmd + 0.01
    meas[4:7, 1] = 0.0  # battery 1 ignores its discharge command for three steps
    meas[2, 0] = 0.0  # one bad step is tolerated
    f = setpoint_flags(cmd, meas, rating_kw=np.array([5.0, 5.0]))
    assert f[4:7, 1].all() and f.sum() == 3


@pytest.fixture(scope="module")
def telemetry(scenario_1day):
    return scenario_telemetry(scenario_1day)


def test_state_checker_names_a_gross_voltage_error_and_stays_quiet_on_clean_data(
    scenario_1day, telemetry
):
    s, tel = scenario_1day, telemetry
    plan = tel.plan
    checker = StateChecker(s.powerflow(), plan)
    step = s.start_step + 48
    clean = checker.check(
        tel.snapshot(step), device_rows_of(tel.readings[step], tel.snapshot(step))
    )
    assert len(clean.rejected_rows) == 0 and not clean.pmu_alarm
    r = tel.readings.copy()
    row = int(
        np.flatnonzero((plan.kind == VM) & (plan.source == "meter") & np.isfinite(r[step]))[3]
    )
    r[step, row] += 0.05
    ms = tel.snapshot(step, r)
    verdict = checker.check(ms, device_rows_of(r[step], ms))
    assert verdict.chi2_alarm
    assert verdict.rejected_rows.tolist() == [row]


def test_stealthy_injection_passes_residual_test_but_not_pmu_crosscheck(scenario_1day, telemetry):
    from gridsync.grid.estimation.twin import truth_from_loads

    s, tel = scenario_1day, telemetry
    plan, pf = tel.plan, s.powerflow()
    step = s.start_step + 48
    # a fake 10 kW load at a metered bus, written consistently into every SCADA/meter row
    p = tel.truth.p_kw[step].copy()
    p[plan.meter_buses[10]] += 10.0
    fake = truth_from_loads(pf, p[None], tel.truth.q_kvar[step][None])
    a = plan.fn.h(fake.v[0]) - plan.fn.h(tel.truth.v[step])
    r = tel.readings.copy()
    saved_latency = plan.latency.copy()
    plan.latency[:] = 0  # compare fresh readings only
    try:
        r[step] = plan.fn.h(tel.truth.v[step]) + 0.0
        attacked = r.copy()
        forged = np.isin(plan.source, ("scada", "meter"))
        attacked[step, forged] += a[forged]
        checker = StateChecker(pf, plan)
        honest = checker.check(
            tel.snapshot(step, r), device_rows_of(r[step], tel.snapshot(step, r))
        )
        ms = tel.snapshot(step, attacked)
        verdict = checker.check(ms, device_rows_of(attacked[step], ms))
    finally:
        plan.latency[:] = saved_latency
    assert not honest.pmu_alarm and len(honest.rejected_rows) == 0
    # without the PMUs the forged snapshot is perfectly consistent: the residual test passes
    no_pmu = ms.subset(ms.source != "pmu")
    blind = estimate(pf, no_pmu, alpha=1e-4)
    assert blind.passes_chi2 and blind.rejected == []
    # with honest PMUs it is not: their phasors contradict the forged feeder-head data
    assert verdict.pmu_alarm or verdict.chi2_alarm or len(verdict.rejected_rows) > 0
    assert set(plan.source[verdict.rejected_rows]) <= {"scada", "meter"}
