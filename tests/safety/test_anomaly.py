"""Setpoint following, frozen/silent channels on hand-built series, and the PMU cross-check
against a stealthy injection crafted on the estimator's own model."""

from __future__ import annotations

import numpy as np

from gridsync.grid.estimation import estimate
from gridsync.grid.estimation.twin import truth_from_loads
from gridsync.safety.anomaly import setpoint_flags
from gridsync.safety.detectors import frozen_runs, run_lengths
from gridsync.safety.features import SnapshotAnalyzer, chi2_z
from gridsync.safety.telemetry import scenario_telemetry


def test_frozen_sensor_counts_repeats_of_its_own_update_period():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(20, 3))
    r[5:11, 1] = r[4, 1]  # stuck from step 4 on: 7 equal values
    r[8, 2] = r[7, 2]  # one repeat
    r[:, 0] = np.repeat(rng.normal(size=10), 2)  # a device updating every 2 steps, held between
    runs = frozen_runs(r, np.array([2, 1, 1]))
    assert runs[10, 1] == 7 and runs[4, 1] == 1 and runs[11, 1] == 1
    assert runs[:, 2].max() == 2
    assert runs[:, 0].max() == 1  # held values are not frozen


def test_run_lengths_count_silent_steps():
    missing = np.zeros((12, 2), dtype=bool)
    missing[3, 0] = True
    missing[5:9, 1] = True
    runs = run_lengths(missing)
    assert runs[:, 0].max() == 1
    assert runs[5:9, 1].tolist() == [1, 2, 3, 4] and runs[9, 1] == 0


def test_setpoint_following():
    cmd = np.tile(np.array([2.0, -3.0]), (10, 1))
    meas = cmd + 0.01
    meas[4:7, 1] = 0.0  # battery 1 ignores its discharge command for three steps
    meas[2, 0] = 0.0  # one bad step is tolerated
    f = setpoint_flags(cmd, meas, rating_kw=np.array([5.0, 5.0]))
    assert f[4:7, 1].all() and f.sum() == 3


def test_stealthy_injection_passes_the_residual_test_but_not_the_pmu_crosscheck(scenario_1day):
    s = scenario_1day
    tel = scenario_telemetry(s)
    plan, pf = tel.plan, s.powerflow()
    step = s.start_step + 48
    a = tel.aligned()
    # a fake 10 kW load at a metered bus, written consistently into every SCADA/meter row
    p = tel.truth.p_kw[step].copy()
    p[plan.meter_buses[10]] += 10.0
    fake = truth_from_loads(pf, p[None], tel.truth.q_kvar[step][None])
    forged = np.isin(plan.source, ("scada", "meter"))
    attacked = a.copy()
    attacked[step, forged] += (plan.fn.h(fake.v[0]) - plan.fn.h(tel.truth.v[step]))[forged]
    an = SnapshotAnalyzer(pf, plan)
    pp, pq = tel.pseudo_p_kw, tel.pseudo_q_kvar
    honest = an.analyze(a, pp, pq, [step])
    forged_f = an.analyze(attacked, pp, pq, [step])
    # without the PMUs the forged snapshot is as consistent as the honest one
    ms, _ = an.snapshot(attacked, step, pp[step], pq[step])
    blind = estimate(pf, ms.subset(ms.source != "pmu"), bad_data="off")
    assert chi2_z(blind.objective, blind.dof) < 3.0 and blind.rejected == []
    # the honest PMUs contradict the forged data (their angles by > 5 std of the gap)
    assert np.nanmax(np.abs(honest.pmu_z[step])) < 4.0
    assert np.nanmax(np.abs(forged_f.pmu_z[step])) > 5.0
