"""Synthetic telemetry from the twin: SCADA, PMU and smart-meter readings of a true state.

A ``MeasurementPlan`` fixes which devices exist (placed from the feeder topology and a seed);
``plan.readings(truth)`` turns a true trajectory into noisy, delayed, held and dropped readings
(NaN = nothing arrived); ``plan.snapshot(readings, step)`` assembles what an estimator sees at
one step: the arrived readings with their effective uncertainty, pseudo-measurements for
unmetered or silent customer buses, and exact zero injections at buses without customers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import shortest_path

from gridsync.grid.estimation.measurements import (
    IIM,
    IRE,
    VA,
    VM,
    MeasurementFunction,
    MeasurementSet,
    P,
    Q,
)
from gridsync.grid.powerflow import PowerFlowModel


@dataclass(frozen=True)
class MeasurementConfig:
    """Device accuracy and behaviour. Std = sqrt(abs^2 + (frac * |value|)^2).

    Defaults follow common device classes: SCADA transducers class 0.5 (voltage std ~0.25 %),
    micro-PMUs (0.05 % magnitude, 0.01 deg angle), smart meters class 1 energy plus 0.5 %
    voltage, delivered one 15-minute interval late with a few percent of readings lost.
    """

    scada_std_vm_pu: float = 0.0025
    scada_std_power_frac: float = 0.01
    scada_std_power_kw: float = 1.0
    scada_dropout_prob: float = 0.005
    pmu_count: int = 4
    pmu_std_vm_pu: float = 0.0005
    pmu_std_va_rad: float = 1.7e-4
    pmu_std_current_frac: float = 0.005
    pmu_dropout_prob: float = 0.002
    meter_share: float = 0.75
    meter_std_power_frac: float = 0.01
    meter_std_power_kw: float = 0.02
    meter_std_vm_pu: float = 0.0025
    meter_latency_steps: int = 1
    meter_period_steps: int = 1
    meter_dropout_prob: float = 0.03
    pseudo_min_std_kw: float = 0.3
    virtual_std_kw: float = 1e-3
    seed: int = 7

    def __post_init__(self) -> None:
        for name in ("meter_share",):
            val = getattr(self, name)
            if not 0.0 <= val <= 1.0:
                msg = f"MeasurementConfig.{name} = {val}: expected a fraction in [0, 1]"
                raise ValueError(msg)
        for name in ("meter_latency_steps", "pmu_count"):
            if getattr(self, name) < 0:
                msg = f"MeasurementConfig.{name} = {getattr(self, name)}: expected >= 0"
                raise ValueError(msg)
        if self.meter_period_steps < 1:
            msg = f"MeasurementConfig.meter_period_steps = {self.meter_period_steps}: expected >= 1"
            raise ValueError(msg)


@dataclass
class Truth:
    """A true trajectory: complex voltages (T, n_internal_bus) and bus consumption (T, n_bus)."""

    v: np.ndarray
    p_kw: np.ndarray
    q_kvar: np.ndarray


def truth_from_loads(pf: PowerFlowModel, p_kw: np.ndarray, q_kvar: np.ndarray) -> Truth:
    """Solve the AC power flow for every row of bus consumption and return the true states."""
    res = pf.solve_batch(p_kw, q_kvar)
    v = np.tile(pf.v_init, (len(p_kw), 1)).astype(complex)
    v[:, pf.ppc_of_bus] = res.vm_pu * np.exp(1j * np.radians(res.va_deg))
    return Truth(v=v, p_kw=np.asarray(p_kw, float), q_kvar=np.asarray(q_kvar, float))


def _electrical_distance(pf: PowerFlowModel) -> np.ndarray:
    """Series-impedance path length from the reference bus to every internal bus."""
    f = pf.branch_from_pos
    t = pf.branch_to_pos
    z = 1.0 / np.maximum(np.abs(_branch_y(pf)), 1e-12)
    n = len(pf.ppc_of_bus)
    graph = sp.csr_matrix((z, (f, t)), shape=(n, n))
    slack_pos = int(np.flatnonzero(pf.ppc_of_bus == pf.ref)[0])
    return shortest_path(graph, directed=False, indices=slack_pos)


def _branch_y(pf: PowerFlowModel) -> np.ndarray:
    f = pf.ppc_of_bus[pf.branch_from_pos]
    t = pf.ppc_of_bus[pf.branch_to_pos]
    return -np.asarray(pf.ybus[f, t]).ravel()


class MeasurementPlan:
    """The devices on a feeder and how their readings are produced and weighted.

    Device rows (``kind``, ``loc``, ``source``) are fixed; ``readings`` produces a (T, m) array.
    ``customer_buses`` are feeder positions that carry load; every other non-slack bus is a
    zero-injection bus and gets exact virtual measurements.
    """

    def __init__(
        self,
        pf: PowerFlowModel,
        slack_pos: int,
        customer_buses: np.ndarray,
        config: MeasurementConfig | None = None,
    ) -> None:
        cfg = config or MeasurementConfig()
        self.pf, self.cfg = pf, cfg
        self.slack_pos = slack_pos
        rng = np.random.default_rng(cfg.seed)
        n_bus = len(pf.ppc_of_bus)
        self.customer_buses = np.unique(customer_buses)
        kind, loc, src = [], [], []
        std_abs, std_frac, latency, period, dropout = [], [], [], [], []

        def add(k, where, source, s_abs, s_frac, lat=0, per=1, drop=0.0):
            where = np.atleast_1d(where)
            kind.append(np.full(len(where), k))
            loc.append(where)
            src.append(np.full(len(where), source, dtype=object))
            for lst, val in (
                (std_abs, s_abs),
                (std_frac, s_frac),
                (latency, lat),
                (period, per),
                (dropout, drop),
            ):
                lst.append(np.full(len(where), val, dtype=float))

        # SCADA at the feeder head: P, Q, |V| at the slack and at the transformer's LV bus
        head_branch = self._head_branch(slack_pos)
        lv_bus = int(
            pf.branch_to_pos[head_branch]
            if pf.branch_from_pos[head_branch] == slack_pos
            else pf.branch_from_pos[head_branch]
        )
        self.head_branch = head_branch
        add(
            P,
            slack_pos,
            "scada",
            cfg.scada_std_power_kw,
            cfg.scada_std_power_frac,
            drop=cfg.scada_dropout_prob,
        )
        add(
            Q,
            slack_pos,
            "scada",
            cfg.scada_std_power_kw,
            cfg.scada_std_power_frac,
            drop=cfg.scada_dropout_prob,
        )
        add(VM, [slack_pos, lv_bus], "scada", cfg.scada_std_vm_pu, 0.0, drop=cfg.scada_dropout_prob)
        # PMUs: substation LV bus (with the transformer current) and the electrically farthest buses
        dist = _electrical_distance(pf)
        far = [b for b in np.argsort(-dist) if b != slack_pos and b != lv_bus]
        pmu_buses = np.array([lv_bus, *far[: max(cfg.pmu_count - 1, 0)]])[: cfg.pmu_count]
        self.pmu_buses = pmu_buses
        if len(pmu_buses):
            add(VM, pmu_buses, "pmu", cfg.pmu_std_vm_pu, 0.0, drop=cfg.pmu_dropout_prob)
            add(VA, pmu_buses, "pmu", cfg.pmu_std_va_rad, 0.0, drop=cfg.pmu_dropout_prob)
            i_std = cfg.pmu_std_current_frac
            add(IRE, head_branch, "pmu", 1e-5, i_std, drop=cfg.pmu_dropout_prob)
            add(IIM, head_branch, "pmu", 1e-5, i_std, drop=cfg.pmu_dropout_prob)
        # smart meters on a share of customer buses: P, Q and |V|
        n_meter = int(round(cfg.meter_share * len(self.customer_buses)))
        self.meter_buses = np.sort(rng.choice(self.customer_buses, n_meter, replace=False))
        for k, s_abs, s_frac in (
            (P, cfg.meter_std_power_kw, cfg.meter_std_power_frac),
            (Q, cfg.meter_std_power_kw, cfg.meter_std_power_frac),
            (VM, cfg.meter_std_vm_pu, 0.0),
        ):
            add(
                k,
                self.meter_buses,
                "meter",
                s_abs,
                s_frac,
                cfg.meter_latency_steps,
                cfg.meter_period_steps,
                cfg.meter_dropout_prob,
            )
        self.kind = np.concatenate(kind).astype(np.int64)
        self.loc = np.concatenate(loc).astype(np.int64)
        self.source = np.concatenate(src)
        self.std_abs = np.concatenate(std_abs)
        self.std_frac = np.concatenate(std_frac)
        self.latency = np.concatenate(latency).astype(int)
        self.period = np.concatenate(period).astype(int)
        self.dropout = np.concatenate(dropout)
        self.fn = MeasurementFunction(pf, self.kind, self.loc)
        others = np.setdiff1d(np.arange(n_bus), np.r_[self.customer_buses, slack_pos])
        self.zero_buses = others
        self.seed = cfg.seed
        self._drift = np.zeros(len(self.kind))
        self._pseudo_std = None

    def _head_branch(self, slack_pos: int) -> int:
        pf = self.pf
        at_slack = np.flatnonzero(
            (pf.branch_from_pos == slack_pos) | (pf.branch_to_pos == slack_pos)
        )
        if len(at_slack) == 0:
            msg = f"no branch is connected to the slack bus (position {slack_pos})"
            raise ValueError(msg)
        return int(at_slack[0])

    def __len__(self) -> int:
        return len(self.kind)

    def exact(self, truth: Truth) -> np.ndarray:
        """Noise-free device values (T, m) for a true trajectory."""
        return np.array([self.fn.h(v) for v in truth.v])

    def calibrate(self, truth: Truth, pseudo_p_kw: np.ndarray, pseudo_q_kvar: np.ndarray) -> None:
        """Learn from a history of true states how fast each reading drifts per step (weights
        of stale readings) and how wrong the pseudo-measurements are (their std per bus).

        ``pseudo_p_kw``/``pseudo_q_kvar`` (T, n_bus) are the pseudo-measurements the operator
        would have had over the same history (e.g. last day's load minus PV from irradiance).
        Both are sized on the 99th percentile of absolute error / 2.576, because load steps
        are heavy-tailed and a plain std would under-weight them.
        """
        ex = self.exact(truth)
        self._drift = np.nanpercentile(np.abs(np.diff(ex, axis=0)), 99, axis=0) / 2.576
        floor = self.cfg.pseudo_min_std_kw

        def tail_std(err: np.ndarray) -> np.ndarray:
            return np.maximum(np.percentile(np.abs(err), 99, axis=0) / 2.576, floor)

        self._pseudo_std = (
            tail_std(pseudo_p_kw - truth.p_kw),
            tail_std(pseudo_q_kvar - truth.q_kvar),
        )

    def readings(self, truth: Truth, rng: np.random.Generator | None = None) -> np.ndarray:
        """Noisy readings (T, m) as they arrive: latency, hold between updates, dropouts (NaN)."""
        rng = rng or np.random.default_rng(self.seed + 1)
        ex = self.exact(truth)
        n_t = len(ex)
        noisy = self.with_noise(ex, rng)
        t = np.arange(n_t)[:, None]
        sampled = (t - (t % self.period)) - self.latency
        out = np.take_along_axis(noisy, np.clip(sampled, 0, n_t - 1), axis=0)
        out[sampled < 0] = np.nan
        out[rng.random(out.shape) < self.dropout] = np.nan
        return out

    def with_noise(self, exact: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Device values ``exact`` (T, m) plus each device's noise (absolute + relative std)."""
        std = np.sqrt(self.std_abs**2 + (self.std_frac * exact) ** 2)
        return exact + rng.standard_normal(exact.shape) * std

    def align(self, readings: np.ndarray) -> np.ndarray:
        """Readings re-indexed by the time they describe instead of the time they arrived.

        Row ``t`` of the result holds every device's reading *of* step ``t`` (a meter's comes
        from row ``t + latency`` of ``readings``); NaN where it never arrived or has not
        arrived yet. A snapshot of these rows (``snapshot(..., aligned=True)``) is
        synchronous: every reading refers to the same instant, so its residuals carry device
        noise only and the chi-squared test holds at its nominal significance.
        """
        n_t = len(readings)
        src = np.arange(n_t)[:, None] + self.latency[None, :]
        ok = src < n_t
        out = np.take_along_axis(readings, np.where(ok, src, 0), axis=0)
        out[~ok] = np.nan
        return out

    def device_std(self, values: np.ndarray, step: int, aligned: bool = False) -> np.ndarray:
        """Effective std of device readings at ``step``: device noise plus drift while stale
        (the latency counts unless the readings were ``align``-ed to the time they describe)."""
        age = (0 if aligned else self.latency) + (step % self.period)
        base = np.sqrt(self.std_abs**2 + (self.std_frac * values) ** 2)
        return np.sqrt(base**2 + age * self._drift**2)

    def snapshot(
        self,
        readings: np.ndarray,
        step: int,
        pseudo_p_kw: np.ndarray,
        pseudo_q_kvar: np.ndarray,
        aligned: bool = False,
    ) -> MeasurementSet:
        """What an estimator has at ``step``: arrived readings, pseudo and virtual measurements.

        ``pseudo_p_kw``/``pseudo_q_kvar`` (n_bus,) are this step's pseudo-measurements; they are
        used at customer buses whose meter is absent or silent. With ``aligned=True``,
        ``readings`` come from ``align`` (every reading of ``step`` itself, so delayed readings
        carry no staleness); otherwise late readings are weighted down by their drift.
        """
        if self._pseudo_std is None:
            msg = "MeasurementPlan.snapshot: call calibrate(...) on a history first"
            raise RuntimeError(msg)
        row = readings[step]
        ok = np.isfinite(row)
        have_p = np.zeros(len(self.pf.ppc_of_bus), dtype=bool)
        have_q = np.zeros_like(have_p)
        have_p[self.loc[ok & (self.kind == P)]] = True
        have_q[self.loc[ok & (self.kind == Q)]] = True
        cb = self.customer_buses
        p_missing = cb[~have_p[cb]]
        q_missing = cb[~have_q[cb]]
        p_std, q_std = self._pseudo_std
        zb = self.zero_buses
        n_pseudo = len(p_missing) + len(q_missing)
        return MeasurementSet(
            kind=np.r_[
                self.kind[ok],
                np.full(len(p_missing), P),
                np.full(len(q_missing), Q),
                np.full(len(zb), P),
                np.full(len(zb), Q),
            ],
            loc=np.r_[self.loc[ok], p_missing, q_missing, zb, zb],
            value=np.r_[
                row[ok], pseudo_p_kw[p_missing], pseudo_q_kvar[q_missing], np.zeros(2 * len(zb))
            ],
            std=np.r_[
                self.device_std(row, step, aligned)[ok],
                p_std[p_missing],
                q_std[q_missing],
                np.full(2 * len(zb), self.cfg.virtual_std_kw),
            ],
            source=np.r_[
                self.source[ok],
                np.full(n_pseudo, "pseudo", dtype=object),
                np.full(2 * len(zb), "virtual", dtype=object),
            ],
        )
