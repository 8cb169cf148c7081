"""``gridsync resilience``: reliability indices, FLISR and islanding studies."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def resilience() -> None:
    """Reliability and self-healing: IEEE 1366 indices, FLISR, microgrid islanding.

    \b
    Examples:
      gridsync resilience rbts                      # RBTS Bus 2: published vs computed indices
      gridsync resilience rbts --years 200000 --load-points --json rbts.json
      gridsync resilience rbts --system my_feeder.toml   # your own system file
      gridsync resilience flisr --faults 100        # manual vs FLISR vs FLISR + islanding
      gridsync resilience fault --line "Line 3-4" --hour 4500   # one fault, step by step
      gridsync resilience risk --day 200            # daily outage risk and posture
      gridsync resilience storms --storms 20        # does pre-charging before storms pay?
    """


@resilience.command()
@click.option("--system", "system_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Reliability system file (.toml/.yaml); default: bundled RBTS Bus 2.")
@click.option("--years", type=click.IntRange(min=100), default=100_000, show_default=True,
              help="Simulated years of the sequential Monte Carlo.")
@click.option("--seed", type=int, default=0, show_default=True, help="Monte Carlo seed.")
@click.option("--load-points", is_flag=True, help="Also print the per-load-point indices.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the full report as JSON here.")
def rbts(system_path: Path | None, years: int, seed: int, load_points: bool,
         json_path: Path | None) -> None:
    """Reliability indices of a radial system: analytical FMEA and sequential Monte Carlo.

    Without --system this reproduces the RBTS Bus 2 base case (Allan et al., 1991): SAIFI
    (interruptions per customer per year), SAIDI (outage hours per customer per year), CAIDI
    (hours per interruption), ASAI (fraction of customer-hours served) and ENS (MWh per year not
    supplied), each beside the published value, with the Monte Carlo 95 % interval.
    """
    from gridsync.resilience.report import format_report, reliability_report
    from gridsync.resilience.system import RBTS_BUS2, ReliabilitySystemError

    try:
        report = reliability_report(system_path or RBTS_BUS2, years=years, seed=seed)
    except ReliabilitySystemError as err:
        raise click.ClickException(str(err)) from None
    click.echo(format_report(report))
    if load_points:
        click.echo(f"\n{'load point':<10} {'lambda 1/yr':>11} {'r h':>8} {'U h/yr':>8} "
                   f"{'MC lambda':>10} {'MC U':>8}")
        for row in report["load_points"]:
            a, m = row["analytical"], row["monte_carlo"]
            click.echo(f"{row['id']:<10} {a['failure_rate_per_yr']:>11.4f} {a['outage_duration_h']:>8.2f} "
                       f"{a['unavailability_h_per_yr']:>8.4f} {m['failure_rate_per_yr']:>10.4f} "
                       f"{m['unavailability_h_per_yr']:>8.4f}")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2))
        click.echo(f"wrote {json_path}")


def _feeder(study: Path | None):
    from gridsync.resilience.feeder import CIGRE_STUDY, FeederStudyError, load_feeder_study

    try:
        return load_feeder_study(study or CIGRE_STUDY)
    except FeederStudyError as err:
        raise click.ClickException(str(err)) from None


_STUDY = click.option("--study", type=click.Path(dir_okay=False, path_type=Path), default=None,
                      help="Feeder study file; default: bundled CIGRE MV FLISR study.")


@resilience.command()
@_STUDY
@click.option("--faults", type=click.IntRange(min=1), default=100, show_default=True,
              help="Seeded faults to sample over the year (line and hour in proportion to the "
                   "weather-driven failure rates).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
def flisr(study: Path | None, faults: int, seed: int, json_path: Path | None) -> None:
    """Annual IEEE 1366 indices with manual restoration, FLISR and FLISR + islanding.

    Every sampled fault is played three ways with the same switching times: a crew switching
    manually, FLISR (fault-current indicators, remote isolation, a MILP restoration checked by AC
    power flow, then the crew), and FLISR with microgrid sections islanding on their batteries.
    SAIFI/SAIDI count sustained interruptions (> 5 min), MAIFI the momentary ones; the SAIDI
    spread is over 2,000 resampled years. About 1 s per fault.
    """
    import numpy as np

    from gridsync.resilience.feeder import year_conditions
    from gridsync.resilience.report import format_kpis
    from gridsync.resilience.risk import RiskModel, base_rates, line_risk
    from gridsync.resilience.study import annual_kpis, evaluate_fault, sample_faults

    feeder, cond = _feeder(study), year_conditions()
    rng = np.random.default_rng(seed)
    scenarios = sample_faults(feeder, line_risk(feeder, cond, RiskModel()).rate_per_yr, faults, rng)
    with click.progressbar(scenarios, label="faults", file=click.get_text_stream("stderr")) as bar:
        outcomes = [evaluate_fault(feeder, cond, sc) for sc in bar]
    kpis = annual_kpis(feeder, outcomes, float(base_rates(feeder).sum()), rng)
    kpis["plans_radial_all"] = all(o.plans_radial(feeder) for o in outcomes)
    kpis["plans_ac_feasible_all"] = all(o.plans_ok() for o in outcomes)
    click.echo(format_kpis(kpis))
    click.echo(f"every restoration plan radial: {kpis['plans_radial_all']}, AC-feasible: "
               f"{kpis['plans_ac_feasible_all']}")
    if json_path:
        json_path.write_text(json.dumps(kpis, indent=2))
        click.echo(f"wrote {json_path}")


@resilience.command()
@_STUDY
@click.option("--line", "line_name", required=True, help='Faulted line, e.g. "Line 3-4".')
@click.option("--hour", type=click.FloatRange(0, 8759), default=4500, show_default=True,
              help="Hour of the year (sets load and PV from the bundled 2016 profiles and TMY).")
def fault(study: Path | None, line_name: str, hour: float) -> None:
    """One fault step by step: FCI readings, location, isolation, restoration plan, justification."""
    import numpy as np

    from gridsync.resilience import flisr as F
    from gridsync.resilience.approval import justify
    from gridsync.resilience.feeder import year_conditions
    from gridsync.resilience.study import trip_state

    feeder, cond = _feeder(study), year_conditions()
    if line_name not in feeder.line_name:
        raise click.BadParameter(f"{line_name!r} is not a line; choose from {feeder.line_name}",
                                 param_hint="--line")
    line = feeder.line_by_name(line_name)
    if not feeder.normally_closed[line]:
        raise click.BadParameter(f"{line_name} is a normally open tie: a fault on it interrupts no one",
                                 param_hint="--line")
    h = int(hour)
    op = F.operating_point(feeder, cond.residential_pu[h], cond.commercial_pu[h])
    readings = F.fci_signature(feeder, F.radial_paths(feeder, feeder.normally_closed), line)
    located = F.locate(feeder, feeder.normally_closed, readings)
    iso = F.isolate_remote(feeder, feeder.normally_closed, located)
    plan = F.restore(feeder, op, trip_state(feeder, line), feeder.remote, iso)
    text = justify(feeder, plan, located, iso, op, int(readings.sum()),
                   feeder.study.manual_switching_time_h).text()
    click.echo(text)
    click.echo(f"MILP solves: {plan.milp_solves} ({plan.status}); radial: "
               f"{F.is_radial_forest(feeder, plan.closed, plan.energised)}; AC check: "
               f"{'passed' if plan.ac.ok else '; '.join(plan.ac.violations)}")
    off = np.flatnonzero(~plan.energised[feeder.load_bus])
    click.echo("still off until the crew: " + (", ".join(
        str(feeder.net.load.name.iloc[feeder.load_index[i]]) for i in off) or "nobody"))


@resilience.command()
@_STUDY
@click.option("--day", type=click.IntRange(0, 364), default=None,
              help="Day of the year; default: the riskiest day of the bundled weather year.")
def risk(study: Path | None, day: int | None) -> None:
    """Daily outage risk from the weather: expected faults, riskiest lines, posture."""
    from gridsync.resilience.feeder import year_conditions
    from gridsync.resilience.risk import RiskModel, daily_risk, line_risk

    feeder, cond = _feeder(study), year_conditions()
    model = RiskModel()
    rates = line_risk(feeder, cond, model)
    if day is None:
        day = max(range(365), key=lambda d: daily_risk(feeder, rates, d, model).peak_element_ratio)
    click.echo(daily_risk(feeder, rates, day, model).text())


@resilience.command()
@_STUDY
@click.option("--storms", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def storms(study: Path | None, storms: int, seed: int) -> None:
    """Seeded storms: day-ahead risk flag skill and the value of pre-charging batteries."""
    from gridsync.resilience.feeder import year_conditions
    from gridsync.resilience.storms import storm_study

    click.echo(json.dumps(storm_study(_feeder(study), year_conditions(), n_storms=storms, seed=seed),
                          indent=2))
