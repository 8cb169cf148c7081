"""Shared fixtures: the bundled scenario is expensive to build, so build it once per session."""

from __future__ import annotations

import asyncio
import os
import time

import pytest


async def until(cond, timeout: float = 20.0, poll_s: float = 0.05) -> bool:
    """Poll the synchronous ``cond()`` until it is true (True) or ``timeout`` s pass (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        await asyncio.sleep(poll_s)
    return False


def require_service(name: str, reason: str) -> None:
    """Skip with a visible reason outside CI; fail in CI, where every service must be up."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is required in CI but unavailable: {reason}")
    pytest.skip(f"{name} unavailable: {reason}")


@pytest.fixture(scope="session")
def scenario_1day():
    from gridsync.sim.builder import load_scenario

    return load_scenario(days=1, history_days=7)


@pytest.fixture(scope="session")
def feeder(scenario_1day):
    return scenario_1day.feeder
