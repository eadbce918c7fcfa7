#!/usr/bin/env python3
"""The learners on standard tasks with known results, before they are trusted on markets.

  ppo-cartpole     PPO (discrete) on CartPole-v1: the maximum return, 500 (RL Zoo's hyperparameters)
  ppo-pendulum     PPO (continuous) on Pendulum-v1: better than -200 is the usual bar (RL Zoo's
                   hyperparameters, without gSDE, with observation and reward normalization instead)
  sac-pendulum     SAC (continuous) on Pendulum-v1: better than -200 within 20k steps (RL Zoo)
  maddpg-spread    MADDPG on MPE cooperative navigation (mpe2 simple_spread_v3, N=3, 25-step
                   episodes) with the paper's settings (Lowe et al. 2017, App.: lr 0.01, gamma 0.95,
                   batch 1024, 64-unit layers, tau 0.01, an update every 100 steps), for fewer episodes
                   than the paper's 60000; compared with a random policy on the paper's measures

Each trained policy is evaluated deterministically (argmax / mean action) over fresh episodes.
Runs go to --runs-dir (TensorBoard scalars, checkpoints). --quick shortens every budget to check that
the scripts run and learning starts, not to reach the bars.

  PYTHONPATH=python python3 benchmarks/rl_standard_tasks.py [--quick] [--task NAME ...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from trader.rl import common, maddpg, ppo, sac
from trader.rl.envs import MPEVectorEnv, evaluate, make_env

TASKS = {
    "ppo-cartpole": dict(
        learner=ppo, bar=500.0, eval_episodes=20,
        args=dict(env_id="CartPole-v1", total_timesteps=100_000, num_envs=8, num_steps=32, num_minibatches=1,
                  update_epochs=20, gamma=0.98, gae_lambda=0.8, ent_coef=0.0, learning_rate=1e-3),
        quick=dict(total_timesteps=20_000)),
    "ppo-pendulum": dict(
        learner=ppo, bar=-200.0, eval_episodes=20,
        args=dict(env_id="Pendulum-v1", total_timesteps=300_000, num_envs=4, num_steps=1024, num_minibatches=64,
                  update_epochs=10, gamma=0.9, gae_lambda=0.95, ent_coef=0.0, learning_rate=1e-3,
                  norm_obs=True, norm_reward=True),
        quick=dict(total_timesteps=20_480)),
    "sac-pendulum": dict(
        learner=sac, bar=-200.0, eval_episodes=20,
        args=dict(env_id="Pendulum-v1", total_timesteps=20_000, learning_starts=1000, learning_rate=1e-3),
        quick=dict(total_timesteps=3000)),
    "maddpg-spread": dict(
        learner=maddpg, bar=None, eval_episodes=200,
        args=dict(env_id="mpe2:simple_spread_v3", total_timesteps=250_000),
        quick=dict(total_timesteps=30_000)),
}


def mpe_measures(policy, num_episodes: int, seed: int = 12345) -> dict:
    """Mean episode reward (per agent) and, per step, the sum over landmarks of the distance to the
    nearest agent and the number of colliding pairs, over `num_episodes` episodes of 25 steps."""
    env = MPEVectorEnv("simple_spread_v3", num_envs=10)
    obs, _ = env.reset(seed=seed)
    returns, bench = [], []
    while len(returns) < num_episodes:
        obs, _, _, _, info = env.step(policy(obs))
        stepped = info["benchmark"][:, 0] > 0  # the rows of reset steps are zeros
        bench.extend(info["benchmark"][stepped].tolist())
        done = info["_episode"]
        returns.extend(info["episode"]["r"][done].mean(1).tolist())
    bench = np.asarray(bench)
    return {"episode_reward_per_agent": float(np.mean(returns[:num_episodes])),
            "landmark_distance_per_step": float(bench[:, 0].mean()), "collisions_per_step": float(bench[:, 1].mean())}


def run(name: str, quick: bool, seed: int, runs_dir: str, cuda: bool, steps: int | None) -> dict:
    task = TASKS[name]
    learner = task["learner"]
    kw = dict(task["args"], **(task["quick"] if quick else {}))
    if steps:
        kw["total_timesteps"] = steps
    args = learner.Args(**kw, seed=seed, runs_dir=runs_dir, progress_bar=False, cuda=cuda)
    t0 = time.time()
    result = learner.train(args)
    wall = time.time() - t0
    policy = learner.load_policy(result["checkpoint"])
    out = {"task": name, "steps": result["global_step"], "wall_s": round(wall, 1), "sps": result["sps"],
           "train_return_last100": round(result["episodic_return"], 2), "run_dir": result["run_dir"]}
    if learner is maddpg:
        trained = mpe_measures(policy, task["eval_episodes"])
        rng = np.random.default_rng(0)
        random = mpe_measures(lambda o: rng.integers(0, 5, o.shape[:2]), task["eval_episodes"])
        out |= {"trained": trained, "random": random,
                "better_than_random": trained["episode_reward_per_agent"] > random["episode_reward_per_agent"]}
    else:
        returns = evaluate(policy, make_env(args, 4, seed=10_000), task["eval_episodes"])
        out |= {"eval_return_mean": round(float(returns.mean()), 2), "eval_return_std": round(float(returns.std()), 2),
                "bar": task["bar"], "reached": bool(returns.mean() >= task["bar"] - 1e-6)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", nargs="*", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--quick", action="store_true", help="short budgets: the scripts run, learning starts")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs-dir", default="runs/benchmarks")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--no-cuda", dest="cuda", action="store_false", help="train on the CPU even with a GPU "
                        "(these small networks are faster there)")
    parser.add_argument("--total-timesteps", type=int, default=None, help="override the tasks' budgets")
    opts = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, device {common.pick_device(opts.cuda)}")
    results = []
    for name in opts.task:
        res = run(name, opts.quick, opts.seed, opts.runs_dir, opts.cuda, opts.total_timesteps)
        print(json.dumps(res), flush=True)
        results.append(res)
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
