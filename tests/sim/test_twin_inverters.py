"""PV inverters on Volt-VAR inside the twin's step, on the summer high-PV feeder at midday."""

import numpy as np
import pytest

from gridsync.model.inverter import volt_var_frac
from gridsync.sim.builder import load_scenario
from gridsync.sim.registry import make_controller
from gridsync.sim.twin import SteppedTwin


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("summer-high-pv", days=1, history_days=7)


def _run(scenario, name, n_steps=3):
    ctrl = make_controller(name)
    ctrl.reset(scenario)
    noon = scenario.start_step + int(
        np.flatnonzero(scenario.index[scenario.start_step :].hour == 12)[0]
    )
    twin = SteppedTwin(scenario, step=noon)
    recs = []
    for _ in range(n_steps):
        obs = twin.observe()
        recs.append(twin.advance(obs, ctrl.act(obs)))
    return recs


def test_volt_var_in_the_twin_sits_on_the_curve_and_lowers_the_peak_voltage(scenario):
    base = _run(scenario, "uncontrolled")
    vv = _run(scenario, "volt-var")
    pv = scenario.fleet.pv
    for b, r in zip(base, vv, strict=True):
        assert not r.pf_failed
        q_curve = volt_var_frac(r.vm_pu[pv.bus], "B") * pv.peak_kw  # kva_per_kwp = 1
        np.testing.assert_allclose(r.pv_kvar, q_curve, atol=0.02)
        assert np.all(b.pv_kvar == 0.0)
        assert r.vm_pu.max() < b.vm_pu.max()
        # the kVA circle: P and Q of each inverter together within its rating
        assert np.all(np.hypot(r.pv_kw, r.pv_kvar) <= pv.peak_kw + 1e-9)
        # the twin's bus injections carry the inverters' Q (load convention)
        q_pv_bus = np.bincount(pv.bus, weights=r.pv_kvar, minlength=len(r.vm_pu))
        np.testing.assert_allclose(r.q_bus_kvar, scenario.base_load_kvar[r.step] - q_pv_bus)
    assert any(r.vm_pu[pv.bus].max() > 1.02 for r in vv)  # the curve's slope was exercised


def test_volt_var_refuses_the_three_phase_twin():
    s3 = load_scenario("summer-high-pv", days=1, history_days=7, phases=3)
    with pytest.raises(ValueError, match="three-phase twin does not model inverter reactive"):
        make_controller("volt-var").reset(s3)


def test_oltc_in_the_twin_counts_operations_and_holds_the_band(scenario):
    from gridsync.model.tap_changer import OLTCConfig
    from gridsync.sim.builder import build_scenario

    cfg = scenario.config
    oltc = OLTCConfig(enabled=True, vm_lower_pu=0.97, vm_upper_pu=1.01, time_delay_s=60.0)
    grid = cfg.grid.model_copy(update={"oltc": oltc})
    s = build_scenario(cfg.model_copy(update={"grid": grid}))
    recs = _run(s, "uncontrolled", n_steps=2)
    lv = SteppedTwin(s)._taps.lv_pos
    assert recs[0].tap_operations >= 1 and recs[0].tap_pos == recs[0].tap_operations
    assert all(0.97 <= r.vm_pu[lv] <= 1.01 for r in recs)
    assert recs[1].tap_operations == 0  # in band after the first step's operation
