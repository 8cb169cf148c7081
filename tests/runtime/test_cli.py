"""``gridsync runtime``: help, token hashing, and a short live demo over HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from gridsync.api.auth import hash_token
from gridsync.cli.main import cli


def test_help_and_hash_token():
    r = CliRunner().invoke(cli, ["runtime", "--help"])
    assert r.exit_code == 0 and "--demo" in r.output and "operator" in r.output
    r = CliRunner().invoke(cli, ["runtime", "--hash-token", "gs_secret_token_123"])
    assert hash_token("gs_secret_token_123") in r.output


@pytest.mark.slow
def test_demo_serves_live_state_end_to_end():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(Path(sys.executable).parent / "gridsync"), "runtime", "--demo", "--mqtt", "none",
           "--port", str(port), "--step-s", "0.5", "--duration", "60"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        token = None
        for line in proc.stdout:
            if "operator token:" in line:
                token = line.split()[-1]
            if line.startswith("serving on"):
                break
        assert token, "demo must print an operator token"
        base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
        deadline = time.time() + 30
        state = {}
        while time.time() < deadline:
            try:
                state = httpx.get(f"{base}/api/v1/state", headers=auth, timeout=5).json()
                if state.get("snapshot") and state["snapshot"]["n_series"] > 300:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert state["snapshot"]["n_series"] == 3 * 111 + 1
        assert (
            httpx.get(f"{base}/api/v1/setpoints/latest", headers=auth)
            .json()["plan_id"]
            .startswith("tou-")
        )
        assert httpx.get(f"{base}/api/v1/state").status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
