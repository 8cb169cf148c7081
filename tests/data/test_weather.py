"""TMY weather on any calendar: every step gets a value, leap and non-leap years alike."""

import numpy as np
import pandas as pd
import pytest

from gridsync.data.weather import read_weather, resolve_tmy


@pytest.mark.parametrize("tmy", ["pvlib:723170TYA.CSV", "pvlib:703165TY.csv"])
def test_every_step_of_a_leap_and_a_common_year_has_weather(tmy):
    index = pd.date_range("2016-01-01", "2018-01-01", freq="15min", inclusive="left")
    frame = read_weather(tmy, index).frame
    assert not frame.isna().any().any()


def test_feb_28_last_hour_reads_the_tmy_hour_ending_at_midnight():
    from pvlib.iotools import read_tmy3

    tmy, _ = read_tmy3(str(resolve_tmy("pvlib:723170TYA.CSV")), map_variables=True)
    local = tmy.index.tz_localize(None)
    # The hour ending Feb 28 24:00 (pvlib stamps it Mar 1 00:00) is centred on Feb 28 23:30.
    hour_end = tmy.temp_air[(local.month == 3) & (local.day == 1) & (local.hour == 0)].iloc[0]
    index = pd.DatetimeIndex(["2017-02-28 23:00", "2017-02-28 23:30"])
    frame = read_weather("pvlib:723170TYA.CSV", index).frame
    # With 30-min steps the 23:00 step is centred on 23:15, between 22:30 and 23:30 values.
    prev = tmy.temp_air[(local.month == 2) & (local.day == 28) & (local.hour == 23)].iloc[0]
    lo, hi = sorted([prev, hour_end])
    assert lo - 1e-9 <= frame.temp_air_c.iloc[0] <= hi + 1e-9
    assert np.isfinite(frame.temp_air_c.iloc[1])
