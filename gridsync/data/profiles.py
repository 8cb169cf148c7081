"""Load profiles: per-unit SimBench profiles (p and q multipliers) on a time index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def read_load_profiles(path: Path) -> pd.DataFrame:
    """Read a profile CSV with a ``time`` column and ``<profile>_pload``/``_qload`` columns."""
    if not path.exists():
        msg = f"load profile file {str(path)!r} does not exist"
        raise FileNotFoundError(msg)
    df = pd.read_csv(path)
    if "time" not in df:
        msg = f"{path.name}: expected a 'time' column, found {list(df.columns)[:5]}"
        raise ValueError(msg)
    df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("time")), name="time")
    if df.index.has_duplicates or not df.index.is_monotonic_increasing:
        msg = f"{path.name}: time stamps must be unique and increasing"
        raise ValueError(msg)
    return df.astype(float)


REPEAT_DAYS = 364  # 52 weeks: a repeated profile year keeps its weekdays


def profiles_on_index(profiles: pd.DataFrame, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Profiles on ``index``: step-hold for coarser steps, linear interpolation for finer ones.

    Past the profiles' end the profile year repeats, shifted back by whole 52-week periods so
    that a Monday reads a Monday (a year-long window from mid-2016 reads January 2016 for
    January 2017). Before their start there is nothing to repeat: a ``ValueError`` names the
    available range.
    """
    step = profiles.index[1] - profiles.index[0]
    first, last = profiles.index[0], profiles.index[-1] + step
    if index[0] < first:
        msg = (
            f"time window {index[0]} .. {index[-1]} (including history and look-ahead) starts "
            f"before the load profiles, which cover {first} .. {last}: move time.start or "
            "shorten time.history_days"
        )
        raise ValueError(msg)
    # Profile values are averages over [t, t + step); sample them at interval midpoints.
    mid = profiles.index + step / 2
    x = (mid - first).total_seconds().to_numpy()
    xi = (index - first).total_seconds().to_numpy()
    if len(index) > 1:
        xi = xi + (index[1] - index[0]).total_seconds() / 2
    period_s = REPEAT_DAYS * 86400.0
    span_s = (last - first).total_seconds()
    if span_s >= period_s:
        beyond = xi >= span_s
        xi = np.where(beyond, xi - np.ceil((xi - span_s) / period_s + 1e-12) * period_s, xi)
    elif xi[-1] >= span_s:
        msg = (
            f"time window ends {index[-1]}, after the load profiles ({first} .. {last}); they "
            f"cover less than {REPEAT_DAYS} days, so they cannot repeat as a year"
        )
        raise ValueError(msg)
    vals = profiles.to_numpy()
    out = np.empty((len(index), vals.shape[1]))
    for j in range(vals.shape[1]):
        out[:, j] = np.interp(xi, x, vals[:, j])
    return pd.DataFrame(out, index=index, columns=profiles.columns)
