"""``gridsync citylearn run DATASET_DIR``: GridSync's controllers on a CityLearn dataset."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pandas as pd

from gridsync.citylearn.dataset import CityLearnSchemaError, read_dataset
from gridsync.citylearn.kpis import KPI_LABELS
from gridsync.citylearn.simulate import RunResult, run

CONTROLLERS = ("no-battery", "rule", "mpc", "mpc-oracle", "bound", "bound-peak-cap")


def make_controller(name: str, dataset):  # noqa: ANN001 - dataset: CityLearnDataset
    """Controller by CLI name; the references (bounds, mpc-oracle) get the whole dataset."""
    from gridsync.citylearn import simulate

    if name == "no-battery":
        return simulate.NoBattery()
    if name == "rule":
        return simulate.SelfConsumptionRule()
    if name == "mpc":
        from gridsync.citylearn.mpc import CityLearnMPC

        return CityLearnMPC()
    if name == "mpc-oracle":
        from gridsync.citylearn.bound import OracleMPC

        return OracleMPC(dataset)
    if name in ("bound", "bound-peak-cap"):
        from gridsync.citylearn.bound import PerfectForesightBound

        return PerfectForesightBound(dataset, peak_cap=name == "bound-peak-cap")
    raise click.BadParameter(f"unknown controller {name!r}; choose from {', '.join(CONTROLLERS)}")


def actions_frame(result: RunResult) -> pd.DataFrame:
    """One row per hour and building: hour (0-based), building, battery_request_kwh."""
    n_b, n_t = result.request_kwh.shape
    return (
        pd.DataFrame(
            {
                "hour": np.tile(np.arange(n_t), n_b),
                "building": np.repeat(result.names, n_t),
                "battery_request_kwh": result.request_kwh.ravel(),
            }
        )
        .sort_values(["hour"], kind="stable")
        .reset_index(drop=True)
    )


def _suffixed(path: Path, name: str, many: bool) -> Path:
    return path.with_name(f"{path.stem}_{name}{path.suffix}") if many else path


@click.group()
def citylearn() -> None:
    """Run GridSync's controllers on CityLearn datasets (schema.json + CSVs)."""


@citylearn.command("run")
@click.argument("dataset_dir", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--controller",
    "controllers",
    multiple=True,
    default=("rule",),
    show_default=True,
    type=click.Choice(CONTROLLERS),
    help="Controller(s) to run; repeat for several.",
)
@click.option("--hours", type=click.IntRange(min=1), default=None, help="Only the first N hours.")
@click.option(
    "--json",
    "json_out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the KPIs of every controller to this JSON file.",
)
@click.option(
    "--actions-csv",
    type=click.Path(path_type=Path),
    default=None,
    help="Write hour, building, battery_request_kwh (suffix _<controller> if several).",
)
@click.option("--report", is_flag=True, help="Write reports/citylearn_<dataset>.html.")
def run_cmd(
    dataset_dir: Path,
    controllers: tuple[str, ...],
    hours: int | None,
    json_out: Path | None,
    actions_csv: Path | None,
    report: bool,
) -> None:
    """Step DATASET_DIR hour by hour and print CityLearn's KPIs (normalised by no battery)."""
    try:
        dataset = read_dataset(dataset_dir)
    except CityLearnSchemaError as exc:
        raise click.ClickException(f"{dataset_dir}: {exc}") from exc
    if hours is not None:
        dataset = dataset.truncated(min(hours, dataset.hours))
    results = []
    for name in dict.fromkeys(controllers):
        result = run(dataset, make_controller(name, dataset))
        results.append(result)
        if actions_csv is not None:
            path = _suffixed(actions_csv, name, len(set(controllers)) > 1)
            path.parent.mkdir(parents=True, exist_ok=True)
            actions_frame(result).to_csv(path, index=False)
    click.echo(f"{dataset.name}: {len(dataset.buildings)} buildings, {dataset.hours} hours")
    header = f"{'KPI':<46}" + "".join(f"{r.controller:>16}" for r in results)
    click.echo(header)
    for key, label in KPI_LABELS:
        click.echo(f"{label:<46}" + "".join(f"{r.kpis[key]:>16.4f}" for r in results))
    click.echo(f"{'runtime, s':<46}" + "".join(f"{r.runtime_s:>16.1f}" for r in results))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "dataset": str(dataset_dir),
            "buildings": dataset.names,
            "hours": dataset.hours,
            "controllers": {r.controller: {**r.kpis, "runtime_s": r.runtime_s} for r in results},
        }
        json_out.write_text(json.dumps(payload, indent=2))
    if report:
        from gridsync.citylearn.report import write_report

        path = write_report(dataset, results, Path("reports") / f"citylearn_{dataset.name}.html")
        click.echo(f"report: {path}")
