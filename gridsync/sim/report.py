"""HTML report of a simulation: KPI table and interactive plotly charts, one file, offline."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from gridsync.sim.kpi import KPI_UNITS, VUF_LIMIT_PCT
from gridsync.sim.scenario import Scenario
from gridsync.sim.simulator import SimulationResult

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def _kpi_table(kpis: dict[str, dict[str, float]]) -> str:
    names = list(kpis)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = []
    for key, unit in KPI_UNITS.items():
        if not any(key in kpis[n] for n in names):
            continue
        cells = "".join(f"<td>{kpis[n].get(key, float('nan')):,.2f}</td>" for n in names)
        rows.append(f"<tr><td>{html.escape(key)}</td><td>{html.escape(unit)}</td>{cells}</tr>")
    return f"<table><tr><th>KPI</th><th>unit</th>{head}</tr>{''.join(rows)}</table>"


def _health_table(results: list[SimulationResult]) -> str:
    """State of health per battery and controller (``gridsync.storage.health``)."""
    parts = []
    for res in results:
        rep = res.extras.get("battery_health")
        if rep is None or not len(rep.soh_frac):
            continue
        rows = []
        for r in rep.rows():
            eol = "-" if r["years_to_80pct"] is None else f"{r['years_to_80pct']:.1f}"
            flag = "ALERT" if r["alert"] else ""
            rows.append(
                f"<tr><td>{r['battery']}</td><td>{r['soh_pct']:.3f}</td>"
                f"<td>{r['resistance_factor']:.4f}</td><td>{r['efc']:.2f}</td>"
                f"<td>{r['projected_soh_at_warranty_pct']:.2f}</td><td>{eol}</td>"
                f"<td>{flag}</td></tr>"
            )
        parts.append(
            f"<details><summary>{html.escape(res.controller)}: battery state of health "
            f"({int(rep.alert.sum())} projected below 80 % before {rep.warranty_years:g} "
            "years)</summary><table><tr><th>battery</th><th>SoH %</th><th>R / R0</th>"
            "<th>EFC</th><th>SoH % at warranty</th><th>years to 80 %</th><th>alert</th></tr>"
            f"{''.join(rows)}</table></details>"
        )
    return "".join(parts)


def write_report(
    path: Path,
    scenario: Scenario,
    results: list[SimulationResult],
    kpis: dict[str, dict[str, float]],
) -> Path:
    """Write a self-contained HTML report (plotly.js inlined, so it opens without a network)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    t = scenario.window
    sl = slice(scenario.start_step, scenario.end_step)
    lim = scenario.config.limits
    unbalanced = any("vuf_pct" in r.extras for r in results)  # a three-phase twin run
    titles = [
        "Feeder-head power (kW, + import) and import price",
        "Voltage envelope: min and max over all buses (p.u.)",
        "Highest branch loading (%)",
        "Battery fleet state of charge (%)",
    ]
    if unbalanced:
        titles.append("Voltage unbalance |V2|/|V1|: highest over the buses (%)")
    fig = make_subplots(
        rows=len(titles),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.05,
        specs=[[{"secondary_y": True}]] + [[{}]] * (len(titles) - 1),
        subplot_titles=titles,
    )
    for k, res in enumerate(results):
        c = PALETTE[k % len(PALETTE)]
        fig.add_trace(
            go.Scatter(
                x=t,
                y=res.feeder_kw,
                name=f"{res.controller}",
                line={"color": c},
                legendgroup=res.controller,
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=t,
                y=np.nanmax(res.vm_pu, axis=1),
                line={"color": c, "width": 1},
                legendgroup=res.controller,
                showlegend=False,
            ),
            row=2,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=t,
                y=np.nanmin(res.vm_pu, axis=1),
                line={"color": c, "width": 1, "dash": "dot"},
                legendgroup=res.controller,
                showlegend=False,
            ),
            row=2,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=t,
                y=np.nanmax(res.branch_loading_pct, axis=1),
                line={"color": c},
                legendgroup=res.controller,
                showlegend=False,
            ),
            row=3,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=t,
                y=100 * res.battery_soc_frac,
                line={"color": c},
                legendgroup=res.controller,
                showlegend=False,
            ),
            row=4,
            col=1,
        )
        vuf = res.extras.get("vuf_pct")
        if vuf is not None:
            with np.errstate(invalid="ignore"):
                worst = np.nanmax(np.where(np.isfinite(vuf), vuf, -np.inf), axis=1)
            fig.add_trace(
                go.Scatter(
                    x=t,
                    y=np.where(np.isfinite(worst), worst, np.nan),
                    line={"color": c},
                    legendgroup=res.controller,
                    showlegend=False,
                ),
                row=5,
                col=1,
            )
    fig.add_trace(
        go.Scatter(
            x=t,
            y=scenario.tariff.import_eur_per_kwh[sl],
            name="import price (EUR/kWh)",
            line={"color": "#7f7f7f", "shape": "hv", "dash": "dash"},
        ),
        row=1,
        col=1,
        secondary_y=True,
    )
    for y in (lim.voltage_min_pu, lim.voltage_max_pu):
        fig.add_hline(y=y, line={"color": "black", "dash": "dash", "width": 1}, row=2, col=1)
    fig.add_hline(
        y=lim.loading_max_pct, line={"color": "black", "dash": "dash", "width": 1}, row=3, col=1
    )
    if unbalanced:
        fig.add_hline(
            y=VUF_LIMIT_PCT, line={"color": "black", "dash": "dash", "width": 1}, row=5, col=1
        )
    fig.update_layout(
        height=275 * len(titles), template="plotly_white", legend={"orientation": "h", "y": 1.04}
    )
    body = fig.to_html(full_html=False, include_plotlyjs=True)
    cfg = scenario.config
    title = html.escape(f"GridSync simulation: {cfg.name}")
    counts = ", ".join(f"{v} {k}" for k, v in scenario.fleet.counts().items())
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}</style></head><body>
<h1>{title}</h1>
<p>{html.escape(cfg.description)}<br>Window {t[0]} to {t[-1]} at {cfg.time.resolution_s} s steps;
feeder {html.escape(scenario.feeder.name)} ({scenario.feeder.n_bus} buses); fleet: {html.escape(counts)};
weather: TMY {html.escape(scenario.weather_station)}. Limits {lim.voltage_min_pu}-{lim.voltage_max_pu} p.u.,
{lim.loading_max_pct}% loading.</p>
{_kpi_table(kpis)}
{_health_table(results)}
{body}
</body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
    return path
