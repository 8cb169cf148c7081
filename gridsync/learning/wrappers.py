"""Two views of ``GridParallelEnv`` for single-agent libraries.

- ``CentralisedEnv``: a Gymnasium ``Env`` with one joint observation (every agent's features,
  stacked) and one joint action; the reward is the agents' summed reward.
- ``SharedPolicyVecEnv``: a Stable-Baselines3 ``VecEnv`` in which every agent is one
  sub-environment, so one policy is trained on all agents' experience (parameter sharing).
  All agents step together on the one twin; when its episode ends, all are reset.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from gridsync.learning.agents import N_ACTIONS, N_FEATURES, OBS_BOUND
from gridsync.learning.env import GridParallelEnv


class CentralisedEnv(gym.Env):
    """One agent controlling the whole feeder through the multi-agent environment."""

    metadata = {"render_modes": []}

    def __init__(self, env: GridParallelEnv) -> None:
        self.env = env
        n = len(env.possible_agents)
        self.n_agents = n
        self.observation_space = spaces.Box(-OBS_BOUND, OBS_BOUND, (n * N_FEATURES,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (n * N_ACTIONS,), np.float32)

    def _stack(self, obs: dict) -> np.ndarray:
        return np.concatenate([obs[a] for a in self.env.possible_agents]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, _ = self.env.reset(seed=seed, options=options)
        return self._stack(obs), {}

    def step(self, action):
        a = np.asarray(action, np.float32).reshape(self.n_agents, N_ACTIONS)
        acts = dict(zip(self.env.possible_agents, a, strict=True))
        obs, rew, term, trunc, infos = self.env.step(acts)
        first = infos[self.env.possible_agents[0]]
        info = {k: first[k] for k in ("shield_status", "shield_changes", "shield_intervention_kw")}
        info["cost_eur"] = float(sum(i["cost_eur"] for i in infos.values()))
        done = all(term.values())
        return self._stack(obs), float(sum(rew.values())), done, any(trunc.values()), info


class SharedPolicyVecEnv(VecEnv):
    """Every agent of ``env`` as one sub-environment of a VecEnv (one shared policy)."""

    def __init__(self, env: GridParallelEnv, seed: int = 0) -> None:
        self.env = env
        self.names = list(env.possible_agents)
        super().__init__(
            len(self.names),
            spaces.Box(-OBS_BOUND, OBS_BOUND, (N_FEATURES,), np.float32),
            spaces.Box(-1.0, 1.0, (N_ACTIONS,), np.float32),
        )
        self._seed = seed
        self._actions = None
        self.episode_returns: list[float] = []  # summed over agents, per finished episode
        self.episode_costs: list[float] = []
        self._ret = 0.0
        self._cost = 0.0

    def _stack(self, obs: dict) -> np.ndarray:
        return np.stack([obs[a] for a in self.names]).astype(np.float32)

    def reset(self):
        obs, _ = self.env.reset(seed=self._seed)
        self._seed += 1
        self._ret, self._cost = 0.0, 0.0
        return self._stack(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        acts = dict(zip(self.names, np.asarray(self._actions), strict=True))
        obs, rew, term, _, infos = self.env.step(acts)
        r = np.array([rew[a] for a in self.names], np.float32)
        self._ret += float(r.sum())
        self._cost += float(sum(infos[a]["cost_eur"] for a in self.names))
        done = all(term.values())
        dones = np.full(self.num_envs, done)
        info_list = [dict(infos[a]) for a in self.names]
        if done:
            self.episode_returns.append(self._ret)
            self.episode_costs.append(self._cost)
            last = self._stack(obs)
            for i, info in enumerate(info_list):
                info["terminal_observation"] = last[i]
                info["episode"] = {"r": self._ret / self.num_envs, "l": self.env.scenario.n_steps}
            stacked = self.reset()
        else:
            stacked = self._stack(obs)
        return stacked, r, dones, info_list

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name, indices=None):
        return [getattr(self.env, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name, value, indices=None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name, *args, indices=None, **kwargs):
        return [getattr(self.env, method_name)(*args, **kwargs)] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False] * len(self._indices(indices))

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)
