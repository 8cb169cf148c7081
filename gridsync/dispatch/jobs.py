"""Deferrable appliance jobs over a dispatch horizon: which (asset, block) pairs may run and
how much energy each (asset, day) job needs inside the horizon."""

from __future__ import annotations

import numpy as np

from gridsync.dispatch.horizon import HorizonData


def deferrable_jobs(hd: HorizonData):
    """In-window (asset, block) pairs and one job per (asset, day) window the horizon touches.

    A block counts as in the window when it starts inside it; its power is capped by the share
    of the block before the window closes. Energy the appliance can still take in native steps
    after the horizon lowers what the job needs inside it (with a ``pro_rata_end`` terminal
    value, the job owes its energy pro rata to its window time inside the horizon instead).
    """
    d = hd.fleet.deferrable
    H, dt = hd.horizon, hd.dt_h
    total = int(hd.block_steps.sum())
    offset_h = np.r_[hd.block_start * dt, (total + np.arange(hd.steps_per_day)) * dt]
    dur_h = np.r_[hd.step_h, np.full(hd.steps_per_day, dt)]
    abs_h = hd.hour_of_day[0] + offset_h if H else offset_h
    hour = np.mod(abs_h, 24.0)
    day = np.floor(abs_h / 24.0 + 1e-9).astype(int)
    hour = np.where(np.isclose(hour, 24.0), 0.0, hour)
    inside = (d.window_start_h[:, None] <= hour[None, :] + 1e-9) & (
        hour[None, :] + 1e-9 < d.window_end_h[:, None]
    )
    j_all, t_all = np.nonzero(inside)
    n_day = int(day.max()) + 1 if len(day) else 1
    key_all = j_all * n_day + day[t_all]
    in_h = t_all < H
    keys, job_of_pair = np.unique(key_all[in_h], return_inverse=True)
    after_h = np.zeros(len(keys))
    late = ~in_h
    pos = np.searchsorted(keys, key_all[late])
    if len(keys):
        hit = (pos < len(keys)) & (keys[np.minimum(pos, len(keys) - 1)] == key_all[late])
    else:  # no job window inside the horizon: nothing after it belongs to a planned job
        hit = np.zeros(len(pos), bool)
    np.add.at(after_h, pos[hit], dur_h[t_all[late][hit]])
    job_asset = keys // n_day
    job_day = keys % n_day
    current = (job_day == 0) & inside[job_asset, 0] if H else np.zeros(len(keys), bool)
    done = np.where(current, hd.state.deferrable_done_kwh[job_asset], 0.0)
    remaining = np.maximum(d.energy_kwh[job_asset] - done, 0.0)
    need = np.maximum(remaining - d.power_kw[job_asset] * after_h, 0.0)
    j, t = j_all[in_h], t_all[in_h]
    if hd.terminal is not None and hd.terminal.pro_rata_end:
        # the KPI's window-end rule: a job still open owes its energy pro rata to the time
        inside_h = np.bincount(job_of_pair, weights=dur_h[t], minlength=len(keys))
        share = inside_h / np.maximum(inside_h + after_h, 1e-9)
        need = np.where(after_h > 0, remaining * share, need)
    frac = np.clip((d.window_end_h[j] - hour[t]) / dur_h[t], 0.0, 1.0)
    return j, t, frac, job_of_pair, job_asset, job_day, need, remaining
