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
def scenario_1day_plant():
    """The bundled scenario over one day, as shipped: the twin runs the mismatched plant."""
    from gridsync.sim.builder import load_scenario

    return load_scenario(days=1, history_days=7)


@pytest.fixture(scope="session")
def scenario_1day(scenario_1day_plant):
    """The same day with the model as the plant (no mismatch): for tests of control logic
    that compare a component's prediction with the twin exactly."""
    import dataclasses

    return dataclasses.replace(scenario_1day_plant, plant=None)


@pytest.fixture(scope="session")
def feeder(scenario_1day):
    return scenario_1day.feeder
