"""Bad-input handling of user CSVs: each defect gets a clear error or a recorded repair."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridsync.forecast.data import SeriesError, clean_series, load_series_csv


def _csv(tmp_path, times, values, name="load.csv"):
    path = tmp_path / name
    pd.DataFrame({"ts": times, "kw": values}).to_csv(path, index=False)
    return path


def _hours(n, start="2024-01-01"):
    return [str(t) for t in pd.date_range(start, periods=n, freq="h")]


def test_clean_file_round_trips(tmp_path):
    path = _csv(tmp_path, _hours(48), np.arange(48.0))
    s = load_series_csv(path, "ts", "kw")
    assert s.repairs == []
    assert s.freq == pd.Timedelta("1h")
    np.testing.assert_array_equal(s.values.to_numpy(), np.arange(48.0))


def test_missing_column_names_available_ones(tmp_path):
    path = _csv(tmp_path, _hours(5), range(5))
    with pytest.raises(SeriesError, match=r"'load' not in load.csv; available: \['ts', 'kw'\]"):
        load_series_csv(path, "ts", "load")


def test_missing_timestamp_names_line(tmp_path):
    times = _hours(6)
    times[3] = ""
    with pytest.raises(SeriesError, match=r"missing timestamp.*line\(s\) 5"):
        load_series_csv(_csv(tmp_path, times, range(6)), "ts", "kw")


def test_unparseable_timestamp(tmp_path):
    times = _hours(6)
    times[2] = "yesterday noon"
    with pytest.raises(SeriesError, match="cannot parse timestamp"):
        load_series_csv(_csv(tmp_path, times, range(6)), "ts", "kw")


def test_non_numeric_value_names_value_and_line(tmp_path):
    values = [str(v) for v in range(6)]
    values[4] = "n/a kW"
    with pytest.raises(SeriesError, match=r"non-numeric value 'n/a kW' at CSV line\(s\) 6"):
        load_series_csv(_csv(tmp_path, _hours(6), values), "ts", "kw")


def test_duplicates_are_an_error_with_dst_hint(tmp_path):
    times = _hours(6)
    times[3] = times[2]
    with pytest.raises(SeriesError, match="duplicate timestamp.*DST fall-back"):
        load_series_csv(_csv(tmp_path, times, range(6)), "ts", "kw")


def test_short_gap_is_interpolated_and_reported():
    times = pd.Series(_hours(10)).drop(index=[4, 5])
    values = pd.Series(np.arange(10.0)).drop(index=[4, 5])
    s = clean_series(times, values, max_gap="2h")
    np.testing.assert_allclose(s.values.to_numpy(), np.arange(10.0))
    assert any("2 missing reading(s) in 1 gap(s)" in r for r in s.repairs)


def test_empty_cell_counts_as_gap():
    values = pd.Series(["1", "2", "", "4", "5"])
    s = clean_series(pd.Series(_hours(5)), values)
    np.testing.assert_allclose(s.values.to_numpy(), [1, 2, 3, 4, 5])


def test_long_gap_is_an_error():
    times = pd.Series(_hours(20)).drop(index=range(5, 10))
    with pytest.raises(SeriesError, match=r"gap of 0 days 05:00:00 .* exceeds max_gap"):
        clean_series(times, pd.Series(np.ones(20)).drop(index=range(5, 10)), max_gap="2h")


def test_off_grid_timestamp():
    times = _hours(8)
    times[5] = "2024-01-01 05:17:00"
    with pytest.raises(SeriesError, match="off the 0 days 01:00:00 grid"):
        clean_series(pd.Series(times), pd.Series(np.ones(8)))


def test_dst_fall_back_repaired_with_tz():
    # Europe/Berlin 2023-10-29: local 02:00-02:59 occurs twice.
    utc = pd.date_range("2023-10-28 22:00", periods=12, freq="30min", tz="UTC")
    local = utc.tz_convert("Europe/Berlin")
    naive = [t.strftime("%Y-%m-%d %H:%M") for t in local]
    assert len(set(naive)) < len(naive)  # the wall clock repeats
    with pytest.raises(SeriesError, match="DST"):
        clean_series(pd.Series(naive), pd.Series(np.arange(len(naive), dtype=float)))
    s = clean_series(
        pd.Series(naive), pd.Series(np.arange(len(naive), dtype=float)), tz="Europe/Berlin"
    )
    assert s.values.index.is_unique and len(s.values) == len(naive)
    assert (np.diff(s.values.index.asi8) == 30 * 60 * 10**9).all()


def test_utc_offsets_converted_so_dst_is_harmless():
    idx = pd.date_range("2023-03-26 00:00", periods=8, freq="h", tz="Europe/Berlin")
    times = pd.Series([t.isoformat() for t in idx])
    s = clean_series(times, pd.Series(np.arange(8.0)))
    assert str(s.values.index.tz) == "UTC" and len(s.values) == 8
    assert any("UTC offsets" in r for r in s.repairs)


def test_average_onto_coarser_freq():
    times = pd.Series([str(t) for t in pd.date_range("2024-01-01", periods=8, freq="15min")])
    s = clean_series(times, pd.Series(np.arange(8.0)), freq="30min")
    np.testing.assert_allclose(s.values.to_numpy(), [0.5, 2.5, 4.5, 6.5])
    with pytest.raises(SeriesError, match="finer than the data"):
        clean_series(times, pd.Series(np.arange(8.0)), freq="5min")


def test_too_short_for_the_run():
    with pytest.raises(SeriesError, match="need at least 3"):
        clean_series(pd.Series(_hours(2)), pd.Series([1.0, 2.0]))
    with pytest.raises(SeriesError, match="at least 30 days"):
        clean_series(pd.Series(_hours(48)), pd.Series(np.ones(48)), min_days=30)


def test_bundled_taylor_is_twelve_weeks_of_half_hours_from_a_monday():
    from gridsync.forecast.datasets import taylor_halfhourly

    y = taylor_halfhourly()
    assert len(y) == 4032 and y.index.freq == "30min"
    assert y.index[0] == pd.Timestamp("2000-06-05 00:00") and y.index[0].dayofweek == 0
    # values as printed in pmdarima's docstring and Taylor (2003): MW of England & Wales
    np.testing.assert_array_equal(y.to_numpy()[:4], [22262, 21756, 22247, 22759])
    assert y.min() > 18_000 and y.max() < 40_000
    # night trough, day plateau: 04:00 is below 12:00 on every day
    day = y.to_numpy().reshape(-1, 48)
    assert (day[:, 8] < day[:, 24]).all()


def _day_first(times: pd.DatetimeIndex) -> list[str]:
    return [t.strftime("%d/%m/%Y %H:%M") for t in times]


def test_day_first_dates_are_read_day_first_when_a_day_above_12_decides(tmp_path):
    # 1 Jan .. 20 Jan hourly written DD/MM: month-first parsing of 02/01 would give 1 Feb
    truth = pd.date_range("2024-01-01", periods=20 * 24, freq="h")
    s = load_series_csv(_csv(tmp_path, _day_first(truth), np.arange(480.0)), "ts", "kw")
    pd.testing.assert_index_equal(s.values.index, truth, check_names=False)
    assert any("day-first" in r for r in s.repairs)


def test_ambiguous_dates_stop_and_dayfirst_or_a_format_resolves_them(tmp_path):
    truth = pd.date_range("2024-01-01", periods=10 * 24, freq="h")  # days 1..10: all <= 12
    path = _csv(tmp_path, _day_first(truth), np.arange(240.0))
    with pytest.raises(SeriesError, match="ambiguous.*--dayfirst"):
        load_series_csv(path, "ts", "kw")
    for kwargs in ({"dayfirst": True}, {"date_format": "%d/%m/%Y %H:%M"}):
        s = load_series_csv(path, "ts", "kw", **kwargs)
        pd.testing.assert_index_equal(s.values.index, truth, check_names=False)


def test_month_first_flag_contradicted_by_the_data_names_the_line(tmp_path):
    truth = pd.date_range("2024-01-12", periods=48, freq="h")  # 13/01 is line 2 + 24
    path = _csv(tmp_path, _day_first(truth), np.arange(48.0))
    with pytest.raises(SeriesError, match=r"--monthfirst contradicts CSV line 26 \('13/01/2024"):
        load_series_csv(path, "ts", "kw", dayfirst=False)


def test_date_format_mismatch_names_the_line(tmp_path):
    times = _hours(6)
    with pytest.raises(SeriesError, match=r"line\(s\) 2.*does not match --date-format"):
        load_series_csv(_csv(tmp_path, times, range(6)), "ts", "kw", date_format="%d/%m/%Y")
