"""HTML report of a CityLearn run: district import with and without batteries, SoC, KPIs.

One self-contained file (plotly.js inlined) that opens offline.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from gridsync.citylearn.dataset import CityLearnDataset
from gridsync.citylearn.kpis import KPI_LABELS
from gridsync.citylearn.simulate import RunResult


def _table(results: list[RunResult]) -> str:
    head = "".join(f"<th>{html.escape(r.controller)}</th>" for r in results)
    body = []
    for key, label in KPI_LABELS:
        cells = "".join(f"<td>{r.kpis[key]:.4f}</td>" for r in results)
        body.append(f"<tr><td>{html.escape(label)}</td>{cells}</tr>")
    runtime = "".join(f"<td>{r.runtime_s:.1f}</td>" for r in results)
    body.append(f"<tr><td>runtime (s)</td>{runtime}</tr>")
    return f"<table><tr><th>KPI</th>{head}</tr>{''.join(body)}</table>"


def write_report(dataset: CityLearnDataset, results: list[RunResult], path: Path) -> Path:
    """Write the report to ``path`` and return it."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    hours = np.arange(dataset.hours)
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=(
            "District net import (kWh per hour)",
            "Battery state of charge, district (kWh)",
        ),
    )
    base = results[0].base_net_kwh.sum(axis=0)
    fig.add_trace(go.Scattergl(x=hours, y=base, name="no battery", line={"color": "#999"}), 1, 1)
    for r in results:
        if not np.any(r.request_kwh):
            continue
        fig.add_trace(go.Scattergl(x=hours, y=r.net_kwh.sum(axis=0), name=r.controller), 1, 1)
        fig.add_trace(
            go.Scattergl(
                x=hours, y=r.soc_kwh.sum(axis=0), name=f"{r.controller} SoC", showlegend=True
            ),
            2,
            1,
        )
    fig.update_xaxes(title_text="hour of the episode", row=2, col=1)
    fig.update_layout(height=800, template="plotly_white", legend={"orientation": "h", "y": 1.08})
    title = html.escape(f"GridSync on CityLearn: {dataset.name}")
    doc = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}"
        "</style></head><body>"
        f"<h1>{title}</h1><p>{len(dataset.buildings)} buildings, {dataset.hours} hours. "
        "Ratios are against the same buildings without batteries.</p>"
        f"{_table(results)}{fig.to_html(full_html=False, include_plotlyjs=True)}</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc)
    return path
