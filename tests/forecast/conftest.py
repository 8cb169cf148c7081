"""Synthetic series with known structure, and the bundled real Victoria demand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def double_seasonal(days: int = 35, per_day: int = 24, noise: float = 0.0, seed: int = 0):
    """Level 100 + daily sine + weekend dip (+ optional iid noise), hourly by default."""
    idx = pd.date_range("2024-01-01", periods=days * per_day, freq=pd.Timedelta(days=1) / per_day)
    t = np.arange(len(idx))
    day = 20 * np.sin(2 * np.pi * t / per_day)
    week = np.where(idx.dayofweek >= 5, -15.0, 0.0)
    rng = np.random.default_rng(seed)
    return pd.Series(100 + day + week + noise * rng.standard_normal(len(idx)), index=idx)


@pytest.fixture(scope="session")
def vic():
    from gridsync.forecast.datasets import vic_elec_hourly

    return vic_elec_hourly()
