"""Heating/cooling degree features from a temperature column of the exogenous inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridsync.forecast.features import degree_days
from gridsync.forecast.gbm import GlobalLightGBM
from tests.forecast.conftest import double_seasonal


def test_degree_days_by_hand():
    t = np.r_[np.full(500, 10.0), np.full(48, 30.0)]  # hourly: 10 degC, then a step to 30
    dd = degree_days("temp_c", t, step_h=1.0)
    assert dd["temp_c_hdd24"][499] == pytest.approx(5.5)  # 15.5 - 10
    assert dd["temp_c_cdd6"][499] == 0.0
    # 6 h half-life: 12 h after the step T6 = 10 + 20 * (1 - 0.25) = 25 -> 3 cooling degrees;
    # 24 h half-life: 24 h after, T24 = 10 + 20 * 0.5 = 20 -> no heating degrees
    assert dd["temp_c_cdd6"][500 + 11] == pytest.approx(3.0, abs=0.05)
    assert dd["temp_c_hdd24"][500 + 23] == 0.0


def test_a_temperature_column_adds_degree_features_to_the_model_inputs():
    y = double_seasonal(days=3)
    exog = pd.DataFrame({"temp_c": np.linspace(0, 30, len(y)), "ghi": 0.0}, index=y.index)
    model = GlobalLightGBM()
    model._exog_cols = list(exog.columns)
    arrays = model._exog_arrays(exog, y.index)
    assert set(arrays) == {"temp_c", "ghi", "temp_c_hdd24", "temp_c_cdd6"}
    np.testing.assert_allclose(
        arrays["temp_c_hdd24"],
        degree_days("temp_c", exog["temp_c"].to_numpy(), 1.0)["temp_c_hdd24"],
    )
