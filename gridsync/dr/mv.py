"""Measurement & verification: customer baselines, delivered reduction and baseline accuracy.

Meter data is a flat array ``meter_kw`` (T, n): one row per step, one column per customer.
``excluded`` (T,) marks steps that must not serve as "normal" history (event windows and
their rebound). A step ``s`` and ``s - k * steps_per_day`` share a time of day, which lets
windows cross midnight without special cases.

* ``baseline_10of10``: mean of the last 10 eligible prior days of the same day type
  (weekday / weekend) at the same times, scaled by a same-day adjustment: the ratio of actual
  to baseline load in the ``adj_h`` hours ending ``adj_gap_h`` before the event, capped to
  ``adj_cap`` (the usual utility rule, so a pre-cooling or pre-charging customer cannot
  inflate their own baseline without bound).
* ``baseline_regression``: per customer, least squares of load on time-of-day slot, outdoor
  temperature and day type over up to ``days`` eligible prior days (one ``lstsq`` for all
  customers at once).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class BaselineError(ValueError):
    """Not enough clean history before an event to build a baseline."""


def _prior_offsets(
    start: int,
    end: int,
    lead: int,
    excluded: np.ndarray,
    weekend: np.ndarray,
    spd: int,
    max_days: int,
    same_day_type: bool = True,
    lookback_days: int = 60,
) -> np.ndarray:
    offsets = []
    for k in range(1, lookback_days + 1):
        lo, hi = start - lead - k * spd, end - k * spd
        if lo < 0:
            break
        if (same_day_type and weekend[lo + lead] != weekend[start]) or excluded[lo:hi].any():
            continue
        offsets.append(k * spd)
        if len(offsets) == max_days:
            break
    return np.asarray(offsets, dtype=int)


def baseline_10of10(
    meter_kw: np.ndarray,
    start: int,
    end: int,
    excluded: np.ndarray,
    weekend: np.ndarray,
    spd: int,
    n_days: int = 10,
    adj_h: float = 3.0,
    adj_gap_h: float = 1.0,
    adj_cap: tuple[float, float] = (0.8, 1.2),
) -> np.ndarray:
    """Baseline (end - start, n) for the event window ``[start, end)`` (see module docstring)."""
    steps_h = spd / 24
    adj, gap = int(round(adj_h * steps_h)), int(round(adj_gap_h * steps_h))
    lead = adj + gap
    offs = _prior_offsets(start, end, lead, excluded, weekend, spd, n_days)
    if len(offs) == 0:
        msg = (
            f"no clean prior day of the same day type before step {start}: "
            "simulate more warm-up days before the first event"
        )
        raise BaselineError(msg)
    window = np.arange(start, end)
    raw = meter_kw[window[None, :] - offs[:, None]].mean(axis=0)
    if adj == 0:
        return raw
    pre = np.arange(start - lead, start - gap)
    pre_base = meter_kw[pre[None, :] - offs[:, None]].mean(axis=0).sum(axis=0)
    pre_actual = meter_kw[pre].sum(axis=0)
    ratio = np.where(pre_base > 1e-9, pre_actual / np.maximum(pre_base, 1e-9), 1.0)
    return raw * np.clip(ratio, *adj_cap)


def baseline_regression(
    meter_kw: np.ndarray,
    start: int,
    end: int,
    excluded: np.ndarray,
    weekend: np.ndarray,
    temp_c: np.ndarray,
    spd: int,
    days: int = 28,
) -> np.ndarray:
    """Regression baseline (end - start, n): slot intercepts + temperature + weekend terms."""
    offs = _prior_offsets(start, end, 0, excluded, weekend, spd, days, same_day_type=False)
    if len(offs) < 3:
        msg = f"regression baseline needs >= 3 clean prior days before step {start}, found {len(offs)}"
        raise BaselineError(msg)
    w = end - start
    window = np.arange(start, end)
    hist = (window[None, :] - offs[:, None]).ravel()
    slot = np.tile(np.arange(w), len(offs))

    def design(steps: np.ndarray, slots: np.ndarray) -> np.ndarray:
        x = np.zeros((len(steps), w + 2))
        x[np.arange(len(steps)), slots] = 1.0
        x[:, w] = temp_c[steps]
        x[:, w + 1] = weekend[steps]
        return x

    coef, *_ = np.linalg.lstsq(design(hist, slot), meter_kw[hist], rcond=None)
    return design(window, np.arange(w)) @ coef


def delivered_kw_by_baseline(
    meter_kw: np.ndarray,
    start: int,
    end: int,
    customers: np.ndarray,
    excluded: np.ndarray,
    weekend: np.ndarray,
    temp_c: np.ndarray,
    spd: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean kW each customer delivered over ``[start, end)`` against the 10-of-10 adjusted
    baseline (what settles payments) and against the regression baseline (a cross-check).

    A baseline that lacks clean history gives NaN for every customer rather than a guess.
    """
    actual = meter_kw[start:end][:, customers]
    out = []
    for fn in (
        lambda: baseline_10of10(meter_kw, start, end, excluded, weekend, spd),
        lambda: baseline_regression(meter_kw, start, end, excluded, weekend, temp_c, spd),
    ):
        try:
            out.append((fn()[:, customers] - actual).mean(axis=0))
        except BaselineError:
            out.append(np.full(len(customers), np.nan))
    return out[0], out[1]


def control_group_shed_kw(
    used_kw: np.ndarray,
    rated_kw: np.ndarray,
    segment: np.ndarray,
    control: np.ndarray,
    called: np.ndarray,
    battery_before_kw: np.ndarray,
    battery_col: int,
) -> np.ndarray:
    """Device shed (k, n_end_uses) of the ``called`` customers during an event, in kW.

    ``used_kw`` (n, n_end_uses) is every customer's mean device power in the event window.
    Customers in ``control`` (not called) of the same segment show, at the same moment and in
    the same weather, what share of its rated power a device of each end use would have drawn;
    that share times the called customer's rating is the counterfactual (the pooled share when
    a segment has no control customer). Batteries follow their own state of charge rather
    than their neighbours, so their counterfactual is their power just before the event.
    Needing no history, this is immune to weather shifts between days.
    """
    owners = (rated_kw > 0) & control[:, None]
    if not owners.any():
        return np.full((len(called), rated_kw.shape[1]), np.nan)
    util = used_kw / np.maximum(rated_kw, 1e-9)
    n_seg = segment.max() + 1
    tot = np.zeros((n_seg, rated_kw.shape[1]))
    cnt = np.zeros((n_seg, rated_kw.shape[1]))
    np.add.at(tot, segment, util * owners)
    np.add.at(cnt, segment, owners)
    pooled = (util * owners).sum(axis=0) / np.maximum(owners.sum(axis=0), 1)
    seg_util = np.where(cnt > 0, tot / np.maximum(cnt, 1), pooled)
    counterfactual = seg_util[segment[called]] * rated_kw[called]
    counterfactual[:, battery_col] = battery_before_kw
    return counterfactual - used_kw[called]


@dataclass
class BaselineAccuracy:
    """Error of a baseline method on days with no event (where the truth is the meter)."""

    method: str
    n_days: int
    mape_pct: float
    cv_rmse_pct: float
    bias_pct: float

    def as_dict(self) -> dict:
        """JSON-ready; metrics without any clean test day are None (not NaN)."""

        def num(x: float) -> float | None:
            return None if not np.isfinite(x) else float(x)

        return {
            "method": self.method,
            "n_days": self.n_days,
            "portfolio_mape_pct": num(self.mape_pct),
            "customer_cv_rmse_pct": num(self.cv_rmse_pct),
            "bias_pct": num(self.bias_pct),
        }


def baseline_accuracy(
    meter_kw: np.ndarray,
    excluded: np.ndarray,
    weekend: np.ndarray,
    temp_c: np.ndarray,
    spd: int,
    windows: list[tuple[int, int]],
    customers: np.ndarray,
    first_step: int = 0,
) -> dict[str, BaselineAccuracy]:
    """Back-test both baselines on non-event days for time-of-day ``windows`` (slot ranges).

    For every clean day from ``first_step`` on and every window, pretend an event was called
    and compare the baseline with what the meters actually read. MAPE is over the portfolio
    (sum of ``customers``, window mean); CV(RMSE) is over customer-steps.
    """
    methods = {
        "10of10_adjusted": lambda s, e: baseline_10of10(meter_kw, s, e, excluded, weekend, spd),
        "regression": lambda s, e: baseline_regression(
            meter_kw, s, e, excluded, weekend, temp_c, spd
        ),
    }
    out = {}
    n_days_total = len(meter_kw) // spd
    for name, fn in methods.items():
        ape, sq, act_sum, bias, count, days = [], 0.0, 0.0, 0.0, 0, set()
        for d in range(first_step // spd, n_days_total):
            for lo, hi in windows:
                s, e = d * spd + lo, d * spd + hi
                if e > len(meter_kw) or excluded[s:e].any():
                    continue
                try:
                    base = fn(s, e)[:, customers]
                except BaselineError:
                    continue
                actual = meter_kw[s:e, customers]
                tot_a, tot_b = actual.sum(axis=1).mean(), base.sum(axis=1).mean()
                if tot_a > 1e-9:
                    ape.append(abs(tot_b - tot_a) / tot_a)
                bias += float((base - actual).sum())
                sq += float(((base - actual) ** 2).sum())
                act_sum += float(actual.sum())
                count += actual.size
                days.add(d)
        mean_a = act_sum / count if count else np.nan
        out[name] = BaselineAccuracy(
            method=name,
            n_days=len(days),
            mape_pct=100 * float(np.mean(ape)) if ape else float("nan"),
            cv_rmse_pct=100 * float(np.sqrt(sq / count) / mean_a) if count else float("nan"),
            bias_pct=100 * float(bias / act_sum) if act_sum else float("nan"),
        )
    return out
