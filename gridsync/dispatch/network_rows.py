"""Linearised network limits as LP rows: voltages and branch loadings as affine functions of
the net flexible power per bus, with penalised slacks (used by every dispatch LP)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridsync.dispatch.lp import INF, LinearProgram


@dataclass
class NetworkRows:
    """Linearised network limits for the LP.

    Voltage rows ``(t, bus)``: ``vm ~= v_offset + dv_dz[row] @ z[:, t]`` kept inside
    ``[v_lo, v_hi]``; branch rows ``(t, branch)``: ``loading ~= l_offset + dl_dz[row] @ z[:, t]``
    kept below ``l_hi``. ``z`` is net flexible consumption (kW) per flexible bus; with
    ``dv_dq`` the voltage rows also hold the inverters' net reactive consumption ``qz`` (kvar)
    per flexible bus (``dispatch.reactive``).
    """

    v_t: np.ndarray
    v_bus: np.ndarray
    v_offset: np.ndarray
    v_lo: np.ndarray
    v_hi: np.ndarray
    dv_dz: np.ndarray  # (rows, n_flex)
    l_t: np.ndarray
    l_branch: np.ndarray
    l_offset: np.ndarray
    l_hi: np.ndarray
    dl_dz: np.ndarray  # (rows, n_flex)
    dv_dq: np.ndarray | None = None  # (rows, n_flex): + dv_dq[row] @ qz[:, t], p.u. per kvar
    dl_dq: np.ndarray | None = None  # (rows, n_flex): + dl_dq[row] @ qz[:, t], % per kvar
    q_steps: np.ndarray | None = None  # blocks where the inverters' Q is a decision


def _sensitivity_rows(
    lp: LinearProgram,
    name: str,
    t: np.ndarray,
    sens: np.ndarray,
    z: np.ndarray,
    H: int,
    lo: np.ndarray,
    hi: np.ndarray,
    penalty: float,
    meta: np.ndarray,
    sens_q: np.ndarray | None = None,
    qz_col: np.ndarray | None = None,
) -> np.ndarray:
    """Rows ``lo <= sens @ z[:, t] (+ sens_q @ qz[:, t]) + s_up - s_down <= hi`` with
    penalised slacks; ``qz_col[f, t]`` is the column of ``qz`` (-1: none at that block)."""
    n = len(t)
    nz_r, nz_f = np.nonzero(np.abs(sens) > 1e-12)
    q_r = q_c = np.zeros(0, int)
    q_v = np.zeros(0)
    if sens_q is not None and qz_col is not None:
        q_r, q_f = np.nonzero(np.abs(sens_q) > 1e-12)
        q_c = qz_col[q_f, t[q_r]]
        keep = q_c >= 0
        q_r, q_c, q_v = q_r[keep], q_c[keep], sens_q[q_r[keep], q_f[keep]]
    slack = lp.add_cols(f"{name}_slack", 2 * n, 0.0, INF, penalty)
    r = np.arange(n)
    lp.add_rows(
        name,
        n,
        np.r_[nz_r, q_r, r, r],
        np.r_[z[nz_f * H + t[nz_r]], q_c, slack[:n], slack[n:]],
        np.r_[sens[nz_r, nz_f], q_v, np.ones(n), -np.ones(n)],
        lo,
        hi,
        meta=meta,
    )
    return slack


def add_network_rows(
    lp: LinearProgram,
    net: NetworkRows,
    z: np.ndarray,
    H: int,
    w,
    qz_col: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    v_slack = _sensitivity_rows(
        lp,
        "voltage",
        net.v_t,
        net.dv_dz,
        z,
        H,
        net.v_lo - net.v_offset,
        net.v_hi - net.v_offset,
        w.voltage_violation_eur_per_pu_step,
        np.c_[net.v_t, net.v_bus],
        net.dv_dq,
        qz_col,
    )
    l_slack = _sensitivity_rows(
        lp,
        "branch_loading",
        net.l_t,
        net.dl_dz,
        z,
        H,
        np.full(len(net.l_t), -INF),
        net.l_hi - net.l_offset,
        w.loading_violation_eur_per_pct_step,
        np.c_[net.l_t, net.l_branch],
        net.dl_dq,
        qz_col,
    )
    return v_slack, l_slack
