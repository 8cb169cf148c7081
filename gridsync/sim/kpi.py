"""Key performance indicators of a simulation run, all in named units."""

from __future__ import annotations

import numpy as np

from gridsync.model.scenario_config import LimitsConfig
from gridsync.sim.scenario import Scenario
from gridsync.sim.simulator import SimulationResult

KPI_UNITS = {
    "total_cost_incl_penalties_eur": "EUR",
    "total_cost_eur": "EUR",
    "energy_cost_eur": "EUR",
    "demand_charge_eur": "EUR",
    "degradation_cost_eur": "EUR",
    "carbon_cost_eur": "EUR",
    "penalty_cost_eur": "EUR",
    "end_state_adjustment_eur": "EUR",
    "peak_import_kw": "kW",
    "import_kwh": "kWh",
    "export_kwh": "kWh",
    "emissions_kg": "kg CO2",
    "voltage_violation_bus_steps": "bus-steps",
    "overload_branch_steps": "branch-steps",
    "min_voltage_pu": "p.u.",
    "max_voltage_pu": "p.u.",
    "max_loading_pct": "%",
    "max_vuf_pct": "%",
    "p95_vuf_pct": "%",
    "vuf_bus_steps_above_2pct": "bus-steps",
    "voltage_violation_bus_steps_phase_a": "bus-steps",
    "voltage_violation_bus_steps_phase_b": "bus-steps",
    "voltage_violation_bus_steps_phase_c": "bus-steps",
    "max_neutral_current_a": "A",
    "unmet_ev_kwh": "kWh",
    "unmet_deferrable_kwh": "kWh",
    "end_ev_shortfall_kwh": "kWh",
    "end_battery_delta_kwh": "kWh",
    "end_thermal_deficit_kwh": "kWh",
    "comfort_violation_degree_hours": "°C·h",
    "curtailed_kwh": "kWh",
    "reactive_kvarh": "kvarh",
    "tap_operations": "operations",
    "losses_kwh": "kWh",
    "powerflow_failures": "steps",
    "battery_capacity_lost_pp": "pp (mean)",
    "battery_ageing_value_eur": "EUR",
    "battery_soh_min_pct": "%",
    "battery_soh_projected_min_pct": "% at warranty",
    "battery_fade_alerts": "batteries",
    "ev_pack_soh_min_pct": "%",
    "runtime_s": "s",
}


def compute_kpis(result: SimulationResult, scenario: Scenario) -> dict[str, float]:
    """KPIs over the simulated window. ``total_cost_eur`` = energy at the feeder head under the
    tariff + demand charge on the window's peak import + battery and V2G degradation.
    ``total_cost_incl_penalties_eur`` is what the dispatch objective minimises: that, plus
    emissions at the objective's carbon price, unmet EV/appliance energy, comfort violation
    and curtailment at the objective's weights, plus the end-state settlement
    (``sim.accounting``: battery energy, EV energy beyond what crossing sessions owe, heat).
    ``curtailed_kwh`` counts PV spilled by setpoints and by the inverters' own limits (kVA
    rating, Volt-Watt); ``reactive_kvarh`` is the PV and battery inverters' |Q| over time,
    absorbed or injected."""
    dt = scenario.dt_h
    lim = scenario.config.limits
    sl = slice(scenario.start_step, scenario.end_step)
    p = result.feeder_kw
    energy_cost = scenario.tariff.energy_cost_eur(p, dt, start=scenario.start_step)
    peak = float(max(p.max(initial=0.0), 0.0))
    demand = scenario.tariff.demand_charge_eur(peak, scenario.n_steps * dt / 24.0)
    degradation = float(result.degradation_eur.sum())
    imports = np.maximum(p, 0.0)
    emissions_kg = float((imports * scenario.carbon_g_per_kwh[sl]).sum() * dt / 1000.0)
    w = scenario.config.objective
    unmet_ev = float(result.unmet_ev_kwh_per_session.sum())
    end = result.end_state
    # energy owed by cars still plugged in at the end is priced in the end-state adjustment
    unmet_departed_ev = unmet_ev - (end.ev_shortfall_kwh if end is not None else 0.0)
    comfort = float(result.comfort_violation_degree_h.sum())
    curtailed = float(result.curtailed_kw.sum() * dt)
    penalties = (
        w.unmet_ev_eur_per_kwh * unmet_departed_ev
        + w.unmet_deferrable_eur_per_kwh * float(result.unmet_deferrable_kwh)
        + w.comfort_eur_per_degree_hour * comfort
        + w.curtailment_eur_per_kwh * curtailed
    )
    carbon = w.carbon_price_eur_per_kg * emissions_kg
    adjustment = end.adjustment_eur if end is not None else 0.0
    total = energy_cost + demand + degradation
    vm = result.vm_pu
    with np.errstate(invalid="ignore"):
        v_bad = (vm < lim.voltage_min_pu) | (vm > lim.voltage_max_pu) | np.isnan(vm)
        overload = (result.branch_loading_pct > lim.loading_max_pct) | np.isnan(
            result.branch_loading_pct
        )
    return {
        **unbalance_kpis(result.extras, lim),
        **health_kpis(result, scenario),
        **ev_health_kpis(result),
        "total_cost_incl_penalties_eur": total + carbon + penalties + adjustment,
        "total_cost_eur": total,
        "energy_cost_eur": energy_cost,
        "demand_charge_eur": demand,
        "degradation_cost_eur": degradation,
        "carbon_cost_eur": carbon,
        "penalty_cost_eur": penalties,
        "end_state_adjustment_eur": adjustment,
        "peak_import_kw": peak,
        "import_kwh": float(imports.sum() * dt),
        "export_kwh": float(np.maximum(-p, 0.0).sum() * dt),
        "emissions_kg": emissions_kg,
        "voltage_violation_bus_steps": int(v_bad.sum()),
        "overload_branch_steps": int(overload.sum()),
        "min_voltage_pu": float(np.nanmin(vm)) if np.isfinite(vm).any() else float("nan"),
        "max_voltage_pu": float(np.nanmax(vm)) if np.isfinite(vm).any() else float("nan"),
        "max_loading_pct": float(np.nanmax(result.branch_loading_pct))
        if np.isfinite(result.branch_loading_pct).any()
        else float("nan"),
        "unmet_ev_kwh": unmet_ev,
        "unmet_deferrable_kwh": float(result.unmet_deferrable_kwh),
        "end_ev_shortfall_kwh": unmet_ev - unmet_departed_ev,
        "end_battery_delta_kwh": end.battery_delta_kwh if end is not None else 0.0,
        "end_thermal_deficit_kwh": end.thermal_deficit_kwh if end is not None else 0.0,
        "comfort_violation_degree_hours": comfort,
        "curtailed_kwh": curtailed,
        "reactive_kvarh": float(result.extras.get("pv_abs_kvar", np.zeros(1)).sum() * dt),
        "tap_operations": int(result.extras.get("tap_operations", np.zeros(1, dtype=int)).sum()),
        "losses_kwh": float(result.losses_kw.sum() * dt),
        "powerflow_failures": int(result.pf_failed.sum()),
        "runtime_s": float(result.runtime_s),
    }


def health_kpis(result: SimulationResult, scenario: Scenario) -> dict[str, float]:
    """Battery state of health after the window (``gridsync.storage``): capacity lost (mean
    percentage points) and what it is worth (pack price per kWh x capacity per 20 points of
    fade, the life to 80 %), the lowest capacity left, the lowest projected at the warranty's
    end (the window's use repeated), and how many batteries are projected below 80 % before
    their warranty years."""
    rep = result.extras.get("battery_health")
    keys = (
        "battery_capacity_lost_pp",
        "battery_ageing_value_eur",
        "battery_soh_min_pct",
        "battery_soh_projected_min_pct",
        "battery_fade_alerts",
    )
    if rep is None or not len(rep.soh_frac):
        return dict.fromkeys(keys, float("nan"))
    lost = 1.0 - rep.soh_frac
    cfg = scenario.config.fleet.battery
    value = cfg.pack_cost_eur_per_kwh * scenario.fleet.battery.capacity_kwh / 0.2
    return {
        "battery_capacity_lost_pp": 100 * float(lost.mean()),
        "battery_ageing_value_eur": float((lost * value).sum()),
        "battery_soh_min_pct": 100 * float(rep.soh_frac.min()),
        "battery_soh_projected_min_pct": 100 * float(rep.projected_soh_at_warranty.min()),
        "battery_fade_alerts": int(rep.alert.sum()),
    }


def ev_health_kpis(result: SimulationResult) -> dict[str, float]:
    """Lowest state of health of the car packs the chargers serve (``EVPackAgeing``)."""
    rep = result.extras.get("ev_health")
    if rep is None or not len(rep.soh_frac):
        return {"ev_pack_soh_min_pct": float("nan")}
    return {"ev_pack_soh_min_pct": 100 * float(rep.soh_frac.min())}


VUF_LIMIT_PCT = 2.0  # IEC 61000-2-2 / EN 50160 compatibility level for LV networks
UNBALANCE_KPIS = (
    "max_vuf_pct",
    "p95_vuf_pct",
    "vuf_bus_steps_above_2pct",
    "voltage_violation_bus_steps_phase_a",
    "voltage_violation_bus_steps_phase_b",
    "voltage_violation_bus_steps_phase_c",
    "max_neutral_current_a",
)


def unbalance_kpis(extras: dict, limits: LimitsConfig) -> dict[str, float]:
    """Voltage unbalance of a three-phase twin run (``[grid] phases = 3``; none otherwise)
    from its ``SimulationResult.extras`` (per step: ``vuf_pct`` and ``vm_phase_pu`` per bus,
    ``neutral_current_a`` per branch): the highest and the 95th-percentile voltage unbalance factor |V2|/|V1| over the bus-steps
    of three-phase buses, the bus-steps above the 2 % limit (compared on 15-minute values,
    EN 50160 uses 10-minute means), per phase the bus-steps whose phase-to-neutral voltage
    is outside the band (a failed step counts on every phase, as in
    ``voltage_violation_bus_steps``) and the highest residual (neutral + earth) current of
    any branch."""
    vuf = extras.get("vuf_pct")
    if vuf is None:
        return {}
    neutral = extras["neutral_current_a"]
    vm3 = extras["vm_phase_pu"]
    finite = vuf[np.isfinite(vuf)]
    with np.errstate(invalid="ignore"):
        above = int((vuf > VUF_LIMIT_PCT).sum())
        bad = (vm3 < limits.voltage_min_pu) | (vm3 > limits.voltage_max_pu) | np.isnan(vm3)
    per_phase = bad.sum(axis=(0, 1))
    return {
        "max_vuf_pct": float(finite.max()) if finite.size else float("nan"),
        "p95_vuf_pct": float(np.percentile(finite, 95)) if finite.size else float("nan"),
        "vuf_bus_steps_above_2pct": above,
        **{
            f"voltage_violation_bus_steps_phase_{p}": int(n)
            for p, n in zip("abc", per_phase, strict=True)
        },
        "max_neutral_current_a": float(np.nanmax(neutral))
        if np.isfinite(neutral).any()
        else float("nan"),
    }
