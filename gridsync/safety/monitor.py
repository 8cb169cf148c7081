"""The anomaly monitor: detectors on time-aligned telemetry, thresholds from a per-step
false-alarm budget, and alerts that name the measurements most likely at fault.

``AnomalyMonitor.fit`` learns from clean windows (two disjoint sets of steps: one fits the
scales and the isolation forest, the other sets the thresholds), then ``scores`` /
``alarms`` / ``alerts`` run on any window. The budget (``AnomalyConfig``) is split evenly over
the detectors, so the monitor as a whole alarms on at most that share of clean steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import IsolationForest

from gridsync.grid.estimation.measurements import MeasurementSet
from gridsync.grid.estimation.twin import MeasurementPlan
from gridsync.grid.powerflow import PowerFlowModel
from gridsync.safety.alerts import AnomalyAlert, DetectorEvidence, Suspect
from gridsync.safety.config import (
    AnomalyConfig,
    TailThreshold,
    load_anomaly_config,
    raise_if_stopped,
)
from gridsync.safety.detectors import (
    Score,
    cusum,
    dropout_limits,
    forward_fill,
    innovations,
    jump_scores,
    series_scores,
    spike_scale,
)
from gridsync.safety.features import DEVICE_SOURCES, SnapshotAnalyzer, SnapshotFeatures

CALIBRATED = (
    "chi2",
    "lnr",
    "pmu",
    "pmu_cusum",
    "load_jump",
    "spike",
    "sustained",
    "isolation_forest",
)
ANALYTIC = ("dropout_count", "dropout_run", "frozen")
# detectors whose per-row scores point at a suspect measurement (the rest point at a device set)
ROW_DETECTORS = ("lnr", "load_jump", "spike", "sustained", "frozen", "dropout_run")
# the snapshot estimator can name a row whose residual keeps this share of its error variance
MIN_REDUNDANCY = 0.1


@dataclass
class Window:
    """One stretch of telemetry by reference step: ``aligned`` readings (``plan.align``), the
    forecasts used as pseudo-measurements, each step's time-of-day class (``tod_block``) and
    the estimator evidence of the scored steps."""

    plan: MeasurementPlan
    aligned: np.ndarray
    pseudo_p_kw: np.ndarray
    pseudo_q_kvar: np.ndarray
    tod: np.ndarray
    feats: SnapshotFeatures

    def with_readings(self, aligned: np.ndarray, feats: SnapshotFeatures) -> Window:
        return Window(self.plan, aligned, self.pseudo_p_kw, self.pseudo_q_kvar, self.tod, feats)

    def sliced(self, sl: slice) -> Window:
        """The steps ``sl`` of this window."""
        f = self.feats
        feats = SnapshotFeatures(f.chi2_z[sl], f.rn[sl], f.pmu_z[sl], f.converged[sl])
        return Window(
            self.plan,
            self.aligned[sl],
            self.pseudo_p_kw[sl],
            self.pseudo_q_kvar[sl],
            self.tod[sl],
            feats,
        )


class AnomalyMonitor:
    def __init__(
        self,
        pf: PowerFlowModel,
        plan: MeasurementPlan,
        config: AnomalyConfig | None = None,
        bus_names: np.ndarray | None = None,
    ) -> None:
        """``bus_names`` (by feeder position) name the suspects in alerts."""
        self.pf, self.plan = pf, plan
        rows = MeasurementSet(
            plan.kind, plan.loc, np.zeros(len(plan)), np.ones(len(plan)), plan.source
        )
        self.labels = rows.labels(bus_names, pf.branch_names)
        self.cfg = config or load_anomaly_config()
        self.analyzer = SnapshotAnalyzer(pf, plan)
        self.device = np.isin(plan.source, DEVICE_SOURCES)
        self.thresholds: dict[str, float] = {}
        self.redundancy = np.full(len(plan), np.nan)
        self._forest: IsolationForest | None = None

    @property
    def rate_per_detector(self) -> float:
        return self.cfg.false_alarm_budget_per_step / (len(CALIBRATED) + len(ANALYTIC))

    def window(
        self,
        plan: MeasurementPlan,
        aligned,
        pseudo_p_kw,
        pseudo_q_kvar,
        tod: np.ndarray,
        steps: np.ndarray,
        stop=None,
    ) -> Window:
        """Run the estimator on ``steps`` of an aligned window (the slow part: ~15 ms/step).
        ``plan`` is the window's own calibration of this monitor's device layout; a set
        ``stop`` event ends it between steps (``FitCancelled``)."""
        self.analyzer.plan = plan
        feats = self.analyzer.analyze(aligned, pseudo_p_kw, pseudo_q_kvar, steps, stop=stop)
        return Window(plan, aligned, pseudo_p_kw, pseudo_q_kvar, tod, feats)

    def refresh(self, w: Window, aligned: np.ndarray, steps: np.ndarray) -> Window:
        """``w`` with some readings changed: the estimator re-runs on ``steps`` only."""
        self.analyzer.plan = w.plan
        feats = self.analyzer.analyze(
            aligned, w.pseudo_p_kw, w.pseudo_q_kvar, steps, out=w.feats.copy()
        )
        return w.with_readings(aligned, feats)

    # --- scores ------------------------------------------------------------------------
    def scores(self, w: Window) -> dict[str, Score]:
        innov = innovations(self.plan, w.aligned, w.pseudo_p_kw, w.pseudo_q_kvar)
        spike_scale_t = self._spike_row[None, :] * self._spike_tod[w.tod][:, None]
        out = series_scores(
            self.plan,
            w.aligned,
            innov,
            self._jump_scale,
            spike_scale_t,
            self._dev_scale,
            self.cfg.sustained_steps,
        )
        all_rows = np.arange(len(self.plan))
        lnr, _ = w.feats.lnr(self.device)
        rn = np.where(self.device[None, :], w.feats.rn, np.nan)
        out["lnr"] = Score(lnr, all_rows, rn)
        out["chi2"] = Score(w.feats.chi2_z)
        pz = w.feats.pmu_z
        pmu_rows = self.analyzer.pmu_rows
        with np.errstate(invalid="ignore"):
            out["pmu"] = Score(_nanmax(np.abs(pz)), pmu_rows, np.abs(pz))
        cs = cusum((pz - self._pmu_mean) / self._pmu_std, self.cfg.cusum_drift)
        cs[~np.isfinite(w.feats.chi2_z)] = np.nan
        out["pmu_cusum"] = Score(_nanmax(cs), pmu_rows, cs)
        if self._forest is not None:
            x, ok = self._forest_features(out, w.feats)
            val = np.full(len(x), np.nan)
            if ok.any():
                val[ok] = -self._forest.score_samples(x[ok])
            out["isolation_forest"] = Score(val)
        return out

    def _forest_features(
        self, s: dict[str, Score], feats: SnapshotFeatures
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-step inputs of the isolation forest: the estimator's chi-squared score and
        largest residual, every PMU gap (signed), and the temporal checks' maxima."""
        names = ("chi2", "lnr", "pmu_cusum", "load_jump", "spike", "sustained", "dropout_count")
        cols = [s[n].value for n in names]
        x = np.column_stack([*cols, np.nan_to_num(feats.pmu_z, nan=0.0)])
        ok = np.all(np.isfinite(np.column_stack(cols)), axis=1)
        return np.nan_to_num(x, nan=0.0, posinf=1e6), ok

    # --- calibration -------------------------------------------------------------------
    def fit(
        self,
        windows: list[Window],
        fit_steps: list[np.ndarray],
        thr_steps: list[np.ndarray],
        stop=None,
    ):
        """Scales and the isolation forest from ``fit_steps``, thresholds from ``thr_steps``
        (per window; clean data, disjoint from what the monitor is evaluated on). A set
        ``stop`` event ends it between stages (``FitCancelled``)."""
        raise_if_stopped(stop)
        w0, s0 = windows[0], fit_steps[0]
        mid = int(s0[len(s0) // 2])
        self.analyzer.plan = w0.plan
        self.redundancy = self.analyzer.redundancy(
            w0.aligned, mid, w0.pseudo_p_kw[mid], w0.pseudo_q_kvar[mid]
        )
        innov = [innovations(self.plan, w.aligned, w.pseudo_p_kw, w.pseudo_q_kvar) for w in windows]
        diffs = np.vstack(
            [
                np.abs(np.diff(forward_fill(e), axis=0))[s[1:] - 1]
                for e, s in zip(innov, fit_steps, strict=True)
            ]
        )
        levels = np.vstack([np.abs(e[s]) for e, s in zip(innov, fit_steps, strict=True)])
        self._jump_scale = np.maximum(np.nan_to_num(np.nanpercentile(diffs, 99, axis=0)), 0.3)
        self._dev_scale = np.maximum(np.nan_to_num(np.nanpercentile(levels, 99, axis=0)), 0.5)
        spikes = np.vstack(
            [jump_scores(e, 1.0)[1][s] for e, s in zip(innov, fit_steps, strict=True)]
        )
        tod = np.concatenate([w.tod[s] for w, s in zip(windows, fit_steps, strict=True)])
        self._spike_row, self._spike_tod = spike_scale(spikes, tod)
        pz = np.vstack([w.feats.pmu_z[s] for w, s in zip(windows, fit_steps, strict=True)])
        self._pmu_mean = np.nan_to_num(np.nanmean(pz, axis=0))
        self._pmu_std = np.maximum(np.nan_to_num(np.nanstd(pz, axis=0), nan=1.0), 1e-3)
        self._forest = None
        raise_if_stopped(stop)
        scores = [self.scores(w) for w in windows]
        feats = [self._forest_features(sc, w.feats) for sc, w in zip(scores, windows, strict=True)]
        x = np.vstack([f[0][s][f[1][s]] for f, s in zip(feats, fit_steps, strict=True)])
        fc = self.cfg.isolation_forest
        self._forest = IsolationForest(
            n_estimators=fc.n_estimators,
            max_samples=min(fc.max_samples, len(x)),
            random_state=fc.seed,
        ).fit(x)
        raise_if_stopped(stop)
        scores = [self.scores(w) for w in windows]
        rate = self.rate_per_detector
        self.fitted: dict[str, TailThreshold] = {}
        for name in CALIBRATED:
            vals = np.concatenate(
                [sc[name].value[s] for sc, s in zip(scores, thr_steps, strict=True)]
            )
            light = name in self.cfg.light_tailed
            self.fitted[name] = TailThreshold.fit(vals, rate, self.cfg.tail_quantile, light)
            self.thresholds[name] = self.fitted[name].value
        count, run = dropout_limits(self.plan.dropout[self.device], rate, self.cfg.dropout_min_run)
        self.thresholds["dropout_count"] = count - 0.5
        self.thresholds["dropout_run"] = run - 0.5
        self.thresholds["frozen"] = self.cfg.frozen_min_run - 0.5
        return self

    # --- alarms and alerts ---------------------------------------------------------------
    def alarms(self, scores: dict[str, Score]) -> dict[str, np.ndarray]:
        """Per detector, the reference steps (boolean, T) on which it fires."""
        out = {}
        for name, thr in self.thresholds.items():
            if name in scores:
                with np.errstate(invalid="ignore"):
                    out[name] = np.nan_to_num(scores[name].value, nan=-np.inf) > thr
        return out

    def alerts(
        self, w: Window, scores: dict[str, Score], alarms: dict[str, np.ndarray], steps
    ) -> list[AnomalyAlert]:
        """One alert per alarming reference step in ``steps``, naming its suspects."""
        out = []
        steps = np.asarray(steps)
        fired = np.zeros(len(w.aligned), dtype=bool)
        for a in alarms.values():
            fired |= a
        for t in steps[fired[steps]]:
            out.append(self.alert_at(w, scores, alarms, int(t)))
        return out

    def alert_at(self, w: Window, scores, alarms, t: int) -> AnomalyAlert:
        names = [n for n, a in alarms.items() if a[t]]
        evidence = [
            DetectorEvidence(n, float(scores[n].value[t]), float(self.thresholds[n])) for n in names
        ]
        suspects: dict[int, Suspect] = {}
        self.analyzer.plan = w.plan
        for row, rn in self.analyzer.identify(
            w.aligned,
            t,
            w.pseudo_p_kw[t],
            w.pseudo_q_kvar[t],
            self.cfg.identify_lnr,
            self.cfg.max_named,
        ):
            suspects[row] = self._suspect(row, w.feats.rn[t, row])
            suspects[row].checks["lnr_identification"] = rn
        for n in names:
            s = scores[n]
            if n not in ROW_DETECTORS or s.by_row is None:
                continue
            val = np.nan_to_num(s.by_row[t], nan=-np.inf)
            for j in np.argsort(-val)[: self.cfg.max_named]:
                if val[j] <= self.thresholds[n]:
                    break
                row = int(s.rows[j])
                suspects.setdefault(row, self._suspect(row, w.feats.rn[t, row]))
                suspects[row].checks[n] = float(val[j])
        ranked = sorted(suspects.values(), key=lambda s: -len(s.checks))[: self.cfg.max_named]
        silent = np.flatnonzero(~np.isfinite(w.aligned[t]) & self.device)
        silent_devices = (
            sorted({self._device(r) for r in silent})
            if "dropout_count" in names or "dropout_run" in names
            else []
        )
        pmu = scores["pmu"]
        pmu_gaps = {
            self._label(int(r)): float(z)
            for r, z in zip(pmu.rows, pmu.by_row[t], strict=True)
            if np.isfinite(z) and z > 3.0
        }
        return AnomalyAlert(
            t,
            t + int(self.plan.latency.max()) + _lookahead(scores, names),
            evidence,
            ranked,
            silent_devices,
            pmu_gaps,
        )

    def _label(self, row: int) -> str:
        return self.labels[row]

    def _device(self, row: int) -> str:
        return f"{self.plan.source[row]}@{self.labels[row].split('@', 1)[1]}"

    def _suspect(self, row: int, rn: float) -> Suspect:
        red = float(self.redundancy[row])
        return Suspect(
            row=row,
            measurement=self._label(row),
            device=self._device(row),
            normalized_residual=float(rn) if np.isfinite(rn) else None,
            redundant=bool(np.isfinite(red) and red >= MIN_REDUNDANCY),
        )


def _lookahead(scores: dict[str, Score], names: list[str]) -> int:
    return min((scores[n].lookahead for n in names), default=0)


def _nanmax(x: np.ndarray) -> np.ndarray:
    filled = np.nan_to_num(x, nan=-np.inf)
    best = filled.max(axis=1) if x.shape[1] else np.full(len(x), -np.inf)
    return np.where(np.isfinite(best), best, np.nan)
