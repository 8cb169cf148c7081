"""What one dispatch solve publishes: the plan over the horizon and why it looks that way.

``DispatchPlan`` carries per-asset power over the horizon (arrays shaped ``(H, n_assets)``,
kW, load convention), the feeder-head trajectory, the AC check of the plan, and the binding
constraints with their shadow prices, so an operator console can say in plain words what
limited the plan ("the 18:15 feeder peak costs 2.33 EUR per extra kW").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gridsync.dispatch.formulation import Layout
from gridsync.dispatch.horizon import HorizonData
from gridsync.dispatch.lp import LinearProgram, LPResult
from gridsync.dispatch.reactive import kvar_arrays


@dataclass
class BindingConstraint:
    """One active constraint: ``shadow_price`` is the objective change (EUR) per unit of
    ``unit`` by which the limit is relaxed (HiGHS dual value)."""

    kind: str
    description: str
    step: int
    shadow_price: float
    unit: str


@dataclass
class DispatchPlan:
    """The published plan from ``step`` on; ``status`` says whether it is an optimum or a
    fallback, and ``reason`` why."""

    step: int
    status: str
    reason: str
    battery_kw: np.ndarray
    ev_kw: np.ndarray
    deferrable_kw: np.ndarray
    thermal_kw: np.ndarray
    pv_curtail_kw: np.ndarray
    feeder_kw: np.ndarray = field(default_factory=lambda: np.zeros(0))
    inflexible_kw: np.ndarray = field(default_factory=lambda: np.zeros(0))  # forecast, feeder total
    peak_kw: float = float("nan")  # the feeder peak the plan pays the demand charge on
    objective_eur: float = float("nan")
    vm_max_pu: np.ndarray = field(default_factory=lambda: np.zeros(0))
    vm_min_pu: np.ndarray = field(default_factory=lambda: np.zeros(0))
    max_loading_pct: np.ndarray = field(default_factory=lambda: np.zeros(0))
    binding: list[BindingConstraint] = field(default_factory=list)
    diagnosis: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    network_iterations: int = 0
    # voltage controls (None: not dispatched): inverter kvar injected (H, n), OLTC position
    pv_kvar: np.ndarray | None = None
    battery_kvar: np.ndarray | None = None
    tap_pos: int | None = None

    @property
    def horizon(self) -> int:
        return len(self.battery_kw)

    def covers(self, step: int) -> bool:
        return self.step <= step < self.step + self.horizon

    def row(self, step: int) -> dict[str, np.ndarray]:
        """Setpoint arrays for absolute ``step`` (must be covered by the plan)."""
        k = step - self.step
        return {
            "battery_kw": self.battery_kw[k],
            "ev_kw": self.ev_kw[k],
            "deferrable_kw": self.deferrable_kw[k],
            "thermal_kw": self.thermal_kw[k],
            "pv_curtail_kw": self.pv_curtail_kw[k],
        }

    def voltage_row(self, step: int) -> dict:
        """The voltage controls the plan dispatches at absolute ``step`` (reactive power per
        inverter, tap position), as ``Setpoints`` keywords; empty when it dispatches none."""
        k = step - self.step
        out: dict = {}
        if self.pv_kvar is not None:
            out["pv_kvar"] = self.pv_kvar[k]
        if self.battery_kvar is not None:
            out["battery_kvar"] = self.battery_kvar[k]
        if self.tap_pos is not None:
            out["tap_pos"] = self.tap_pos
        return out


def extract_plan(hd: HorizonData, lay: Layout, sol: LPResult) -> DispatchPlan:
    """Per-asset power arrays from an optimal LP solution, at the native step (block values
    repeated over their steps)."""
    x = sol.x
    f = hd.fleet
    H = lay.H
    nb, nt = len(f.battery), len(f.thermal)
    ev_kw = np.zeros((H, len(f.ev)))
    np.add.at(ev_kw, (lay.ev_t, hd.ev.charger[lay.ev_pair_sess]), x[lay.ev_c] - x[lay.ev_d])
    dfr = np.zeros((H, len(f.deferrable)))
    np.add.at(dfr, (lay.dfr_t, lay.dfr_j), x[lay.dfr_p])
    curtail = np.zeros((H, len(f.pv)))
    curtail[lay.pv_t, lay.pv_i] = x[lay.pv_q]
    feeder = x[lay.imp] - x[lay.exp]
    if len(lay.excess):
        feeder = feeder + x[lay.excess]
    native = lambda a: np.repeat(a, hd.block_steps, axis=0)  # noqa: E731  blocks -> steps
    pv_kvar = bat_kvar = None
    if lay.reactive is not None:
        pv_kvar, bat_kvar, _ = kvar_arrays(hd, lay.reactive, x)
        pv_kvar, bat_kvar = native(pv_kvar), native(bat_kvar)
    return DispatchPlan(
        step=hd.step0,
        status="optimal",
        reason="",
        battery_kw=native((x[lay.bat_c] - x[lay.bat_d]).reshape(nb, H).T),
        ev_kw=native(ev_kw),
        deferrable_kw=native(dfr),
        thermal_kw=native(x[lay.th_p].reshape(nt, H).T),
        pv_curtail_kw=native(curtail),
        feeder_kw=native(feeder),
        inflexible_kw=native(hd.inflexible_kw.sum(axis=1)),
        peak_kw=float(x[lay.peak][0]),
        objective_eur=sol.objective,
        pv_kvar=pv_kvar,
        battery_kvar=bat_kvar,
    )


def flexible_bus_kw(hd: HorizonData, lay: Layout, sol: LPResult) -> np.ndarray:
    """Net flexible consumption per flexible bus and block, (H, n_flex)."""
    return sol.x[lay.z].reshape(len(lay.flex_bus), lay.H).T


def _when(hd: HorizonData, t: int) -> str:
    return hd.times[int(t)].strftime("%a %H:%M") if hd.times is not None else f"step +{t}"


def binding_constraints(
    hd: HorizonData,
    lp: LinearProgram,
    sol: LPResult,
    bus_names: np.ndarray | None = None,
    branch_names: np.ndarray | None = None,
    limit: int = 20,
    tol: float = 1e-6,
) -> list[BindingConstraint]:
    """The ``limit`` constraints with the largest shadow prices, described in words."""
    found: list[tuple[float, str, int, int]] = []
    for name in ("feeder_peak", "ev_deadline", "deferrable_job", "voltage", "branch_loading"):
        block = lp.row_blocks.get(name)
        if block is None or block.n == 0:
            continue
        duals = sol.row_dual[block.start : block.start + block.n]
        for i in np.flatnonzero(np.abs(duals) > tol):
            found.append((abs(float(duals[i])), name, int(i), block.start))
    found.sort(reverse=True)
    out = []
    at = hd.step0 + hd.block_start  # absolute native step of each block
    for _, name, i, start in found[:limit]:
        block = lp.row_blocks[name]
        meta = block.meta[i]
        dual = float(sol.row_dual[start + i])
        value = float(sol.row_value[start + i])
        if name == "feeder_peak":
            t = int(meta[0])
            peak = float(sol.x[lp.cols("peak")][0])
            text = f"feeder peak import {peak:.1f} kW is set at {_when(hd, t)}"
            out.append(BindingConstraint("feeder_peak", text, int(at[t]), dual, "kW"))
        elif name == "ev_deadline":
            k = int(meta[0])
            ev = hd.ev
            t = int(ev.end_t[k]) - 1
            text = (
                f"EV at charger {int(ev.charger[k])} (session {int(ev.session[k])}) must have "
                f"{ev.need_kwh[k]:.1f} kWh by {_when(hd, t)}"
            )
            out.append(BindingConstraint("ev_deadline", text, int(at[t]), dual, "kWh"))
        elif name == "deferrable_job":
            j, day = int(meta[0]), int(meta[1])
            text = f"appliance {j} must finish its {value:.2f} kWh job in its window (day +{day})"
            out.append(BindingConstraint("deferrable_job", text, hd.step0, dual, "kWh"))
        elif name == "voltage":
            t, b = int(meta[0]), int(meta[1])
            bus = str(bus_names[b]) if bus_names is not None else f"bus {b}"
            text = f"voltage at {bus} held at its limit at {_when(hd, t)}"
            out.append(BindingConstraint("voltage", text, int(at[t]), dual, "p.u."))
        else:
            t, br = int(meta[0]), int(meta[1])
            branch = str(branch_names[br]) if branch_names is not None else f"branch {br}"
            text = f"loading of {branch} held at its limit at {_when(hd, t)}"
            out.append(BindingConstraint("branch_loading", text, int(at[t]), dual, "%"))
    return out
