"""Seeded storm scenarios: does the day-ahead risk flag fire, and does pre-charging pay?

Storms are added to the bundled weather year (``risk.storm_weather``). The risk forecast is
issued the day before from a forecast wind with multiplicative and additive errors, never from
the realised wind. Two questions, answered on the same seeded faults:

1. Skill: on how many storm days does the flag fire, and on how many calm days does it fire
   anyway (false alarms)?
2. Value: for one fault drawn during each storm (where, in proportion to the realised hourly
   rates), customer minutes and energy not supplied under FLISR + islanding with the posture
   (batteries pre-charged on flagged days) against the same fault without it (batteries at the
   state of charge their normal operation left them at).

The faults are drawn from the same fragility curve the forecast uses, so (1) measures the
forecast chain under forecast error, not whether the curve is right; that needs outage records.
"""

from __future__ import annotations

import numpy as np

from gridsync.resilience.feeder import Conditions, SwitchableFeeder
from gridsync.resilience.risk import RiskModel, daily_risk, line_risk, storm_weather
from gridsync.resilience.study import FaultScenario, evaluate_fault, indices_per_fault


def storm_study(feeder: SwitchableFeeder, cond: Conditions, n_storms: int = 30, seed: int = 0,
                model: RiskModel | None = None, wind_error_sd: float = 0.15) -> dict:
    model = model or RiskModel()
    rng = np.random.default_rng(seed)
    wind, storms = storm_weather(cond, rng, n_storms, gust_factor=model.gust_factor)
    actual = line_risk(feeder, cond, model, wind_m_s=wind)
    forecast_wind = np.clip(wind * rng.lognormal(0.0, wind_error_sd, wind.size)
                            + rng.normal(0.0, 1.0, wind.size), 0.0, None)
    forecast = line_risk(feeder, cond, model, wind_m_s=forecast_wind)
    flags = np.array([daily_risk(feeder, forecast, d, model).precharge for d in range(365)])
    storm_days = np.zeros(365, dtype=bool)
    for start, length in storms:
        storm_days[start // 24:min(364, (start + length - 1) // 24) + 1] = True

    with_posture, without = [], []
    for start, length in storms:
        hours = np.arange(start, start + length)
        rate = actual.rate_per_yr[hours]
        pick = rng.choice(rate.size, p=rate.ravel() / rate.sum())
        hi, element = divmod(int(pick), rate.shape[1])
        up = feeder.study.upstream
        mean_repair = np.append(feeder.repair_time_h, up.restoration_time_h if up else 1.0)
        hour = float(hours[hi] + rng.uniform(0, 1))
        repair = float(rng.exponential(mean_repair[element]))
        soc = tuple(float(rng.uniform(0.2, 0.9)) for _ in feeder.study.microgrids)
        precharged = bool(flags[int(hour) // 24 % 365])
        soc_posture = tuple(max(s, model.precharge_soc) for s in soc) if precharged else soc
        base = FaultScenario(element, hour, repair, soc)
        without.append(evaluate_fault(feeder, cond, base))
        with_posture.append(evaluate_fault(feeder, cond, FaultScenario(element, hour, repair, soc_posture)))

    a = indices_per_fault(feeder, without)["flisr_island"]
    b = indices_per_fault(feeder, with_posture)["flisr_island"]
    n_tot = feeder.customers.sum()
    saved = a["customer_minutes"] - b["customer_minutes"]
    return {
        "storms": n_storms,
        "seed": seed,
        "flag_hit_rate_storm_days": float(flags[storm_days].mean()) if storm_days.any() else None,
        "flag_false_alarm_rate_calm_days": float(flags[~storm_days].mean()),
        "storm_days": int(storm_days.sum()),
        "flagged_days": int(flags.sum()),
        "faults": len(without),
        "upstream_faults": int(sum(o.scenario.line == len(feeder.line_name) for o in without)),
        "faults_on_flagged_days": int(sum(flags[int(o.scenario.hour) // 24 % 365] for o in without)),
        "flisr_island_without_posture": {
            "customer_minutes_per_fault": float(a["customer_minutes"].mean()),
            "ens_kwh_per_fault": float(a["ens_kwh"].mean()),
            "saidi_min_per_fault": float(a["customer_minutes"].mean() / n_tot)},
        "flisr_island_with_posture": {
            "customer_minutes_per_fault": float(b["customer_minutes"].mean()),
            "ens_kwh_per_fault": float(b["ens_kwh"].mean()),
            "saidi_min_per_fault": float(b["customer_minutes"].mean() / n_tot)},
        "customer_minutes_saved_by_posture_mean": float(saved.mean()),
        "faults_where_posture_changed_the_outcome": int((saved != 0).sum()),
        "customer_minutes_saved_by_posture_where_it_mattered": [float(x) for x in saved[saved != 0]],
        "plans_radial": all(o.plans_radial(feeder) for o in with_posture + without),
        "plans_ac_feasible": all(o.plans_ok() for o in with_posture + without),
    }
