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
