"""``gridsync learn``: train shared RL policies on the twin and evaluate them on held-out weeks."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click


def _dates(values) -> tuple[dt.date, ...]:
    return tuple(v.date() if isinstance(v, dt.datetime) else v for v in values)


@click.group()
def learn() -> None:
    """Multi-agent RL on the digital twin: train (behaviour cloning + PPO with the shield in
    the loop), evaluate on held-out weeks, list checkpoints. A trained checkpoint runs in
    `gridsync simulate --controller rl:<name>` (or `rl:<name>+shield`)."""


@learn.command()
@click.option("--name", default="shared-ppo", show_default=True, help="Checkpoint name.")
@click.option(
    "--registry",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Registry directory the checkpoint goes to (default: models/rl).",
)
@click.option("--scenario", default=None, help="Scenario file or bundled name.")
@click.option(
    "--train-start",
    "train_starts",
    multiple=True,
    type=click.DateTime(["%Y-%m-%d"]),
    help="Start of a training window (repeat); default: seven 2016 windows, May-August.",
)
@click.option("--validation-start", type=click.DateTime(["%Y-%m-%d"]), default=None)
@click.option("--days", type=click.IntRange(1, 7), default=2, show_default=True)
@click.option("--agents", type=click.Choice(["building", "group"]), default="building")
@click.option("--n-groups", type=click.IntRange(1), default=8, show_default=True)
@click.option("--teacher", default="smart-rule", show_default=True, help="Controller to clone.")
@click.option("--bc-epochs", type=click.IntRange(0), default=60, show_default=True)
@click.option(
    "--ppo-steps",
    type=click.IntRange(0),
    default=6912,
    show_default=True,
    help="Twin steps of PPO fine-tuning (each gives one sample per agent).",
)
@click.option("--learning-rate", type=float, default=3e-4, show_default=True)
@click.option(
    "--log-std-init", type=float, default=-2.0, show_default=True, help="PPO exploration noise."
)
@click.option("--shield/--no-shield", default=True, show_default=True)
@click.option(
    "--shield-penalty",
    type=float,
    default=0.05,
    show_default=True,
    help="EUR per kWh the shield had to move.",
)
@click.option("--seed", type=int, default=0, show_default=True)
def train(
    name, registry, scenario, train_starts, validation_start, days, agents, n_groups, teacher,
    bc_epochs, ppo_steps, learning_rate, log_std_init, shield, shield_penalty, seed,
) -> None:  # fmt: skip
    """Clone the teacher on the training windows, fine-tune with PPO, write the checkpoint
    (policy.npz, ppo.zip, meta.json, curve.csv, curve.html)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from gridsync.learning.checkpoints import DEFAULT_DIR
    from gridsync.learning.train import TrainConfig
    from gridsync.learning.train import train as run_train
    from gridsync.sim.registry import is_controller_name

    if not is_controller_name(teacher):
        raise click.BadParameter(f"{teacher!r} is not a controller", param_hint="--teacher")
    kw = {}
    if train_starts:
        kw["train_starts"] = _dates(train_starts)
    if validation_start:
        kw["validation_start"] = _dates([validation_start])[0]
    cfg = TrainConfig(
        name=name, scenario=scenario, days=days, agents=agents, n_groups=n_groups,
        teacher=teacher, bc_epochs=bc_epochs, ppo_steps=ppo_steps, learning_rate=learning_rate,
        log_std_init=log_std_init, shield=shield,
        shield_penalty_eur_per_kwh=shield_penalty, seed=seed, **kw,
    )  # fmt: skip
    out = (registry or DEFAULT_DIR) / name
    console = Console(stderr=True)
    cols = (TextColumn("{task.description:8}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn())  # fmt: skip
    with Progress(*cols, console=console) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        summary = run_train(cfg, out, progress)
    console.print(json.dumps(summary, indent=2))
    console.print(f"checkpoint: {out}  (run it: gridsync simulate --controller rl:{out}+shield)")


@learn.command("eval")
@click.option("--checkpoint", required=True, help="Checkpoint directory or registry name.")
@click.option("--scenario", default=None)
@click.option(
    "--start",
    "starts",
    multiple=True,
    type=click.DateTime(["%Y-%m-%d"]),
    help="Held-out window start (repeat); default: the bench's held-out windows.",
)
@click.option("--days", type=click.IntRange(1, 7), default=2, show_default=True)
@click.option(
    "--baseline",
    "baselines",
    multiple=True,
    default=("tou", "smart-rule"),
    show_default=True,
    help="Baseline controllers to compare (uncontrolled always runs).",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path))
def evaluate(checkpoint, scenario, starts, days, baselines, json_path) -> None:
    """Run the policy (alone and behind the shield) and the baselines on held-out windows."""
    from rich.console import Console
    from rich.table import Table

    from gridsync.learning.evaluation import evaluate_window, mean_over_windows
    from gridsync.learning.policy import CheckpointError, resolve_checkpoint
    from gridsync.learning.train import EVAL_STARTS
    from gridsync.sim.builder import load_scenario

    try:
        resolve_checkpoint(checkpoint)
    except CheckpointError as err:
        raise click.BadParameter(str(err), param_hint="--checkpoint") from err
    starts = _dates(starts) or EVAL_STARTS
    names = [*baselines, f"rl:{checkpoint}", f"rl:{checkpoint}+shield"]
    console = Console(stderr=True)
    per_window = {}
    for start in starts:
        with console.status(f"{start}: building scenario") as status:
            sc = load_scenario(scenario, start=start, days=days, history_days=7)
            per_window[str(start)] = evaluate_window(
                sc, names, lambda n, s=start, st=status: st.update(f"{s}: {n}")
            )
    mean = mean_over_windows(per_window)
    table = Table(title=f"held-out windows {', '.join(map(str, starts))} ({days} d each)")
    cols = {
        "total_cost_eur": "cost EUR",
        "total_cost_incl_penalties_eur": "incl. pen.",
        "peak_import_kw": "peak kW",
        "violations": "viol.",
        "violations_caused": "caused",
        "unmet_ev_kwh": "unmet EV",
        "decision_ms_per_step": "ms/step",
    }
    table.add_column("controller")
    for label in cols.values():
        table.add_column(label, justify="right")
    for n, row in mean.items():
        table.add_row(n, *(f"{row[c]:.1f}" for c in cols))
    Console().print(table)
    if json_path:
        json_path.write_text(json.dumps({"windows": per_window, "mean": mean}, indent=2))


@learn.command("list")
def list_() -> None:
    """Checkpoints in the registry directories with their training summary."""
    from gridsync.learning.checkpoints import list_checkpoints

    for c in list_checkpoints():
        val = c.get("validation", {})
        click.echo(
            f"{c['name']:24} {c['path']}  chosen={c.get('chosen')} "
            f"val_cost={val.get('cost_eur', float('nan')):.1f} EUR "
            f"train={c.get('training_wall_s', float('nan')):.0f} s"
        )
