"""The fleet's read-only API: feeders listed from the store, one drilled into, tokens needed."""

from __future__ import annotations

from fastapi.testclient import TestClient

from gridsync.api.auth import TokenRegistry
from gridsync.api.fleet import create_fleet_app
from gridsync.fleet.store import SqliteFleetStore
from tests.fleet.test_store import _out


def _client():
    store = SqliteFleetStore(":memory:")
    store.migrate()
    store.commit_step(_out("f0001", 0, "2016-06-06 00:00:00", 4.0), b"a")
    store.commit_step(_out("f0001", 1, "2016-06-06 00:15:00", 6.0), b"b")
    store.commit_step(_out("f0002", 0, "2016-06-06 00:00:00", 2.0), b"c")
    tokens = TokenRegistry()
    token = tokens.issue("viewer", "viewer")
    return TestClient(create_fleet_app(store, tokens)), {"Authorization": f"Bearer {token}"}


def test_feeders_are_listed_with_their_latest_state():
    client, auth = _client()
    body = client.get("/api/v1/fleet/feeders", headers=auth).json()
    assert body["count"] == 2
    first = body["feeders"][0]
    assert (first["feeder_id"], first["last_step"], first["feeder_kw"]) == ("f0001", 1, 6.0)


def test_one_feeder_shows_its_stored_plans_and_unknown_ones_are_404():
    client, auth = _client()
    body = client.get("/api/v1/fleet/feeders/f0001", headers=auth).json()
    assert [p["step"] for p in body["plans"]] == [0, 1]
    assert body["feeder"]["steps_stored"] == 2
    assert client.get("/api/v1/fleet/feeders/f0099", headers=auth).status_code == 404
    assert client.get("/api/v1/fleet/feeders/F.1", headers=auth).status_code == 422


def test_the_fleet_view_needs_a_token():
    client, _ = _client()
    assert client.get("/api/v1/fleet/feeders").status_code == 401
