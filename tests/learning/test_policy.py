"""Trained policies as controllers: the numpy actor equals SB3's own inference, checkpoints
resolve through the controller registry (with and without the shield), cloning fits a teacher."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gridsync.learning.agents import N_ACTIONS, N_FEATURES, AgentFeatures, make_layout
from gridsync.learning.env import EnvConfig, GridParallelEnv
from gridsync.learning.policy import META, WEIGHTS, CheckpointError, MLPActor
from gridsync.learning.train import TrainConfig, _ppo, behaviour_clone, extract_actor
from gridsync.learning.wrappers import SharedPolicyVecEnv
from gridsync.sim.registry import is_controller_name, make_controller


@pytest.fixture(scope="module")
def ppo_model(scenario_1day):
    import torch

    torch.set_num_threads(1)
    env = GridParallelEnv(EnvConfig(agents="group", n_groups=3), scenario=scenario_1day)
    return _ppo(SharedPolicyVecEnv(env), TrainConfig(rollout_steps=8))


def test_numpy_actor_equals_sb3_deterministic_predict(ppo_model):
    x = np.random.default_rng(0).uniform(-2, 2, (50, N_FEATURES)).astype(np.float32)
    expected, _ = ppo_model.predict(x, deterministic=True)
    np.testing.assert_allclose(extract_actor(ppo_model)(x), expected, atol=1e-5)


def test_cloning_fits_a_linear_teacher(ppo_model):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (2000, N_FEATURES)).astype(np.float32)
    a = np.tanh(x[:, :N_ACTIONS] * 0.8).astype(np.float32)
    before = float(np.mean((extract_actor(ppo_model)(x) - a) ** 2))
    mse = behaviour_clone(ppo_model, x, a, np.zeros(len(x), np.float32), epochs=30, seed=0)
    assert mse < 0.1 * before


def test_checkpoint_runs_as_controller_with_and_without_shield(tmp_path, scenario_1day):
    ck = tmp_path / "zero"
    ck.mkdir()
    sizes = [N_FEATURES, 8, N_ACTIONS]
    MLPActor(
        [np.zeros((i, o)) for i, o in zip(sizes[:-1], sizes[1:], strict=True)],
        [np.zeros(o) for o in sizes[1:]],
    ).save(ck / WEIGHTS)
    (ck / META).write_text(json.dumps({"agents": "building"}))
    name = f"rl:{ck}"
    assert is_controller_name(name) and is_controller_name(name + "+shield")
    ctrl, shielded = make_controller(name), make_controller(name + "+shield")
    assert shielded.name.endswith("+shield")
    from gridsync.sim.twin import SteppedTwin

    obs = SteppedTwin(scenario_1day).observe()
    ctrl.reset(scenario_1day)
    shielded.reset(scenario_1day)
    layout = make_layout(scenario_1day.fleet, scenario_1day.feeder.n_bus, "building")
    expected = AgentFeatures(scenario_1day, layout).setpoints(
        obs, np.zeros((layout.n_agents, N_ACTIONS))
    )
    got = ctrl.act(obs)
    for k in ("battery_kw", "ev_kw", "deferrable_kw", "thermal_kw", "pv_curtail_kw"):
        np.testing.assert_allclose(getattr(got, k), getattr(expected, k))
    safe = shielded.act(obs)
    assert len(shielded.decisions) == 1 and safe.ev_kw.shape == expected.ev_kw.shape


def test_missing_checkpoint_names_where_it_looked(tmp_path):
    with pytest.raises(CheckpointError, match="meta.json"):
        make_controller(f"rl:{tmp_path / 'nothing'}")


def test_bundled_checkpoint_is_listed_and_small():
    from click.testing import CliRunner

    from gridsync.learning.checkpoints import BUNDLED_DIR
    from gridsync.learning.cli import learn
    from gridsync.learning.policy import resolve_checkpoint

    assert resolve_checkpoint("shared-ppo").name == "shared-ppo"
    assert (BUNDLED_DIR / "shared-ppo" / "meta.json").is_file()
    assert sum(f.stat().st_size for f in (BUNDLED_DIR / "shared-ppo").iterdir()) < 2_000_000
    result = CliRunner().invoke(learn, ["list"])
    assert result.exit_code == 0 and "shared-ppo" in result.output
