"""The anomaly monitor: thresholds against known distributions, detector statistics on
hand-built series, time-aligned estimation against chi-squared quantiles, and alerts that
name a known injected fault on the twin."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom, chi2, norm

from gridsync.grid.estimation import VM, P
from gridsync.safety.alerts import AnomalyAlert, DetectorEvidence, Suspect
from gridsync.safety.config import AnomalyConfig, TailThreshold, load_anomaly_config
from gridsync.safety.detectors import (
    cusum,
    dropout_limits,
    jump_scores,
    poisson_binomial_sf,
    spike_scale,
    sustained_scores,
    tod_block,
)
from gridsync.safety.features import chi2_z


def test_tail_threshold_matches_known_quantiles():
    rng = np.random.default_rng(0)
    x = rng.exponential(1.0, 20_000)
    # enough exceedances: the empirical quantile; beyond: the Pareto fit of the tail
    assert TailThreshold.fit(x, 0.01).value == pytest.approx(-np.log(0.01), rel=0.05)
    far = TailThreshold.fit(x, 1e-5)  # 0.2 expected exceedances in the run
    assert far.value == pytest.approx(-np.log(1e-5), rel=0.1)
    assert far.value >= x.max()
    z = rng.standard_normal(5_000)
    # a light (normal) tail fitted with shape >= 0 errs on the safe, higher side
    assert TailThreshold.fit(z, 1e-4).value >= norm.isf(1e-4) - 0.05
    # a heavy (Pareto) tail: free shape > 0; light_tailed forces the exponential tail
    heavy = rng.pareto(1.0, 400)
    free, light = TailThreshold.fit(heavy, 1e-5), TailThreshold.fit(heavy, 1e-5, light_tailed=True)
    assert free.shape > 0 and light.shape == 0 and light.value < free.value
    # maximum of 100 |N(0,1)| (a clean largest normalised residual): Gumbel domain; from 400
    # samples the exponential extrapolation lands near the true 1e-4 quantile
    lnr = np.abs(rng.standard_normal((400, 100))).max(axis=1)
    true_q = norm.isf((1 - (1 - 1e-4) ** (1 / 100)) / 2)
    assert TailThreshold.fit(lnr, 1e-4, light_tailed=True).value == pytest.approx(true_q, rel=0.15)
    with pytest.raises(ValueError, match="at least 50"):
        TailThreshold.fit(x[:10], 0.01)
    with pytest.raises(ValueError, match="rate = 2"):
        TailThreshold.fit(x, 2)


def test_wilson_hilferty_score_is_standard_normal_on_chi2_quantiles():
    for dof in (40, 85, 300):
        for p in (0.9, 0.99, 0.999):
            assert chi2_z(chi2.ppf(p, dof), dof) == pytest.approx(norm.ppf(p), abs=0.03)


def test_dropout_limits_follow_the_binomial_tail():
    p = np.full(200, 0.03)
    np.testing.assert_allclose(poisson_binomial_sf(p)[:40], binom.sf(np.arange(40) - 1, 200, 0.03))
    count, run = dropout_limits(p, 1e-5, 3)
    assert binom.sf(count - 1, 200, 0.03) <= 1e-5 < binom.sf(count - 2, 200, 0.03)
    # a channel silent for `run` steps: 200 * 0.03**run <= 1e-5 first holds at run = 5
    assert run == 5


def test_jump_spike_and_sustained_scores_on_hand_built_innovations():
    e = np.zeros((20, 3))
    e[8:, 0] = 4.0  # a level shift of 4 at step 8
    e[10, 1] = -6.0  # a one-step spike
    e[4:14, 2] = np.linspace(0.5, 5.0, 10)  # a ramp that never jumps by more than 0.5
    e[14:, 2] = 5.0
    shift, spike = jump_scores(e, np.full(3, 2.0))
    assert shift[8, 0] == pytest.approx(2.0) and np.nanmax(np.delete(shift[:, 0], 8)) == 0
    assert spike[10, 1] == pytest.approx(3.0) and np.nanmax(shift[:, 1]) == 0
    assert np.nanmax(shift[:, 2]) <= 0.25 and np.nanmax(spike[:, 2]) <= 0.25
    sus = sustained_scores(e, np.ones(3), steps=4)
    # four steps all above the ramp's value four steps earlier
    assert sus[13, 2] == pytest.approx(e[10, 2])
    assert sus[10, 1] == 0.0  # one step is not sustained
    c = cusum(np.array([[0.0], [3.0], [3.0], [-1.0], [np.nan]]), drift=1.0)
    np.testing.assert_allclose(c[:, 0], [0.0, 2.0, 4.0, 2.0, 1.0])


def test_spike_scale_learns_each_readings_own_and_its_time_of_day_variability():
    rng = np.random.default_rng(4)
    spd, days = 96, 40
    block = tod_block(np.arange(spd * days) % spd, spd)
    assert block.max() == 11 and np.all(block[:8] == 0)  # 2-hour classes
    evening = (block >= 9) & (block <= 10)  # 18:00-22:00: spikes four times larger
    base = rng.exponential(1.0, (spd * days, 2)) * np.where(evening, 4.0, 1.0)[:, None]
    spikes = base * np.array([0.2, 2.0])  # the second household spikes ten times more
    row, tod = spike_scale(spikes, block)
    assert row[1] / row[0] == pytest.approx(10.0, rel=0.2)
    assert tod[9] / tod[2] == pytest.approx(4.0, rel=0.25)
    # so 3 kW on the quiet household at night is far beyond its own normal, in its evening
    # it is not, and on the busy household never
    z = 3.0 / (row[None, :] * tod[[2, 9]][:, None])
    assert z[0, 0] > 2.5 * z[1, 0] and z[0, 0] > 5 * z[0, 1]


def test_config_is_validated_and_the_bundled_one_loads(tmp_path):
    cfg = load_anomaly_config()
    assert 0 < cfg.false_alarm_budget_per_step <= 1e-3
    bad = tmp_path / "a.toml"
    bad.write_text("false_alarm_budget_per_step = -1\n")
    with pytest.raises(ValueError, match="false_alarm_budget_per_step"):
        load_anomaly_config(bad)
    with pytest.raises(ValueError, match="unknown_key"):
        AnomalyConfig.model_validate({"unknown_key": 1})


def test_alert_dict_carries_evidence_and_suspects():
    alert = AnomalyAlert(
        10,
        11,
        [DetectorEvidence("lnr", 9.5, 5.0)],
        [Suspect(3, "meter:vm_pu@Bus 7", "meter@Bus 7", 9.5, True, {"lnr": 9.5})],
    )
    d = alert.to_dict()
    assert d["source"] == "anomaly" and d["severity"] == "warning"
    assert d["suspects"][0]["measurement"] == "meter:vm_pu@Bus 7"
    assert "lnr 9.5 > 5.0" in d["message"] and "normalised residual 9.5" in d["message"]
    # a critical reading (no redundancy) is said to be found, not identified, by estimation
    critical = Suspect(4, "meter:p_kw@Bus 7", "meter@Bus 7", None, False, {"spike": 8.0})
    d = AnomalyAlert(10, 11, [DetectorEvidence("spike", 8.0, 4.0)], [critical]).to_dict()
    assert "meter:p_kw@Bus 7 (detected, not identifiable by estimation" in d["message"]
    assert d["suspects"][0]["status"].startswith("detected, not identifiable")


# --- on the twin ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_days():
    from gridsync.sim.builder import load_scenario

    return load_scenario(days=2, history_days=7)


@pytest.fixture(scope="module")
def fitted(two_days):
    from gridsync.safety.benchmark import calibrate, make_window

    monitor, bw = make_window(None, two_days, "test")
    calibrate(monitor, [bw])
    return monitor, bw


def test_aligned_snapshots_pass_chi2_at_nominal_rate(fitted):
    monitor, bw = fitted
    plan = bw.tel.plan
    # align: a meter's reading of step t is the one that arrived at t + latency
    meter = int(np.flatnonzero(plan.latency == 1)[0])
    a = plan.align(bw.tel.readings)
    np.testing.assert_array_equal(a[5:50, meter], bw.tel.readings[6:51, meter])
    assert np.isnan(a[-1, meter])
    p = norm.sf(bw.window.feats.chi2_z[bw.steps])
    n = len(p)
    # clean synchronous data: rejections at 5 % are binomial(n, 0.05), within a 1e-4 band
    assert binom.ppf(1e-4, n, 0.05) <= np.sum(p < 0.05) <= binom.isf(1e-4, n, 0.05)


def test_redundancy_separates_critical_meter_powers_from_voltages(fitted):
    monitor, _ = fitted
    plan, red = monitor.plan, monitor.redundancy
    meter = plan.source == "meter"
    # a customer's own P meter is the only witness of its injection: no redundancy
    assert np.nanmax(red[meter & (plan.kind == P)]) < 0.05
    assert np.nanmin(red[meter & (plan.kind == VM)]) > 0.9


def test_monitor_names_an_injected_gross_voltage_error(fitted):
    monitor, bw = fitted
    w = bw.window
    step = int(bw.steps[60])
    clean = monitor.alarms(monitor.scores(w))
    # a one-day calibration sets thresholds at about the largest clean score of that day
    assert sum(int(a[bw.steps].sum()) for a in clean.values()) <= 3
    assert not any(a[step] for a in clean.values())
    plan = bw.tel.plan
    row = int(
        np.flatnonzero((plan.kind == VM) & (plan.source == "meter") & np.isfinite(w.aligned[step]))[
            5
        ]
    )
    a = w.aligned.copy()
    a[step, row] += 0.04
    bad = monitor.refresh(w, a, np.array([step]))
    scores = monitor.scores(bad)
    alarms = monitor.alarms(scores)
    assert alarms["lnr"][step] and alarms["chi2"][step]
    alert = monitor.alert_at(bad, scores, alarms, step)
    first = alert.suspects[0]
    assert first.row == row and first.redundant
    assert first.checks["lnr_identification"] > monitor.thresholds["lnr"]
    assert alert.raised_step == step + 1  # meters report one interval late
    assert alert.to_dict()["suspects"][0]["measurement"] == monitor.labels[row]


def test_live_monitor_raises_the_batch_alert_one_step_after_the_reading_arrives(fitted):
    from gridsync.safety.live import LiveAnomalyMonitor

    monitor, bw = fitted
    tel, plan = bw.tel, bw.tel.plan
    live = LiveAnomalyMonitor(monitor, plan, tel.pseudo_p_kw, tel.pseudo_q_kvar, bw.window.tod)
    ref = int(bw.steps[70])
    raw = tel.readings.copy()
    row = int(
        np.flatnonzero((plan.kind == VM) & (plan.source == "meter") & np.isfinite(raw[ref + 1]))[2]
    )
    raw[ref + 1, row] += 0.04  # the meter's reading of `ref`, which arrives one step later
    alerts = []
    for step in range(ref - 6, ref + 4):
        alerts += live.push(step, raw[step])
    assert [a.step for a in alerts] == [ref]
    alert = alerts[0]
    assert alert.raised_step == ref + 1
    assert alert.suspects[0].row == row and "lnr" in alert.detectors
    d = alert.to_dict()
    assert d["source"] == "anomaly" and monitor.labels[row] in d["message"]
    with pytest.raises(ValueError, match="one per plan row"):
        live.push(ref + 5, raw[ref + 5][:3])


def test_a_gross_error_on_a_critical_meter_power_is_named_by_its_own_history(fitted):
    monitor, bw = fitted
    w, plan = bw.window, bw.tel.plan
    step = int(bw.steps[40])  # 10:00 on the first day
    rows = np.flatnonzero(
        (plan.kind == P) & (plan.source == "meter") & np.isfinite(w.aligned[step])
    )
    row = int(rows[np.argmin(monitor.redundancy[rows])])
    assert monitor.redundancy[row] < 0.05  # critical: the estimator fits it exactly
    a = w.aligned.copy()
    a[step, row] += 20.0  # a 20 kW reading on a household meter, for one interval
    bad = monitor.refresh(w, a, np.array([step]))
    scores = monitor.scores(bad)
    alarms = monitor.alarms(scores)
    assert alarms["spike"][step] and not alarms["lnr"][step]
    alert = monitor.alert_at(bad, scores, alarms, step)
    named = {s.row: s for s in alert.suspects}
    assert row in named and not named[row].redundant and "spike" in named[row].checks
    assert "detected, not identifiable by estimation" in alert.message()
