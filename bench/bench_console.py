"""Console benchmark: time from an approval request being raised to it showing in a browser.

Starts the API + console (demo scenario, one twin step per second, the live loop running) on
uvicorn in this process, logs a real Chromium (Playwright, headless) in as an operator, then
raises approval requests through the same ApprovalManager the grid guard uses, at random
moments relative to the twin's steps. Latency = the browser's clock when the request card is
first rendered minus the server's clock when the request was raised (same machine, same
clock). Baseline in the same run: the delay of the twin's ``state`` frames over the same SSE
stream, and the twin's step compute time. Writes bench/results/bench_console.json.
"""

from __future__ import annotations

import json
import random
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OUT = Path(__file__).parent / "results" / "bench_console.json"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
N_REQUESTS = 40


def synthetic_action(session, k: int):
    """A curtailment-sized request (30 PV systems) with a real-looking justification."""
    from gridsync.hitl.approvals import ProposedAction
    from gridsync.hitl.assets import asset_bounds, asset_labels
    from gridsync.hitl.justification import Justification, Outcome

    sc = session.scenario
    idx = np.arange(min(30, len(sc.fleet.pv)))
    lo, hi = asset_bounds(sc.fleet, "pv")
    just = Justification(
        summary=f"bench request {k}: curtail 30 kW of PV",
        drivers=["12 buses above 1.05 p.u., highest 1.057 p.u."],
        acting=Outcome("30 kW spilled", 2.4, "0 buses above the limit"),
        not_acting=Outcome("PV keeps producing", 0.0, "12 buses stay above the limit"),
        source="bench",
    )
    return ProposedAction(
        kind="curtailment",
        title=f"bench {k}",
        asset_kind="pv",
        asset_index=idx,
        asset_labels=asset_labels(sc.fleet, sc.feeder.bus_names, "pv", idx),
        proposed_kw=np.ones(len(idx)),
        no_action_kw=np.zeros(len(idx)),
        lower_kw=lo[idx],
        upper_kw=hi[idx],
        justification=just,
    )


def pct(a, q) -> float:
    return float(np.percentile(np.asarray(a, float), q))


def main() -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from gridsync.api.app import create_app
    from gridsync.api.auth import TokenRegistry
    from gridsync.web.auth import DEMO_PASSWORD
    from gridsync.web.server import attach_console

    t0 = time.perf_counter()
    app = create_app(tokens=TokenRegistry())
    con = attach_console(app, demo=True, step_interval_s=1.0, timeout_s=600)
    build_s = time.perf_counter() - t0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}/console"
    mgr = con.session.approvals
    lat_ms: list[float] = []
    rng = random.Random(7)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(f"{base}/login")
            page.fill("#username", "operator")
            page.fill("#password", DEMO_PASSWORD)
            page.click("#login-button")
            page.wait_for_function("window.__gs && window.__gs.states >= 3", timeout=30_000)
            for k in range(N_REQUESTS):
                time.sleep(rng.uniform(0.1, 0.6))
                req = mgr.raise_request(synthetic_action(con.session, k))
                page.wait_for_function(
                    f"window.__gs.seenAtMs[{req.id!r}] !== undefined", timeout=10_000, polling=20
                )
                seen_ms = page.evaluate(f"window.__gs.seenAtMs[{req.id!r}]")
                lat_ms.append(seen_ms - 1000.0 * req.created_s)
                mgr.approve(req.id, "bench", "operator")
            state_ms = page.evaluate("window.__gs.stateDelayMs")
            states = page.evaluate("window.__gs.states")
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
    step_ms = [1000 * s for s in con.session.step_times_s]
    result = {
        "n_requests": N_REQUESTS,
        "scenario": con.session.scenario.config.name,
        "n_bus": con.session.scenario.feeder.n_bus,
        "fleet": con.session.scenario.fleet.counts(),
        "twin_step_interval_s": 1.0,
        "app_build_s": build_s,
        "approval_to_browser_ms": {
            "median": pct(lat_ms, 50),
            "p95": pct(lat_ms, 95),
            "max": float(np.max(lat_ms)),
            "min": float(np.min(lat_ms)),
        },
        "baseline_state_frame_delay_ms": {
            "median": pct(state_ms, 50),
            "p95": pct(state_ms, 95),
            "frames": int(states),
        },
        "twin_step_compute_ms": {"median": pct(step_ms, 50), "p95": pct(step_ms, 95)},
        "ratio_approval_median_to_state_median": pct(lat_ms, 50) / max(pct(state_ms, 50), 1e-9),
        "target_median_ms": 1000.0,
        "meets_target": pct(lat_ms, 50) < 1000.0,
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    a, b, c = (
        result["approval_to_browser_ms"],
        result["baseline_state_frame_delay_ms"],
        result["twin_step_compute_ms"],
    )
    print(f"{'measure':44s} {'median':>9s} {'p95':>9s}")
    print(
        f"{'approval raised -> rendered in Chromium (ms)':44s} {a['median']:9.1f} {a['p95']:9.1f}"
    )
    print(f"{'baseline: twin state frame -> browser (ms)':44s} {b['median']:9.1f} {b['p95']:9.1f}")
    print(f"{'twin step compute (ms)':44s} {c['median']:9.1f} {c['p95']:9.1f}")
    print(f"target median < 1000 ms: {'met' if result['meets_target'] else 'NOT met'}; wrote {OUT}")


if __name__ == "__main__":
    main()
