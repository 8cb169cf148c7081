"""Weather-driven outage risk per line, a daily risk summary and the proactive posture.

Each line's hourly failure rate is its annual average rate times an ageing factor and a weather
factor. Overhead lines follow wind: with gust g = gust_factor x mean wind speed, the factor is
``1 + alpha_wind * max(0, (g / g_crit)^2 - 1)`` (the two-state weather model used in
distribution reliability, rate rising with the square of the wind above a critical speed).
Cables follow heat: ``1 + beta_heat * max(0, T - T_crit)`` for joint and termination failures in
heat waves. Ageing is a Weibull hazard relative to the reference age:
``(age / reference_age)^(shape - 1)``. Both weather factors are normalised so that their mean
over the bundled weather year is one: the file's failure rate stays the annual average and
weather only moves it in time.

The daily summary gives the expected number of faults per line and the probability of at least
one fault on the feeder for a day, from a weather forecast issued the day before; when any
element's expected faults exceed ``risk_ratio_threshold`` times its average day's (a storm on
the overhead lines or the upstream supply is diluted in a feeder total dominated by cables),
the posture says to pre-charge the microgrid batteries (pre-cooling is named but there are no thermal assets on the
MV study feeder to act on).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gridsync.resilience.feeder import Conditions, SwitchableFeeder


class RiskModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gust_factor: float = Field(1.5, gt=1.0, description="gust / hourly mean wind speed")
    critical_gust_m_s: float = Field(20.0, gt=0)
    alpha_wind: float = Field(20.0, ge=0)
    critical_temp_c: float = Field(30.0)
    beta_heat_per_c: float = Field(0.10, ge=0)
    weibull_shape: float = Field(2.0, gt=0)
    reference_age_years: float = Field(25.0, gt=0)
    risk_ratio_threshold: float = Field(3.0, gt=1.0)
    precharge_soc: float = Field(0.95, gt=0, le=1.0)


def wind_factor(model: RiskModel, wind_m_s: np.ndarray) -> np.ndarray:
    gust = model.gust_factor * np.asarray(wind_m_s, dtype=float)
    return 1.0 + model.alpha_wind * np.maximum(0.0, (gust / model.critical_gust_m_s) ** 2 - 1.0)


def heat_factor(model: RiskModel, temp_c: np.ndarray) -> np.ndarray:
    return 1.0 + model.beta_heat_per_c * np.maximum(0.0, np.asarray(temp_c, float) - model.critical_temp_c)


def element_names(feeder: SwitchableFeeder) -> list[str]:
    """Names of the failing elements: every line, then the upstream supply."""
    return feeder.line_name + ["upstream supply"]


def base_rates(feeder: SwitchableFeeder) -> np.ndarray:
    """Annual average failure rate of every element (1/yr); open ties interrupt no one."""
    up = feeder.study.upstream
    rates = np.append(feeder.failure_rate_per_yr * feeder.normally_closed,
                      up.failure_rate_per_yr if up else 0.0)
    return rates


@dataclass(frozen=True)
class LineRisk:
    """Hourly failure rate per element (1/yr as an instantaneous rate), shape (hours, lines + 1);
    the last column is the upstream supply."""

    rate_per_yr: np.ndarray
    wind_norm: float
    heat_norm: float

    def expected_faults(self, hours: slice) -> np.ndarray:
        return self.rate_per_yr[hours].sum(axis=0) / 8760.0


def line_risk(feeder: SwitchableFeeder, cond: Conditions, model: RiskModel,
              wind_m_s: np.ndarray | None = None, temp_c: np.ndarray | None = None,
              age_years: np.ndarray | None = None) -> LineRisk:
    """Hourly rates for given weather (default: the bundled year), normalised on that year."""
    base_wind = cond.wind_speed_m_s[:8760]
    base_temp = cond.temp_air_c[:8760]
    wind_norm = float(wind_factor(model, base_wind).mean())
    heat_norm = float(heat_factor(model, base_temp).mean())
    wind = base_wind if wind_m_s is None else wind_m_s
    temp = base_temp if temp_c is None else temp_c
    age = np.full(len(feeder.line_name), model.reference_age_years) if age_years is None else age_years
    ageing = np.append((age / model.reference_age_years) ** (model.weibull_shape - 1.0), 1.0)
    w = wind_factor(model, wind)[:, None] / wind_norm
    h = heat_factor(model, temp)[:, None] / heat_norm
    up = feeder.study.upstream
    sensitive = np.append(feeder.wind_sensitive, up.wind_sensitive if up else True)
    weather = np.where(sensitive[None, :], w, h)
    rate = base_rates(feeder)[None, :] * ageing[None, :] * weather
    return LineRisk(rate, wind_norm, heat_norm)


@dataclass(frozen=True)
class DailyRisk:
    day: int
    expected_faults: float
    p_any_fault: float
    risk_ratio: float
    peak_element_ratio: float
    top_lines: list[tuple[str, float]]
    precharge: bool
    actions: list[str]

    def text(self) -> str:
        lines = [f"day {self.day}: {self.expected_faults:.3f} expected faults, "
                 f"P(any fault) {100 * self.p_any_fault:.1f} % ({self.risk_ratio:.1f}x an average day; "
                 f"riskiest element {self.peak_element_ratio:.1f}x its average day)"]
        lines += [f"  {name}: {x:.4f} expected faults" for name, x in self.top_lines]
        lines += [f"  posture: {a}" for a in self.actions]
        return "\n".join(lines)


def daily_risk(feeder: SwitchableFeeder, risk: LineRisk, day: int, model: RiskModel) -> DailyRisk:
    """Risk of one day (hours ``24 day .. 24 day + 23``) from the rates of a forecast."""
    per_line = risk.expected_faults(slice(24 * day, 24 * day + 24))
    total = float(per_line.sum())
    element_day = base_rates(feeder) / 365.0
    average_day = float(element_day.sum())
    ratio = total / average_day if average_day > 0 else 0.0
    peak = float(np.max(np.divide(per_line, element_day, out=np.zeros_like(per_line),
                                  where=element_day > 0)))
    top = np.argsort(per_line)[::-1][:3]
    high = peak >= model.risk_ratio_threshold
    actions = ([f"pre-charge microgrid batteries to {100 * model.precharge_soc:.0f} % SoC",
                "pre-cool: no thermal assets on this feeder",
                "put crews on standby"] if high else ["normal operation"])
    return DailyRisk(day, total, 1.0 - float(np.exp(-total)), ratio, peak,
                     [(element_names(feeder)[i], float(per_line[i])) for i in top], high, actions)


def storm_weather(cond: Conditions, rng: np.random.Generator, n_storms: int,
                  peak_gust_m_s: tuple[float, float] = (28.0, 40.0),
                  duration_h: tuple[int, int] = (6, 18), gust_factor: float = 1.5
                  ) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The bundled year's wind with seeded storms added: (hourly mean wind, [(start, length)])."""
    wind = cond.wind_speed_m_s[:8760].copy()
    storms = []
    starts = rng.choice(np.arange(24, 8760 - 48), size=n_storms, replace=False)
    for s in np.sort(starts):
        length = int(rng.integers(duration_h[0], duration_h[1] + 1))
        peak_mean = rng.uniform(*peak_gust_m_s) / gust_factor
        shape = np.sin(np.linspace(0, np.pi, length)) ** 2
        wind[s:s + length] = np.maximum(wind[s:s + length], peak_mean * shape)
        storms.append((int(s), length))
    return wind, storms
