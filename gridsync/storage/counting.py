"""Rainflow cycle counting of SoC series (ASTM E1049-85, through the ``rainflow`` package).

A SoC history is a superposition of cycles of different depths; cycle ageing depends on the
depth of each, so the series is decomposed into full and half cycles (depth = range, count 1
or 0.5) before the depth stress is applied.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import rainflow


def cycles(soc: np.ndarray) -> np.ndarray:
    """Rainflow cycles of one SoC series as rows (depth, mean SoC, count, start, end index)."""
    rows = list(rainflow.extract_cycles(np.asarray(soc, dtype=float)))
    if not rows:
        return np.zeros((0, 5))
    return np.asarray(rows, dtype=float)


def equivalent_full_cycles(soc: np.ndarray) -> float:
    """Throughput in full cycles: sum of count x 2 x depth / 2 (equals sum |dSoC| / 2)."""
    c = cycles(soc)
    return float((c[:, 0] * c[:, 2]).sum()) if len(c) else 0.0


def throughput_weighted(
    soc: np.ndarray, stress: Callable[[np.ndarray, int], np.ndarray]
) -> np.ndarray:
    """Per series (rows of ``soc``), the mean of ``stress(depths, row)`` over its rainflow
    cycles weighted by each cycle's throughput (count x depth); 0 for a flat series."""
    soc = np.atleast_2d(soc)
    out = np.zeros(soc.shape[0])
    for i, row in enumerate(soc):
        c = cycles(row)
        if not len(c):
            continue
        w = c[:, 0] * c[:, 2]
        if w.sum() <= 0:
            continue
        out[i] = float((w * stress(c[:, 0], i)).sum() / w.sum())
    return out
