"""Observability names exactly the unobservable buses (checked against a rank computation),
and the estimate says when meter gross errors cannot be detected."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.grid.estimation import (
    VM,
    MeasurementFunction,
    MeasurementSet,
    P,
    Q,
    UnobservableError,
    check_observability,
    estimate,
)
from gridsync.grid.feeder_model import nominal_consumption
from gridsync.grid.powerflow import build_powerflow_model
from gridsync.grid.sources import load_network


@pytest.fixture(scope="module")
def case33():
    feeder = load_network("pandapower:case33bw").feeder
    pf = build_powerflow_model(feeder)
    p, q = nominal_consumption(feeder)
    _, v = pf.solve(p, q)
    return feeder, pf, v


def _layout(n: int, slack: int, drop_pq=(), drop_vm=()):
    """P and Q at every bus except ``drop_pq``, |V| at the slack and at buses not in drop_vm."""
    pq_bus = np.setdiff1d(np.arange(n), drop_pq)
    vm_bus = np.setdiff1d(np.arange(0, n, 4), drop_vm)
    kind = np.r_[np.full(len(pq_bus), P), np.full(len(pq_bus), Q), np.full(len(vm_bus), VM)]
    loc = np.r_[pq_bus, pq_bus, vm_bus]
    return kind, loc


def _measurements(pf, v, kind, loc):
    fn = MeasurementFunction(pf, kind, loc)
    std = np.where(kind == VM, 0.002, 1.0)
    return MeasurementSet(kind, loc, fn.h(v), std, np.where(kind == VM, "scada", "meter"))


def _rank_unobservable(pf, v, kind, loc) -> set[int]:
    """Independent reference: bus b is observable iff measuring its angle and magnitude
    directly does not raise the rank of the Jacobian."""
    fn = MeasurementFunction(pf, kind, loc)
    h = fn.jacobian(np.abs(pf.v_init) * np.exp(1j * np.angle(pf.v_init))).toarray()
    h = h / np.linalg.norm(h, axis=1, keepdims=True)
    rank = np.linalg.matrix_rank(h, tol=1e-9)
    col_va = {b: i for i, b in enumerate(fn.nonref)}
    out = set()
    for pos, b in enumerate(pf.ppc_of_bus):
        extra = np.zeros((2, h.shape[1]))
        extra[0, len(fn.nonref) + b] = 1.0
        if b in col_va:
            extra[1, col_va[b]] = 1.0
        if np.linalg.matrix_rank(np.vstack([h, extra]), tol=1e-9) > rank:
            out.add(pos)
    return out


def test_full_layout_is_observable(case33):
    feeder, pf, v = case33
    kind, loc = _layout(feeder.n_bus, feeder.slack_pos)
    check_observability(pf, _measurements(pf, v, kind, loc))


@pytest.mark.parametrize("dropped", [[5, 6], [10, 11, 12, 20, 25, 30], [16, 17, 31, 32]])
def test_unobservable_buses_match_rank_computation(case33, dropped):
    feeder, pf, v = case33
    kind, loc = _layout(feeder.n_bus, feeder.slack_pos, drop_pq=dropped, drop_vm=dropped)
    expected = _rank_unobservable(pf, v, kind, loc)
    assert expected, "the layout should leave some bus unobservable"
    with pytest.raises(UnobservableError, match="undetermined") as err:
        check_observability(pf, _measurements(pf, v, kind, loc))
    assert set(err.value.buses.tolist()) == expected


def test_critical_meter_gross_error_is_reported_undetectable(case33):
    feeder, pf, v = case33
    # no P/Q at the end of the lateral 17: the P/Q meters at bus 16 become critical
    kind, loc = _layout(feeder.n_bus, feeder.slack_pos, drop_pq=[17])
    ms = _measurements(pf, v, kind, loc)
    clean = estimate(pf, ms)
    assert "not detectable" in clean.detectability
    crit = clean.critical
    assert len(crit)
    # a 50 kW error on a critical meter leaves no trace in the residual and is not rejected
    row = int(crit[np.flatnonzero(kind[crit] == P)[0]])
    bad = MeasurementSet(kind, loc, ms.value.copy(), ms.std, ms.source)
    bad.value[row] += 50.0
    res = estimate(pf, bad)
    assert abs(res.residual[row]) < 1e-3
    assert row not in res.rejected_indices
    assert np.isinf(res.min_detectable_error[row])
    # on the most redundant meter, an error of twice its detectable size is caught
    mde_p = np.where(kind == P, clean.min_detectable_error, np.inf)
    redundant = int(np.argmin(mde_p))
    assert np.isfinite(mde_p[redundant])
    bad2 = MeasurementSet(kind, loc, ms.value.copy(), ms.std, ms.source)
    bad2.value[redundant] += 2 * mde_p[redundant]
    assert redundant in estimate(pf, bad2).rejected_indices
