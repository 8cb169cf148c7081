"""Extract the held-out demand windows of ``bench/bench_forecast_unseen.py`` (run once).

Three national demand series GridSync's models were never developed on, one winter and one
summer window each (56 training days + 28 test days, Monday 00:00 starts), written to
``gridsync/data/demand/unseen_<series>.csv.gz`` with columns ``time`` (hour/half-hour
beginning) and ``demand_mw``:

- ``gb``: NESO (National Grid ESO) historic demand data 2022, national demand ``ND``
  half-hourly. Settlement period p of date d starts at local (Europe/London) midnight of d
  plus (p - 1) x 30 min, so days have 46/50 periods at clock changes; times are written in
  UTC. Source CSV: github.com/affaniqbal/uk-energy-grid-data ``demanddata.csv`` (commit
  fb40efa195c7ced3927da173cb938883b644c984).
- ``pjme``: PJM East hourly load (MW), the widely mirrored ``PJME_hourly.csv``; its copy at
  github.com/KaniamLaes/EnergyConsumption (commit 4f56ee88bb6b798c4e09f60a8cda881a88b23ece)
  writes dates day-first (``31-12-2002 01:00``). Stamps are hour-ending local clock time
  (the first value of a day is at 01:00, the last at 00:00 of the next): shifted back one
  hour to hour-beginning and localised to America/New_York (the repeated autumn hour of
  the source is averaged, the skipped spring hour interpolated); times written in UTC.
- ``fr``: France load (ENTSO-E transparency, via Open Power System Data
  ``time_series_60min_singleindex_filtered.csv``, column ``FR_load_actual_entsoe_transparency``,
  utc_timestamp = hour beginning) from github.com/SpicyTaco17/Solar-Energy-Forecasting (commit
  a47f3e132d72a8e4314a7813ca133f98f224389d).

Usage: python scripts/extract_unseen_demand.py GB_CSV PJME_CSV OPSD_FR_CSV
"""

import sys
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "gridsync" / "data" / "demand"
# (winter start, summer start): 84 days each, chosen by season before any model was run
WINDOWS = {
    "gb": ("2022-01-03", "2022-06-06"),
    "pjme": ("2017-01-02", "2017-06-05"),
    "fr": ("2019-01-07", "2019-06-03"),
}


def gb(path: str) -> pd.Series:
    raw = pd.read_csv(path, usecols=["SETTLEMENT_DATE", "SETTLEMENT_PERIOD", "ND"])
    midnight = pd.DatetimeIndex(pd.to_datetime(raw["SETTLEMENT_DATE"])).tz_localize("Europe/London")
    start = midnight.tz_convert("UTC") + pd.to_timedelta(
        (raw["SETTLEMENT_PERIOD"].to_numpy() - 1) * 30, unit="min"
    )
    return pd.Series(raw["ND"].to_numpy(float), index=start).sort_index()


def pjme(path: str) -> pd.Series:
    raw = pd.read_csv(path)
    ending = pd.to_datetime(raw["Datetime"], format="%d-%m-%Y %H:%M")
    s = pd.Series(raw["PJME_MW"].to_numpy(float), index=ending - pd.Timedelta(hours=1))
    s = s.groupby(level=0).mean().sort_index()  # the repeated autumn hour: averaged
    full = pd.date_range(s.index[0], s.index[-1], freq="h")
    s = s.reindex(full).interpolate()  # the skipped spring hour (and rare gaps)
    local = s.index.tz_localize("America/New_York", ambiguous="NaT", nonexistent="NaT")
    s = pd.Series(s.to_numpy(), index=local)
    s = s[s.index.notna()]
    return s.tz_convert("UTC").groupby(level=0).mean()


def fr(path: str) -> pd.Series:
    raw = pd.read_csv(path, usecols=["utc_timestamp", "FR_load_actual_entsoe_transparency"])
    t = pd.to_datetime(raw["utc_timestamp"], utc=True)
    return pd.Series(raw["FR_load_actual_entsoe_transparency"].to_numpy(float), index=t)


def windows(name: str, s: pd.Series) -> pd.Series:
    step = s.index[1] - s.index[0]
    parts = []
    for start in WINDOWS[name]:
        t0 = pd.Timestamp(start, tz="UTC")
        part = s[(s.index >= t0) & (s.index < t0 + pd.Timedelta(days=84))]
        full = pd.date_range(t0, t0 + pd.Timedelta(days=84) - step, freq=step)
        missing = full.difference(part.index)
        if len(missing) > 3:
            raise ValueError(f"{name} {start}: {len(missing)} readings missing")
        parts.append(part.reindex(full).interpolate())
    return pd.concat(parts)


def main() -> None:
    for name, loader, path in zip(("gb", "pjme", "fr"), (gb, pjme, fr), sys.argv[1:4], strict=True):
        s = windows(name, loader(path))
        frame = pd.DataFrame(
            {"time": s.index.strftime("%Y-%m-%dT%H:%MZ"), "demand_mw": s.round(1).to_numpy()}
        )
        out = OUT / f"unseen_{name}.csv.gz"
        frame.to_csv(out, index=False)
        print(f"{out}: {len(frame)} rows")


if __name__ == "__main__":
    main()
