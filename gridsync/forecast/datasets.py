"""Real demand data shipped with GridSync for tests, benchmarks and the CLI demo.

``vic_elec_hourly_2012.csv.gz`` (in ``gridsync/data/demand``): hourly electricity demand of
the state of Victoria, Australia, 2012-01-01 to 2012-05-29 (3,600 hours, values as in the
source, MW scale). Source: the Australian Energy Market Operator's operational demand as
published in the ``vic_elec`` data set of the R package tsibbledata, extracted from the copy
that statsmodels (BSD-3-Clause) ships as ``statsmodels/tsa/stl/tests/results/mstl_elec_vic.csv``.
Timestamps are naive, regular and free of DST shifts, as in that file. No temperature is
included, so forecasts use calendar, holidays and lags only.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

VIC_ELEC_PATH = (
    Path(__file__).resolve().parents[1] / "data" / "demand" / "vic_elec_hourly_2012.csv.gz"
)


def vic_elec_hourly() -> pd.Series:
    """The bundled Victoria hourly demand as a regular series (see module doc)."""
    from gridsync.forecast.data import load_series_csv

    return load_series_csv(VIC_ELEC_PATH, "time", "demand").values
