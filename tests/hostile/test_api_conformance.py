"""API conformance: schemathesis (`st run --checks all`) against the live service, with an
operator token and anonymously, must find no failure: every status code documented, every
body matching its schema (422s included), no server error, Allow headers right. The
repository's ``schemathesis.toml`` is used (it lets two operations answer 422 to bodies that
only fail checks JSON Schema cannot express, see there)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.hostile.live_api import LiveService

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_schemathesis_finds_no_failure_with_and_without_a_token(tmp_path):
    with LiveService("embedded", tmp_path) as live:
        token = ["-H", f"Authorization: Bearer {live.token}"]
        # anonymous: the systematic coverage phase is enough to see every route answer 401
        for extra in (["--phases", "coverage"], token):
            cmd = [sys.executable, "-m", "schemathesis.cli", "run", f"{live.base}/openapi.json"]
            cmd += ["--checks", "all", "--max-examples", "2", "--seed", "7", "--no-color", *extra]
            out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=280)
            summary = out.stdout[-3000:]
            assert out.returncode == 0, summary
            assert " passed" in summary and "failure" not in summary.split("SUMMARY")[-1]
