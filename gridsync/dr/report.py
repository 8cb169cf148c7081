"""HTML report of a DR run: feeder import with and without DR (events shaded) and predicted
vs delivered reduction per event; one self-contained file (plotly.js inlined)."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np


def write_dr_report(path: Path, run) -> Path:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from gridsync.dr.run import feeder_frame

    s = run.summary
    frame = feeder_frame(run)
    fig = make_subplots(
        rows=2,
        cols=1,
        subplot_titles=("Feeder-head import (kW)", "Reduction per event (kW, window mean)"),
        vertical_spacing=0.12,
    )
    fig.add_trace(
        go.Scatter(x=frame.index, y=frame.no_dr_kw, name="no DR", line={"width": 1}), 1, 1
    )
    fig.add_trace(go.Scatter(x=frame.index, y=frame.dr_kw, name="with DR", line={"width": 1}), 1, 1)
    limit = run.controller.agent.limit_kw
    fig.add_hline(y=limit, line_dash="dot", annotation_text="feeder limit", row=1, col=1)
    step = frame.index[1] - frame.index[0]
    for e in s["events"]:
        t0 = np.datetime64(e["start"])
        fig.add_vrect(
            x0=t0,
            x1=t0 + np.timedelta64(int(e["duration_h"] * 3600), "s"),
            fillcolor="orange",
            opacity=0.2,
            line_width=0,
            row=1,
            col=1,
        )
    ids = [f"#{e['id']} {e['start'][5:16]}" for e in s["events"]]
    for key, name in (
        ("target_kw", "target"),
        ("predicted_kw", "predicted"),
        ("delivered_kw", "delivered (twin)"),
        ("delivered_mv_10of10_kw", "M&V 10-of-10"),
        ("delivered_mv_regression_kw", "M&V regression"),
    ):
        fig.add_trace(go.Bar(x=ids, y=[e[key] for e in s["events"]], name=name), 2, 1)
    fig.update_layout(height=900, template="plotly_white", barmode="group")
    o = s["overall"]
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:,.3f}</td></tr>"
        if isinstance(v, float)
        else f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in o.items()
    )
    body = fig.to_html(full_html=False, include_plotlyjs=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>GridSync DR {html.escape(s['scenario'])}"
        f"</title></head><body><h1>Demand response: {html.escape(s['scenario'])}</h1>"
        f"<p>{s['dr_days']:g} DR days from {html.escape(s['dr_window_start'])} on the "
        f"{html.escape(s['base_controller'])} controller; step {step}.</p>"
        f"<table border=1 cellpadding=3>{rows}</table>{body}</body></html>",
        encoding="utf-8",
    )
    return path
