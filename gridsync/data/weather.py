"""Real weather from a TMY file and rooftop PV output computed from it with pvlib.

The TMY year is mapped onto the scenario's dates by (month, day, hour); Feb 29 reuses Feb 28.
Solar geometry is computed for the scenario's actual timestamps at the TMY station.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

PVLIB_PREFIX = "pvlib:"


@dataclass
class Weather:
    """Weather on the scenario index and the station it came from."""

    frame: pd.DataFrame  # ghi_w_m2, dni_w_m2, dhi_w_m2, temp_air_c, wind_speed_m_s
    latitude: float
    longitude: float
    altitude_m: float
    utc_offset_h: float
    station: str


def resolve_tmy(ref: str) -> Path:
    if ref.startswith(PVLIB_PREFIX):
        import pvlib

        return Path(pvlib.__file__).parent / "data" / ref[len(PVLIB_PREFIX) :]
    return Path(ref)


def read_weather(ref: str, index: pd.DatetimeIndex) -> Weather:
    """Weather from a TMY3 file on ``index`` (naive local standard time), linearly interpolated."""
    from pvlib.iotools import read_tmy3

    path = resolve_tmy(ref)
    if not path.exists():
        msg = f"weather file {str(path)!r} does not exist"
        raise FileNotFoundError(msg)
    tmy, meta = read_tmy3(str(path), map_variables=True)
    cols = {
        "ghi": "ghi_w_m2",
        "dni": "dni_w_m2",
        "dhi": "dhi_w_m2",
        "temp_air": "temp_air_c",
        "wind_speed": "wind_speed_m_s",
    }
    tmy = tmy[list(cols)].rename(columns=cols)
    # TMY values are hour-ending averages: centre them at hh:30 of the preceding hour.
    local = tmy.index.tz_localize(None) - pd.Timedelta(minutes=30)
    # pvlib stamps a leap source year's Feb 28 24:00 as Mar 1 00:00, so that hour lands on
    # "Feb 29 23:30"; scenario dates read Feb 29 as Feb 28 anyway, so file it under Feb 28.
    month_day = local.month * 100 + local.day
    key = np.where(month_day == 229, 228, month_day) * 10000 + local.hour * 100 + local.minute
    table = pd.DataFrame(tmy.to_numpy(), index=key, columns=tmy.columns)
    table = table[~table.index.duplicated()]
    days = sorted(
        {d for d in index.normalize()}
        | {
            index[0].normalize() - pd.Timedelta(days=1),
            index[-1].normalize() + pd.Timedelta(days=1),
        }
    )
    hours = pd.DatetimeIndex(
        [d + pd.Timedelta(minutes=30 + 60 * h) for d in days for h in range(24)]
    )
    month_day = np.where((hours.month == 2) & (hours.day == 29), 228, hours.month * 100 + hours.day)
    keys = month_day * 10000 + hours.hour * 100 + hours.minute
    hourly = table.reindex(keys).to_numpy()
    x = hours.asi8 / 1e9
    xi = index.asi8 / 1e9
    if len(index) > 1:
        xi = xi + (index[1] - index[0]).total_seconds() / 2
    frame = pd.DataFrame(
        {c: np.interp(xi, x, hourly[:, j]) for j, c in enumerate(table.columns)}, index=index
    )
    return Weather(
        frame=frame,
        latitude=float(meta["latitude"]),
        longitude=float(meta["longitude"]),
        altitude_m=float(meta["altitude"]),
        utc_offset_h=float(meta["TZ"]),
        station=str(meta["Name"]).strip('"'),
    )


def pv_output_per_kwp(
    weather: Weather, tilt_deg: np.ndarray, azimuth_deg: np.ndarray
) -> np.ndarray:
    """AC output per kW of peak (kW/kWp) for each (tilt, azimuth) pair: shape (T, n_orientations).

    POA irradiance (Hay-Davies transposition), Faiman cell temperature, PVWatts DC with
    -0.4 %/K and a 96 %-efficient inverter sized at the array's peak.
    """
    import pvlib

    idx = weather.frame.index
    step = (idx[1] - idx[0]) if len(idx) > 1 else pd.Timedelta(0)
    tz = f"Etc/GMT{int(-weather.utc_offset_h):+d}"
    times = (idx + step / 2).tz_localize(tz)
    sun = pvlib.solarposition.get_solarposition(
        times, weather.latitude, weather.longitude, altitude=weather.altitude_m
    )
    dni_extra = pvlib.irradiance.get_extra_radiation(times).to_numpy()
    f = weather.frame
    zen = sun["apparent_zenith"].to_numpy()
    az = sun["azimuth"].to_numpy()
    out = np.zeros((len(idx), len(tilt_deg)))
    for j, (tilt, azim) in enumerate(zip(tilt_deg, azimuth_deg, strict=True)):
        poa = pvlib.irradiance.get_total_irradiance(
            tilt,
            azim,
            zen,
            az,
            f.dni_w_m2.to_numpy(),
            f.ghi_w_m2.to_numpy(),
            f.dhi_w_m2.to_numpy(),
            dni_extra=dni_extra,
            model="haydavies",
        )["poa_global"]
        poa = np.nan_to_num(np.asarray(poa, dtype=float))
        cell = pvlib.temperature.faiman(poa, f.temp_air_c.to_numpy(), f.wind_speed_m_s.to_numpy())
        dc = pvlib.pvsystem.pvwatts_dc(poa, cell, pdc0=1.0, gamma_pdc=-0.004)
        ac = np.minimum(np.asarray(dc) * 0.96, 1.0)
        out[:, j] = np.where(zen < 90, np.maximum(ac, 0.0), 0.0)
    return out
