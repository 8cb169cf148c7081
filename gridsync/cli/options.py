"""Click options shared by the commands that run the twin, and the scenario loader behind them.

Every command that simulates takes the same ``--scenario``, ``--days``, ``--start``,
``--json`` and report options, so they are declared once here and read the same everywhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import click

DEFAULT_SCENARIO_HELP = (
    "Scenario file (.toml/.yaml) or bundled scenario name (default, summer-high-pv, "
    "winter-electrified). Default: the bundled SimBench LV feeder week."
)


def scenario_option(help: str = DEFAULT_SCENARIO_HELP) -> Callable:
    """``--scenario FILE|NAME`` stored as ``scenario_path`` (None means the bundled default)."""
    return click.option(
        "--scenario", "scenario_path", type=click.Path(dir_okay=False), default=None, help=help
    )


def days_option(
    default: int | None = None,
    max_days: int = 366,
    help: str = "Days to simulate (overrides the file).",
) -> Callable:
    """``--days N`` within 1..max_days; None keeps the scenario file's own length."""
    return click.option(
        "--days",
        type=click.IntRange(1, max_days),
        default=default,
        show_default=default is not None,
        help=help,
    )


def start_option() -> Callable:
    """``--start YYYY-MM-DD``: first simulated day (overrides the file)."""
    return click.option(
        "--start", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First day, YYYY-MM-DD."
    )


def json_option(help: str) -> Callable:
    """``--json FILE`` stored as ``json_path``."""
    return click.option(
        "--json", "json_path", type=click.Path(dir_okay=False), default=None, help=help
    )


def report_options(f: Callable) -> Callable:
    """``--report-dir``, ``--no-report`` and ``--quiet`` (no progress bar)."""
    for opt in (
        click.option("--quiet", is_flag=True, help="No progress bar."),
        click.option("--no-report", is_flag=True, help="Skip the HTML report."),
        click.option(
            "--report-dir",
            type=click.Path(file_okay=False),
            default="reports",
            show_default=True,
            help="Where the HTML report goes.",
        ),
    ):
        f = opt(f)
    return f


def load_scenario_or_exit(
    scenario_path: str | None,
    days: int | None = None,
    start: dt.date | dt.datetime | None = None,
    **overrides,
):
    """Build the scenario with the command-line overrides; a bad file becomes a click error.

    The error names the file and each invalid field, so the user sees what to fix instead of
    a traceback.
    """
    from gridsync.model.scenario_config import ScenarioError
    from gridsync.sim.builder import load_scenario

    if days is not None:
        overrides["days"] = days
    if start is not None:
        overrides["start"] = start.date() if isinstance(start, dt.datetime) else start
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        return load_scenario(scenario_path, **overrides)
    except (ScenarioError, FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from None


def step_progress(console, quiet: bool, label_width: int = 14):
    """A rich progress bar counting simulated steps per labelled task (off with ``quiet``)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn(f"{{task.description:<{label_width}}}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
    )
