"""Seeded fault studies on the switchable feeder: manual restoration, FLISR, FLISR + islanding.

One fault (a line, an hour of the year, a sampled repair time) is played three ways with the
same switching-time model (remote switches take ``remote_switching_time_h``, manual ones
``manual_switching_time_h``):

- ``manual``: the breaker trips; after the manual switching time a crew has isolated the faulted
  line with its disconnects and closed whatever restoration plan the MILP finds (all switches
  operable); the rest waits for the repair.
- ``flisr``: FCIs locate, remote switches isolate and the MILP restores with the remote switches
  after the remote switching time (once more for every re-closure onto the fault that a silent
  indicator causes); after the manual time the crew narrows the isolation to the
  faulted line and the MILP restores again (keeping what is on); the rest waits for the repair.
- ``flisr_island``: as ``flisr``, and a microgrid section left dead by the first plan islands on
  its battery until the grid returns (``gridsync.resilience.islanding``).

Indices follow IEEE 1366: interruptions up to the momentary threshold (5 min) count in MAIFI,
not in SAIFI/SAIDI. Annual values weight each sampled fault by the feeder's failure rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gridsync.resilience import flisr as F
from gridsync.resilience.feeder import Conditions, SwitchableFeeder
from gridsync.resilience.islanding import microgrid_assets, resync_check, run_island

MODES = ("manual", "flisr", "flisr_island")


@dataclass(frozen=True)
class FaultScenario:
    line: int  # a line index, or len(feeder.line_name) for the upstream supply
    hour: float
    repair_h: float
    soc: tuple[float, ...]  # per microgrid, at the fault


@dataclass
class FaultOutcome:
    scenario: FaultScenario
    duration_h: dict[str, np.ndarray]        # per mode, per feeder load (0 = not interrupted)
    load_kw: np.ndarray
    located: list[str]
    plans: dict[str, list[F.RestorationPlan]]
    islands: list[dict] = field(default_factory=list)
    retries: int = 0  # FLISR re-closures onto the fault after a silent indicator misled it

    def plans_ok(self) -> bool:
        return all(p.ac.ok for ps in self.plans.values() for p in ps)

    def plans_radial(self, feeder: SwitchableFeeder) -> bool:
        return all(F.is_radial_forest(feeder, p.closed, p.energised)
                   for ps in self.plans.values() for p in ps)


def trip_state(feeder: SwitchableFeeder, line: int) -> np.ndarray:
    path = F.radial_paths(feeder, feeder.normally_closed)[line]
    state = feeder.normally_closed.copy()
    state[next(e for e, _ in path if feeder.breaker[e])] = False
    return state


def energised_by(feeder: SwitchableFeeder, closed: np.ndarray) -> np.ndarray:
    live = np.zeros(feeder.n_bus, dtype=bool)
    live[feeder.sources] = True
    for e in F.radial_paths(feeder, closed):
        live[feeder.line_from[e]] = live[feeder.line_to[e]] = True
    return live


def evaluate_fault(feeder: SwitchableFeeder, cond: Conditions, sc: FaultScenario,
                   fci_miss: np.ndarray | None = None) -> FaultOutcome:
    """Play one fault in every mode; ``fci_miss`` masks FCIs that fail to report."""
    study = feeder.study
    h = int(sc.hour) % 8760
    op = F.operating_point(feeder, cond.residential_pu[h], cond.commercial_pu[h])
    if sc.line == len(feeder.line_name):
        return _upstream_outage(feeder, cond, sc, op)
    t_remote, t_manual = study.remote_switching_time_h, study.manual_switching_time_h
    load_kw = op.load_p_mw[feeder.load_index] * 1000.0
    trip = trip_state(feeder, sc.line)
    hit = ~energised_by(feeder, trip)[feeder.load_bus]
    repair = max(sc.repair_h, t_manual)
    every = np.ones(len(trip), dtype=bool)
    exact = F.Isolation([sc.line], [])

    manual = F.restore(feeder, op, trip, every, exact)
    readings = F.fci_signature(feeder, F.radial_paths(feeder, feeder.normally_closed), sc.line)
    if fci_miss is not None:
        readings = readings & ~fci_miss
    for slack in range(len(readings) + 1):  # re-closing onto the fault trips: widen and retry
        located = F.locate(feeder, feeder.normally_closed, readings, slack)
        iso = F.isolate_remote(feeder, feeder.normally_closed, located)
        stage1 = F.restore(feeder, op, trip, feeder.remote, iso)
        on_fault = stage1.closed[sc.line] and stage1.energised[feeder.line_from[sc.line]]
        if not on_fault:
            break
    stage2 = F.restore(feeder, op, stage1.closed, every, exact, keep=stage1.energised)

    on1 = stage1.energised[feeder.load_bus]
    on2 = stage2.energised[feeder.load_bus]
    dur = {
        "manual": np.where(hit, np.where(manual.energised[feeder.load_bus], t_manual, repair), 0.0),
        "flisr": np.where(hit, np.where(on1, t_remote * (slack + 1), np.where(on2, t_manual, repair)), 0.0),
    }
    isl = dur["flisr"].copy()
    islands = []
    for k, mg in enumerate(study.microgrids):
        buses = np.array(mg.buses)
        inside_fault = feeder.line_from[sc.line] in buses and feeder.line_to[sc.line] in buses
        if inside_fault or stage1.energised[buses].any() or np.isin(buses, iso.buses).any():
            continue
        pos = np.flatnonzero(np.isin(feeder.load_bus, buses))
        if not hit[pos].any():
            continue
        back_at_manual = bool(stage2.energised[buses].all())
        grid_return = t_manual if back_at_manual else repair
        mean_repair = float(feeder.repair_time_h[sc.line])
        forecast = (t_manual if back_at_manual else max(mean_repair, t_manual)) - t_remote
        res = run_island(feeder, cond, mg, sc.hour + t_remote, forecast, grid_return - t_remote,
                         sc.soc[k])
        vm = stage2.ac.vm_pu[buses] if back_at_manual else np.array([1.0])
        res = resync_check(res, float(np.nanmin(vm)), microgrid_assets(feeder, mg).battery_kw)
        isl[res.load_positions] = t_remote + (grid_return - t_remote) - res.served_h
        islands.append({"microgrid": mg.name, "soc_start": res.soc_start, "soc_end": res.soc_end,
                        "admitted": int(res.admitted.sum()), "loads": len(pos),
                        "served_kwh": res.energy_served_kwh, "forecast_h": forecast,
                        "actual_h": grid_return - t_remote, "resync_ok": res.resync_ok,
                        "resync_delta_v_percent": res.resync_delta_v_percent})
    dur["flisr_island"] = isl
    return FaultOutcome(sc, dur, load_kw, [feeder.line_name[e] for e in located],
                        {"manual": [manual], "flisr": [stage1, stage2]}, islands, slack)


def _upstream_outage(feeder: SwitchableFeeder, cond: Conditions, sc: FaultScenario,
                     op: F.OperatingPoint) -> FaultOutcome:
    """Supply lost behind the substation: switching cannot help, microgrids island."""
    study = feeder.study
    t_remote = study.remote_switching_time_h
    out = np.full(len(feeder.load_index), sc.repair_h)
    isl = out.copy()
    islands = []
    if sc.repair_h > t_remote:
        normal = F.ac_check(feeder, feeder.normally_closed, np.ones(feeder.n_bus, bool), op)
        for k, mg in enumerate(study.microgrids):
            forecast = max(study.upstream.restoration_time_h - t_remote, t_remote)
            res = run_island(feeder, cond, mg, sc.hour + t_remote, forecast, sc.repair_h - t_remote,
                             sc.soc[k])
            vm = float(np.nanmin(normal.vm_pu[np.array(mg.buses)]))
            res = resync_check(res, vm, microgrid_assets(feeder, mg).battery_kw)
            isl[res.load_positions] = sc.repair_h - res.served_h
            islands.append({"microgrid": mg.name, "soc_start": res.soc_start, "soc_end": res.soc_end,
                            "admitted": int(res.admitted.sum()), "loads": len(res.load_positions),
                            "served_kwh": res.energy_served_kwh, "forecast_h": forecast,
                            "actual_h": sc.repair_h - t_remote, "resync_ok": res.resync_ok,
                            "resync_delta_v_percent": res.resync_delta_v_percent})
    durations = {"manual": out, "flisr": out.copy(), "flisr_island": isl}
    return FaultOutcome(sc, durations, op.load_p_mw[feeder.load_index] * 1000.0,
                        ["upstream supply"], {}, islands)


def sample_faults(feeder: SwitchableFeeder, rate_per_yr: np.ndarray, n: int,
                  rng: np.random.Generator, soc_range: tuple[float, float] = (0.2, 0.9),
                  hours: np.ndarray | None = None) -> list[FaultScenario]:
    """``n`` faults drawn with probability proportional to the hourly line rates."""
    rate = rate_per_yr if hours is None else rate_per_yr[hours]
    p = rate.ravel() / rate.sum()
    picks = rng.choice(p.size, size=n, p=p)
    hour_idx, line = np.divmod(picks, rate.shape[1])
    base = np.arange(rate.shape[0]) if hours is None else np.asarray(hours)
    up = feeder.study.upstream
    mean_repair = np.append(feeder.repair_time_h, up.restoration_time_h if up else 1.0)
    out = []
    for hi, e in zip(hour_idx, line, strict=True):
        out.append(FaultScenario(
            line=int(e), hour=float(base[hi] + rng.uniform(0, 1)),
            repair_h=float(rng.exponential(mean_repair[e])),
            soc=tuple(float(rng.uniform(*soc_range)) for _ in feeder.study.microgrids)))
    return out


def indices_per_fault(feeder: SwitchableFeeder, outcomes: list[FaultOutcome]) -> dict[str, dict]:
    """Per mode and fault: sustained customer interruptions, customer minutes, ENS, momentary."""
    thr = feeder.study.momentary_threshold_h
    n = feeder.customers
    out: dict[str, dict] = {}
    for mode in MODES:
        d = np.array([o.duration_h[mode] for o in outcomes])
        kw = np.array([o.load_kw for o in outcomes])
        sustained = d > thr + 1e-9
        momentary = (d > 0) & ~sustained
        out[mode] = {
            "customer_interruptions": (sustained * n).sum(axis=1),
            "customer_minutes": (np.where(sustained, d, 0.0) * n).sum(axis=1) * 60.0,
            "momentary": (momentary * n).sum(axis=1),
            "ens_kwh": (np.where(sustained, d, 0.0) * kw).sum(axis=1),
        }
    return out


def annual_kpis(feeder: SwitchableFeeder, outcomes: list[FaultOutcome], faults_per_yr: float,
                rng: np.random.Generator, years: int = 2000) -> dict:
    """Expected annual indices per mode and their distribution over resampled years."""
    per = indices_per_fault(feeder, outcomes)
    n_tot = feeder.customers.sum()
    w = faults_per_yr / len(outcomes)
    counts = rng.poisson(faults_per_yr, size=years)
    draws = [rng.integers(0, len(outcomes), size=c) for c in counts]
    result: dict = {"faults_per_yr": faults_per_yr, "faults_sampled": len(outcomes),
                    "customers": float(n_tot), "modes": {}}
    for mode, x in per.items():
        yearly_saidi = np.array([x["customer_minutes"][d].sum() / n_tot for d in draws])
        result["modes"][mode] = {
            "saifi": float(w * x["customer_interruptions"].sum() / n_tot),
            "saidi_min": float(w * x["customer_minutes"].sum() / n_tot),
            "maifi": float(w * x["momentary"].sum() / n_tot),
            "ens_kwh": float(w * x["ens_kwh"].sum()),
            "annual_saidi_min_percentiles": {
                str(q): float(np.percentile(yearly_saidi, q)) for q in (5, 25, 50, 75, 95)},
            "per_fault_customer_minutes_percentiles": {
                str(q): float(np.percentile(x["customer_minutes"], q)) for q in (5, 25, 50, 75, 95)},
        }
    manual = per["manual"]["customer_minutes"]
    for mode in ("flisr", "flisr_island"):
        saved = manual - per[mode]["customer_minutes"]
        m = result["modes"][mode]
        m["saidi_reduction_vs_manual"] = 1.0 - m["saidi_min"] / result["modes"]["manual"]["saidi_min"]
        m["customer_minutes_saved_per_yr"] = float(w * saved.sum())
        m["per_fault_saved_minutes_percentiles"] = {
            str(q): float(np.percentile(saved, q)) for q in (5, 25, 50, 75, 95)}
        year_red = [1 - per[mode]["customer_minutes"][d].sum() / manual[d].sum()
                    for d in draws if manual[d].sum() > 0]
        m["annual_saidi_reduction_percentiles"] = {
            str(q): float(np.percentile(year_red, q)) for q in (5, 25, 50, 75, 95)}
    return result
