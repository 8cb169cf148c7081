"""Voltage unbalance KPIs of three-phase runs, against hand-solved symmetrical components."""

import numpy as np
import pytest

from gridsync.grid.threephase.elements import vuf_pct
from gridsync.model.scenario_config import LimitsConfig
from gridsync.sim.kpi import VUF_LIMIT_PCT, unbalance_kpis

A = np.exp(2j * np.pi / 3)


def test_vuf_of_one_sagging_phase_hand_solved():
    """Va = 1, Vb = 1 at -120 deg, Vc = 0.9 at +120 deg. By hand: a Vb = 1 and a^2 Vc = 0.9 (both
    at 0 deg), so 3 V1 = 2.9; Va + a^2 Vb + a Vc = (1 + a + a^2) - 0.1 a^2 = -0.1 a^2, so
    3 |V2| = 0.1; VUF = 0.1 / 2.9."""
    v = np.array([1.0, A**2, 0.9 * A])
    assert vuf_pct(v[None])[0] == pytest.approx(100 * 0.1 / 2.9, rel=1e-12)
    # negative-sequence-only part swapped in: a balanced set has no unbalance
    assert vuf_pct(np.array([[1.0, A**2, A]]))[0] == pytest.approx(0.0, abs=1e-12)


def test_unbalance_kpis_max_p95_limit_and_per_phase_violations():
    """20 steps x 5 buses; bus 0 is the slack-side MV bus (no VUF, NaN), bus 4 sags on phase c
    (the hand-solved 3.45 %) in steps 0-5, elsewhere every bus is balanced at 1.0 p.u. except
    bus 2 whose phase a runs at 1.06 p.u. in steps 10-12; step 19's flow failed (NaN)."""
    steps, buses = 20, 5
    v = np.tile(np.array([1.0, A**2, A]), (steps, buses, 1))
    v[:6, 4, 2] *= 0.9
    v[10:13, 2, 0] *= 1.06
    vuf = vuf_pct(v)
    vuf[:, 0] = np.nan
    vm = np.abs(v)
    vuf[19], vm[19] = np.nan, np.nan
    extras = {
        "vuf_pct": vuf,
        "vm_phase_pu": vm,
        "neutral_current_a": np.full((steps, 3), 10.0),
    }
    k = unbalance_kpis(extras, LimitsConfig())
    sag = 100 * 0.1 / 2.9
    rise = vuf_pct(np.array([[1.06, A**2, A]]))[0]
    assert k["max_vuf_pct"] == pytest.approx(sag)
    assert sag > VUF_LIMIT_PCT > rise
    # 6 of the 19 x 4 = 76 finite bus-steps are above 2 %: more than 5 %, so p95 is the sag
    assert k["p95_vuf_pct"] == pytest.approx(sag)
    assert k["vuf_bus_steps_above_2pct"] == 6
    # phase c below 0.95 p.u. at bus 4 (6 steps), phase a above 1.05 at bus 2 (3 steps); the
    # failed step counts on every phase at every bus
    assert k["voltage_violation_bus_steps_phase_a"] == 3 + buses
    assert k["voltage_violation_bus_steps_phase_b"] == buses
    assert k["voltage_violation_bus_steps_phase_c"] == 6 + buses
    assert k["max_neutral_current_a"] == 10.0
    # with the sag in only 3 of 76 bus-steps (< 5 %) the 95th percentile is below the limit
    extras["vuf_pct"][3:6, 4] = 0.0
    k = unbalance_kpis(extras, LimitsConfig())
    assert k["p95_vuf_pct"] < VUF_LIMIT_PCT < k["max_vuf_pct"]
    assert unbalance_kpis({}, LimitsConfig()) == {}
