"""Ageing model against NREL BLAST-Lite (independent reference) and closed forms.

``data/blast_reference.json`` is BLAST-Lite 1.1.1's own output on the duty cycles of
``data/duty_cycles.json`` (``scripts/blast_reference.py``; BLAST-Lite pins numpy < 2, so it runs
in its own environment and its trajectories are stored).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from gridsync.storage.ageing import AgeingState, age_profile, age_window, capacity_frac
from gridsync.storage.cells import LFP, NMC, cell_for

DATA = Path(__file__).parent / "data"
DUTY = json.loads((DATA / "duty_cycles.json").read_text())["duty_cycles"]
REF = json.loads((DATA / "blast_reference.json").read_text())
MARKS_D = np.asarray(REF["years_marks"]) * 365.0


def one_year(spec):
    day = np.asarray(spec["soc_day"], dtype=float)
    soc = np.r_[np.tile(day[:-1], 365), day[-1]]
    hours = np.arange(len(soc), dtype=float)
    temp = spec["temp_mean_c"] + spec["temp_amplitude_c"] * np.cos(
        2 * np.pi * (hours / 24.0 - 200.0) / 365.0
    )
    return soc, temp


def trajectories(chem, depth, names=tuple(DUTY)):
    soc, temp = map(np.array, zip(*(one_year(DUTY[n]) for n in names), strict=True))
    _, days, caps = age_profile(cell_for(chem), soc, temp, 1.0, repeats=10, depth=depth)
    return {n: np.interp(MARKS_D, days[i], caps[i]) for i, n in enumerate(names)}


@pytest.mark.parametrize("chem", ["LFP", "NMC"])
def test_within_one_point_of_blast_lite_over_ten_years(chem):
    """Replayed the way BLAST-Lite replays a duty cycle (``replay="blast"``: its segments, each
    anchored at the new battery's profile, the step between segments not aged) and with its
    depth rule (segment range), every cell x duty trajectory is within 1 pp for 10 years.

    Fed BLAST-Lite's own segments, the law alone matched to 0.01 pp on NMC 2 x 90 % DoD a day
    at 35 C (a one-off check); the 7 pp this case used to be off came from the replay, which
    only matters once the faded battery cannot hold the duty's kWh swing (clipped SoC): BLAST-Lite
    skips the step between segments (here a 0.45 SoC move a cycle, 12 % of the throughput)."""
    for name, spec in DUTY.items():
        soc, temp = one_year(spec)
        # 11 repeats: skipped steps leave BLAST-Lite's (and this) clock short of 10 years
        _, days, caps = age_profile(
            cell_for(chem), soc, temp, 1.0, repeats=11, depth="range", replay="blast"
        )
        assert days[0, -1] > MARKS_D[-1]
        mine = np.interp(MARKS_D, days[0], caps[0])
        err_pp = 100 * (mine - np.asarray(REF["trajectories"][chem]["duty_cycles"][name]))
        assert np.abs(err_pp).max() <= 1.0, f"{chem} {name}: {np.abs(err_pp).max():.2f} pp"


def test_blast_replay_takes_one_profile_and_names_the_choices():
    soc = np.tile(np.linspace(0.2, 0.8, 25), (2, 1))
    with pytest.raises(ValueError, match="soc_bol: 2 profiles"):
        age_profile(NMC, soc, 25.0, 1.0, replay="blast")
    with pytest.raises(ValueError, match="replay: 'x'.*'continuous' or 'blast'"):
        age_profile(NMC, soc, 25.0, 1.0, replay="x")


def test_rainflow_depths_stay_close_to_blast_lite_on_one_cycle_a_day():
    """With rainflow depths (the twin's default) one-cycle-a-day duties still match BLAST-Lite
    within 1 pp; two unequal cycles a day age less than BLAST-Lite's segment-range rule says."""
    mine = trajectories(
        "NMC",
        "rainflow",
        ("home_daily_80", "pv_shallow_seasonal", "calendar_full", "two_cycles_warm"),
    )
    ref = REF["trajectories"]["NMC"]["duty_cycles"]
    for name in ("home_daily_80", "pv_shallow_seasonal", "calendar_full"):
        assert 100 * np.abs(mine[name] - np.asarray(ref[name])).max() <= 1.0
    assert mine["two_cycles_warm"][-1] > ref["two_cycles_warm"][-1]


def test_constant_calendar_stress_follows_the_closed_form():
    soc = np.full((1, 24 * 365 + 1), 0.6)
    state = age_window(AgeingState.fresh(1), LFP, soc, 25.0, 1.0)
    k = LFP.calendar_rate(np.array(298.15), np.array(0.6))
    assert capacity_frac(state, LFP)[0] == pytest.approx(1 - k * 365.0**LFP.cal_exp, rel=1e-9)


def test_shallow_cycles_age_nmc_less_than_deep_ones_at_equal_throughput():
    day_deep = np.r_[np.linspace(0.9, 0.1, 13), np.linspace(0.1, 0.9, 13)[1:]]
    day_shallow = 0.5 + (np.r_[np.linspace(0.4, -0.4, 7), np.linspace(-0.4, 0.4, 7)[1:]] * 0.5)
    day_shallow = np.r_[day_shallow, day_shallow[1:]]
    soc = np.array([np.r_[np.tile(d[:-1], 100), d[-1]] for d in (day_deep, day_shallow)])
    thr = np.abs(np.diff(soc, axis=1)).sum(axis=1)
    assert thr[0] == pytest.approx(thr[1])
    state = age_window(AgeingState.fresh(2), NMC, soc, 25.0, 1.0)
    assert state.q_cyc[1] < state.q_cyc[0]


def test_unknown_chemistry_names_the_choices():
    with pytest.raises(ValueError, match="chemistry: 'LTO'.*LFP"):
        cell_for("LTO")


def test_power_law_step_without_stress_keeps_the_fade_it_had():
    from gridsync.storage.ageing import _power_law_step

    y0 = np.array([0.02, 0.02, 0.0, 0.01])
    k = np.array([0.0, 1e-200, 0.0, 0.001])
    y = _power_law_step(y0, np.full(4, 5.0), k, 0.5)
    # no stress this segment: nothing added (the 7-day run used to overflow to NaN here)
    np.testing.assert_array_equal(y[:3], y0[:3])
    # with stress: y = k (x_eq + dx)^p with x_eq = (y0 / k)^(1/p) = 100
    assert y[3] == pytest.approx(0.001 * 105.0**0.5)


def test_a_day_without_cycles_keeps_the_cycling_loss():
    """Cycle one day, rest the next: the rest day adds calendar loss only (its rainflow finds
    no cycle, so the cycling coefficient is 0 and must leave the state alone)."""
    day_cycle = np.r_[np.linspace(0.9, 0.1, 13), np.linspace(0.1, 0.9, 13)[1:]]
    soc = np.r_[day_cycle, np.full(24, 0.9)][None, :]
    state = age_window(AgeingState.fresh(1), NMC, soc[:, :25], 25.0, 1.0)
    rested = age_window(state, NMC, soc[:, 24:], 25.0, 1.0)
    assert rested.q_cyc[0] == state.q_cyc[0] > 0
    assert np.isfinite(capacity_frac(rested, NMC)).all()
    assert rested.q_cal[0] > state.q_cal[0]
