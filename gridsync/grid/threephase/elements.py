"""Primitive admittances of three-phase elements (SI units: ohm, siemens, volt).

* lines: series impedance and shunt capacitance matrices per unit length, from phase
  matrices or sequence values; a neutral (or any conductor not kept) is eliminated by Kron
  reduction, which assumes it at ground potential at both ends (multi-grounded neutral).
* two-winding transformers per phase coil, wye or delta, with off-nominal taps.
* a Thevenin source (balanced EMF behind a sequence-impedance matrix).
"""

from __future__ import annotations

import numpy as np

SQRT3 = np.sqrt(3.0)
A_OP = np.exp(2j * np.pi / 3)  # the operator a = 1 at 120 degrees


def sequence_to_phase(z1: complex, z0: complex, n: int) -> np.ndarray:
    """Phase matrix (n x n) of a transposed element from positive- and zero-sequence values:
    self = (2 z1 + z0) / 3, mutual = (z0 - z1) / 3."""
    zs, zm = (2 * z1 + z0) / 3, (z0 - z1) / 3
    return np.full((n, n), zm, dtype=complex) + np.eye(n) * (zs - zm)


def kron_reduce(z: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Eliminate the conductors not in ``keep`` (boolean mask), e.g. a grounded neutral:
    Z_pp - Z_pn Z_nn^-1 Z_np."""
    keep = np.asarray(keep, dtype=bool)
    zpp = z[np.ix_(keep, keep)]
    if keep.all():
        return zpp
    zpn, znn = z[np.ix_(keep, ~keep)], z[np.ix_(~keep, ~keep)]
    return zpp - zpn @ np.linalg.solve(znn, z[np.ix_(~keep, keep)])


def line_yprim(z_series_ohm: np.ndarray, y_shunt_s: np.ndarray) -> np.ndarray:
    """Terminal admittance (2n x 2n, from-conductors first) of a pi-section with the shunt
    admittance split half to each end."""
    ys = np.linalg.inv(z_series_ohm)
    n = len(ys)
    out = np.empty((2 * n, 2 * n), dtype=complex)
    out[:n, :n] = out[n:, n:] = ys + y_shunt_s / 2
    out[:n, n:] = out[n:, :n] = -ys
    return out


def coil_pair_admittance(
    z_pu: complex, s_phase_va: float, v_coil_v: tuple[float, float], tap: tuple[float, float]
) -> np.ndarray:
    """2 x 2 admittance (S) between the two coils of one phase of a two-winding transformer.

    ``z_pu`` is the short-circuit impedance on winding 1's rating ``s_phase_va`` (per coil);
    the windings' rated coil voltages are ``v_coil_v`` and their taps ``tap`` (p.u.), so the
    no-load ratio is v1 t1 : v2 t2 and the impedance is on the tapped bases.
    """
    n = np.array([v_coil_v[0] * tap[0], v_coil_v[1] * tap[1]])
    y = s_phase_va / z_pu
    return y * np.array([[1 / n[0] ** 2, -1 / (n[0] * n[1])], [-1 / (n[0] * n[1]), 1 / n[1] ** 2]])


def transformer_yprim(
    coils: list[list[tuple[int, int]]], coil_y: np.ndarray, n_terminal: int
) -> np.ndarray:
    """Terminal admittance of a transformer made of per-phase coil pairs.

    ``coils[w][k]`` = (terminal a, terminal b) of winding ``w``'s coil of phase ``k``; the coil
    voltage is V_a - V_b. ``coil_y`` is the 2 x 2 coil-pair admittance (same for every phase).
    """
    y = np.zeros((n_terminal, n_terminal), dtype=complex)
    n_phase = len(coils[0])
    for k in range(n_phase):
        inc = np.zeros((2, n_terminal))
        for w in range(2):
            a, b = coils[w][k]
            inc[w, a] += 1.0
            inc[w, b] -= 1.0
        y += inc.T @ coil_y @ inc
    return y


def source_impedance_ohm(
    kv_ll: float, mvasc3: float, mvasc1: float, x1r1: float, x0r0: float, n_phase: int = 3
) -> tuple[complex, complex]:
    """Positive- and zero-sequence impedance (ohm) of a source from its short-circuit powers,
    as OpenDSS defines them: |Z1| = kV^2 / MVAsc3 with X1 = x1r1 R1, and the single-phase
    fault current Isc1 = MVAsc1 / (factor kV) = 3 V_ln / |2 Z1 + Z0| solved for R0 with
    X0 = x0r0 R0 (factor = sqrt(3) for three-phase sources)."""
    factor = 1.0 if n_phase == 1 else SQRT3
    x1 = kv_ll**2 / mvasc3 / np.sqrt(1.0 + 1.0 / x1r1**2)
    r1 = x1 / x1r1
    isc1_a = mvasc1 * 1000.0 / (factor * kv_ll)
    # |(2 r1 + r0) + j (2 x1 + x0r0 r0)| = 3 V_ln / Isc1, a quadratic in r0 (positive root)
    a = 1.0 + x0r0**2
    b = 4.0 * (r1 + x1 * x0r0)
    c = 4.0 * (r1**2 + x1**2) - (3.0 * kv_ll * 1000.0 / factor / isc1_a) ** 2
    r0 = (-b + np.sqrt(b * b - 4 * a * c)) / (2 * a)
    return complex(r1, x1), complex(r0, r0 * x0r0)


def vuf_pct(v_abc: np.ndarray) -> np.ndarray:
    """Voltage unbalance factor |V2| / |V1| in percent from phase voltages on the last axis
    (..., 3); IEC 61000-2-2 / EN 50160 limit 2 % (10-minute values)."""
    va, vb, vc = v_abc[..., 0], v_abc[..., 1], v_abc[..., 2]
    v1 = va + A_OP * vb + A_OP**2 * vc
    v2 = va + A_OP**2 * vb + A_OP * vc
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * np.abs(v2) / np.abs(v1)
