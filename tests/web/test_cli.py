"""`gridsync console-user` prints a users-file entry that the console accepts."""

from __future__ import annotations

import tomllib

from click.testing import CliRunner

from gridsync.cli.main import cli
from gridsync.web.auth import UserStore


def test_console_user_entry_round_trips(tmp_path):
    out = CliRunner().invoke(
        cli, ["console-user", "alice", "--role", "operator", "--password", "correct horse"]
    )
    assert out.exit_code == 0, out.output
    assert "correct horse" not in out.output
    path = tmp_path / "users.toml"
    path.write_text(out.output)
    assert tomllib.loads(out.output)["user"][0]["role"] == "operator"
    users = UserStore.from_env({"GRIDSYNC_CONSOLE_USERS_FILE": str(path)})
    assert users.authenticate("alice", "correct horse").role == "operator"
    short = CliRunner().invoke(cli, ["console-user", "bob", "--password", "short"])
    assert short.exit_code != 0 and "at least 8 characters" in short.output
