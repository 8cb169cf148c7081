"""``gridsync dr``: help text and clear errors before any simulation starts."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from gridsync.cli.main import cli


def test_dr_help_lists_commands():
    res = CliRunner().invoke(cli, ["dr", "--help"])
    assert res.exit_code == 0
    assert "run" in res.output and "simulate" in res.output
    res = CliRunner().invoke(cli, ["dr", "run", "--help"])
    assert res.exit_code == 0 and "--warmup-days" in res.output and "--json" in res.output


def test_bad_inputs_are_named(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["dr", "run", "--only", "nope", "--quiet"])
    assert res.exit_code != 0 and "no DR program named 'nope'" in res.output
    res = runner.invoke(cli, ["dr", "run", "--base", "nope", "--quiet"])
    assert res.exit_code != 0 and "--base" in res.output
    bad = tmp_path / "p.toml"
    bad.write_text(
        '[[programs]]\nname = "x"\nkind = "direct_load_control"\nenrolment_share = 2\nend_uses = ["ev"]\n'
    )
    res = runner.invoke(cli, ["dr", "run", "--programs", str(bad), "--quiet"])
    assert res.exit_code != 0 and "programs.0.enrolment_share" in res.output


def test_dr_controller_is_registered():
    from gridsync.sim.registry import make_controller

    ctl = make_controller("tou+dr")
    assert ctl.name == "tou+dr"


@pytest.mark.slow
def test_dr_run_end_to_end_writes_json_and_report(tmp_path):
    out = tmp_path / "dr.json"
    res = CliRunner().invoke(
        cli,
        [
            "dr",
            "run",
            "--days",
            "1",
            "--warmup-days",
            "3",
            "--quiet",
            "--json",
            str(out),
            "--report-dir",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    s = json.loads(out.read_text())
    assert set(s) >= {"events", "programs", "overall", "baseline_accuracy"}
    assert s["overall"]["events_called"] == len(s["events"])
    assert "events_called" in res.output
    assert (tmp_path / f"dr_{s['scenario']}.html").stat().st_size > 100_000  # plotly inlined
