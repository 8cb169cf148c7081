"""FLISR on the CIGRE MV study feeder: location, radiality and AC feasibility of the plans.

Radiality is re-checked with an independent union-find over the plan, and AC feasibility with a
fresh pandapower network and ``runpp`` written here, not with the module's own AC check.
"""

from __future__ import annotations

import copy

import numpy as np
import pandapower as pp
import pytest

from gridsync.resilience import flisr as F
from gridsync.resilience.feeder import load_feeder_study
from gridsync.resilience.study import trip_state


@pytest.fixture(scope="module")
def feeder():
    return load_feeder_study()


def independent_ac(feeder, plan, op):
    """vm of energised MV buses, max line and transformer loading of a plan, from runpp."""
    net = copy.deepcopy(feeder.net)
    net.line["in_service"] = plan.closed
    net.load["p_mw"], net.load["q_mvar"] = op.load_p_mw, op.load_q_mvar
    net.load["in_service"] = plan.energised[net.load.bus.to_numpy()]
    net.sgen["in_service"] = False
    net.storage["in_service"] = False
    pp.runpp(net, numba=False)
    live = plan.energised & (net.bus.vn_kv.to_numpy() < 100)
    vm = net.res_bus.vm_pu.to_numpy()[live]
    return vm, np.nanmax(net.res_line.loading_percent), np.nanmax(net.res_trafo.loading_percent)


def independent_radial(feeder, plan) -> bool:
    """Energised lines = energised non-source buses, and every energised bus reaches a source."""
    e = plan.closed & plan.energised[feeder.line_from] & plan.energised[feeder.line_to]
    mv = feeder.net.bus.vn_kv.to_numpy() < 100
    live = np.flatnonzero(plan.energised & mv)
    if e.sum() != len(live) - len(feeder.sources):
        return False
    reach, frontier = set(int(s) for s in feeder.sources), list(feeder.sources)
    while frontier:
        b = frontier.pop()
        for k in np.flatnonzero(e & ((feeder.line_from == b) | (feeder.line_to == b))):
            o = int(feeder.line_to[k] if feeder.line_from[k] == b else feeder.line_from[k])
            if o not in reach:
                reach.add(o)
                frontier.append(o)
    return set(live.tolist()) <= reach


def test_fci_location_finds_every_fault_and_a_silent_indicator_costs_one_retry(feeder):
    closed = feeder.normally_closed
    paths = F.radial_paths(feeder, closed)
    for line in np.flatnonzero(closed):
        sig = F.fci_signature(feeder, paths, line)
        located = F.locate(feeder, closed, sig)
        assert line in located
        if feeder.remote[line]:
            assert located == [line]  # FCIs at both ends pin a remote line exactly
        if sig.any():
            miss = sig.copy()
            miss[np.flatnonzero(sig)[-1]] = False  # the last indicator on the path stays silent
            assert line in F.locate(feeder, closed, miss, slack=1)


@pytest.mark.parametrize("load_pu", [0.5, 1.0])
@pytest.mark.parametrize("line_name", ["Line 1-2", "Line 3-4", "Line 12-13"])
def test_restoration_plans_are_radial_and_ac_feasible(feeder, load_pu, line_name):
    line = feeder.line_by_name(line_name)
    op = F.operating_point(feeder, load_pu, load_pu)
    closed = feeder.normally_closed
    located = F.locate(feeder, closed, F.fci_signature(feeder, F.radial_paths(feeder, closed), line))
    iso = F.isolate_remote(feeder, closed, located)
    stage1 = F.restore(feeder, op, trip_state(feeder, line), feeder.remote, iso)
    stage2 = F.restore(feeder, op, stage1.closed, np.ones(len(closed), bool), F.Isolation([line], []),
                       keep=stage1.energised)
    for plan in (stage1, stage2):
        assert independent_radial(feeder, plan)
        assert F.is_radial_forest(feeder, plan.closed, plan.energised)
        ends = plan.energised[feeder.line_from[line]] or plan.energised[feeder.line_to[line]]
        assert not (plan.closed[line] and ends)  # the faulted line is never re-energised
        vm, line_max, trafo_max = independent_ac(feeder, plan, op)
        assert vm.min() >= feeder.study.voltage_min_pu - 1e-6
        assert vm.max() <= feeder.study.voltage_max_pu + 1e-6
        assert line_max <= 100.0 + 1e-6 and trafo_max <= 100.0 + 1e-6
    moved = np.flatnonzero(stage1.closed != trip_state(feeder, line))
    assert all(feeder.remote[e] for e in moved)  # the remote stage moves remote switches only


def test_off_peak_everything_outside_the_zone_comes_back(feeder):
    """With capacity to spare, the MILP restores every load not in the isolated zone."""
    line = feeder.line_by_name("Line 3-4")
    op = F.operating_point(feeder, 0.3, 0.3)
    iso = F.isolate_remote(feeder, feeder.normally_closed, [line])
    assert iso.buses == [3, 4]
    plan = F.restore(feeder, op, trip_state(feeder, line), feeder.remote, iso)
    outside = ~np.isin(feeder.load_bus, iso.buses)
    assert plan.energised[feeder.load_bus][outside].all()
    assert not plan.energised[feeder.load_bus][~outside].any()


def test_ac_violation_is_cut_and_resolved(feeder):
    """At peak, the LinDistFlow plan for a head-end fault overloads in AC; a cut fixes it."""
    line = feeder.line_by_name("Line 1-2")
    op = F.operating_point(feeder, 1.0, 1.0)
    plan = F.restore(feeder, op, trip_state(feeder, line), feeder.remote, F.Isolation([line], []))
    assert plan.milp_solves > 1 and plan.cuts
    assert plan.ac.ok
    vm, line_max, trafo_max = independent_ac(feeder, plan, op)
    assert vm.min() >= 0.9 - 1e-6 and trafo_max <= 100.0 + 1e-6


def test_limits_nothing_can_meet_give_a_safe_plan_that_restores_nothing(feeder):
    """0.999 p.u. minimum at peak: no restoration passes; the plan leaves the tripped part off."""
    strict = copy.copy(feeder)
    strict.study = feeder.study.model_copy(update={"voltage_min_pu": 0.999})
    line = feeder.line_by_name("Line 3-4")
    op = F.operating_point(strict, 1.0, 1.0)
    iso = F.isolate_remote(strict, strict.normally_closed, [line])
    plan = F.restore(strict, op, trip_state(strict, line), strict.remote, iso)
    assert plan.restored_kw == 0.0 and not plan.restored_loads.any()
    assert plan.ac.ok and F.is_radial_forest(strict, plan.closed, plan.energised)
