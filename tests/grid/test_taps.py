"""The feeder transformer's OLTC against pandapower's DiscreteTapControl on the same network."""

import copy
import warnings

import numpy as np
import pytest

from gridsync.grid.taps import TapModels
from gridsync.model.tap_changer import OLTCConfig, TapChanger


@pytest.fixture(scope="module")
def midday(scenario_1day):
    s = scenario_1day
    step = s.start_step + int(np.flatnonzero(s.index[s.start_step :].hour == 13)[0])
    pv = np.bincount(s.fleet.pv.bus, weights=s.pv_available_kw(step), minlength=s.feeder.n_bus)
    return s.feeder, s.base_load_kw[step] - pv, s.base_load_kvar[step]


@pytest.mark.parametrize("band", [(0.98, 1.01), (0.96, 0.99), (1.03, 1.06)])
def test_oltc_steady_state_matches_pandapower_discrete_tap_control(midday, band):
    import pandapower as pp
    from pandapower.control import DiscreteTapControl

    feeder, p_kw, q_kvar = midday
    cfg = OLTCConfig(enabled=True, vm_lower_pu=band[0], vm_upper_pu=band[1], time_delay_s=1.0)
    taps = TapModels(feeder, cfg)
    changer = taps.changer(cfg, 900.0)

    def at(tap):
        res, _ = taps.model(tap).solve(p_kw, q_kvar)
        return res, float(res.vm_pu[taps.lv_pos])

    ours = changer.step(at)

    net = copy.deepcopy(feeder.net)
    net.load[["p_mw", "q_mvar"]] = 0.0
    net.sgen[["p_mw", "q_mvar"]] = 0.0
    for pos in range(feeder.n_bus):
        pp.create_load(net, int(feeder.bus_ids[pos]), p_kw[pos] / 1e3, q_kvar[pos] / 1e3)
    net.trafo["tap_changer_type"] = "Ratio"
    DiscreteTapControl(net, taps.trafo, band[0], band[1], side="lv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, run_control=True, numba=False, tolerance_mva=1e-10)
    assert changer.tap_pos == int(net.trafo.tap_pos.loc[taps.trafo])
    assert changer.tap_pos != 0  # the band forced at least one operation
    ref_vm = net.res_bus.vm_pu.loc[feeder.bus_ids].to_numpy()
    np.testing.assert_allclose(ours.vm_pu, ref_vm, atol=1e-6)
    assert band[0] <= ours.vm_pu[taps.lv_pos] <= band[1]


def test_time_delay_longer_than_a_step_waits_for_consecutive_out_of_band_steps():
    cfg = OLTCConfig(enabled=True, vm_lower_pu=0.97, vm_upper_pu=1.01, time_delay_s=1800.0)
    ch = TapChanger(cfg, 0, -2, 2, raise_lowers_lv=True, resolution_s=900.0)

    def high(tap):  # a voltage that falls 0.025 p.u. per tap position
        return None, 1.04 - 0.025 * tap

    ch.step(high)
    assert ch.tap_pos == 0  # 900 s out of band < 1800 s delay
    ch.step(high)
    assert ch.tap_pos == 1 and ch.operations == 1
    ch.step(high)  # 1.015 still high: the delay starts over
    assert ch.tap_pos == 1
    ch.step(high)
    assert ch.tap_pos == 2
    for _ in range(4):
        ch.step(high)
    assert ch.tap_pos == 2 and ch.operations == 2  # in band at 0.99, and at the range end anyway


def test_band_narrower_than_a_tap_step_is_refused(midday):
    with pytest.raises(ValueError, match="hunt"):
        TapModels(midday[0], OLTCConfig(enabled=True, vm_lower_pu=0.99, vm_upper_pu=1.01))
