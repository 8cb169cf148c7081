"""The console in a real browser: Chromium driven by Playwright against `gridsync serve --demo`.

Runs `gridsync serve --demo` as a subprocess on a free port with one twin step per second and a
6-s approval timeout, then: an operator logs in, sees live values change, approves a request and watches the
next one fail safe on timeout; a viewer sees no decision buttons and is refused (403).
Screenshots go to tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import require_service

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TIMEOUT_S = 6.0
DEMO_PASSWORD = "gridsync-demo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gridsync_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("gridsync")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gridsync.cli.main"]


@pytest.fixture(scope="module")
def server():
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        require_service("chromium", f"{CHROMIUM} not found (make chromium installs it)")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDSYNC_CONSOLE_")}
    log = ARTIFACTS / "serve.log"
    ARTIFACTS.mkdir(exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                *gridsync_cmd(),
                "serve",
                "--demo",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--step-seconds",
                "1",
                "--approval-timeout",
                str(TIMEOUT_S),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"gridsync serve exited with {proc.returncode}: {log.read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{base}/console/login", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"gridsync serve did not come up: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        printed = log.read_text()
        assert "/console/" in printed and DEMO_PASSWORD in printed, printed
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def log_in(browser, base: str, user: str):
    """A logged-in page; ``page.csp_violations`` collects what the server's CSP blocked."""
    page = browser.new_context(viewport={"width": 1400, "height": 1800}).new_page()
    page.csp_violations = []
    page.on(
        "console",
        lambda m: page.csp_violations.append(m.text) if "Content Security Policy" in m.text else 0,
    )
    page.goto(f"{base}/console/login")
    page.fill("#username", user)
    page.fill("#password", DEMO_PASSWORD)
    page.click("#login-button")
    page.wait_for_url(f"{base}/console/")
    return page


def wait_js(page, expression: str, timeout: int) -> None:
    """Poll ``expression`` in the page (Playwright's wait_for_function evaluates a string,
    which the console's Content-Security-Policy rightly forbids)."""
    end = time.monotonic() + timeout / 1000
    while not page.evaluate(f"() => Boolean({expression})"):
        assert time.monotonic() < end, f"timed out waiting for {expression}"
        time.sleep(0.1)


def shot(page, name: str) -> None:
    path = ARTIFACTS / f"console_{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


@pytest.mark.slow
def test_operator_live_values_approve_and_timeout(server, browser):
    page = log_in(browser, server, "operator")
    wait_js(page, "window.__gs && window.__gs.states >= 1", timeout=15_000)
    first = page.inner_text("#sim-time")
    wait_js(page, f"document.getElementById('sim-time').textContent !== {first!r}", 10_000)
    assert page.inner_text("#feeder-kw").endswith("kW")
    assert page.inner_text("#conn") == "live"

    card = page.wait_for_selector(".request", timeout=30_000)
    shot(page, "1_pending_request")
    rid = card.get_attribute("data-request-id")
    text = card.inner_text()
    assert "p.u." in text and "If approved" in text and "expected cost" in text
    card.query_selector("button[data-action=approve]").click()
    page.wait_for_selector(f"#recent tr[data-request-id='{rid}'] .status-approved", timeout=10_000)
    assert page.query_selector(f"#pending .request[data-request-id='{rid}']") is None
    assert "operator" in page.inner_text(f"#recent tr[data-request-id='{rid}']")
    shot(page, "2_approved")

    # the next request is left alone: the fail-safe must apply after the timeout
    nxt = page.wait_for_selector(f".request:not([data-request-id='{rid}'])", timeout=40_000)
    nid = nxt.get_attribute("data-request-id")
    t0 = time.monotonic()
    page.wait_for_selector(
        f"#recent tr[data-request-id='{nid}'] .status-expired", timeout=(TIMEOUT_S + 8) * 1000
    )
    assert time.monotonic() - t0 <= TIMEOUT_S + 8
    wait_js(
        page,
        "[...document.querySelectorAll('#alerts li')].some(li => li.textContent.includes('fail-safe'))",
        timeout=5_000,
    )
    assert "system" in page.inner_text(f"#recent tr[data-request-id='{nid}']")
    shot(page, "3_failsafe")
    assert page.csp_violations == []


@pytest.mark.slow
def test_viewer_cannot_approve(server, browser):
    page = log_in(browser, server, "viewer")
    wait_js(page, "window.__gs && window.__gs.states >= 1", timeout=15_000)
    assert page.is_visible("#viewer-note")
    assert page.query_selector("button[data-action=approve]") is None
    assert page.query_selector("#override-form") is None
    status = page.evaluate(
        """async () => {
            const s = window.__gs.lastState;
            const id = s.approvals.pending.length ? s.approvals.pending[0].id : "none";
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch('/console/api/approvals/' + id + '/approve', {
                method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
                body: '{}'});
            return r.status;
        }"""
    )
    assert status == 403
    shot(page, "4_viewer")
    assert page.csp_violations == []


@pytest.mark.slow
def test_api_docs_render_offline_under_the_csp(server, browser):
    """/docs is Swagger UI from the installed package: it renders the API's title and
    operations with no request leaving the server's origin and no CSP violation."""
    page = browser.new_context().new_page()
    violations, foreign = [], []
    page.on("console", lambda m: violations.append(m.text) if "Content Security" in m.text else 0)
    page.on("request", lambda r: foreign.append(r.url) if not r.url.startswith(server) else 0)
    page.goto(f"{server}/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
    assert "GridSync" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector('[data-path="/api/v1/plans"]', timeout=10_000)
    assert violations == [] and foreign == []
