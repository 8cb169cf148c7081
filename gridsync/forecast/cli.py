"""``gridsync forecast``: backtest forecasters on any load CSV, or forecast a scenario."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gridsync.forecast.models import MODEL_NAMES


@click.group()
def forecast() -> None:
    """Load and PV forecasting: honest backtests and the forecasts the dispatch uses.

    \b
    Examples:
      gridsync forecast backtest --csv meter.csv --time-col timestamp --value-col kw
      gridsync forecast backtest --csv bundled:vic --country AU --subdiv VIC --json out.json
      gridsync forecast backtest --csv bundled:taylor --issue-every-h 12
      gridsync forecast backtest --csv uk.csv --time-col date --value-col mw --dayfirst \
          --start 2022-01-01 --end 2022-01-31
      gridsync forecast run --days 1 --json forecast.json
    """


def _resolve_csv(ref: str) -> tuple[Path, str | None, str | None]:
    if ref.startswith("bundled:"):
        from gridsync.forecast.datasets import BUNDLED

        name = ref.removeprefix("bundled:")
        if name not in BUNDLED:
            raise click.BadParameter(
                f"{ref!r}: unknown bundled data set; choose from "
                + ", ".join(f"bundled:{n}" for n in sorted(BUNDLED)),
                param_hint="--csv",
            )
        return BUNDLED[name]
    return Path(ref), None, None


@forecast.command()
@click.option(
    "--csv",
    "csv_ref",
    required=True,
    help="CSV with a timestamp and a numeric column (any delimiter). 'bundled:vic' = the "
    "bundled real Victoria (AU) hourly demand, 'bundled:taylor' = England & Wales half-hourly "
    "demand (Jun-Aug 2000).",
)
@click.option("--time-col", default=None, help="Timestamp column (ISO-8601; offsets allowed).")
@click.option("--value-col", default=None, help="Numeric column to forecast (kW, MW, ...).")
@click.option(
    "--freq", default=None, help="Resolution to forecast at, e.g. 30min (default: the data's)."
)
@click.option(
    "--horizon-h",
    type=click.FloatRange(min=0, min_open=True),
    default=24.0,
    show_default=True,
    help="Forecast horizon in hours (leads 1..H).",
)
@click.option(
    "--train-days",
    type=click.FloatRange(min=9),
    default=56.0,
    show_default=True,
    help="Trailing training window in days.",
)
@click.option(
    "--issue-every-h",
    type=click.FloatRange(min=0, min_open=True),
    default=6.0,
    show_default=True,
    help="Hours between forecast issue times (origins).",
)
@click.option(
    "--refit-every-h",
    type=click.FloatRange(min=0, min_open=True),
    default=168.0,
    show_default=True,
    help="Hours between refits; in between, models re-issue from new data.",
)
@click.option(
    "--max-origins",
    type=click.IntRange(min=0),
    default=0,
    help="Use only the last N origins (0 = all).",
)
@click.option(
    "--tz",
    default=None,
    help="Time zone of naive local timestamps (e.g. Europe/Berlin): resolves DST and sets "
    "the local clock for calendar features.",
)
@click.option(
    "--max-gap",
    default="2h",
    show_default=True,
    help="Longest gap filled by interpolation; longer gaps are an error.",
)
@click.option(
    "--dayfirst/--monthfirst",
    default=None,
    help="How to read numeric dates like 03/04/2022 (day first: 3 April). Without it, the "
    "data decides when some day is above 12, and an ambiguous file stops with an error.",
)
@click.option(
    "--date-format",
    default=None,
    help="Explicit strptime format of the timestamps, e.g. '%d/%m/%Y %H:%M'.",
)
@click.option(
    "--start",
    default=None,
    help="First forecast target time to score (e.g. 2022-01-01); the --train-days before "
    "it feed the first fit. Default: as early as the training window allows.",
)
@click.option(
    "--end",
    default=None,
    help="Last forecast target time to score (e.g. 2022-01-31 23:00). Default: the file's end.",
)
@click.option("--country", default=None, help="Holiday calendar (ISO code, e.g. DE, GB, AU).")
@click.option("--subdiv", default=None, help="Holiday subdivision (e.g. VIC, BY).")
@click.option(
    "--model",
    "model_names",
    multiple=True,
    type=click.Choice(MODEL_NAMES),
    help="Model to include; repeat. Default: all (mstl_autoets if installed; hybrid if "
    "--train-days is long enough).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write per-lead metrics per model to this JSON file.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def backtest(
    csv_ref,
    time_col,
    value_col,
    freq,
    horizon_h,
    train_days,
    issue_every_h,
    refit_every_h,
    max_origins,
    tz,
    max_gap,
    dayfirst,
    date_format,
    start,
    end,
    country,
    subdiv,
    model_names,
    json_path,
    quiet,
):
    """Rolling-origin backtest of every model on a univariate series, side by side.

    At each issue time a model sees only the data up to that time (refitted every
    --refit-every-h on the last --train-days), forecasts the next --horizon-h hours as
    P10/P50/P90, and is scored per lead hour: MAPE, MAE, RMSE, pinball loss, and how often
    the truth fell inside P10-P90 (80 % is perfectly calibrated).

    Input repairs (offset timestamps to UTC, --tz localisation, averaging onto --freq, short
    gaps interpolated) are printed; anything else (duplicates, non-numeric values, long gaps)
    stops with the offending line.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import track
    from rich.table import Table

    from gridsync.forecast.backtest import run_backtest
    from gridsync.forecast.data import SeriesError, load_series_csv, window
    from gridsync.forecast.hybrid import HybridForecaster
    from gridsync.forecast.models import model_factories

    console = Console(stderr=True)
    path, default_t, default_v = _resolve_csv(csv_ref)
    time_col, value_col = time_col or default_t, value_col or default_v
    if not time_col or not value_col:
        raise click.UsageError("--time-col and --value-col are required for a user CSV")
    try:
        clean = load_series_csv(
            path,
            time_col,
            value_col,
            freq=freq,
            tz=tz,
            max_gap=max_gap,
            min_days=train_days + horizon_h / 24,
            dayfirst=dayfirst,
            date_format=date_format,
        )
        series = window(clean, start, end, train_days=train_days, horizon_h=horizon_h)
        explicit = bool(model_names)
        if not model_names:  # all models, but the hybrid only if the window is long enough
            short = train_days < HybridForecaster.min_days(horizon_h)
            model_names = [n for n in MODEL_NAMES if not (n == "hybrid" and short)]
        factories = model_factories(
            model_names,
            horizon_h=horizon_h,
            country=country,
            subdiv=subdiv,
            train_days=train_days,
            require_peers=explicit,
        )
    except (SeriesError, ValueError, ImportError) as err:
        console.print(f"[red]error:[/] {escape(str(err))}")
        sys.exit(2)
    for note in clean.repairs:
        console.print(f"[yellow]repaired:[/] {note}")
    console.print(
        f"{len(series)} readings at {clean.freq} from {series.index[0]} to {series.index[-1]}; "
        f"models: {', '.join(factories)}"
    )

    def progress(it):
        return it if quiet else track(it, description="backtest", console=console, transient=True)

    try:
        result = run_backtest(
            series,
            factories,
            horizon_h=horizon_h,
            train_days=train_days,
            issue_every_h=issue_every_h,
            refit_every_h=refit_every_h,
            max_origins=max_origins,
            progress=progress,
        )
    except ValueError as err:
        console.print(f"[red]error:[/] {escape(str(err))}")
        sys.exit(2)
    report = result.to_json()
    names = list(report["models"])
    table = Table(title=f"MAPE % by lead hour ({report['n_origins']} origins)")
    table.add_column("lead h", justify="right")
    for n in names:  # one name part per header line: full names fit 80 columns
        table.add_column(n.replace("_", "_\n"), justify="right", overflow="fold")
    leads = list(report["models"][names[0]]["mape_by_lead_h"])
    for lead in leads:
        vals = [report["models"][n]["mape_by_lead_h"][lead] for n in names]
        best = min(vals)
        table.add_row(lead, *[f"[bold]{v:.2f}[/]" if v == best else f"{v:.2f}" for v in vals])
    for key, label in (
        ("mape_mean", "MAPE mean %"),
        ("mae_mean", "MAE mean"),
        ("rmse_mean", "RMSE"),
        ("pinball_mean", "pinball mean"),
        ("coverage_p10_p90", "P10-P90 coverage %"),
    ):
        table.add_row(label, *[f"{report['models'][n][key]:.2f}" for n in names], style="cyan")
    Console().print(table)
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2))
        console.print(f"wrote {json_path}")


@forecast.command()
@click.option(
    "--scenario",
    "scenario_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Scenario file (.toml/.yaml). Default: the bundled SimBench LV feeder.",
)
@click.option(
    "--days",
    type=click.IntRange(1, 366),
    default=None,
    help="Days to simulate (overrides the file).",
)
@click.option(
    "--step",
    "step_offset",
    type=click.IntRange(min=0),
    default=0,
    help="Issue time as steps after the simulated window's start.",
)
@click.option(
    "--horizon-h",
    type=click.FloatRange(min=0, min_open=True),
    default=24.0,
    show_default=True,
    help="Forecast horizon in hours.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the feeder-head and per-bus quantile forecasts to this JSON file.",
)
def run(scenario_path, days, step_offset, horizon_h, json_path):
    """Issue the forecast the dispatch uses: per-bus load, PV per kWp, temperature.

    Trains on the scenario's history before the issue time only, then prints the feeder-head
    load and PV P10/P50/P90 per hour next to the truth, with the window's MAPE.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from gridsync.forecast.scenario import LearnedForecaster, feeder_summary
    from gridsync.model.scenario_config import ScenarioError
    from gridsync.sim.builder import load_scenario

    console = Console(stderr=True)
    overrides = {"days": days} if days else {}
    try:
        scenario = load_scenario(scenario_path, **overrides)
    except (ScenarioError, FileNotFoundError) as err:
        console.print(f"[red]error:[/] {escape(str(err))}")
        sys.exit(2)
    step = scenario.start_step + step_offset
    horizon = int(round(horizon_h / scenario.dt_h))
    forecaster = LearnedForecaster()
    with console.status("training on the scenario history"):
        fc = forecaster.forecast(scenario, step, horizon)
    summary = {"model": forecaster.mode, **feeder_summary(scenario, step, fc)}
    table = Table(title=f"Feeder head forecast issued {scenario.index[step]}")
    for col in ("time", "load P10", "load P50", "load P90", "load true", "PV P50", "PV true"):
        table.add_column(col, justify="right")
    per_hour = max(1, int(round(1 / scenario.dt_h)))
    for row in summary["rows"][::per_hour]:
        table.add_row(
            row["time"],
            *[
                f"{row[k]:.1f}"
                for k in (
                    "load_p10_kw",
                    "load_p50_kw",
                    "load_p90_kw",
                    "load_true_kw",
                    "pv_p50_kw",
                    "pv_true_kw",
                )
            ],
        )
    Console().print(table)
    console.print(
        f"feeder load MAPE {summary['load_mape_pct']:.2f} %, P10-P90 coverage "
        f"{summary['load_coverage_pct']:.0f} %, PV energy error {summary['pv_energy_error_pct']:+.1f} %"
    )
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=2))
        console.print(f"wrote {json_path}")
