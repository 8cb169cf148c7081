"""One replica factory for the fleet tests: the base scenario is built once per session."""

from __future__ import annotations

import pytest

from gridsync.fleet.replicas import ReplicaFactory, ScenarioSource

# one day at 15 minutes with two days of history (enough for the seasonal-naive forecast),
# a fifth of the bundled scenario's assets (~75) to keep the MPC solves short
SOURCE = ScenarioSource(days=1, history_days=2, asset_scale=0.2)


@pytest.fixture(scope="session")
def fleet_factory():
    factory = ReplicaFactory.for_source(SOURCE)
    factory.base  # noqa: B018 - build it now
    return factory
