"""``gridsync simulate``: run one or more controllers on a scenario and compare them."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from pathlib import Path

import click

from gridsync.cli.options import (
    days_option,
    json_option,
    load_scenario_or_exit,
    report_options,
    scenario_option,
    start_option,
    step_progress,
)
from gridsync.sim.registry import (
    BALANCED_ONLY,
    CONTROLLERS,
    RL_PREFIX,
    SHIELD_SUFFIX,
    is_controller_name,
)


class ControllerName(click.ParamType):
    """A registered controller name or ``rl:<checkpoint>[+shield]`` (checked to exist)."""

    name = "controller"

    def convert(self, value, param, ctx):
        if not is_controller_name(value):
            self.fail(
                f"{value!r}: choose from {', '.join(sorted(CONTROLLERS))} "
                f"or {RL_PREFIX}<checkpoint>[{SHIELD_SUFFIX}]",
                param,
                ctx,
            )
        base = value.removesuffix(SHIELD_SUFFIX)
        if base.startswith(RL_PREFIX):
            from gridsync.learning.policy import CheckpointError, resolve_checkpoint

            try:
                resolve_checkpoint(base.removeprefix(RL_PREFIX))
            except CheckpointError as err:
                self.fail(str(err), param, ctx)
        return value


def bound_summary(bound: float | None, reference: dict | None, kpis: dict) -> dict:
    """The bound and each controller's capture ratio on total_cost_incl_penalties_eur:
    (uncontrolled - controller) / (uncontrolled - bound); empty without an ``oracle`` run."""
    if bound is None or reference is None:
        return {}
    key = "total_cost_incl_penalties_eur"
    gap = reference[key] - bound
    ratios = {
        n: (reference[key] - k[key]) / gap if gap > 0 else None
        for n, k in kpis.items()
        if n != "oracle"
    }
    return {
        "bound": {
            "total_cost_incl_penalties_eur": bound,
            "uncontrolled_total_cost_incl_penalties_eur": reference[key],
            "what": "optimum of one full-window perfect-information LP on the nominal model "
            "(a bound for the model as plant; the [plant] section may make the twin differ)",
        },
        "capture_ratio": ratios,
    }


@click.command()
@scenario_option()
@click.option(
    "--controller",
    "controllers",
    multiple=True,
    type=ControllerName(),
    help="Controller to run; repeat to compare several. Default: uncontrolled and tou. "
    f"One of {', '.join(sorted(CONTROLLERS))}, or rl:<checkpoint> (a policy trained by "
    "`gridsync learn train`, a directory or a registry name), also rl:<checkpoint>+shield.",
)
@days_option()
@start_option()
@click.option(
    "--resolution-s", type=int, default=None, help="Step length in seconds (divides 3600)."
)
@click.option(
    "--phases",
    type=click.Choice(["1", "3"]),
    default=None,
    help="Solve the twin's feeder balanced (1) or three-phase unbalanced (3, adds voltage "
    "unbalance KPIs); default: the scenario's [grid] phases.",
)
@json_option("Write KPIs per controller to this JSON file.")
@click.option(
    "--setpoints-csv",
    "setpoints_csv",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write every step's setpoint per asset (controller, step, time, asset_id, kind, kW).",
)
@report_options
def simulate(
    scenario_path,
    controllers,
    days,
    start,
    resolution_s,
    phases,
    json_path,
    setpoints_csv,
    report_dir,
    no_report,
    quiet,
):
    """Run controllers on the digital twin (AC power flow every step) and compare KPIs.

    \b
    Examples:
      gridsync simulate                                   # both baselines, default week
      gridsync simulate --controller tou --days 1 --json out.json
      gridsync simulate --controller smart-rule --days 1 --setpoints-csv sp.csv
      gridsync simulate --scenario winter-electrified --controller uncontrolled
      gridsync simulate --scenario my_feeder.yaml --start 2016-02-01

    Cost is the feeder head's energy bill under the tariff, plus the demand charge on the
    window's peak import, plus battery and V2G degradation; total_cost_incl_penalties adds
    carbon, unmet energy and comfort at the objective's weights and settles the end state
    (scenario [accounting]). Violations count bus-steps outside the voltage band and
    branch-steps above the loading limit.
    """
    from rich.console import Console
    from rich.table import Table

    from gridsync.sim.kpi import KPI_UNITS, compute_kpis
    from gridsync.sim.registry import make_controller
    from gridsync.sim.report import write_report
    from gridsync.sim.setpoints_csv import SetpointsCsv
    from gridsync.sim.simulator import simulate as run

    console = Console(stderr=True)
    with console.status("building scenario (feeder, profiles, weather, fleet)..."):
        scenario = load_scenario_or_exit(
            scenario_path, days, start, resolution_s=resolution_s, phases=phases
        )
        scenario.powerflow()
    names = list(controllers) or ["uncontrolled", "tou"]
    fleet = scenario.fleet
    console.print(
        f"[bold]{scenario.config.name}[/]: {scenario.feeder.n_bus} buses, {fleet.size} assets "
        f"({', '.join(f'{v} {k}' for k, v in fleet.counts().items())}), "
        f"{scenario.n_steps} steps of {scenario.config.time.resolution_s} s from {scenario.window[0]}"
    )
    if scenario.three_phase is not None:
        console.print(f"three-phase twin, phases: {scenario.three_phase.alloc.summary()}")
    balanced_only = [n for n in names if n.removesuffix(SHIELD_SUFFIX) in BALANCED_ONLY]
    if scenario.three_phase is not None and balanced_only:
        msg = (
            f"{', '.join(balanced_only)}: inverter reactive power is not in the three-phase "
            "twin yet; run with --phases 1"
        )
        raise click.UsageError(msg)
    results, kpis, bound = [], {}, None
    csv_out = SetpointsCsv(setpoints_csv) if setpoints_csv else nullcontext()
    with step_progress(console, quiet) as progress, csv_out:
        for name in names:
            task = progress.add_task(name, total=scenario.n_steps)
            ctrl = make_controller(name)
            res = run(
                scenario,
                ctrl,
                on_step=lambda i, n, task=task: progress.update(task, completed=i),
                on_setpoints=csv_out.recorder(name, scenario) if setpoints_csv else None,
            )
            results.append(res)
            kpis[name] = compute_kpis(res, scenario)
            if name == "oracle":
                bound = ctrl.bound_eur
        if bound is not None and "uncontrolled" not in kpis:
            ref = run(scenario, make_controller("uncontrolled"))
            kpis_ref = compute_kpis(ref, scenario)
        else:
            kpis_ref = kpis.get("uncontrolled")
    if setpoints_csv:
        console.print(f"setpoints: {setpoints_csv} ({csv_out.rows_written:,} rows)")

    n_days = scenario.n_steps * scenario.dt_h / 24
    table = Table(title=f"KPIs over {n_days:g} day{'' if n_days == 1 else 's'}")
    table.add_column("KPI", no_wrap=True, min_width=30)
    table.add_column("unit")
    for name in names:
        table.add_column(name, justify="right")
    for key, unit in KPI_UNITS.items():
        if any(key in kpis[n] for n in names):  # unbalance KPIs exist on three-phase runs only
            table.add_row(key, unit, *(f"{kpis[n].get(key, float('nan')):,.2f}" for n in names))
    Console(width=max(100, 32 + 16 * (len(names) + 1))).print(table)
    for res in results:
        rep = res.extras.get("battery_health")
        for r in [] if rep is None else [r for r in rep.rows() if r["alert"]]:
            console.print(
                f"[yellow]{res.controller}: battery {r['battery']} projected below 80 % in "
                f"{r['years_to_80pct']} years, before its {rep.warranty_years:g}-year warranty "
                f"(SoH {r['soh_pct']:.2f} %)[/yellow]"
            )
    if bound is not None:
        summary = bound_summary(bound, kpis_ref, kpis)
        console.print(
            f"perfect-foresight bound (LP optimum, nominal model): {bound:,.2f} EUR; capture "
            + ", ".join(
                f"{n} {r:.1%}" for n, r in summary["capture_ratio"].items() if r is not None
            )
        )

    report_path = None
    if not no_report:
        report_path = Path(report_dir) / f"simulate_{scenario.config.name}.html"
        write_report(report_path, scenario, results, kpis)
        console.print(f"report: {report_path}")
    if json_path:
        out = {
            "scenario": {
                "name": scenario.config.name,
                "start": str(scenario.window[0]),
                "days": scenario.n_steps * scenario.dt_h / 24,
                "resolution_s": scenario.config.time.resolution_s,
                "n_bus": scenario.feeder.n_bus,
                "phases": scenario.config.grid.phases,
                "n_assets": fleet.size,
                "fleet": fleet.counts(),
            },
            "units": KPI_UNITS,
            "controllers": kpis,
            **bound_summary(bound, kpis_ref, kpis),
            "report": str(report_path) if report_path else None,
        }
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(out, indent=2), encoding="utf-8")
        console.print(f"KPIs: {json_path}")
    sys.stdout.flush()
