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


def blast_breakpoints(
    soc: np.ndarray, dt_h: float, max_h: float = 24.0, max_efc: float = 1.0
) -> list[int]:
    """Segment ends BLAST-Lite 1.1.1 ages a SoC series at (``simulate_battery_life``): the ends of
    its rainflow cycles, taken once more than ``max_efc`` equivalent full cycles have passed
    since the last break, or every ``max_h`` hours through spells without such a turning point;
    the series' last index always ends the last segment."""
    soc = np.asarray(soc, dtype=float)
    c = cycles(soc)
    ends = np.unique(c[:, 4]).astype(int) if len(c) else np.zeros(0, dtype=int)
    efc = np.cumsum(np.abs(np.ediff1d(soc, to_begin=0))) / 2.0
    per = max_h / dt_h
    out: list[int] = []
    last = 0
    for i in ends:
        if i - last > per:
            for j in range(last, i):
                if j - last > per:
                    out.append(j)
                    last = j
            continue
        if efc[i] - efc[last] > max_efc:
            out.append(int(i))
            last = int(i)
    if not out or out[-1] != len(soc) - 1:
        out.append(len(soc) - 1)
    return out
