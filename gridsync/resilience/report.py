"""Published-versus-computed reliability reports shared by the CLI and the benchmark."""

from __future__ import annotations

import time
from pathlib import Path

from gridsync.resilience.fmea import analytical_indices, outage_matrix
from gridsync.resilience.montecarlo import simulate
from gridsync.resilience.system import RBTS_BUS2, load_system

INDEX_NAMES = ("saifi", "saidi_h", "caidi_h", "asai", "ens_mwh")


def reliability_report(path: str | Path = RBTS_BUS2, years: int = 100_000, seed: int = 0) -> dict:
    """Analytical and Monte Carlo indices of a system file, beside its published reference.

    For each system index: the published value (when the file has a ``[reference]``), the
    analytical value and its relative deviation, the Monte Carlo mean with its 95 % interval and
    whether the published value lies inside it; per load point the analytical and simulated
    failure rate, outage duration and annual outage time.
    """
    system = load_system(path)
    t0 = time.perf_counter()
    matrix = outage_matrix(system)
    analytical = analytical_indices(system, matrix)
    t1 = time.perf_counter()
    mc = simulate(matrix, system.customers(), system.average_load_kw(), years=years, seed=seed)
    t2 = time.perf_counter()
    ref = system.reference
    rows = []
    for name in INDEX_NAMES:
        a = getattr(analytical.system(), name)
        row = {
            "index": name,
            "analytical": a,
            "mc_mean": getattr(mc.mean, name),
            "mc_ci95": [getattr(mc.ci95_low, name), getattr(mc.ci95_high, name)],
        }
        if ref is not None:
            p = getattr(ref, name)
            # ASAI sits next to 1: compare its complement (the unavailability) as well
            dev = (1 - a) / (1 - p) - 1 if name == "asai" else a / p - 1
            row |= {"published": p, "analytical_rel_dev": dev,
                    "published_in_mc_ci95": mc.contains(name, p)}
        rows.append(row)
    lp_rows = []
    for a_row, m_row in zip(analytical.rows(), mc.load_points.rows(), strict=True):
        lp_rows.append({"id": a_row["id"], "analytical": {k: v for k, v in a_row.items() if k != "id"},
                        "monte_carlo": {k: v for k, v in m_row.items() if k != "id"}})
    return {
        "system": system.name,
        "source": ref.source if ref else None,
        "monte_carlo": {"years": years, "seed": seed},
        "indices": rows,
        "load_points": lp_rows,
        "runtime_s": {"analytical": t1 - t0, "monte_carlo": t2 - t1},
    }


def format_report(report: dict) -> str:
    lines = [f"{report['system']}" + (f"  (published: {report['source']})" if report["source"] else ""),
             f"{'index':<9} {'published':>10} {'analytical':>11} {'dev %':>7} "
             f"{'MC mean':>10} {'MC 95 % interval':>23} {'in CI':>6}"]
    for r in report["indices"]:
        fmt = "{:.6f}" if r["index"] == "asai" else "{:.4f}"
        pub = fmt.format(r["published"]) if "published" in r else "-"
        dev = f"{100 * r['analytical_rel_dev']:+.2f}" if "published" in r else "-"
        ci = f"[{fmt.format(r['mc_ci95'][0])}, {fmt.format(r['mc_ci95'][1])}]"
        inside = ("yes" if r["published_in_mc_ci95"] else "no") if "published" in r else "-"
        lines.append(f"{r['index']:<9} {pub:>10} {fmt.format(r['analytical']):>11} {dev:>7} "
                     f"{fmt.format(r['mc_mean']):>10} {ci:>23} {inside:>6}")
    mc = report["monte_carlo"]
    lines.append(f"Monte Carlo: {mc['years']:,} simulated years, seed {mc['seed']}; "
                 "ASAI deviation is that of its complement (unavailability)")
    return "\n".join(lines)


MODE_LABELS = {"manual": "manual", "flisr": "FLISR", "flisr_island": "FLISR + islanding"}


def format_kpis(kpis: dict) -> str:
    """Annual indices per restoration mode, their spread over resampled years, and the savings."""
    lines = [f"{kpis['faults_sampled']} sampled faults, {kpis['faults_per_yr']:.3f} faults/yr, "
             f"{kpis['customers']:.0f} customers",
             f"{'mode':<18} {'SAIFI':>7} {'SAIDI min':>10} {'MAIFI':>7} {'ENS kWh':>9} "
             f"{'SAIDI p5-p50-p95 (years)':>26} {'SAIDI cut':>10}"]
    for mode, m in kpis["modes"].items():
        p = m["annual_saidi_min_percentiles"]
        cut = f"{100 * m['saidi_reduction_vs_manual']:.1f} %" if "saidi_reduction_vs_manual" in m else "-"
        lines.append(f"{MODE_LABELS.get(mode, mode):<18} {m['saifi']:>7.3f} {m['saidi_min']:>10.2f} "
                     f"{m['maifi']:>7.3f} {m['ens_kwh']:>9.1f} "
                     f"{p['5']:>8.1f} {p['50']:>8.1f} {p['95']:>8.1f} {cut:>10}")
    for mode in ("flisr", "flisr_island"):
        m = kpis["modes"][mode]
        q = m["annual_saidi_reduction_percentiles"]
        lines.append(f"{MODE_LABELS[mode]}: {m['customer_minutes_saved_per_yr']:.0f} customer minutes "
                     f"saved per yr; SAIDI cut over resampled years p5 {100 * q['5']:.0f} %, "
                     f"p50 {100 * q['50']:.0f} %, p95 {100 * q['95']:.0f} %")
    if "restoration_plans" in kpis:
        lines.append(f"restoration plans: {kpis['restoration_plans']}, radial "
                     f"{kpis['plans_radial']}/{kpis['faults_sampled']} faults, AC-feasible "
                     f"{kpis['plans_ac_feasible']}/{kpis['restoration_plans']}, needed AC cuts "
                     f"{kpis['plans_needing_ac_cuts']}, islands formed {kpis['islands_formed']}")
    return "\n".join(lines)
