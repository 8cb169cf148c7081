"""Shared fixtures: the bundled scenario is expensive to build, so build it once per session."""

from __future__ import annotations

import os

import pytest


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
