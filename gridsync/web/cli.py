"""``gridsync console-user``: make a console account entry (the password is never stored)."""

from __future__ import annotations

import click

from gridsync.web.auth import ROLES, hash_password


@click.command("console-user")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default="viewer",
    show_default=True,
    help="viewer reads; operator also approves and overrides; admin also edits the policy "
    "and reads the audit log.",
)
@click.password_option(help="Prompted for (twice) when not given.")
def console_user(name: str, role: str, password: str) -> None:
    """Print a [[user]] entry for the operator console's users file.

    Append the output to the TOML file named by GRIDSYNC_CONSOLE_USERS_FILE; `gridsync serve`
    reads it at start-up. Only the scrypt hash is printed, never the password.

    Example: gridsync console-user alice --role operator >> console-users.toml
    """
    if len(password) < 8:
        raise click.BadParameter(
            f"at least 8 characters required, got {len(password)}", param_hint="password"
        )
    click.echo(f'[[user]]\nname = "{name}"\nrole = "{role}"\nscrypt = "{hash_password(password)}"')


@click.command("serve")
@click.option(
    "--demo",
    is_flag=True,
    help="Demo accounts and API token, a sunny morning on the bundled feeder.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--scenario",
    "scenario_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Scenario TOML/YAML (default: the bundled one).",
)
@click.option("--days", type=click.IntRange(1, 366), help="Simulated days (demo: 3).")
@click.option(
    "--controller",
    default="tou",
    show_default=True,
    help="Dispatcher proposing the setpoints (see `gridsync simulate --help`); 'mpc' solves "
    "a 24 h LP every step, so give it a longer --step-seconds.",
)
@click.option(
    "--step-seconds",
    type=click.FloatRange(min=0.05),
    default=None,
    help="Wall-clock seconds per 15-minute twin step [default: 2, or GRIDSYNC_CONSOLE_STEP_S].",
)
@click.option(
    "--approval-timeout",
    type=click.FloatRange(min=0.5),
    default=None,
    help="Seconds an operator has before the fail-safe applies [default: 30, or "
    "GRIDSYNC_CONSOLE_TIMEOUT_S].",
)
def serve(
    demo: bool,
    host: str,
    port: int,
    scenario_path: str | None,
    days: int | None,
    controller: str,
    step_seconds: float | None,
    approval_timeout: float | None,
) -> None:
    """Serve the REST API (/docs) and the operator console (/console/).

    The console runs the digital twin live: the controller proposes setpoints, large actions
    wait for an operator's approval (with a justification), the safety shield checks
    everything, and the dashboard updates over Server-Sent Events.

    \b
    Accounts: GRIDSYNC_CONSOLE_USERS_FILE (see `gridsync console-user`); API tokens:
    GRIDSYNC_API_TOKENS(_FILE). With --demo, demo accounts and a demo operator token are
    created and printed; nothing else is changed.

    Example: gridsync serve --demo   then open the printed URL.
    """
    import uvicorn

    from gridsync.api.app import create_app
    from gridsync.api.auth import TokenRegistry
    from gridsync.web.server import attach_console, banner

    tokens = TokenRegistry.from_env()
    token = tokens.issue("demo-operator", "operator") if demo else None
    app = create_app(tokens=tokens)
    click.echo("Building the scenario and the twin (takes a few seconds)...")
    try:
        con = attach_console(
            app,
            demo=demo,
            scenario_path=scenario_path,
            days=days,
            controller=controller,
            step_interval_s=step_seconds,
            timeout_s=approval_timeout,
        )
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    click.echo(
        f"Twin: one 15-minute step every {con.step_interval_s:g} s; approval timeout "
        f"{con.session.policy.timeout_s:g} s."
    )
    click.echo(banner(host, port, demo))
    click.echo(f"REST API: http://{host}:{port}/docs")
    if token:
        click.echo(f"Demo API token (operator): {token}")
    if demo:
        click.echo("The twin starts when the first browser connects. Ctrl+C stops the server.")
    uvicorn.run(app, host=host, port=port, log_level="warning")
