"""``gridsync resilience``: help teaches, rbts reports, bad files are diagnosed."""

from __future__ import annotations

from click.testing import CliRunner

from gridsync.cli.main import cli


def test_help_lists_the_studies():
    out = CliRunner().invoke(cli, ["resilience", "--help"])
    assert out.exit_code == 0
    for cmd in ("rbts", "flisr --faults 100", "fault --line", "risk", "storms"):
        assert cmd in out.output


def test_rbts_prints_published_beside_computed(tmp_path):
    path = tmp_path / "rbts.json"
    out = CliRunner().invoke(cli, ["resilience", "rbts", "--years", "2000", "--json", str(path)])
    assert out.exit_code == 0, out.output
    assert "0.2480" in out.output and "0.2482" in out.output  # published and analytical SAIFI
    assert path.exists()


def test_bad_system_file_names_field_and_value(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nswitching_time_h = -1\ncomponent_types = {}\n'
                   'sources = [{node = "a"}]\nsections = []\nload_points = []\n')
    out = CliRunner().invoke(cli, ["resilience", "rbts", "--system", str(bad)])
    assert out.exit_code != 0
    assert "switching_time_h" in out.output and "-1" in out.output
