"""WLS state estimator: measurement model, agreement with the power flow and pandapower,
bad-data rejection and observability errors."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.grid.estimation import (
    IIM,
    IRE,
    VA,
    VM,
    MeasurementFunction,
    MeasurementSet,
    P,
    Q,
    UnobservableError,
    estimate,
)


@pytest.fixture(scope="module")
def state(scenario_1day):
    s = scenario_1day
    pf = s.powerflow()
    step = s.start_step + 50  # 12:30, PV exporting
    p_kw = s.net_inflexible_kw(step)
    q_kvar = s.base_load_kvar[step]
    res, v = pf.solve(p_kw, q_kvar)
    return s, pf, p_kw, q_kvar, res, v


def _full_layout(n_bus: int, slack: int, head_branch: int):
    kind = np.r_[np.full(n_bus, P), np.full(n_bus, Q), np.full(n_bus, VM), [VA, IRE, IIM]]
    loc = np.r_[
        np.arange(n_bus), np.arange(n_bus), np.arange(n_bus), [60, head_branch, head_branch]
    ]
    return kind, loc


def _measurements(fn, v, kind, loc, rng=None, noise=False):
    std = np.select([kind == VM, kind == VA, kind >= IRE], [0.002, 1e-4, 1e-4], 0.05)
    value = fn.h(v)
    if noise:
        value = value + rng.standard_normal(len(value)) * std
    return MeasurementSet(kind, loc, value, std, np.full(len(kind), "meter", dtype=object))


def test_measurement_function_matches_power_flow_with_load_sign(state):
    s, pf, p_kw, q_kvar, res, v = state
    n = s.feeder.n_bus
    fn = MeasurementFunction(
        pf, np.r_[np.full(n, P), np.full(n, Q)], np.r_[np.arange(n), np.arange(n)]
    )
    z = fn.h(v)
    others = np.arange(n) != s.feeder.slack_pos
    # bus measurements are consumption (load convention), like pandapower's res_bus
    np.testing.assert_allclose(z[:n][others], p_kw[others], atol=1e-6)
    np.testing.assert_allclose(z[n:][others], q_kvar[others], atol=1e-6)
    assert z[s.feeder.slack_pos] == pytest.approx(-res.p_slack_kw, abs=1e-6)


def test_jacobian_matches_finite_differences(state):
    s, pf, *_, v = state
    kind, loc = _full_layout(s.feeder.n_bus, s.feeder.slack_pos, pf.n_branch - 1)
    fn = MeasurementFunction(pf, kind, loc)
    x = fn.v_to_state(v)
    va_ref = float(np.angle(pf.v_init[pf.ref]))
    jac = fn.jacobian(v).toarray()
    cols = np.r_[0, 7, 40, fn.n_state - 1, fn.n_state - 30, len(fn.nonref) + 5]
    for j in cols:
        dx = np.zeros_like(x)
        dx[j] = 1e-7
        num = (fn.h(fn.state_to_v(x + dx, va_ref)) - fn.h(fn.state_to_v(x - dx, va_ref))) / 2e-7
        np.testing.assert_allclose(jac[:, j], num, rtol=1e-4, atol=1e-3 * np.abs(jac).max() * 1e-4)


def test_noise_free_estimate_reproduces_power_flow(state):
    s, pf, _, _, res, v = state
    kind, loc = _full_layout(s.feeder.n_bus, s.feeder.slack_pos, pf.n_branch - 1)
    fn = MeasurementFunction(pf, kind, loc)
    est = estimate(pf, _measurements(fn, v, kind, loc), bad_data="off")
    np.testing.assert_allclose(est.vm_pu, res.vm_pu, atol=1e-8)
    np.testing.assert_allclose(np.degrees(est.va_rad), res.va_deg, atol=1e-6)
    assert est.objective < 1e-8


def test_planted_bad_measurement_is_rejected_and_good_ones_kept(state):
    s, pf, _, _, res, v = state
    kind, loc = _full_layout(s.feeder.n_bus, s.feeder.slack_pos, pf.n_branch - 1)
    fn = MeasurementFunction(pf, kind, loc)
    ms = _measurements(fn, v, kind, loc, np.random.default_rng(3), noise=True)
    clean = estimate(pf, ms)
    assert clean.rejected == []
    bad_row = int(np.flatnonzero((kind == VM) & (loc == 60))[0])
    ms.value[bad_row] += 0.04  # a meter reporting 4 % high: 20 standard deviations
    est = estimate(pf, ms)
    assert est.rejected_indices.tolist() == [bad_row]
    assert est.used.sum() == len(ms) - 1
    assert not est.used[bad_row]
    assert est.passes_chi2
    assert np.max(np.abs(est.vm_pu - res.vm_pu)) < 0.002
    # without bad-data processing the error leaks into the estimate
    raw = estimate(pf, ms, bad_data="off")
    assert not raw.passes_chi2


def test_chi2_mode_only_tests_after_an_alarm(state):
    s, pf, _, _, _, v = state
    kind, loc = _full_layout(s.feeder.n_bus, s.feeder.slack_pos, pf.n_branch - 1)
    fn = MeasurementFunction(pf, kind, loc)
    ms = _measurements(fn, v, kind, loc, np.random.default_rng(4), noise=True)
    bad_row = int(np.flatnonzero((kind == VM) & (loc == 20))[0])
    ms.value[bad_row] -= 0.05
    est = estimate(pf, ms, bad_data="chi2")
    assert bad_row in est.rejected_indices


def test_unobservable_bus_is_named(state):
    s, pf, *_, v = state
    n = s.feeder.n_bus
    kind, loc = _full_layout(n, s.feeder.slack_pos, pf.n_branch - 1)
    target = 60
    neighbours = np.r_[
        pf.branch_to_pos[pf.branch_from_pos == target],
        pf.branch_from_pos[pf.branch_to_pos == target],
    ]
    blind = np.r_[target, neighbours]
    keep = ~(np.isin(loc, blind) & (kind != IRE) & (kind != IIM))
    fn = MeasurementFunction(pf, kind[keep], loc[keep])
    ms = _measurements(fn, v, kind[keep], loc[keep])
    with pytest.raises(UnobservableError, match="no measurement depends") as err:
        estimate(pf, ms)
    assert target in err.value.buses


def test_too_few_measurements_is_unobservable(state):
    s, pf, *_, v = state
    n = s.feeder.n_bus
    kind, loc = np.full(n, VM), np.arange(n)
    fn = MeasurementFunction(pf, kind, loc)
    with pytest.raises(UnobservableError):
        estimate(pf, _measurements(fn, v, kind, loc))


def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match=r"std\[1\]"):
        MeasurementSet([VM, VM], [0, 1], [1.0, 1.0], [0.01, 0.0], ["scada", "scada"])
    with pytest.raises(ValueError, match=r"value\[0\]"):
        MeasurementSet([VM], [0], [np.nan], [0.01], ["scada"])


def test_agrees_with_pandapower_estimator(state):
    from gridsync.grid.estimation.reference import pandapower_estimate

    s, pf, _, _, res, v = state
    n = s.feeder.n_bus
    kind = np.r_[np.full(n, P), np.full(n, Q), [VM, VM, VM]]
    loc = np.r_[np.arange(n), np.arange(n), [s.feeder.slack_pos, 10, 80]]
    fn = MeasurementFunction(pf, kind, loc)
    ms = _measurements(fn, v, kind, loc, np.random.default_rng(5), noise=True)
    ours = estimate(pf, ms, bad_data="off")
    vm, va, ok = pandapower_estimate(s.feeder, ms)
    assert ok
    np.testing.assert_allclose(ours.vm_pu, vm, atol=1e-6)
    np.testing.assert_allclose(ours.va_rad, va, atol=1e-6)
    # flipping the P/Q sign (generator convention) must not agree: the reference is sign-sensitive
    flipped = MeasurementSet(kind, loc, np.where(kind == P, -ms.value, ms.value), ms.std, ms.source)
    vm_f, _, _ = pandapower_estimate(s.feeder, flipped)
    assert np.max(np.abs(vm_f - res.vm_pu)) > 10 * np.max(np.abs(vm - res.vm_pu))
