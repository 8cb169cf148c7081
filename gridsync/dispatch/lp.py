"""A thin sparse-LP builder over HiGHS: blocks of columns and rows added as whole arrays.

Formulations add columns and rows block by block (never one at a time), as COO triples that
are turned into one CSR matrix at solve time, so build time scales with numpy, not with the
Python interpreter. Each block keeps its name and per-row metadata so duals can be reported
against the constraint that produced them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import highspy
import numpy as np
import scipy.sparse as sp

INF = highspy.kHighsInf


@dataclass
class RowBlock:
    """Rows ``start .. start + n - 1`` of one constraint family; ``meta`` is (n, k) ints."""

    name: str
    start: int
    n: int
    meta: np.ndarray | None = None


@dataclass
class LPResult:
    """Outcome of one solve. ``status`` is ``optimal``, ``time_limit``, ``infeasible``,
    ``unbounded`` or ``error``; arrays are empty unless a primal solution exists."""

    status: str
    message: str
    objective: float = float("nan")
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    row_value: np.ndarray = field(default_factory=lambda: np.zeros(0))
    row_dual: np.ndarray = field(default_factory=lambda: np.zeros(0))
    col_dual: np.ndarray = field(default_factory=lambda: np.zeros(0))
    solve_s: float = 0.0
    iterations: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "optimal"


def _full(value, n: int) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, dtype=float), (n,))
    return np.ascontiguousarray(arr)


class LinearProgram:
    """Minimise ``cost @ x`` subject to ``row_lo <= A x <= row_hi`` and column bounds."""

    def __init__(self) -> None:
        self.n_col = 0
        self.n_row = 0
        self._lb: list[np.ndarray] = []
        self._ub: list[np.ndarray] = []
        self._cost: list[np.ndarray] = []
        self._r: list[np.ndarray] = []
        self._c: list[np.ndarray] = []
        self._v: list[np.ndarray] = []
        self._rlo: list[np.ndarray] = []
        self._rhi: list[np.ndarray] = []
        self.col_blocks: dict[str, tuple[int, int]] = {}
        self.row_blocks: dict[str, RowBlock] = {}
        self.offset = 0.0

    def add_cols(self, name: str, n: int, lb=0.0, ub=INF, cost=0.0) -> np.ndarray:
        """Add ``n`` columns; returns their indices. Bounds and costs broadcast."""
        idx = np.arange(self.n_col, self.n_col + n)
        self._lb.append(_full(lb, n))
        self._ub.append(_full(ub, n))
        self._cost.append(_full(cost, n))
        self.col_blocks[name] = (self.n_col, n)
        self.n_col += n
        return idx

    def add_rows(
        self,
        name: str,
        n: int,
        rows: np.ndarray,
        cols: np.ndarray,
        vals,
        lo=-INF,
        hi=INF,
        meta: np.ndarray | None = None,
    ) -> np.ndarray:
        """Add ``n`` rows from COO triples; ``rows`` are local (0..n-1). Returns row indices."""
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        if len(rows) != len(cols):
            msg = f"row block {name!r}: {len(rows)} row indices but {len(cols)} column indices"
            raise ValueError(msg)
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            msg = f"row block {name!r}: local row index outside 0..{n - 1}"
            raise ValueError(msg)
        self._r.append(rows + self.n_row)
        self._c.append(cols)
        self._v.append(_full(vals, len(rows)))
        self._rlo.append(_full(lo, n))
        self._rhi.append(_full(hi, n))
        if name in self.row_blocks:
            msg = f"row block {name!r} added twice"
            raise ValueError(msg)
        self.row_blocks[name] = RowBlock(name, self.n_row, n, meta)
        idx = np.arange(self.n_row, self.n_row + n)
        self.n_row += n
        return idx

    def add_entries(self, rows: np.ndarray, cols: np.ndarray, vals) -> None:
        """Add coefficients to rows that already exist (global row indices)."""
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        if len(rows) != len(cols):
            msg = f"add_entries: {len(rows)} row indices but {len(cols)} column indices"
            raise ValueError(msg)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.n_row):
            msg = f"add_entries: row index outside 0..{self.n_row - 1}"
            raise ValueError(msg)
        self._r.append(rows)
        self._c.append(cols)
        self._v.append(_full(vals, len(rows)))

    def fix(self, cols: np.ndarray, values: np.ndarray) -> None:
        """Pin columns to given values (lower = upper bound), e.g. to price a fixed plan."""
        self.set_col_bounds(cols, values, values)

    def set_col_bounds(self, cols: np.ndarray, lb, ub) -> None:
        """Replace the bounds of existing columns."""
        lo, hi, _, _ = self.bounds()
        lo[cols] = lb
        hi[cols] = ub
        self._lb, self._ub = [lo], [hi]

    def add_cost(self, cols: np.ndarray, cost) -> None:
        """Add ``cost`` to the objective coefficients of existing columns."""
        total = self.cost
        np.add.at(total, np.asarray(cols, dtype=np.int64), _full(cost, len(cols)))
        self._cost = [total]

    def cols(self, name: str) -> np.ndarray:
        start, n = self.col_blocks[name]
        return np.arange(start, start + n)

    @property
    def cost(self) -> np.ndarray:
        return np.concatenate(self._cost) if self._cost else np.zeros(0)

    def matrix(self) -> sp.csr_matrix:
        r = np.concatenate(self._r) if self._r else np.zeros(0, dtype=np.int64)
        c = np.concatenate(self._c) if self._c else np.zeros(0, dtype=np.int64)
        v = np.concatenate(self._v) if self._v else np.zeros(0)
        return sp.csr_matrix((v, (r, c)), shape=(self.n_row, self.n_col))

    def bounds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0)  # noqa: E731
        return cat(self._lb), cat(self._ub), cat(self._rlo), cat(self._rhi)

    def solve(
        self,
        time_limit_s: float = 30.0,
        solver: str = "choose",
        options: dict | None = None,
    ) -> LPResult:
        """Solve with HiGHS within ``time_limit_s``; never raises on solver trouble.

        ``options`` are further HiGHS options by name (e.g. ``{"run_crossover": "off"}``)."""
        t0 = time.perf_counter()
        a = self.matrix()
        a.sum_duplicates()
        lb, ub, rlo, rhi = self.bounds()
        lp = highspy.HighsLp()
        lp.num_col_ = self.n_col
        lp.num_row_ = self.n_row
        lp.col_cost_ = self.cost
        lp.col_lower_ = lb
        lp.col_upper_ = ub
        lp.row_lower_ = rlo
        lp.row_upper_ = rhi
        lp.offset_ = self.offset
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.num_col_ = self.n_col
        lp.a_matrix_.num_row_ = self.n_row
        lp.a_matrix_.start_ = a.indptr.astype(np.int32)
        lp.a_matrix_.index_ = a.indices.astype(np.int32)
        lp.a_matrix_.value_ = a.data
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("time_limit", float(max(time_limit_s, 0.0)))
        h.setOptionValue("threads", 1)
        for name, value in {"solver": solver, **(options or {})}.items():
            if h.setOptionValue(name, value) != highspy.HighsStatus.kOk:
                msg = f"HiGHS option {name!r}: value {value!r} was rejected"
                raise ValueError(msg)
        try:
            h.passModel(lp)
            h.run()
        except Exception as err:  # HiGHS raises plain exceptions on internal errors
            return LPResult("error", f"HiGHS failed: {err}", solve_s=time.perf_counter() - t0)
        status = h.getModelStatus()
        ms = highspy.HighsModelStatus
        text = h.modelStatusToString(status)
        info = h.getInfo()
        iters = int(info.simplex_iteration_count + info.ipm_iteration_count)
        elapsed = time.perf_counter() - t0
        if status == ms.kOptimal:
            sol = h.getSolution()
            return LPResult(
                "optimal",
                text,
                objective=float(info.objective_function_value),
                x=np.asarray(sol.col_value),
                row_value=np.asarray(sol.row_value),
                row_dual=np.asarray(sol.row_dual),
                col_dual=np.asarray(sol.col_dual),
                solve_s=elapsed,
                iterations=iters,
            )
        kind = {
            ms.kTimeLimit: "time_limit",
            ms.kInfeasible: "infeasible",
            ms.kUnbounded: "unbounded",
            ms.kUnboundedOrInfeasible: "infeasible",
        }.get(status, "error")
        return LPResult(kind, text, solve_s=elapsed, iterations=iters)
