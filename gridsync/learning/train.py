"""Training a shared policy: behaviour cloning from a teacher controller, then PPO fine-tuning.

1. The teacher (``smart-rule`` by default; any registered controller) dispatches the training
   windows through the environment; its setpoints are turned into this action space
   (``AgentFeatures.actions_of``) and played, so the recorded states are the ones the cloned
   policy will meet. Every agent-step is one (features, action, reward) sample.
2. The PPO policy's mean network is fitted to those actions (MSE) and its value network to the
   discounted returns, so PPO starts from the teacher instead of from noise.
3. PPO (Stable-Baselines3) fine-tunes with one policy shared by all agents
   (``SharedPolicyVecEnv``), with the shield in the loop and per-episode randomisation.

After cloning and after every few PPO updates the deterministic actor is scored on a
validation window from the training period (never the evaluation weeks); the best one is the
checkpoint. Everything is seeded; torch runs on one thread.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from gridsync.learning.env import EnvConfig, GridParallelEnv, Randomisation
from gridsync.learning.policy import META, WEIGHTS, MLPActor

# Two-day windows from spring to late summer 2016; the bench evaluates on other weeks.
TRAIN_STARTS = (
    dt.date(2016, 5, 2),
    dt.date(2016, 5, 14),
    dt.date(2016, 5, 25),
    dt.date(2016, 6, 15),
    dt.date(2016, 7, 2),
    dt.date(2016, 7, 19),
    dt.date(2016, 8, 3),
)
VALIDATION_START = dt.date(2016, 5, 18)
# Held-out evaluation windows: weeks no training or validation window touches.
EVAL_STARTS = (dt.date(2016, 6, 6), dt.date(2016, 6, 25), dt.date(2016, 7, 11))

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TrainConfig:
    """What to train and how long (``ppo_steps`` twin steps of PPO, each one sample per agent)."""

    name: str = "shared-ppo"
    scenario: str | None = None
    train_starts: tuple[dt.date, ...] = TRAIN_STARTS
    validation_start: dt.date = VALIDATION_START
    days: int = 2
    agents: str = "building"
    n_groups: int = 8
    teacher: str = "smart-rule"
    bc_epochs: int = 60
    ppo_steps: int = 6912
    rollout_steps: int = 48
    eval_every: int = 4  # PPO updates between validation runs
    learning_rate: float = 3e-4
    log_std_init: float = -2.0
    net_arch: tuple[int, ...] = (64, 64)
    shield: bool = True
    shield_penalty_eur_per_kwh: float = 0.05
    randomisation: Randomisation = field(
        default_factory=lambda: Randomisation(
            latency_steps_max=1, loss_frac_max=0.05, plant_seed=True, obs_noise_frac=0.02
        )
    )
    seed: int = 0

    def env_config(self, starts: tuple, randomise: bool = True) -> EnvConfig:
        return EnvConfig(
            scenario=self.scenario,
            starts=starts,
            days=self.days,
            agents=self.agents,
            n_groups=self.n_groups,
            shield=self.shield,
            shield_penalty_eur_per_kwh=self.shield_penalty_eur_per_kwh,
            randomisation=self.randomisation if randomise else Randomisation(),
        )


def _discounted(rewards: np.ndarray, gamma: float) -> np.ndarray:
    out = np.zeros_like(rewards)
    acc = np.zeros(rewards.shape[1])
    for t in range(len(rewards) - 1, -1, -1):
        acc = rewards[t] + gamma * acc
        out[t] = acc
    return out


def collect_teacher(env: GridParallelEnv, teacher: str, starts, seed: int, progress=None):
    """Features, teacher actions and discounted returns of every agent-step on ``starts``."""
    from gridsync.sim.registry import make_controller

    xs, acts, rets, costs = [], [], [], []
    total = len(starts) * env.scenario.n_steps
    done_steps = 0
    for k, start in enumerate(starts):
        obs, _ = env.reset(seed=seed + k, options={"start": start})
        ctrl = make_controller(teacher)
        ctrl.reset(env.scenario)
        rewards, cost = [], 0.0
        while env.agents:
            x = np.stack([obs[a] for a in env.possible_agents])
            a = env.features.actions_of(env._obs, ctrl.act(env._obs))
            obs, rew, _, _, infos = env.step(dict(zip(env.possible_agents, a, strict=True)))
            xs.append(x)
            acts.append(a)
            rewards.append([rew[n] for n in env.possible_agents])
            cost += sum(i["cost_eur"] for i in infos.values())
            done_steps += 1
            if progress:
                progress("teacher", done_steps, total)
        rets.append(_discounted(np.asarray(rewards), 0.99))
        costs.append(cost)
    returns = np.concatenate([r.ravel() for r in rets])  # step-major, as xs and acts
    return np.concatenate(xs), np.concatenate(acts), returns, costs


def extract_actor(model) -> MLPActor:
    """The PPO policy's deterministic actor (mean of the Gaussian) as numpy layers."""
    import torch

    layers = [m for m in model.policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    layers.append(model.policy.action_net)
    ws = [lay.weight.detach().cpu().numpy().T.astype(np.float64) for lay in layers]
    bs = [lay.bias.detach().cpu().numpy().astype(np.float64) for lay in layers]
    return MLPActor(ws, bs)


def behaviour_clone(model, x, a, returns, epochs: int, seed: int, progress=None) -> float:
    """Fit the policy mean to ``a`` and the value to ``returns`` (Adam, minibatches); returns
    the final action MSE."""
    import torch

    pol = model.policy
    g = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(x, dtype=torch.float32)
    at = torch.as_tensor(a, dtype=torch.float32)
    rt = torch.as_tensor(returns, dtype=torch.float32)
    opt = torch.optim.Adam(pol.parameters(), lr=1e-3)
    n, batch, mse = len(xt), 512, float("nan")
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            lat_pi, lat_vf = pol.mlp_extractor(xt[idx])
            loss_pi = torch.mean((pol.action_net(lat_pi) - at[idx]) ** 2)
            loss_vf = torch.mean((pol.value_net(lat_vf).squeeze(-1) - rt[idx]) ** 2)
            opt.zero_grad()
            (loss_pi + 0.5 * loss_vf).backward()
            opt.step()
            mse = float(loss_pi.detach())
        if progress:
            progress("clone", epoch + 1, epochs)
    return mse


def evaluate(actor: MLPActor, env: GridParallelEnv, start, seed: int = 0) -> dict:
    """One deterministic episode on ``start``: cost (EUR), violations, shield interventions."""
    obs, _ = env.reset(seed=seed, options={"start": start})
    cost, viol, changes, kwh = 0.0, 0, 0, 0.0
    while env.agents:
        x = np.stack([obs[a] for a in env.possible_agents])
        a = actor(x).astype(np.float32)
        obs, _, _, _, infos = env.step(dict(zip(env.possible_agents, a, strict=True)))
        first = infos[env.possible_agents[0]]
        cost += sum(i["cost_eur"] for i in infos.values())
        viol += first["violations"]
        changes += first["shield_changes"]
        kwh += first["shield_intervention_kw"] * env.scenario.dt_h
    return {"cost_eur": cost, "violations": viol, "shield_changes": changes, "shield_kwh": kwh}


def _ppo(vec, cfg: TrainConfig):
    import torch
    from stable_baselines3 import PPO

    buffer = cfg.rollout_steps * vec.num_envs
    return PPO(
        "MlpPolicy",
        vec,
        learning_rate=cfg.learning_rate,
        n_steps=cfg.rollout_steps,
        batch_size=max(64, buffer // 8),
        n_epochs=5,
        gamma=0.99,
        gae_lambda=0.95,
        clip_range=0.1,
        target_kl=0.03,
        seed=cfg.seed,
        device="cpu",
        policy_kwargs={
            "net_arch": list(cfg.net_arch),
            "log_std_init": cfg.log_std_init,
            "activation_fn": torch.nn.Tanh,
        },
        verbose=0,
    )


def train(cfg: TrainConfig, out_dir: Path, progress: Progress | None = None) -> dict:
    """Train, write the checkpoint directory ``out_dir`` and return its summary."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    from gridsync.learning.wrappers import SharedPolicyVecEnv

    torch.set_num_threads(1)
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    env = GridParallelEnv(cfg.env_config(cfg.train_starts))
    val_env = GridParallelEnv(cfg.env_config((cfg.validation_start,), randomise=False))
    x, a, ret, teacher_costs = collect_teacher(
        env, cfg.teacher, cfg.train_starts, cfg.seed, progress
    )
    vec = SharedPolicyVecEnv(env, seed=cfg.seed + 1000)
    model = _ppo(vec, cfg)
    mse = behaviour_clone(model, x, a, ret, cfg.bc_epochs, cfg.seed, progress)
    curve: list[dict] = []
    best = {"actor": extract_actor(model), "stage": "clone", "steps": 0}
    teacher_val = _teacher_validation(cfg, val_env)
    scored = evaluate(best["actor"], val_env, cfg.validation_start)
    best["score"] = scored
    bc_s = time.perf_counter() - t0
    curve.append({"stage": "clone", "ppo_steps": 0, "wall_s": bc_s, **_prefix("val", scored)})

    class Curve(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.updates = 0

        def _on_step(self) -> bool:
            if progress:
                progress(
                    "ppo", min(self.num_timesteps // vec.num_envs, cfg.ppo_steps), cfg.ppo_steps
                )
            return True

        def _on_rollout_end(self) -> None:
            self.updates += 1
            row = {"stage": "ppo", "ppo_steps": self.num_timesteps // vec.num_envs}
            row["wall_s"] = time.perf_counter() - t0
            if vec.episode_costs:
                row["train_episode_cost_eur"] = vec.episode_costs[-1]
            if self.updates % cfg.eval_every == 0:
                actor = extract_actor(self.model)
                s = evaluate(actor, val_env, cfg.validation_start)
                row.update(_prefix("val", s))
                if _better(s, best["score"]):
                    best.update(actor=actor, stage="ppo", steps=row["ppo_steps"], score=s)
            curve.append(row)

    model.learn(total_timesteps=cfg.ppo_steps * vec.num_envs, callback=Curve())
    final = extract_actor(model)
    s = evaluate(final, val_env, cfg.validation_start)
    curve.append(
        {"stage": "final", "ppo_steps": cfg.ppo_steps, "wall_s": time.perf_counter() - t0}
        | _prefix("val", s)
    )
    if _better(s, best["score"]):
        best.update(actor=final, stage="ppo", steps=cfg.ppo_steps, score=s)
    wall = time.perf_counter() - t0
    out_dir.mkdir(parents=True, exist_ok=True)
    best["actor"].save(out_dir / WEIGHTS)
    model.save(out_dir / "ppo.zip")
    summary = {
        "chosen": best["stage"],
        "chosen_ppo_steps": best["steps"],
        "validation_start": str(cfg.validation_start),
        "validation": best["score"],
        "validation_teacher_projected": teacher_val,
        "teacher_train_costs_eur": teacher_costs,
        "clone_action_mse": mse,
        "clone_wall_s": bc_s,
        "training_wall_s": wall,
        "samples_cloned": len(x),
        "ppo_agent_samples": cfg.ppo_steps * vec.num_envs,
    }
    meta = {
        "agents": cfg.agents,
        "n_groups": cfg.n_groups,
        "n_agents": vec.num_envs,
        "config": _jsonable(asdict(cfg)),
        "summary": summary,
    }
    (out_dir / META).write_text(json.dumps(meta, indent=2))
    write_curve(curve, out_dir)
    return summary


def _teacher_validation(cfg: TrainConfig, env: GridParallelEnv) -> dict:
    """The teacher's validation score through this action space (what cloning aims at)."""
    _, _, _, costs = collect_teacher(env, cfg.teacher, (cfg.validation_start,), 0)
    return {"cost_eur": costs[0]}


def _better(new: dict, old: dict) -> bool:
    return (new["violations"], new["cost_eur"]) < (old["violations"], old["cost_eur"])


def _prefix(p: str, d: dict) -> dict:
    return {f"{p}_{k}": v for k, v in d.items()}


def _jsonable(d):
    if isinstance(d, dict):
        return {k: _jsonable(v) for k, v in d.items()}
    if isinstance(d, list | tuple):
        return [_jsonable(v) for v in d]
    if isinstance(d, dt.date):
        return str(d)
    return d


def write_curve(rows: list[dict], out_dir: Path) -> None:
    """``curve.csv`` and an offline plotly ``curve.html`` (validation and training costs)."""
    import plotly.graph_objects as go

    keys = sorted({k for r in rows for k in r})
    with (out_dir / "curve.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    fig = go.Figure()
    val = [r for r in rows if "val_cost_eur" in r]
    fig.add_trace(
        go.Scatter(
            x=[r["ppo_steps"] for r in val],
            y=[r["val_cost_eur"] for r in val],
            mode="lines+markers",
            name="validation window cost (EUR, deterministic, shielded)",
        )
    )
    tr = [r for r in rows if "train_episode_cost_eur" in r]
    fig.add_trace(
        go.Scatter(
            x=[r["ppo_steps"] for r in tr],
            y=[r["train_episode_cost_eur"] for r in tr],
            mode="markers",
            name="last training episode cost (EUR, randomised)",
        )
    )
    fig.update_layout(
        title="Learning curve: step 0 = behaviour cloning, then PPO fine-tuning",
        xaxis_title="PPO twin steps (one sample per agent each)",
        yaxis_title="window cost incl. penalties (EUR)",
    )
    fig.write_html(out_dir / "curve.html", include_plotlyjs=True)
