"""The multi-agent twin environment: API conformance, rewards against the KPIs, shield in the loop."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test

from gridsync.learning.agents import N_ACTIONS, AgentFeatures, make_layout
from gridsync.learning.env import EnvConfig, GridParallelEnv, Randomisation
from gridsync.learning.wrappers import CentralisedEnv
from gridsync.sim.kpi import compute_kpis
from gridsync.sim.simulator import simulate


def test_parallel_api_per_building(scenario_1day_plant):
    env = GridParallelEnv(EnvConfig(agents="building"), scenario=scenario_1day_plant)
    # one agent per bus that has a flexible asset
    f = scenario_1day_plant.fleet
    buses = {int(b) for fl in (f.battery, f.ev, f.deferrable, f.thermal, f.pv) for b in fl.bus}
    assert len(env.possible_agents) == len(buses)
    parallel_api_test(env, num_cycles=4)


def test_parallel_api_groups_and_gymnasium_check(scenario_1day_plant):
    env = GridParallelEnv(EnvConfig(agents="group", n_groups=3), scenario=scenario_1day_plant)
    assert env.possible_agents == ["group_0", "group_1", "group_2"]
    parallel_api_test(env, num_cycles=4)
    check_env(CentralisedEnv(env), skip_render_check=True)


class _ZeroAction:
    """Controller playing action 0 for every agent through the environment's own mapping."""

    name = "zero"

    def reset(self, scenario) -> None:
        layout = make_layout(scenario.fleet, scenario.feeder.n_bus, "building")
        self.features = AgentFeatures(scenario, layout)

    def act(self, obs):
        return self.features.setpoints(obs, np.zeros((self.features.n, N_ACTIONS)))


def test_summed_cost_is_the_kpi_total(scenario_1day):
    """With no violation penalty and the shield off, the agents' summed cost over a window is
    the KPI total_cost_incl_penalties of the same dispatch run by the batch simulator."""
    cfg = EnvConfig(agents="building", shield=False, violation_eur=0.0, reward_scale=2.0)
    env = GridParallelEnv(cfg, scenario=scenario_1day)
    env.reset(seed=0)
    cost, reward = 0.0, 0.0
    while env.agents:
        _, rew, _, _, infos = env.step({a: np.zeros(N_ACTIONS) for a in env.agents})
        cost += sum(i["cost_eur"] for i in infos.values())
        reward += sum(rew.values())
    kpi = compute_kpis(simulate(scenario_1day, _ZeroAction()), scenario_1day)
    assert cost == pytest.approx(kpi["total_cost_incl_penalties_eur"], rel=1e-6, abs=1e-6)
    assert reward == pytest.approx(-2.0 * cost, rel=1e-9)


def test_shield_corrections_in_info_and_penalised(scenario_1day):
    """Every asset flat out on a feeder whose loading limit is cut to 30 %: the shield must
    lower consumption, reports its changes and, with a penalty, the agents pay
    |safe - requested| kWh for them."""
    lim = scenario_1day.config.limits.model_copy(update={"loading_max_pct": 30.0})
    tight = dataclasses.replace(
        scenario_1day, config=scenario_1day.config.model_copy(update={"limits": lim})
    )

    def run(penalty):
        cfg = EnvConfig(agents="group", n_groups=2, shield_penalty_eur_per_kwh=penalty)
        env = GridParallelEnv(cfg, scenario=tight)
        env.reset(seed=0)
        act = np.ones(N_ACTIONS)
        out = []
        for _ in range(72):
            _, rew, _, _, infos = env.step({a: act for a in env.agents})
            out.append((sum(rew.values()), infos))
        return out

    free, paid = run(0.0), run(2.0)
    changes = [i["group_0"]["shield_changes"] for _, i in free]
    assert max(changes) > 0
    total_kw = [i["group_0"]["shield_intervention_kw"] for _, i in free]
    per_agent = [sum(v["agent_shield_kw"] for v in i.values()) for _, i in free]
    np.testing.assert_allclose(per_agent, total_kw, rtol=1e-9, atol=1e-9)
    dt_h = scenario_1day.dt_h
    # the two runs agree to the power flow's tolerance (warm starts differ), not bit for bit
    for (r0, _), (r1, _), kw in zip(free, paid, total_kw, strict=True):
        assert r0 - r1 == pytest.approx(10.0 * 2.0 * kw * dt_h, rel=1e-3, abs=1e-3)


def test_randomisation_is_seeded(scenario_1day_plant):
    rnd = Randomisation(
        latency_steps_max=1, loss_frac_max=0.2, plant_seed=True, obs_noise_frac=0.05
    )
    env = GridParallelEnv(
        EnvConfig(agents="group", randomisation=rnd), scenario=scenario_1day_plant
    )
    a, _ = env.reset(seed=3)
    b, _ = env.reset(seed=3)
    c, _ = env.reset(seed=4)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert any(not np.array_equal(a[k], c[k]) for k in a)
    assert dataclasses.is_dataclass(env.config.randomisation)
