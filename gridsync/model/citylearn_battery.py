"""CityLearn 1.3 battery physics, step by step, and its piecewise-linear convex relaxation.

``CityLearnBattery.charge`` reproduces what CityLearn 1.3's ``Battery.charge`` does with an
energy request (kWh at the building meter, + charge): the standby loss is taken first
(``soc * (1 - loss_coefficient)``), the request is clipped to the SoC-dependent power limit
(``capacity_power_curve`` interpolated at that SoC over the current, faded capacity), the
efficiency is read off ``power_efficiency_curve`` at ``|energy| / nominal_power`` and raised
to ``efficiency_scaling`` (0.5: the curve is round-trip, each direction pays its square
root), the SoC moves by ``energy * eff`` (charge, capped at the capacity) or ``energy / eff``
(discharge, floored at 0), the meter sees the SoC change divided (charge) or multiplied
(discharge) by the efficiency, and the capacity fades by
``capacity_loss_coefficient * capacity_0 * |meter energy| / (2 * capacity)``.

Curve lookups keep CityLearn's own interpolation rule (segment index
``max(0, argmax(x <= xs) - 1)``, extrapolating the first segment when ``x`` lies beyond the
last breakpoint) so requests replayed through either implementation give the same SoC.

``charge_segments`` / ``discharge_segments`` give the concave (charge) and convex
(discharge) hulls of those curves, so an LP can carry the physics without binaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_POWER_EFFICIENCY_CURVE: tuple[tuple[float, float], ...] = (
    (0.0, 0.83), (0.3, 0.83), (0.7, 0.9), (0.8, 0.9), (1.0, 0.85),
)
DEFAULT_CAPACITY_POWER_CURVE: tuple[tuple[float, float], ...] = ((0.0, 1.0), (0.8, 1.0), (1.0, 0.2))
_TINY = 0.00001  # CityLearn replaces a zero capacity / nominal power by this to avoid 0-division


def curve_value(curve: np.ndarray, x: float) -> float:
    """Linear interpolation on a 2 x n curve (row 0 breakpoints, row 1 values), CityLearn's rule."""
    idx = max(0, int(np.argmax(x <= curve[0])) - 1)
    x0, x1 = curve[0][idx], curve[0][idx + 1]
    y0, y1 = curve[1][idx], curve[1][idx + 1]
    return float(y0 + (x - x0) * (y1 - y0) / (x1 - x0))


@dataclass(frozen=True)
class CityLearnBatteryParams:
    """Battery attributes as a CityLearn 1.3 schema gives them (defaults are CityLearn's).

    ``capacity_kwh`` and ``nominal_power_kw`` are the schema's ``capacity`` / ``nominal_power``;
    ``initial_soc_kwh`` is the schema's ``initial_soc`` (kWh in CityLearn 1.3, not a fraction).
    ``efficiency`` is only the efficiency reported before the first step: every step uses the
    power-efficiency curve.
    """

    capacity_kwh: float
    nominal_power_kw: float
    efficiency: float = 0.9
    capacity_loss_coefficient: float = 1e-5
    loss_coefficient: float = 0.006
    initial_soc_kwh: float = 0.0
    efficiency_scaling: float = 0.5
    power_efficiency_curve: tuple[tuple[float, float], ...] = DEFAULT_POWER_EFFICIENCY_CURVE
    capacity_power_curve: tuple[tuple[float, float], ...] = DEFAULT_CAPACITY_POWER_CURVE

    def __post_init__(self) -> None:
        if self.capacity_kwh < 0 or self.nominal_power_kw < 0:
            msg = f"capacity ({self.capacity_kwh}) and nominal_power ({self.nominal_power_kw}) must be >= 0"
            raise ValueError(msg)
        if not 0 <= self.loss_coefficient <= 1:
            msg = f"loss_coefficient must be in [0, 1], got {self.loss_coefficient}"
            raise ValueError(msg)
        if not 0 <= self.initial_soc_kwh <= max(self.capacity_kwh, _TINY):
            msg = f"initial_soc must be in [0, capacity={self.capacity_kwh}] kWh, got {self.initial_soc_kwh}"
            raise ValueError(msg)
        for name in ("power_efficiency_curve", "capacity_power_curve"):
            xs = [p[0] for p in getattr(self, name)]
            if len(xs) < 2 or any(b <= a for a, b in zip(xs, xs[1:], strict=False)):
                msg = f"{name} needs >= 2 points with strictly increasing x, got {getattr(self, name)}"
                raise ValueError(msg)

    @property
    def capacity0_kwh(self) -> float:
        return self.capacity_kwh if self.capacity_kwh > 0 else _TINY

    @property
    def power_kw(self) -> float:
        return self.nominal_power_kw if self.nominal_power_kw > 0 else _TINY

    @property
    def efficiency_array(self) -> np.ndarray:
        return np.array(self.power_efficiency_curve, dtype=float).T

    @property
    def power_array(self) -> np.ndarray:
        return np.array(self.capacity_power_curve, dtype=float).T


@dataclass
class CityLearnBattery:
    """One battery's state; ``charge`` advances it one time step (see the module docstring)."""

    params: CityLearnBatteryParams
    soc_kwh: float = field(init=False)
    capacity_kwh: float = field(init=False)
    efficiency: float = field(init=False)

    def __post_init__(self) -> None:
        self._eff_curve = self.params.efficiency_array
        self._power_curve = self.params.power_array
        self.reset()

    def reset(self) -> None:
        self.soc_kwh = self.params.initial_soc_kwh
        self.capacity_kwh = self.params.capacity0_kwh
        self.efficiency = self.params.efficiency

    @property
    def soc_init_kwh(self) -> float:
        """SoC after this step's standby loss, before the request acts."""
        return self.soc_kwh * (1 - self.params.loss_coefficient)

    def max_power_kw(self) -> float:
        """Charge = discharge limit at the current SoC (capacity-power curve x nominal power)."""
        soc_normalized = self.soc_init_kwh / self.capacity_kwh
        return self.params.power_kw * curve_value(self._power_curve, soc_normalized)

    def efficiency_at(self, energy_kwh: float) -> float:
        """One-way efficiency for an (already power-clipped) request of ``energy_kwh``."""
        normalized = abs(energy_kwh) / self.params.power_kw
        return curve_value(self._eff_curve, normalized) ** self.params.efficiency_scaling

    def charge(self, energy_kwh: float) -> float:
        """Apply a request (kWh at the meter, + charge) and return the meter energy actually drawn."""
        limit = self.max_power_kw()
        energy = min(energy_kwh, limit) if energy_kwh >= 0 else max(-limit, energy_kwh)
        self.efficiency = eff = self.efficiency_at(energy)
        soc_init = self.soc_init_kwh
        if energy >= 0:
            soc = min(soc_init + energy * eff, self.capacity_kwh)
        else:
            soc = max(0.0, soc_init + energy / eff)
        balance = soc - soc_init
        balance = balance / eff if balance >= 0 else balance * eff
        self.soc_kwh = soc
        self.capacity_kwh -= (
            self.params.capacity_loss_coefficient * self.params.capacity0_kwh * abs(balance)
            / (2 * self.capacity_kwh)
        )
        return balance


def _hull(
    x: np.ndarray, y: np.ndarray, upper: bool, merge_tol: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """Upper-concave (or lower-convex) hull of sampled points; returns (widths, slopes).

    Consecutive pieces whose slopes differ by less than ``merge_tol`` (relative) are merged,
    which keeps the LP small at a cost below that tolerance."""
    pts: list[int] = []
    sign = 1.0 if upper else -1.0
    for i in range(len(x)):
        while len(pts) >= 2:
            a, b = pts[-2], pts[-1]
            cross = (x[b] - x[a]) * (y[i] - y[a]) - (y[b] - y[a]) * (x[i] - x[a])
            if sign * cross >= 0:
                pts.pop()
            else:
                break
        pts.append(i)
    widths, slopes = [], []
    for x0, x1, y0, y1 in zip(x[pts][:-1], x[pts][1:], y[pts][:-1], y[pts][1:], strict=True):
        slope = (y1 - y0) / (x1 - x0)
        if slopes and abs(slope - slopes[-1]) <= merge_tol * abs(slopes[-1]):
            # nearly collinear: merge, keeping the chord of the merged piece
            total = widths[-1] + (x1 - x0)
            slopes[-1] = (slopes[-1] * widths[-1] + y1 - y0) / total
            widths[-1] = total
        else:
            widths.append(x1 - x0)
            slopes.append(slope)
    return np.array(widths), np.array(slopes)


def charge_segments(params: CityLearnBatteryParams, samples: int = 41) -> tuple[np.ndarray, np.ndarray]:
    """Concave hull of stored kWh vs meter kWh over [0, nominal power]: (widths_kwh, efficiencies).

    Efficiencies decrease from segment to segment, so an LP filling them in order is exact on
    the hull and never better than the hull (a relaxation of the real curve by at most the
    curve's non-concave dip).
    """
    battery = CityLearnBattery(params)
    meter = np.linspace(0.0, params.power_kw, samples)
    stored = np.array([e * battery.efficiency_at(e) for e in meter])
    return _hull(meter, stored, upper=True)


def discharge_segments(params: CityLearnBatteryParams, samples: int = 41) -> tuple[np.ndarray, np.ndarray]:
    """Convex hull of SoC kWh removed vs meter kWh delivered: (widths_kwh, kWh removed per kWh)."""
    battery = CityLearnBattery(params)
    meter = np.linspace(0.0, params.power_kw, samples)
    removed = np.array([0.0] + [e / battery.efficiency_at(e) for e in meter[1:]])
    return _hull(meter, removed, upper=False)


def worst_efficiency(params: CityLearnBatteryParams) -> float:
    """Lowest one-way efficiency over requests from 0 to the nominal power."""
    battery = CityLearnBattery(params)
    return min(battery.efficiency_at(e) for e in np.linspace(0.0, params.power_kw, 101))


def power_limit_rows(params: CityLearnBatteryParams) -> tuple[np.ndarray, np.ndarray]:
    """Concave hull of the capacity-power curve as rows ``p <= P * (a + b * soc / capacity)``.

    Returns (a, b) per row; for CityLearn's default curve: ``p <= P`` and
    ``p <= P * (4.2 - 4 soc / capacity)``.
    """
    curve = params.power_array
    xs = np.linspace(0.0, 1.0, 201)
    ys = np.array([curve_value(curve, x) for x in xs])
    widths, slopes = _hull(xs, ys, upper=True)
    starts = np.concatenate([[0.0], np.cumsum(widths)[:-1]])
    values = np.interp(starts, xs, ys)
    return values - slopes * starts, slopes
