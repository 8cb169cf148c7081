"""Measurements of the grid state and the nonlinear measurement function ``z = h(x) + e``.

Values keep GridSync's units and the load convention, so a smart-meter reading is the bus
consumption in kW exactly as the rest of the code base uses it:

========  ==========================================  =========
kind      quantity                                    unit
========  ==========================================  =========
``VM``    bus voltage magnitude                       p.u.
``VA``    bus voltage angle (PMU, GPS-synchronised)   rad
``P``     bus active consumption (load convention)    kW
``Q``     bus reactive consumption                    kvar
``IRE``   branch current phasor at the from end, re   kA
``IIM``   branch current phasor at the from end, im   kA
========  ==========================================  =========

``loc`` is a feeder bus position for bus kinds and a branch index (``pf.branch_names``) for
current kinds. The state is polar: angles of every non-reference bus, then magnitudes of
every bus (pandapower's internal bus order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from gridsync.grid.powerflow import PowerFlowModel

VM, VA, P, Q, IRE, IIM = range(6)
KIND_NAMES = ("vm_pu", "va_rad", "p_kw", "q_kvar", "i_re_ka", "i_im_ka")
BUS_KINDS = (VM, VA, P, Q)


@dataclass
class MeasurementSet:
    """One snapshot of measurements (arrays of equal length ``m``).

    ``source`` is ``scada``, ``pmu``, ``meter``, ``pseudo`` or ``virtual`` (zero-injection
    buses); ``virtual`` rows are exact network facts and are never rejected as bad data.
    """

    kind: np.ndarray
    loc: np.ndarray
    value: np.ndarray
    std: np.ndarray
    source: np.ndarray

    def __post_init__(self) -> None:
        self.kind = np.asarray(self.kind, dtype=np.int64)
        self.loc = np.asarray(self.loc, dtype=np.int64)
        self.value = np.asarray(self.value, dtype=float)
        self.std = np.asarray(self.std, dtype=float)
        self.source = np.asarray(self.source, dtype=object)
        sizes = {len(a) for a in (self.kind, self.loc, self.value, self.std, self.source)}
        if len(sizes) != 1:
            msg = "MeasurementSet: kind, loc, value, std and source must have equal lengths"
            raise ValueError(msg)
        bad = np.flatnonzero((self.kind < 0) | (self.kind > IIM))
        if len(bad):
            msg = f"MeasurementSet.kind[{bad[0]}] = {self.kind[bad[0]]}: expected 0..5 (VM..IIM)"
            raise ValueError(msg)
        bad = np.flatnonzero(~(self.std > 0) | ~np.isfinite(self.std))
        if len(bad):
            msg = f"MeasurementSet.std[{bad[0]}] = {self.std[bad[0]]}: every std must be a positive finite number"
            raise ValueError(msg)
        bad = np.flatnonzero(~np.isfinite(self.value))
        if len(bad):
            msg = f"MeasurementSet.value[{bad[0]}] is {self.value[bad[0]]}: drop missing readings before estimating"
            raise ValueError(msg)

    def __len__(self) -> int:
        return len(self.kind)

    def subset(self, keep: np.ndarray) -> MeasurementSet:
        return MeasurementSet(
            self.kind[keep], self.loc[keep], self.value[keep], self.std[keep], self.source[keep]
        )

    def labels(self, bus_names: np.ndarray | None = None, branch_names=None) -> list[str]:
        """Readable names such as ``meter:p_kw@LV5.201 Bus 12``."""
        out = []
        for k, loc, src in zip(self.kind, self.loc, self.source, strict=True):
            if k in BUS_KINDS:
                where = bus_names[loc] if bus_names is not None else f"bus{loc}"
            else:
                where = branch_names[loc] if branch_names is not None else f"branch{loc}"
            out.append(f"{src}:{KIND_NAMES[k]}@{where}")
        return out


class MeasurementFunction:
    """``h(v)`` and its sparse Jacobian for one measurement layout on one network.

    The rows of ``Ybus``/``Yf`` that the measurements touch are selected once; each
    evaluation then works on their stored non-zeros as flat arrays (no per-measurement Python
    loop and no full-network sparse products).
    """

    def __init__(self, pf: PowerFlowModel, kind: np.ndarray, loc: np.ndarray) -> None:
        self.pf = pf
        self.n = pf.ybus.shape[0]
        kind = np.asarray(kind, dtype=np.int64)
        loc = np.asarray(loc, dtype=np.int64)
        n_bus_feeder = len(pf.ppc_of_bus)
        bus_rows = np.isin(kind, BUS_KINDS)
        bad = np.flatnonzero(bus_rows & ((loc < 0) | (loc >= n_bus_feeder)))
        if len(bad):
            msg = f"measurement {bad[0]}: bus position {loc[bad[0]]} outside 0..{n_bus_feeder - 1}"
            raise ValueError(msg)
        bad = np.flatnonzero(~bus_rows & ((loc < 0) | (loc >= pf.n_branch)))
        if len(bad):
            msg = f"measurement {bad[0]}: branch index {loc[bad[0]]} outside 0..{pf.n_branch - 1}"
            raise ValueError(msg)
        self.kind = kind
        self.m = len(kind)
        idx = np.where(bus_rows, pf.ppc_of_bus[np.where(bus_rows, loc, 0)], loc)
        self.idx = idx
        s_kw = 1e3 * pf.base_mva
        i_base = pf.i_base_from_ka[np.where(bus_rows, 0, loc)]
        # physical value = scale * per-unit quantity (P/Q flip sign: injection -> consumption)
        self.scale = np.select(
            [(kind == P) | (kind == Q), (kind == IRE) | (kind == IIM)], [-s_kw, i_base], 1.0
        )
        self.nonref = np.setdiff1d(np.arange(self.n), [pf.ref])
        n_va = len(self.nonref)
        self.n_state = n_va + self.n
        self.va_col = np.full(self.n, -1)
        self.va_col[self.nonref] = np.arange(n_va)
        self.rows = {k: np.flatnonzero(kind == k) for k in range(6)}
        # power rows: nonzeros of Ybus[idx] expanded per measurement row
        s_rows = np.flatnonzero((kind == P) | (kind == Q))
        self.s_rows = s_rows
        self.s_is_q = kind[s_rows] == Q
        ysel = pf.ybus[idx[s_rows]].tocoo()
        self.s_r, self.s_c, self.s_y = ysel.row, ysel.col, ysel.data
        self.s_diag = self.s_c == idx[s_rows][self.s_r]
        i_rows = np.flatnonzero((kind == IRE) | (kind == IIM))
        self.i_rows = i_rows
        self.i_is_im = kind[i_rows] == IIM
        fsel = pf.yf[idx[i_rows]].tocoo()
        self.i_r, self.i_c, self.i_y = fsel.row, fsel.col, fsel.data
        self._ybus_s = pf.ybus[idx[s_rows]]
        self._yf_i = pf.yf[idx[i_rows]]

    def state_to_v(self, x: np.ndarray, va_ref: float) -> np.ndarray:
        va = np.full(self.n, va_ref)
        va[self.nonref] = x[: len(self.nonref)]
        return x[len(self.nonref) :] * np.exp(1j * va)

    def v_to_state(self, v: np.ndarray) -> np.ndarray:
        return np.r_[np.angle(v)[self.nonref], np.abs(v)]

    def h(self, v: np.ndarray) -> np.ndarray:
        """Measurement values (physical units) implied by complex bus voltages ``v``."""
        out = np.zeros(self.m)
        r = self.rows
        out[r[VM]] = np.abs(v[self.idx[r[VM]]])
        out[r[VA]] = np.angle(v[self.idx[r[VA]]])
        s = v[self.idx[self.s_rows]] * np.conj(self._ybus_s @ v)
        out[self.s_rows] = np.where(self.s_is_q, s.imag, s.real)
        cur = self._yf_i @ v
        out[self.i_rows] = np.where(self.i_is_im, cur.imag, cur.real)
        return out * self.scale

    def jacobian(self, v: np.ndarray) -> sp.csr_matrix:
        """d h / d x for x = (angles of non-reference buses, all magnitudes), physical units."""
        n_va = len(self.nonref)
        vnorm = v / np.abs(v)
        rows, cols, vals = [], [], []

        def put(r, c_bus, d_va, d_vm):
            va_c = self.va_col[c_bus]
            keep = va_c >= 0
            rows.extend((r[keep], r))
            cols.extend((va_c[keep], n_va + c_bus))
            vals.extend((d_va[keep], d_vm))

        for k, d_va, d_vm in ((VM, 0.0, 1.0), (VA, 1.0, 0.0)):
            r = self.rows[k]
            ones = np.ones(len(r))
            put(r, self.idx[r], d_va * ones, d_vm * ones)
        if len(self.s_rows):
            bus = self.idx[self.s_rows][self.s_r]
            vi, vc = v[bus], v[self.s_c]
            d_va = -1j * vi * np.conj(self.s_y * vc)
            d_vm = vi * np.conj(self.s_y * vnorm[self.s_c])
            ibus = self._ybus_s @ v
            i_i = ibus[self.s_r]
            d_va = d_va + np.where(self.s_diag, 1j * vi * np.conj(i_i), 0.0)
            d_vm = d_vm + np.where(self.s_diag, np.conj(i_i) * vnorm[bus], 0.0)
            q = self.s_is_q[self.s_r]
            put(
                self.s_rows[self.s_r],
                self.s_c,
                np.where(q, d_va.imag, d_va.real),
                np.where(q, d_vm.imag, d_vm.real),
            )
        if len(self.i_rows):
            d_va = self.i_y * 1j * v[self.i_c]
            d_vm = self.i_y * vnorm[self.i_c]
            im = self.i_is_im[self.i_r]
            put(
                self.i_rows[self.i_r],
                self.i_c,
                np.where(im, d_va.imag, d_va.real),
                np.where(im, d_vm.imag, d_vm.real),
            )
        r = np.concatenate(rows)
        data = np.concatenate(vals) * self.scale[r]
        return sp.csr_matrix((data, (r, np.concatenate(cols))), shape=(self.m, self.n_state))
