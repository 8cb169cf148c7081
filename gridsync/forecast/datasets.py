"""Real demand data shipped with GridSync for tests, benchmarks and the CLI demo.

Both files live in ``gridsync/data/demand`` (origin and licence in its ``SOURCE.md``).

``vic_elec_hourly_2012.csv.gz``: hourly electricity demand of the state of Victoria,
Australia, 2012-01-01 to 2012-05-29 (3,600 hours, values as in the source, MW scale). Source:
the Australian Energy Market Operator's operational demand as published in the ``vic_elec``
data set of the R package tsibbledata, extracted from the copy that statsmodels
(BSD-3-Clause) ships as ``statsmodels/tsa/stl/tests/results/mstl_elec_vic.csv``. Timestamps are
naive, regular and free of DST shifts, as in that file. No temperature is included, so
forecasts use calendar, holidays and lags only.

``taylor_ew_halfhourly_2000.csv.gz``: half-hourly electricity demand of England and Wales (MW),
Monday 2000-06-05 00:00 to Sunday 2000-08-27 23:30 (4,032 half-hours, 12 weeks), from J.W.
Taylor (2003), "Short-term electricity demand forecasting using double seasonal exponential
smoothing", J. Oper. Res. Soc. 54, 799-805. Extracted by ``scripts/extract_taylor.py`` from the
copy pmdarima 2.1.1 (MIT licence, PyPI) ships in ``pmdarima/datasets/taylor.py`` (also R
``forecast::taylor``). Timestamps are local clock time (British Summer Time throughout, no DST
change in the window); pmdarima is not a runtime dependency.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

DEMAND_DIR = Path(__file__).resolve().parents[1] / "data" / "demand"
VIC_ELEC_PATH = DEMAND_DIR / "vic_elec_hourly_2012.csv.gz"
TAYLOR_PATH = DEMAND_DIR / "taylor_ew_halfhourly_2000.csv.gz"

# name in ``--csv bundled:NAME`` -> (path, time column, value column)
BUNDLED = {
    "vic": (VIC_ELEC_PATH, "time", "demand"),
    "taylor": (TAYLOR_PATH, "time", "demand_mw"),
}


def bundled(name: str) -> pd.Series:
    """A bundled series by its ``bundled:`` name ('vic' or 'taylor') as a regular series."""
    from gridsync.forecast.data import load_series_csv

    if name not in BUNDLED:
        raise ValueError(f"bundled data set {name!r} unknown; choose from {sorted(BUNDLED)}")
    path, time_col, value_col = BUNDLED[name]
    return load_series_csv(path, time_col, value_col).values


def vic_elec_hourly() -> pd.Series:
    """The bundled Victoria hourly demand (see module doc)."""
    return bundled("vic")


def taylor_halfhourly() -> pd.Series:
    """The bundled England & Wales half-hourly demand, June-August 2000 (see module doc)."""
    return bundled("taylor")


# held-out series (``scripts/extract_unseen_demand.py``): name -> (local time zone, holidays)
UNSEEN = {
    "gb": ("Europe/London", ("GB", "ENG")),
    "pjme": ("America/New_York", ("US", "PA")),
    "fr": ("Europe/Paris", ("FR", None)),
}
SEASONS = ("winter", "summer")


def unseen_window(name: str, season: str) -> pd.Series:
    """One 84-day window (56 training + 28 test days) of a held-out demand series, in its
    local time zone: ``name`` in ``UNSEEN`` (GB half-hourly national demand 2022, PJM East
    hourly 2017, France hourly 2019), ``season`` 'winter' or 'summer'."""
    from gridsync.forecast.data import clean_series

    if name not in UNSEEN or season not in SEASONS:
        raise ValueError(f"unseen window {name!r}/{season!r}; choose {sorted(UNSEEN)} x {SEASONS}")
    frame = pd.read_csv(DEMAND_DIR / f"unseen_{name}.csv.gz", dtype=str)
    t = pd.to_datetime(frame["time"], utc=True)
    gap = int((t.diff() > pd.Timedelta(hours=1)).to_numpy().argmax())  # winter | summer
    part = slice(0, gap) if season == "winter" else slice(gap, None)
    return clean_series(
        frame["time"].iloc[part], frame["demand_mw"].iloc[part], tz=UNSEEN[name][0]
    ).values
