"""Model registry on both stores: versions, promotion, rejection, rollback, audit."""

from __future__ import annotations

import numpy as np
import pytest

from gridsync.forecast.baselines import SeasonalNaive
from gridsync.learning.registry import ModelRegistry, RegistryError, data_hash
from tests.forecast.conftest import double_seasonal
from tests.store.test_store_contract import store  # noqa: F401  (fixture: sqlite + postgres)


def test_versions_promotion_rollback_and_audit(store):  # noqa: F811
    reg = ModelRegistry(store)
    y = double_seasonal(days=14)
    m1 = SeasonalNaive("1D").fit(y)
    v1 = reg.register("feeder", m1, y, created_by="bootstrap", metrics={"mape": 2.0})
    v2 = reg.register("feeder", SeasonalNaive("7D").fit(y), y, created_by="drift")
    assert (v1, v2) == (1, 2)
    assert reg.live_version("feeder") is None
    reg.promote("feeder", v1, actor="bootstrap")
    reg.promote("feeder", v2, actor="shadow-evaluation", detail={"mape_live": 3.0})
    stages = {v["version"]: v["stage"] for v in reg.versions("feeder")}
    assert stages == {1: "retired", 2: "live"}
    meta = reg.versions("feeder")[1]["meta"]
    assert meta["data_hash"] == data_hash(y) and meta["metrics"] == {"mape": 2.0}
    assert meta["train_from"].startswith("2024-01-01") and meta["n_train"] == len(y)
    assert reg.rollback("feeder", actor="operator", reason="evening peak worse") == 1
    assert reg.live_version("feeder") == 1
    loaded = reg.load("feeder")
    np.testing.assert_array_equal(loaded.predict(24, y).values, m1.predict(24, y).values)
    actions = [a["action"] for a in store.audit_log()]
    assert actions[:3] == ["model.rollback", "model.promote", "model.promote"]
    with pytest.raises(RegistryError, match="only candidates"):
        reg.reject("feeder", 2, actor="x")
    with pytest.raises(RegistryError, match="not in the registry"):
        reg.promote("feeder", 9, actor="x")


def test_data_hash_changes_with_the_data():
    y = double_seasonal(days=7)
    assert data_hash(y) == data_hash(y.copy())
    z = y.copy()
    z.iloc[3] += 1e-9
    assert data_hash(z) != data_hash(y)
