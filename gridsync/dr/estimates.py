"""What the DR agent estimates from telemetry before it calls an event: the feeder-head
forecast, each customer's device flexibility and battery reserve, and the reconstituted load
of verified event windows.

Everything here reads only arrays the agent recorded (meter and device telemetry of intervals
that have ended, feeder-head import of the previous interval, M&V results of verified events),
so a decision at run step ``i`` depends on nothing from step ``i`` on.
"""

from __future__ import annotations

import numpy as np

from gridsync.dr.customers import END_USES, EU
from gridsync.dr.mv import delivered_kw_by_baseline

FORECAST_DAYS = 3
FLEX_DAYS = 10
# Prior weight (in days of history) of the segment's utilisation in per-customer flexibility.
SHRINK_DAYS = 10
# Outdoor temperatures (C) below / above which heat pumps heat / cool, for the weather factor.
HEATING_BALANCE_C = 18.0
COOLING_BALANCE_C = 22.0


class TelemetryEstimates:
    """Mixin of ``DRAgent``: forecasts and flexibility estimates from recorded telemetry."""

    def _same_time_history(
        self,
        series: np.ndarray,
        steps: np.ndarray,
        known: int,
        days: int,
        excluded: np.ndarray | None = None,
    ):
        """Values of ``series`` at the same time of day on up to ``days`` earlier clean days
        (``excluded`` steps skipped; the event and rebound windows by default)."""
        excluded = self.excluded if excluded is None else excluded
        k = np.arange(1, days + 8)
        src = steps[:, None] - k[None, :] * self.spd
        ok = (src >= 0) & (src < known)
        src_c = np.clip(src, 0, len(series) - 1)
        ok &= ~excluded[src_c]
        vals = series[src_c]
        ok &= np.isfinite(vals)
        # keep only the first ``days`` clean days per row
        ok &= np.cumsum(ok, axis=1) <= days
        return vals, ok

    def forecast_feeder_kw(self, i: int, horizon: int) -> np.ndarray:
        """Feeder-head import forecast for run steps ``i .. i+horizon-1``: mean of the same time
        on the last ``FORECAST_DAYS`` days of metered feeder import, NaN without history.

        Verified event and rebound windows count with their load reconstituted (the reduction
        the M&V baseline measured added back, the measured rebound taken off), as utilities
        do, so a daily event does not freeze the forecast on the last event-free days;
        windows not yet verified are skipped."""
        steps = np.arange(i, i + horizon)
        vals, ok = self._same_time_history(
            self.feeder_kw + self.addback_kw,
            steps,
            i,
            FORECAST_DAYS,
            excluded=self.excluded & ~self.reconstituted,
        )
        cnt = ok.sum(axis=1)
        with np.errstate(invalid="ignore"):
            return np.where(
                cnt > 0, np.where(ok, vals, 0.0).sum(axis=1) / np.maximum(cnt, 1), np.nan
            )

    def peak_offset_kw(self, i: int) -> float:
        """How far the mean daily profile's maximum falls short of the mean daily maximum over
        the last ``FORECAST_DAYS`` whole days before step ``i`` (reconstituted feeder import).

        Averaging days whose peaks come at different times flattens the peak; adding this
        offset makes the forecast's peak an unbiased forecast of the day's peak."""
        first = (i // self.spd - FORECAST_DAYS) * self.spd
        if first < 0:
            return 0.0
        days = (self.feeder_kw + self.addback_kw)[first : first + FORECAST_DAYS * self.spd]
        days = days.reshape(FORECAST_DAYS, self.spd)
        if not np.isfinite(days).all():
            return 0.0
        return max(float(days.max(axis=1).mean() - days.mean(axis=0).max()), 0.0)

    def flex_kw(self, i: int, start: int, end: int) -> np.ndarray:
        """Expected device power per customer and end use (n, 5) over run steps [start, end)
        from telemetry: the mean over each customer's last ``FLEX_DAYS`` days at the same time
        on which *that customer* was not called (so other customers' events do not hide
        recent history), shrunk towards the customer's segment."""
        steps = np.arange(start, end)
        k = np.arange(1, FLEX_DAYS + 8)
        src = steps[:, None] - k[None, :] * self.spd  # (S, K)
        valid = ((src >= 0) & (src < i)).all(axis=0)  # (K,)
        src_c = np.clip(src, 0, len(self.called) - 1)
        clean = valid[:, None] & ~self.called[src_c].any(axis=0)  # (K, n)
        clean &= np.cumsum(clean, axis=0) <= FLEX_DAYS
        n_days = clean.sum(axis=0)  # (n,)
        if not n_days.any():
            return np.zeros((self.book.n, len(END_USES)))
        per_day = self.device_kw[src_c].mean(axis=0)  # (K, n, 5)
        own = (per_day * clean[:, :, None]).sum(axis=0) / np.maximum(n_days, 1)[:, None]
        own = np.maximum(own, 0.0)
        # Shrink each customer's utilisation towards their segment's: with a few days of
        # history a customer whose car happened to charge at this hour looks more flexible
        # than they are, and the planner would pick exactly those (winner's curse).
        owners = (self.book.device_kw > 0) & (n_days > 0)[:, None]
        util = own / np.maximum(self.book.device_kw, 1e-9)
        seg = self.book.segment
        n_seg = seg.max() + 1
        seg_sum = np.zeros((n_seg, len(END_USES)))
        seg_cnt = np.zeros((n_seg, len(END_USES)))
        np.add.at(seg_sum, seg, util * owners)
        np.add.at(seg_cnt, seg, owners)
        seg_util = seg_sum / np.maximum(seg_cnt, 1)
        w = (n_days / (n_days + SHRINK_DAYS))[:, None]
        shrunk = (w * util + (1 - w) * seg_util[seg]) * self.book.device_kw
        return np.where(self.book.device_kw > 0, shrunk, 0.0)

    # ---- planning -------------------------------------------------------------------------
    def _battery_discharge_kw(self, i: int, start: int, dur_h: float) -> np.ndarray:
        """Discharge each customer's batteries could sustain over the event: usable energy
        at the same time on the last few days (battery telemetry), capped by rated power."""
        src = start - np.arange(1, FORECAST_DAYS + 1) * self.spd
        src = src[(src >= 0) & (src < i)]
        if len(src) == 0:
            return np.zeros(self.book.n)
        usable = self.battery_usable_kwh[src].mean(axis=0)
        return np.minimum(self.book.device_kw[:, EU["battery"]], usable / dur_h)

    def _calibrated_flex_kw(self, i: int, start: int, end: int) -> np.ndarray:
        """Sheddable kW per customer and end use for [start, end) as planned at step ``i``:
        device power from telemetry (heat pumps scaled to the forecast weather) plus battery
        discharge."""
        flex = self.flex_kw(i, start, end)
        flex[:, EU["hvac"]] *= self.hvac_weather_factor(i, start, end)
        flex[:, EU["battery"]] += self._battery_discharge_kw(i, start, (end - start) * self.dt_h)
        return flex

    def hvac_weather_factor(self, i: int, start: int, end: int) -> float:
        """Heat-pump power in [start, end) relative to the history days ``flex_kw`` averages:
        the ratio of degrees below the heating balance point (or above the cooling one),
        forecast vs those days.

        Forecast from the weather station's readings up to step ``i - 1`` only: the last
        reading plus the mean change from that time of day to the window on the history days
        (persistence with the diurnal shape)."""
        k = np.arange(1, FLEX_DAYS + 1) * self.spd
        src = start - k
        ok = (src >= 0) & (i - 1 - k >= 0)
        if i < 1 or not ok.any():
            return 1.0
        k, n = k[ok], end - start
        hist = np.array([self.temp_c[s : s + n].mean() for s in start - k])  # (D,)
        then = self.temp_c[i - 1 - k]
        forecast = self.temp_c[i - 1] + float(np.mean(hist - then))
        heating = hist.mean() < HEATING_BALANCE_C
        if heating:
            past, now = HEATING_BALANCE_C - hist, HEATING_BALANCE_C - forecast
        else:
            past, now = hist - COOLING_BALANCE_C, forecast - COOLING_BALANCE_C
        past_mean = float(np.maximum(past, 0.0).mean())
        if past_mean < 1.0:
            return 1.0
        return float(np.clip(max(now, 0.0) / past_mean, 0.0, 3.0))

    def _reconstitute(self, ev, delivered_each_kw: np.ndarray) -> None:
        """Add the M&V-measured reduction back onto the feeder history of the event window
        and take the measured rebound (same baseline, the window after) off it."""
        end = min(ev.end + self._rebound_steps(), len(self.feeder_kw))
        rebound_each = np.zeros(0)
        if end > ev.end:
            # regression baseline: the same-day adjustment would see the event's own window
            _, rebound_each = delivered_kw_by_baseline(
                self.meter_kw,
                ev.end,
                end,
                ev.customers,
                self.excluded,
                self.weekend,
                self.temp_c,
                self.spd,
            )
        if not np.isfinite(delivered_each_kw).all():
            return
        self.addback_kw[ev.start : ev.end] += float(delivered_each_kw.sum())
        if end > ev.end and np.isfinite(rebound_each).all():
            self.addback_kw[ev.end : end] += float(rebound_each.sum())
        self.reconstituted[ev.start : end] = True
