"""Hostile HTTP load on `gridsync serve` (issue 25): a 48 MB anonymous POST and a console
log-in flood, against the code in a given tree (this one, or an older checkout for the
before/after comparison).

For each tree it starts `gridsync serve --demo --mqtt none` as a subprocess and measures:

* the 48 MB POST to /api/v1/telemetry without a token: seconds until the response and the
  server's peak resident memory growth (VmHWM from /proc);
* /health latency (median, p95, max over ~2 requests/s) idle and during a flood of wrong
  log-ins from 8 threads, each on its own loopback address (127.0.0.2-9) and user names;
  plus the flood's own request rate and the number of audit rows it wrote.

Writes bench/results/bench_api_hostile.json (one entry per tree label).

    .venv/bin/python bench/bench_api_hostile.py --tree after=. --tree before=/path/to/old
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

OUT = Path(__file__).parent / "results" / "bench_api_hostile.json"
TOKEN = "bench-hostile-operator-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tree: Path, data: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(tree), "GRIDSYNC_API_TOKENS": f"operator:{TOKEN}"}
    code = "from gridsync.cli.main import cli; cli()"
    args = ["serve", "--demo", "--days", "1", "--port", str(port), "--mqtt", "none"]
    args += ["--store", f"sqlite:///{data / 'serve.db'}"]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=tree, env=env,  # cwd: no other tree on sys.path
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    end = time.monotonic() + 120
    while time.monotonic() < end:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"serve from {tree} did not start")


def vm_kb(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", text).group(1))


def big_post(port: int, pid: int, size: int = 48 * 2**20) -> dict:
    """Anonymous POST of ``size`` bytes; time to the response, server memory growth
    (resident memory sampled every 10 ms during the request, minus the level before)."""
    rss0, peak, done = vm_kb(pid, "VmRSS"), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], vm_kb(pid, "VmRSS"))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    body = b"[" + b"0," * (size // 2 - 1) + b"0]"
    t0 = time.perf_counter()
    try:
        r = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/telemetry",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        status = r.status_code
    except httpx.HTTPError as err:  # the server may answer and close before the body is sent
        status = type(err).__name__
    elapsed = time.perf_counter() - t0
    time.sleep(0.2)
    done.set()
    sampler.join()
    return {
        "bytes": len(body),
        "status": status,
        "response_s": round(elapsed, 3),
        "server_peak_rss_growth_mb": round((peak[0] - rss0) / 1024, 1),
    }


def health_latency(port: int, duration_s: float) -> dict:
    lat = []
    end = time.monotonic() + duration_s
    with httpx.Client(timeout=30) as c:
        while time.monotonic() < end:
            t0 = time.perf_counter()
            c.get(f"http://127.0.0.1:{port}/health")
            lat.append(time.perf_counter() - t0)
            time.sleep(0.5)
    ms = sorted(x * 1e3 for x in lat)
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 1),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1),
        "max_ms": round(ms[-1], 1),
    }


def flood(port: int, stop: threading.Event, counts: dict, k: int) -> None:
    """Wrong log-ins as fast as the server answers, from 127.0.0.<k+2>."""
    transport = httpx.HTTPTransport(local_address=f"127.0.0.{k + 2}")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", transport=transport, timeout=60) as c:
        n = 0
        while not stop.is_set():
            page = c.get("/console/login")
            tok = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            data = {"username": f"user{k}-{n % 50}", "password": "wrong", "csrf_token": tok[1]}
            r = c.post("/console/login", data=data)
            counts[r.status_code] = counts.get(r.status_code, 0) + 1
            n += 1


def login_flood(port: int, duration_s: float) -> dict:
    stop, counts, threads = threading.Event(), {}, []
    for k in range(8):
        threads.append(threading.Thread(target=flood, args=(port, stop, counts, k), daemon=True))
        threads[-1].start()
    t0 = time.perf_counter()
    health = health_latency(port, duration_s)
    stop.set()
    for t in threads:
        t.join(60)
    elapsed = time.perf_counter() - t0
    return {
        "health_during_flood": health,
        "login_posts": sum(counts.values()),
        "login_posts_per_s": round(sum(counts.values()) / elapsed, 1),
        "status_counts": {str(k): v for k, v in sorted(counts.items())},
    }


def audit_rows(db: Path) -> dict:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT action, COUNT(*) FROM audit GROUP BY action").fetchall()
    return dict(rows)


def run(label: str, tree: Path, duration_s: float) -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start(tree, Path(tmp), port)
        try:
            out = {"tree": str(tree), "commit": git_head(tree)}
            out["health_idle"] = health_latency(port, duration_s / 2)
            out["big_anonymous_post"] = big_post(port, proc.pid)
            out["login_flood"] = login_flood(port, duration_s)
            out["login_flood"]["audit_rows"] = audit_rows(Path(tmp) / "serve.db")
        finally:
            proc.terminate()
            proc.wait(60)
    print(label, json.dumps(out, indent=1))
    return out


def git_head(tree: Path) -> str:
    r = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)  # fmt: skip
    return r.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", action="append", required=True, help="label=path of a checkout")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of each flood")
    args = ap.parse_args()
    results = {}
    for item in args.tree:
        label, _, path = item.partition("=")
        results[label] = run(label, Path(path).resolve(), args.duration)
    load = os.getloadavg()
    OUT.write_text(json.dumps({"load_avg_1_5_15": load, "results": results}, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
