"""Online band calibration and the held-out demand windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridsync.forecast.calibration import RollingConformal
from gridsync.forecast.datasets import SEASONS, UNSEEN, unseen_window


def test_multiplier_is_the_rolling_quantile_of_recent_scores():
    t = pd.date_range("2024-01-01", periods=12, freq="D")
    scores = np.ones((4, 3, 1))
    cal = RollingConformal(t[:4], scores, fit_end=t[3], coverage=0.5, days=2.0, smooth=0)
    assert list(cal.missing(t)) == list(range(4, 12))  # only origins after the fit
    cal.add(t[5:7], np.stack([np.full((3, 1), 3.0), np.full((3, 1), 5.0)]))
    # horizon 1 day, issued at day 7: origins in (day 4, day 6] count: scores 3 and 5
    m = cal.multiplier(t[7], pd.Timedelta(days=1))
    assert m == pytest.approx([4.0, 4.0, 4.0])  # their median (coverage 0.5)


def test_adaptive_level_follows_the_misses_of_issued_bands():
    """Bands that always miss raise the level (wider band next time), bands that never miss
    lower it; each observed band moves alpha by gamma * (target - miss share)."""
    idx = pd.date_range("2024-01-01", periods=10, freq="h")
    hist = pd.DataFrame({"y": np.arange(10.0)}, index=idx)
    cal = RollingConformal(idx[:1], np.ones((1, 2, 1)), idx[0], coverage=0.8, gamma=0.1)
    cal.issued(idx[2], np.full((2, 1), 100.0), np.full((2, 1), 200.0))  # misses 3 and 4
    cal.issued(idx[5], np.full((2, 1), 0.0), np.full((2, 1), 9.0))  # covers 6 and 7
    cal.issued(idx[8], np.full((2, 1), 100.0), np.full((2, 1), 200.0))  # horizon not observed
    cal.observe(hist)
    assert cal.alpha == pytest.approx(0.2 + 0.1 * (0.2 - 1.0) + 0.1 * (0.2 - 0.0))
    cal.observe(hist)  # each band counts once
    assert cal.alpha == pytest.approx(0.2 + 0.1 * (0.2 - 1.0) + 0.1 * (0.2 - 0.0))


def test_band_adapts_when_errors_shrink_after_the_fit():
    """Validation errors 3x the later ones: the rolling quantile narrows the band to the new
    regime, and the coverage of the issued bands ends near the nominal 80 %."""
    rng = np.random.default_rng(0)
    idx = pd.date_range("2024-01-01", periods=200, freq="D")
    valid = np.abs(rng.normal(0, 3.0, (40, 1, 1)))
    cal = RollingConformal(idx[:40], valid, idx[39], coverage=0.8, days=20.0, smooth=0)
    y = rng.normal(0, 1.0, 200)
    hist = pd.DataFrame({"y": y}, index=idx)
    inside, mult = [], []
    for o in range(40, 199):
        cal.observe(hist.iloc[: o + 1])
        half = cal.multiplier(idx[o], pd.Timedelta(days=1))[0]
        cal.issued(idx[o], np.array([[-half]]), np.array([[half]]))
        cal.add(idx[o : o + 1], np.abs(y[o + 1 : o + 2]).reshape(1, 1, 1))
        inside.append(abs(y[o + 1]) <= half)
        mult.append(half)
    assert 0.72 <= np.mean(inside[60:]) <= 0.88
    # the new regime's 80th percentile of |N(0, 1)| (1.28), not the validation one (3.8)
    assert np.median(mult[60:]) == pytest.approx(1.28, abs=0.3)


@pytest.mark.parametrize("name", sorted(UNSEEN))
def test_unseen_windows_are_84_regular_days_in_local_time(name):
    for season in SEASONS:
        y = unseen_window(name, season)
        step = y.index[1] - y.index[0]
        assert len(y) * step == pd.Timedelta(days=84)
        assert str(y.index.tz) == UNSEEN[name][0]
        assert y.min() > 0.3 * y.mean()  # national demand: no zeros or unit slips


def test_symmetric_offsets_are_plus_minus_the_80th_percentile_of_abs_errors():
    from gridsync.forecast.hybrid import HybridForecaster

    model = HybridForecaster()  # quantiles 0.1, 0.5, 0.9
    z = pd.Series([-3.0, -1.0, 1.0, 2.0, 4.0]).to_numpy()[:, None]
    # |z| = 1, 1, 2, 3, 4: the 80th percentile (linear) sits at position 3.2 -> 3.2
    out = model._error_quantiles(z, axis=0)[:, 0]
    assert out.tolist() == pytest.approx([-3.2, 0.0, 3.2])
