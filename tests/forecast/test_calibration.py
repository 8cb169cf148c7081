"""Online band calibration and the held-out demand windows."""

from __future__ import annotations

import pandas as pd
import pytest

from gridsync.forecast.calibration import RecentErrors
from gridsync.forecast.datasets import SEASONS, UNSEEN, unseen_window


def test_recent_errors_ratio_is_recent_mean_over_validation_mean():
    t = pd.date_range("2024-01-01", periods=8, freq="D")
    rec = RecentErrors(t[:4], [1.0, 1.0, 2.0, 2.0], fit_end=t[3], days=2.0, lo=0.5, hi=3.0)
    assert rec.reference == 1.5
    assert list(rec.missing(t)) == [4, 5, 6, 7]  # only origins after the fit
    rec.add(t[4:6], [3.0, 3.0])
    # horizon 1 day, now = day 7: origins in (day 4, day 6] count: days 5, 6 -> (3 + 3) / 2
    assert rec.ratio(t[7] + pd.Timedelta(days=0), pd.Timedelta(days=1)) == pytest.approx(2.0)
    # clipped, and 1 when nothing is recent
    assert RecentErrors(t[:2], [1.0, 1.0], t[1], hi=1.5).ratio(t[1], pd.Timedelta(0)) == 1.0


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
