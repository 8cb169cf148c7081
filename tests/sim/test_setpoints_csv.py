"""--setpoints-csv: every step's setpoints per asset, streamed, equal to what the controller sent."""

import numpy as np
import pandas as pd
from click.testing import CliRunner

from gridsync.cli.main import cli
from gridsync.dispatch.rules import TouController
from gridsync.sim.setpoints_csv import SetpointsCsv, setpoint_vector
from gridsync.sim.simulator import simulate


class Recording(TouController):
    """tou, keeping a copy of every setpoint batch it returns."""

    def reset(self, scenario):
        super().reset(scenario)
        self.sent = []

    def act(self, obs):
        sp = super().act(obs)
        self.sent.append(setpoint_vector(sp).copy())
        return sp


def test_csv_rows_equal_the_controllers_setpoints_and_are_streamed(scenario_1day, tmp_path):
    s = scenario_1day
    path = tmp_path / "sp.csv"
    ctrl = Recording()
    sizes = []
    with SetpointsCsv(path, block_steps=8) as out:
        record = out.recorder("tou", s)

        def on_setpoints(step, sp):
            record(step, sp)
            sizes.append(path.stat().st_size)

        simulate(s, ctrl, on_setpoints=on_setpoints)
    n_assets = len(ctrl.sent[0])
    df = pd.read_csv(path)
    assert list(df.columns) == ["controller", "step", "time", "asset_id", "kind", "kW"]
    assert len(df) == s.n_steps * n_assets
    kw = df.kW.to_numpy().reshape(s.n_steps, n_assets)
    assert np.allclose(kw, np.array(ctrl.sent), atol=5e-5)
    assert df.step.iloc[-1] == s.n_steps - 1
    assert pd.Timestamp(df.time.iloc[0]) == s.window[0]
    first = df[df.step == 0]
    assert (first.kind == "battery").sum() == len(s.fleet.battery)
    assert first.asset_id.is_unique
    # Streamed: the file grew while the run was going, in blocks, not only at the end.
    assert 0 < sizes[len(sizes) // 2] < sizes[-1]


def test_cli_writes_one_file_for_every_controller(tmp_path):
    path = tmp_path / "sp.csv.gz"
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--days",
            "1",
            "--quiet",
            "--no-report",
            "--controller",
            "uncontrolled",
            "--controller",
            "smart-rule",
            "--setpoints-csv",
            str(path),
        ],
    )
    assert result.exit_code == 0, result.output
    df = pd.read_csv(path)
    assert set(df.controller) == {"uncontrolled", "smart-rule"}
    per = df.groupby("controller").step.nunique()
    assert (per == 96).all()
