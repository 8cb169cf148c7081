"""Streaming drift detection with river (Page-Hinkley, ADWIN) on standardised residuals.

A monitor watches one stream, e.g. a feeder's forecast residuals or an asset's behaviour
(a battery's round-trip efficiency per cycle, the daily count of EV arrivals, a heat pump's
kWh per degree-day). Each value is standardised by a reference mean and scale the caller
knows before the stream starts (for forecast residuals: 0 and the forecast's own P10-P90
half-width / 1.2816, i.e. the calibrated band's sigma), so one detector setting serves
streams of any unit. ``DriftMonitor.update`` returns a ``DriftAlert`` when the detector
fires: what drifted, when the change most likely started, and by how much (the mean raw
deviation since then, also relative to the reference level when one is given).

Page-Hinkley (the default) accumulates standardised deviations beyond ``delta`` and fires
when the cumulative sum leaves its running extreme by ``threshold``: a shift of ``k`` sigma
is found after about ``threshold / (k - delta)`` values, while stationary noise (even
autocorrelated, as forecast errors are) drifts the sum away from the threshold at ``delta``
per value. ADWIN (adaptive windowing) compares the means of the two halves of a window it
grows and cuts; it assumes independent values and fires more often on autocorrelated
residuals, so it is offered for asset KPIs sampled per cycle or per day.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

DETECTORS = ("page_hinkley", "adwin")


@dataclass
class DriftAlert:
    """A detected change in a monitored stream (``shift`` in the stream's own unit)."""

    stream: str
    index: int  # position in the stream (values seen before this one)
    ts: object  # the caller's timestamp of the value that fired
    change_index: int  # where the change most likely started
    shift: float  # mean deviation from the reference since the change
    shift_sigma: float  # the same in reference sigmas
    shift_pct: float | None  # relative to ``level`` when given
    detector: str
    message: str = field(default="")

    def as_dict(self) -> dict:
        return {k: (str(v) if k == "ts" else v) for k, v in self.__dict__.items()}


class DriftMonitor:
    """One stream, one river detector (see module doc).

    ``mean``/``scale``: reference mean and sigma of the stream; ``level``: the reference
    level a shift is expressed against (e.g. mean demand, for a residual stream);
    ``reference_weight``: how many values' worth of trust the reference gets.
    """

    def __init__(
        self,
        stream: str,
        *,
        mean: float = 0.0,
        scale: float = 1.0,
        level: float | None = None,
        detector: str = "page_hinkley",
        delta: float = 0.5,
        threshold: float = 40.0,
        adwin_delta: float = 0.002,
        min_instances: int = 24,
        reference_weight: int = 168,
    ) -> None:
        if detector not in DETECTORS:
            raise ValueError(f"detector: {detector!r}; choose from {DETECTORS}")
        if not scale > 0:
            raise ValueError(f"scale: {scale} must be > 0 (the stream's reference sigma)")
        self.stream, self.mean, self.scale, self.level = stream, mean, scale, level
        self.detector = detector
        self.params = dict(
            delta=delta,
            threshold=threshold,
            adwin_delta=adwin_delta,
            min_instances=min_instances,
            reference_weight=reference_weight,
        )
        self.n = 0
        self.alerts: list[DriftAlert] = []
        self._recent: deque[float] = deque(maxlen=24 * 14)
        self._reset()

    def _reset(self) -> None:
        from river import drift

        p = self.params
        if self.detector == "page_hinkley":
            # alpha=1: no forgetting; the detector's running mean starts from the reference
            self._det = drift.PageHinkley(
                min_instances=p["min_instances"],
                delta=p["delta"],
                threshold=p["threshold"],
                alpha=1.0,
                mode="both",
            )
        else:
            self._det = drift.ADWIN(delta=p["adwin_delta"], grace_period=p["min_instances"])
        # the reference is known: ``reference_weight`` values exactly on it anchor the
        # detector's own running mean, so a change soon after a (re)start is not absorbed
        # into the mean it is measured against
        for _ in range(p["reference_weight"]):
            self._det.update(0.0)
        self._since = self.n
        self._cum: list[float] = []

    def rebase(self, mean: float | None = None, scale: float | None = None) -> None:
        """New reference (after a model was retrained or promoted): restarts the detector."""
        if mean is not None:
            self.mean = mean
        if scale is not None:
            if not scale > 0:
                raise ValueError(f"scale: {scale} must be > 0")
            self.scale = scale
        self._reset()

    def update(self, value: float, ts: object = None) -> DriftAlert | None:
        """Feed one value; a DriftAlert when the detector fires (then it restarts)."""
        z = (float(value) - self.mean) / self.scale
        if not np.isfinite(z):
            return None
        self.n += 1
        self._recent.append(float(value))
        self._cum.append(z)
        self._det.update(z)
        if not self._det.drift_detected:
            return None
        alert = self._alert(ts)
        self.alerts.append(alert)
        self._reset()
        return alert

    def _alert(self, ts) -> DriftAlert:
        z = np.asarray(self._cum)
        # change point as Page-Hinkley/CUSUM estimate it: where the cumulative sum of the
        # deviations beyond delta was at its extreme before the side that fired ran away
        d = self.params["delta"]
        up, down = np.cumsum(z - d), np.cumsum(z + d)
        if up[-1] - up.min() >= down.max() - down[-1]:
            k = int(np.argmin(up)) + 1
        else:
            k = int(np.argmax(down)) + 1
        k = min(k, len(z) - 1)
        after = z[k:]
        shift_sigma = float(after.mean())
        shift = shift_sigma * self.scale
        pct = None if not self.level else 100.0 * shift / self.level
        change = self._since + k
        msg = (
            f"{self.stream}: {'up' if shift > 0 else 'down'} by {abs(shift):.4g}"
            + (f" ({pct:+.1f} % of the reference level)" if pct is not None else "")
            + f", {abs(shift_sigma):.1f} sigma, since value {change} ({self.detector})"
        )
        return DriftAlert(
            stream=self.stream,
            index=self.n - 1,
            ts=ts,
            change_index=change,
            shift=shift,
            shift_sigma=shift_sigma,
            shift_pct=pct,
            detector=self.detector,
            message=msg,
        )
