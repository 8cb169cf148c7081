"""Steady state of voltage-responsive PV inverters and the feeder's AC power flow in one step.

An inverter on Volt-VAR/Volt-Watt sets its Q and P limit from its terminal voltage, which in
turn depends on every inverter's Q and P. Within a 15-minute step the inverters settle (their
open-loop response time is seconds), so the twin solves for the operating point where both
hold: a damped fixed-point over the power flow, each pass taking the voltages of the previous
iterate, ``x <- x + damping * (curve(V(x)) - x)``. With the slope of the IEEE 1547 curves and LV
feeder sensitivities the undamped map is close to a contraction; damping keeps it one on weak
feeders (where ``slope * dV/dQ`` approaches 1) at the cost of a few more passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.model.inverter import InverterConfig, inverter_output


@dataclass
class InverterSteadyState:
    """The power-flow result and the complex voltages of the final pass, the inverters' active
    kW and injected kvar (generator convention) that were in it, and how many passes ran;
    ``mismatch_kvar`` is the largest distance of an inverter's applied (P, Q) from its curve at
    the solved voltage (kW or kvar)."""

    result: object
    v: np.ndarray
    pv_kw: np.ndarray
    pv_kvar: np.ndarray
    iterations: int
    mismatch_kvar: float


def solve_with_inverters(
    solve,
    p_bus_kw: np.ndarray,
    q_bus_kvar: np.ndarray,
    cfg: InverterConfig,
    pv_bus: np.ndarray,
    peak_kw: np.ndarray,
    p_avail_kw: np.ndarray,
    v0: np.ndarray | None,
    vm_start_pu: np.ndarray,
    q_start_kvar: np.ndarray,
    max_iter: int = 15,
    damping: float = 0.6,
    tol_kvar: float = 0.01,
) -> InverterSteadyState:
    """Solve ``solve(p, q, v0) -> (result, v)`` with the PV inverters' output in the loop.

    ``p_bus_kw``/``q_bus_kvar``: per-bus consumption WITHOUT the PV (load convention);
    ``p_avail_kw``: each inverter's available DC-side power after any curtailment order;
    ``vm_start_pu``: bus voltages to evaluate the curves at first (the last step's);
    ``q_start_kvar``: the inverters' Q to start from (the last step's). Stops when no
    inverter's (P, Q) moves more than ``tol_kvar`` from its curve, else after ``max_iter``
    passes (the last pass's flow is still exact for the P and Q it applied).
    """
    if max_iter < 1:
        msg = f"max_iter must be >= 1, got {max_iter}"
        raise ValueError(msg)
    n_bus = len(p_bus_kw)
    p_target, q_target = inverter_output(cfg, p_avail_kw, peak_kw, vm_start_pu[pv_bus])
    q = np.asarray(q_start_kvar, dtype=float) + damping * (q_target - q_start_kvar)
    p, v, it = p_target, v0, 0
    while True:
        it += 1
        p_bus = p_bus_kw - np.bincount(pv_bus, weights=p, minlength=n_bus)
        q_bus = q_bus_kvar - np.bincount(pv_bus, weights=q, minlength=n_bus)
        res, v = solve(p_bus, q_bus, v)
        p_target, q_target = inverter_output(cfg, p_avail_kw, peak_kw, res.vm_pu[pv_bus])
        gap = float(
            max(np.abs(q_target - q).max(initial=0.0), np.abs(p_target - p).max(initial=0.0))
        )
        if gap <= tol_kvar or it == max_iter:
            return InverterSteadyState(res, v, p, q, it, gap)
        q = q + damping * (q_target - q)
        p = p + damping * (p_target - p)


def kva_limited_kvar(q_kvar: np.ndarray, p_kw: np.ndarray, s_kva: np.ndarray) -> np.ndarray:
    """Reactive power ``q_kvar`` clipped to what the kVA rating ``s_kva`` leaves beside the
    active power ``p_kw`` (either sign): ``|q| <= sqrt(s^2 - p^2)``."""
    room = np.sqrt(np.maximum(np.asarray(s_kva, float) ** 2 - np.asarray(p_kw, float) ** 2, 0.0))
    return np.clip(q_kvar, -room, room)
