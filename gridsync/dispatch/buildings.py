"""Buildings-only battery planning: no feeder, no power flow, one warm-started HiGHS LP.

A ``BuildingsHorizon`` is what a planner needs for the next ``H`` hours of a group of
buildings behind one point of common coupling: each building's net load forecast
(kWh per hour, + import, PV already subtracted), its import price (currency per kWh) and the
grid's carbon intensity at its meter (g CO2 per kWh), a district import cap (kW, soft) and the
batteries' state. ``BuildingsPlanner`` turns it into a schedule minimising

    sum_k max(0, sum_b price_bk * net_bk)                      district energy bill
  + carbon_price_per_kg * sum_bk intensity_bk / 1000 * max(0, net_bk)   behind-the-meter CO2
  + peak_penalty_per_kwh * sum_k max(0, sum_b net_bk - cap_k)
  - sum_b terminal_value_b * soc_b,H                           value of energy left

Carbon is priced per building on its own import (what leaves its meter), not on the
district sum, because exports do not offset a neighbour's emissions in the CityLearn KPI.
Batteries follow ``gridsync.model.citylearn_battery``: the efficiency curve as its concave
(charge) / convex (discharge) hull, the SoC-dependent power limit of the capacity-power
curve (evaluated on the SoC at the start of the hour, after standby loss) and the standby
loss. The model is built once; ``plan`` only changes bounds, costs and (if prices differ
between buildings) coefficients, and HiGHS restarts from the previous basis with presolve off.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

from gridsync.model.citylearn_battery import (
    CityLearnBatteryParams,
    charge_segments,
    discharge_segments,
    power_limit_rows,
    worst_efficiency,
)

INF = highspy.kHighsInf
# Gauss-Hermite nodes (in standard deviations) and weights for the net-load outcomes
_NODES = {
    1: (np.array([0.0]), np.array([1.0])),
    2: (np.array([-1.0, 1.0]), np.array([0.5, 0.5])),
    3: (np.array([-np.sqrt(3.0), 0.0, np.sqrt(3.0)]), np.array([1 / 6, 2 / 3, 1 / 6])),
}


class PlanningError(RuntimeError):
    """The LP did not reach an optimum; the message says what HiGHS reported."""


@dataclass
class BuildingsHorizon:
    """Inputs for one plan; arrays are (batteries, hours) unless noted.

    ``other_net_kwh`` (hours,) is the summed net load of buildings without a battery (they
    count in the district bill and cap). ``price_per_kwh`` of the district bill is taken per
    building; ``terminal_value_per_kwh`` (batteries,) values kWh left in the battery at the end.
    """

    net_load_kwh: np.ndarray
    price_per_kwh: np.ndarray
    carbon_g_per_kwh: np.ndarray
    soc_kwh: np.ndarray
    capacity_kwh: np.ndarray
    terminal_value_per_kwh: np.ndarray
    other_net_kwh: np.ndarray
    other_price_per_kwh: np.ndarray
    peak_cap_kw: np.ndarray
    net_spread_kwh: np.ndarray | None = None  # (B, H): forecast uncertainty, see BuildingsPlanner


def buildings_horizon(
    net_load_kwh: np.ndarray,
    price_per_kwh: np.ndarray | float,
    *,
    carbon_g_per_kwh: np.ndarray | float = 0.0,
    soc_kwh: np.ndarray | float = 0.0,
    capacity_kwh: np.ndarray | None = None,
    terminal_value_per_kwh: np.ndarray | float = 0.0,
    other_net_kwh: np.ndarray | float = 0.0,
    other_price_per_kwh: np.ndarray | float | None = None,
    peak_cap_kw: np.ndarray | float = np.inf,
    net_spread_kwh: np.ndarray | float = 0.0,
) -> BuildingsHorizon:
    """Build a horizon from plain arrays, broadcasting scalars / per-hour rows to (B, H)."""
    net = np.atleast_2d(np.asarray(net_load_kwh, dtype=float))
    n_bat, hours = net.shape

    def grid(value: np.ndarray | float, name: str) -> np.ndarray:
        arr = np.asarray(value, dtype=float)
        try:
            return np.broadcast_to(arr, (n_bat, hours)).copy()
        except ValueError as exc:
            msg = f"{name}: shape {arr.shape} does not broadcast to (batteries, hours) = {net.shape}"
            raise ValueError(msg) from exc

    def per_hour(value: np.ndarray | float, name: str) -> np.ndarray:
        arr = np.asarray(value, dtype=float)
        if arr.ndim and arr.shape != (hours,):
            msg = f"{name}: expected a scalar or {hours} hourly values, got shape {arr.shape}"
            raise ValueError(msg)
        return np.broadcast_to(arr, (hours,)).copy()

    price = grid(price_per_kwh, "price_per_kwh")
    other_price = price.mean(axis=0) if other_price_per_kwh is None else other_price_per_kwh
    return BuildingsHorizon(
        net_load_kwh=net,
        price_per_kwh=price,
        carbon_g_per_kwh=grid(carbon_g_per_kwh, "carbon_g_per_kwh"),
        soc_kwh=np.broadcast_to(np.asarray(soc_kwh, dtype=float), (n_bat,)).copy(),
        capacity_kwh=None if capacity_kwh is None else np.asarray(capacity_kwh, dtype=float),
        terminal_value_per_kwh=np.broadcast_to(
            np.asarray(terminal_value_per_kwh, dtype=float), (n_bat,)
        ).copy(),
        other_net_kwh=per_hour(other_net_kwh, "other_net_kwh"),
        other_price_per_kwh=per_hour(other_price, "other_price_per_kwh"),
        peak_cap_kw=per_hour(peak_cap_kw, "peak_cap_kw"),
        net_spread_kwh=grid(net_spread_kwh, "net_spread_kwh"),
    )


@dataclass
class BuildingsSchedule:
    """A plan: ``battery_kwh`` is meter energy per hour (+ charge), as a CityLearn request."""

    battery_kwh: np.ndarray
    soc_kwh: np.ndarray  # (B, H + 1), the first column the initial SoC
    net_kwh: np.ndarray
    objective: float


class BuildingsPlanner:
    """The LP for fixed batteries and horizon length, re-solved warm for each new horizon."""

    def __init__(
        self,
        batteries: list[CityLearnBatteryParams],
        hours: int,
        *,
        carbon_price_per_kg: float = 0.0,
        peak_penalty_per_kwh: float = 10.0,
        time_limit_s: float = 30.0,
        options: dict | None = None,
        efficiency: str = "hull",
        outcomes: int = 1,
    ) -> None:
        """``efficiency="hull"`` plans on the concave/convex hull of the efficiency curve (a
        relaxation: the LP optimum bounds the real one); ``"worst"`` on the curve's lowest
        efficiency (conservative: the real battery ends at least as full as planned).
        ``outcomes`` = 2 or 3 prices each building's import (its CO2) as the expectation over
        that many outcomes of its net load, Gauss-Hermite nodes around the forecast with
        standard deviation ``horizon.net_spread_kwh`` (2: -/+ 1 sd, 3: 0 and -/+ sqrt(3) sd):
        with noisy loads the expected import ``E[max(0, net)]`` exceeds ``max(0, E[net])``
        (and the expected PV surplus likewise), which a plan on the mean forecast ignores and
        then fills the battery from the grid before surplus PV arrives. The battery plan is
        the same in every outcome (no recourse inside the horizon).
        ``options`` override the HiGHS defaults used here (simplex, presolve off, 1 thread);
        a whole-year plan is better served by ``{"solver": "ipm", "presolve": "on"}``."""
        if not batteries:
            raise ValueError("batteries: at least one battery is needed to plan")
        if efficiency not in ("hull", "worst"):
            raise ValueError(f"efficiency: expected 'hull' or 'worst', got {efficiency!r}")
        self.efficiency = efficiency
        if outcomes not in _NODES:
            raise ValueError(f"outcomes: expected one of {sorted(_NODES)}, got {outcomes!r}")
        self.outcomes = outcomes
        self.batteries = batteries
        self.hours = hours
        self.carbon_price_per_kg = float(carbon_price_per_kg)
        self.peak_penalty_per_kwh = float(peak_penalty_per_kwh)
        self.time_limit_s = float(time_limit_s)
        self._build()
        self._h = highspy.Highs()
        for name, value in {
            "output_flag": False, "presolve": "off", "threads": 1, "solver": "simplex",
            "time_limit": float(time_limit_s), **(options or {}),
        }.items():
            self._h.setOptionValue(name, value)
        self._h.passModel(self._lp)
        self._ratio = np.ones((len(batteries), hours))

    # -- layout --------------------------------------------------------------------------
    def _build(self) -> None:
        n_b, n_h = len(self.batteries), self.hours
        if self.efficiency == "hull":
            segs_c = [charge_segments(p) for p in self.batteries]
            segs_d = [discharge_segments(p) for p in self.batteries]
        else:
            worst = [worst_efficiency(p) for p in self.batteries]
            segs_c = [(np.array([p.power_kw]), np.array([w])) for p, w in zip(self.batteries, worst, strict=True)]
            segs_d = [(np.array([p.power_kw]), np.array([1 / w])) for p, w in zip(self.batteries, worst, strict=True)]
        rows_p = [power_limit_rows(p) for p in self.batteries]
        jc = max(len(w) for w, _ in segs_c)
        jd = max(len(w) for w, _ in segs_d)
        self._jc, self._jd = jc, jd
        counter = 0

        def block(*shape: int) -> np.ndarray:
            nonlocal counter
            size = int(np.prod(shape))
            idx = np.arange(counter, counter + size).reshape(shape)
            counter += size
            return idx

        self._c = block(n_b, n_h, jc)
        self._d = block(n_b, n_h, jd)
        self._soc = block(n_b, n_h + 1)
        self._g = block(n_b, n_h, self.outcomes)
        self._y = block(n_h)
        self._s = block(n_h)
        n_col = counter
        lb, ub = np.zeros(n_col), np.full(n_col, INF)
        for b in range(n_b):
            wc, wd = segs_c[b][0], segs_d[b][0]
            ub[self._c[b, :, : len(wc)]] = wc
            ub[self._c[b, :, len(wc):]] = 0.0
            ub[self._d[b, :, : len(wd)]] = wd
            ub[self._d[b, :, len(wd):]] = 0.0
            ub[self._soc[b]] = self.batteries[b].capacity0_kwh

        rows, cols, vals, rlo, rhi = [], [], [], [], []
        r = 0

        def add(n_rows: int, lo: np.ndarray | float, hi: np.ndarray | float) -> np.ndarray:
            nonlocal r
            idx = np.arange(r, r + n_rows)
            rlo.append(np.broadcast_to(lo, (n_rows,)))
            rhi.append(np.broadcast_to(hi, (n_rows,)))
            r += n_rows
            return idx

        def put(row_idx: np.ndarray, col_idx: np.ndarray, value: np.ndarray | float) -> None:
            row_idx, col_idx = np.broadcast_arrays(row_idx, col_idx)
            rows.append(row_idx.ravel())
            cols.append(col_idx.ravel())
            vals.append(np.broadcast_to(value, row_idx.shape).ravel().astype(float))

        # import: g - sum c + sum d >= base (the battery's meter energy adds to the net load)
        n_g = self._g.shape[2]
        self._r_imp = add(n_b * n_h * n_g, 0.0, INF).reshape(n_b, n_h, n_g)
        put(self._r_imp, self._g, 1.0)
        for j in range(n_g):
            put(self._r_imp[..., j, None], self._c, -1.0)
            put(self._r_imp[..., j, None], self._d, 1.0)
        # soc: soc[k+1] - (1-loss) soc[k] - sum eta c + sum rho d = 0
        r_soc = add(n_b * n_h, 0.0, 0.0).reshape(n_b, n_h)
        keep = np.array([1.0 - p.loss_coefficient for p in self.batteries])[:, None]
        put(r_soc, self._soc[:, 1:], 1.0)
        put(r_soc, self._soc[:, :-1], -np.broadcast_to(keep, (n_b, n_h)))
        eta = np.zeros((n_b, jc))
        rho = np.zeros((n_b, jd))
        for b in range(n_b):
            eta[b, : len(segs_c[b][1])] = segs_c[b][1]
            rho[b, : len(segs_d[b][1])] = segs_d[b][1]
        put(r_soc[..., None], self._c, -eta[:, None, :])
        put(r_soc[..., None], self._d, rho[:, None, :])
        # power: sum c + sum d - P b (1-loss)/cap soc[k] <= P a for each hull row that can bind
        # (one direction per hour, as in CityLearn; the segment widths already cap at P)
        for b, p in enumerate(self.batteries):
            a_i, b_i = rows_p[b]
            slope = p.power_kw * b_i * (1 - p.loss_coefficient) / p.capacity0_kwh
            for i in range(len(a_i)):
                if b_i[i] == 0 and a_i[i] >= 1.0:
                    continue
                rr = add(n_h, -INF, p.power_kw * a_i[i])
                put(rr[:, None], self._c[b], 1.0)
                put(rr[:, None], self._d[b], 1.0)
                put(rr, self._soc[b, :-1], -slope[i])
        # district bill: y_k - sum_b ratio_bk (sum c - sum d) >= sum_b ratio_bk base_bk + other
        self._r_bill = add(n_h, 0.0, INF)
        put(self._r_bill, self._y, 1.0)
        put(self._r_bill[None, :, None], self._c, -1.0)
        put(self._r_bill[None, :, None], self._d, 1.0)
        # district cap: sum_b (sum c - sum d) - s_k <= cap_k - sum_b base_bk - other_k
        self._r_cap = add(n_h, -INF, INF)
        put(self._r_cap[None, :, None], self._c, 1.0)
        put(self._r_cap[None, :, None], self._d, -1.0)
        put(self._r_cap, self._s, -1.0)

        a = sp.csc_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r, n_col)
        )
        self._rlo, self._rhi = np.concatenate(rlo).astype(float), np.concatenate(rhi).astype(float)
        self._cost = np.zeros(n_col)
        # break ties against idle cycling, and towards charging later (a later decision
        # knows more: with equal prices, charge as late as the plan allows)
        later = 1e-4 * (n_h - np.arange(n_h)) / n_h
        self._cost[self._c] = 1e-6 + later[None, :, None]
        self._cost[self._d] = 1e-6
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = n_col, r
        lp.col_cost_, lp.col_lower_, lp.col_upper_ = self._cost, lb, ub
        lp.row_lower_, lp.row_upper_ = self._rlo, self._rhi
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n_col, r
        lp.a_matrix_.start_ = a.indptr.astype(np.int32)
        lp.a_matrix_.index_ = a.indices.astype(np.int32)
        lp.a_matrix_.value_ = a.data
        self._lp = lp

    # -- solve ---------------------------------------------------------------------------
    def plan(self, horizon: BuildingsHorizon) -> BuildingsSchedule:
        """Solve for ``horizon`` (hours must equal the planner's) and return the schedule."""
        n_b, n_h = len(self.batteries), self.hours
        if horizon.net_load_kwh.shape != (n_b, n_h):
            msg = f"net_load_kwh: expected shape {(n_b, n_h)}, got {horizon.net_load_kwh.shape}"
            raise ValueError(msg)
        h = self._h
        price = horizon.price_per_kwh
        pbar = np.maximum(np.abs(price).max(axis=0), 1e-12)
        ratio = price / pbar
        changed = np.argwhere(np.abs(ratio - self._ratio) > 1e-12)
        for b, k in changed:
            row = int(self._r_bill[k])
            for col in self._c[b, k]:
                h.changeCoeff(row, int(col), float(-ratio[b, k]))
            for col in self._d[b, k]:
                h.changeCoeff(row, int(col), float(ratio[b, k]))
        self._ratio = ratio
        cost_idx = np.concatenate([self._y, self._g.ravel(), self._s, self._soc[:, -1]])
        cost_val = np.concatenate([
            pbar,
            (
                self.carbon_price_per_kg * horizon.carbon_g_per_kwh[..., None] / 1000.0
                * _NODES[self.outcomes][1]
            ).ravel(),
            np.full(n_h, self.peak_penalty_per_kwh),
            -horizon.terminal_value_per_kwh,
        ])
        h.changeColsCost(len(cost_idx), cost_idx.astype(np.int32), cost_val)
        base = horizon.net_load_kwh
        bill_lo = (ratio * base).sum(axis=0) + horizon.other_price_per_kwh / pbar * horizon.other_net_kwh
        cap_hi = horizon.peak_cap_kw - base.sum(axis=0) - horizon.other_net_kwh
        row_idx = np.concatenate([self._r_imp.ravel(), self._r_bill, self._r_cap])
        spread = 0.0 if horizon.net_spread_kwh is None else horizon.net_spread_kwh
        imp_lo = base[..., None] + np.asarray(spread)[..., None] * _NODES[self.outcomes][0]
        lo = np.concatenate([imp_lo.ravel(), bill_lo, np.full(n_h, -INF)])
        hi = np.concatenate([np.full(imp_lo.size, INF), np.full(n_h, INF), cap_hi])
        h.changeRowsBounds(len(row_idx), row_idx.astype(np.int32), lo, hi)
        cap = self._capacity(horizon)
        soc0 = np.minimum(horizon.soc_kwh, cap)
        col_idx = np.concatenate([self._soc[:, 0], self._soc[:, 1:].ravel()])
        col_lo = np.concatenate([soc0, np.zeros(n_b * n_h)])
        col_hi = np.concatenate([soc0, np.repeat(cap, n_h)])
        h.changeColsBounds(len(col_idx), col_idx.astype(np.int32), col_lo, col_hi)
        # HiGHS measures time_limit on the object's cumulative run clock
        h.setOptionValue("time_limit", h.getRunTime() + self.time_limit_s)
        h.run()
        status = h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            # a stale basis can stall the warm start: retry once from scratch
            h.clearSolver()
            h.run()
            status = h.getModelStatus()
            if status != highspy.HighsModelStatus.kOptimal:
                raise PlanningError(f"battery plan LP: HiGHS reports {h.modelStatusToString(status)}")
        x = np.asarray(h.getSolution().col_value)
        battery = x[self._c].sum(axis=2) - x[self._d].sum(axis=2)
        return BuildingsSchedule(
            battery_kwh=battery,
            soc_kwh=x[self._soc],
            net_kwh=horizon.net_load_kwh + battery,
            objective=float(h.getInfo().objective_function_value),
        )

    def _capacity(self, horizon: BuildingsHorizon) -> np.ndarray:
        if horizon.capacity_kwh is not None:
            return np.asarray(horizon.capacity_kwh, dtype=float)
        return np.array([p.capacity0_kwh for p in self.batteries])


def plan_battery_schedule(
    price_per_kwh: np.ndarray,
    net_load_forecast_kwh: np.ndarray,
    batteries: list[CityLearnBatteryParams] | CityLearnBatteryParams,
    *,
    carbon_g_per_kwh: np.ndarray | float = 0.0,
    carbon_price_per_kg: float = 0.0,
    soc_kwh: np.ndarray | float | None = None,
    terminal_value_per_kwh: np.ndarray | float = 0.0,
    peak_cap_kw: np.ndarray | float = np.inf,
) -> BuildingsSchedule:
    """One-shot plan: price + net-load forecast (B x H or H) + battery parameters -> schedule.

    ``soc_kwh`` defaults to each battery's ``initial_soc_kwh``. For repeated plans keep a
    ``BuildingsPlanner`` instead (it warm-starts).
    """
    bats = [batteries] if isinstance(batteries, CityLearnBatteryParams) else list(batteries)
    net = np.atleast_2d(np.asarray(net_load_forecast_kwh, dtype=float))
    if soc_kwh is None:
        soc_kwh = np.array([p.initial_soc_kwh for p in bats])
    horizon = buildings_horizon(
        net, price_per_kwh, carbon_g_per_kwh=carbon_g_per_kwh, soc_kwh=soc_kwh,
        terminal_value_per_kwh=terminal_value_per_kwh, peak_cap_kw=peak_cap_kw,
    )
    planner = BuildingsPlanner(bats, net.shape[1], carbon_price_per_kg=carbon_price_per_kg)
    return planner.plan(horizon)
