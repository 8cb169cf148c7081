"""`gridsync serve` as a process: SIGTERM stops it as cleanly as Ctrl+C (exit 0, everything
published is stored, the store closed), and the default store is a stable file in the
per-user data directory, so history and overrides survive the restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from gridsync.store import SqliteStore
from tests.hostile.live_api import free_port

TOKEN = "hostile-lifecycle-token-" + uuid.uuid4().hex


def start(data_dir, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "GRIDSYNC_DATA_DIR": str(data_dir),
        "GRIDSYNC_API_TOKENS": f"operator:{TOKEN}",
        "PYTHONUNBUFFERED": "1",
    }
    for var in ("GRIDSYNC_CONSOLE_STEP_S", "GRIDSYNC_CONSOLE_CONTROLLER"):
        env.pop(var, None)
    code = "from gridsync.cli.main import cli; cli()"
    args = ["serve", "--demo", "--days", "1", "--port", str(port), "--mqtt", "none"]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    end = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.stdout.read()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert time.monotonic() < end, "gridsync serve did not answer within 120 s"
        time.sleep(0.3)


def stop(proc: subprocess.Popen, sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"no exit within 60 s of signal {sig}: {out}")
    return proc.returncode, out


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_history_survives_in_the_data_dir(tmp_path):
    port = free_port()
    proc = start(tmp_path, port)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    pids = [f"life-{k}-{uuid.uuid4().hex[:6]}" for k in range(20)]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=10) as c:
        for pid in pids:  # published just before the signal: must all be stored
            assert c.post("/api/v1/plans", json={"plan_id": pid, "setpoints": {}}).is_success
    code, out = stop(proc, signal.SIGTERM)
    assert code == 0, out
    assert out.rstrip().endswith("stopped"), out
    db = tmp_path / "serve.db"
    assert db.exists(), f"no store in the data dir: {os.listdir(tmp_path)}"
    store = SqliteStore(db)
    try:
        assert [p for p in pids if not store.has_plan(p)] == []
    finally:
        store.close()
    # a new process on the same data dir sees the old history
    proc = start(tmp_path, port)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=10) as c:
        stored = {p["plan_id"] for p in c.get("/api/v1/plans", params={"limit": 1000}).json()}
    code, out = stop(proc, signal.SIGINT)
    assert code == 0, out
    assert set(pids) <= stored
