"""The feeder transformer's tap position as a dispatch decision, made once per re-plan.

A dispatch-controlled OLTC (``grid.oltc.control = "dispatch"``) is moved by the optimizer, not
by its band controller. At each re-plan the positions within one step of the current one (and
within what the day's tap-wear budget, ``max_operations_per_day``, has left) are evaluated by
an AC power flow of the whole horizon at the operating point the plan would have without any
voltage remedy (the last plan's flexible power with its curtailment given back, inverters at
unity power factor). The position with the least voltage exceedance beyond the band
(p.u. x steps) wins; the current one is kept on a tie, so the tap moves only when that
relieves the forecast. The LP then plans active and reactive power at that position.
"""

from __future__ import annotations

import numpy as np

from gridsync.grid.taps import DispatchedTap


def band_exceedance(vm_pu: np.ndarray, v_lo: float, v_hi: float, weight: np.ndarray) -> float:
    """Sum over steps and buses of how far ``vm_pu`` (H, n_bus) lies outside ``[v_lo, v_hi]``,
    each step weighted by ``weight`` (its length in native steps)."""
    out = np.maximum(vm_pu - v_hi, 0.0) + np.maximum(v_lo - vm_pu, 0.0)
    return float(out.sum(axis=1) @ weight)


def choose_tap(tap: DispatchedTap, net, hd, z_free_kw: np.ndarray, margin_pu: float) -> int:
    """Dispatch the position for the re-plan at ``hd.step0`` and set ``net.pf`` to its model.

    ``z_free_kw``: flexible power per flexible bus and block (H, n_flex) without curtailment;
    ``margin_pu``: how far inside the band the voltages should stay."""
    now = tap.tap_pos
    cands = [p for p in (now - 1, now, now + 1) if tap.allowed(hd.step0, p)]
    v_lo, v_hi = net.v_min + margin_pu, net.v_max - margin_pu
    weight = np.asarray(hd.block_steps, float)
    score = {}
    for p in cands:
        net.pf = tap.model(p)
        score[p] = band_exceedance(net.check(hd, z_free_kw).vm_pu, v_lo, v_hi, weight)
    best = min(cands, key=lambda p: (score[p], p != now))
    if score[best] < score[now] - 1e-9:
        tap.dispatch(hd.step0, best)
    net.pf = tap.model(tap.tap_pos)
    return tap.tap_pos
