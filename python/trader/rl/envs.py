"""The envs the learners train on, all as NEXT_STEP-autoreset vector envs with info["episode"] /
info["_episode"] episode statistics:

- `trader`: the C++ order-book env pool (trader.sim.make); K agents give obs [B, K, D], reward [B, K];
- a gymnasium id: gymnasium.make_vec(..., "sync") with RecordEpisodeStatistics;
- `mpe2:NAME` (e.g. mpe2:simple_spread_v3): N copies of an MPE PettingZoo ParallelEnv behind the same
  multi-agent layout as the trader env, for MADDPG's reference task.

`EnvRunner` puts one of them behind send()/recv(): the C++ pool steps in its worker threads between the
two calls while the learner works. It records every action sent, so that a resumed run can bring the
envs back to where they were by replaying them from the seeded reset (neither the pool nor gymnasium's
envs can snapshot their state; both are deterministic given seed and actions).
"""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode


def make_env(args, num_envs: int, seed: int):
    """A vector env of `num_envs` envs for args.env_id; env i is seeded with seed + i at reset."""
    if args.env_id == "trader":
        from trader.sim import Market, load_market, make

        market = args.data if isinstance(args.data, Market) else load_market(args.data)
        start_max = training_start_max(len(market.book), args.train_fraction, args.horizon, args.latency_steps)
        return make(market, num_envs=num_envs, num_threads=args.num_threads, seed=seed, horizon=args.horizon,
                    fee_bps=args.fee_bps, trade_size=args.trade_size, max_position=args.max_position,
                    continuous=args.continuous, latency_steps=args.latency_steps, reward_scale=args.reward_scale,
                    num_agents=args.num_agents, start_max=start_max)
    if args.env_id.startswith("mpe2:"):
        return MPEVectorEnv(args.env_id.split(":", 1)[1], num_envs)
    envs = gym.make_vec(args.env_id, num_envs=num_envs, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AutoresetMode.NEXT_STEP})
    return gym.wrappers.vector.RecordEpisodeStatistics(envs)


def training_start_max(rows: int, train_fraction: float, horizon: int, latency_steps: int) -> int:
    """Last episode start whose episode ends inside the first `train_fraction` of the rows (the rest is
    held out: `trader backtest` runs there)."""
    if not 0 < train_fraction <= 1:
        raise ValueError(f"train_fraction: expected a value in (0, 1], got {train_fraction}")
    train_end = int(rows * train_fraction)
    start_max = train_end - 1 - horizon - latency_steps
    if start_max < 0:
        raise ValueError(f"horizon: {horizon} steps do not fit in the training rows ({train_end} of {rows}); "
                         "lower --horizon or raise --train-fraction")
    return start_max


def check_autoreset(env) -> None:
    mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if mode != AutoresetMode.NEXT_STEP:
        raise ValueError(f"env: the learners expect NEXT_STEP autoreset, this env uses {mode}")


class EnvRunner:
    """A vector env behind send(actions) / recv(), with the log of every action sent since reset."""

    def __init__(self, env, seed: int):
        check_autoreset(env)
        self.env, self.seed = env, seed
        self.num_envs = env.num_envs
        self._async = hasattr(env, "send") and hasattr(env, "recv")  # the C++ pool
        self._pending = None
        self._log: np.ndarray | None = None
        self._steps = 0

    def reset(self) -> np.ndarray:
        """Reset with the seed; a copy of the observations (the pool's own arrays change at the next step)."""
        obs, _ = self.env.reset(seed=self.seed)
        self._steps = 0
        return np.array(obs)

    def send(self, actions: np.ndarray) -> None:
        actions = np.asarray(actions)
        self._record(actions)
        if self._async:
            self.env.send(actions)
        else:
            self._pending = actions

    def recv(self):
        """(obs, reward, terminated, truncated, info); the pool's arrays are views until the next send."""
        if self._async:
            return self.env.recv()
        actions, self._pending = self._pending, None
        return self.env.step(actions)

    # -- action log: the env's state, as far as a checkpoint is concerned --------------------------
    def _record(self, actions: np.ndarray) -> None:
        if self._log is None or self._steps == len(self._log):
            grown = np.empty((max(64, 2 * self._steps), *actions.shape), dtype=_log_dtype(actions))
            if self._log is not None:
                grown[:self._steps] = self._log[:self._steps]
            self._log = grown
        self._log[self._steps] = actions
        self._steps += 1

    def action_log(self) -> np.ndarray:
        return np.empty(0) if self._log is None else self._log[:self._steps].copy()

    def replay(self, log: np.ndarray, expected_obs: np.ndarray | None = None):
        """Reset with the seed and step through the logged actions, so that the envs end where the
        logged run was; returns the last observation. With `expected_obs` (the observation saved with
        the log), a RuntimeError if the replay ended elsewhere: the env is not deterministic."""
        obs = self.reset()
        for actions in log:
            self.send(actions)
            obs = self.recv()[0]
        if expected_obs is not None and not np.array_equal(np.asarray(obs), np.asarray(expected_obs)):
            raise RuntimeError("resume: replaying the logged actions did not bring the env back to the saved "
                               "observation; the env is not deterministic given its seed and actions")
        return np.array(obs)


def _log_dtype(actions: np.ndarray):
    if actions.dtype.kind in "iu" and actions.size and -128 <= actions.min() and actions.max() < 128:
        return np.int8  # hold/buy/sell and MPE's 5 moves: a byte per env step
    return actions.dtype


def evaluate(policy: Callable[[np.ndarray], np.ndarray], env, num_episodes: int, seed: int = 12345) -> np.ndarray:
    """Returns of the first `num_episodes` episodes that finish with `policy` (obs batch -> action batch)
    acting in every env; multi-agent returns are averaged over agents."""
    from trader.rl.common import EpisodeStats

    check_autoreset(env)
    stats = EpisodeStats(window=10**9)
    obs, _ = env.reset(seed=seed)
    while len(stats.returns) < num_episodes:
        obs, _, _, _, info = env.step(policy(obs))
        stats.add(info)
    return np.asarray(stats.returns[:num_episodes])


class MPEVectorEnv(gym.vector.VectorEnv):
    """N copies of a multi-agent particle env (mpe2, Lowe et al. 2017's tasks) as one vector env with
    the trader env's multi-agent layout: obs [N, K, D] (zero-padded to the longest agent observation),
    actions [N, K] (Discrete moves), reward [N, K]; NEXT_STEP autoreset. Episodes end by truncation
    after max_cycles steps (25, the paper's setting). info["benchmark"] carries, per env and step, the
    cooperative-navigation measures of the paper's Table 2 when the task has landmarks to cover:
    the sum over landmarks of the distance to the nearest agent, and the number of colliding pairs."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, name: str, num_envs: int, max_cycles: int = 25, **kwargs):
        import importlib

        module = importlib.import_module(f"mpe2.{name}")
        self.envs = [module.parallel_env(max_cycles=max_cycles, continuous_actions=False, **kwargs)
                     for _ in range(num_envs)]
        first = self.envs[0]
        self.agents = list(first.possible_agents)
        self.num_envs, self.num_agents = num_envs, len(self.agents)
        self.obs_dim = max(first.observation_space(a).shape[0] for a in self.agents)
        moves = {first.action_space(a).n for a in self.agents}
        if len(moves) != 1:
            raise ValueError(f"mpe2:{name}: agents with different action counts {sorted(moves)} are not supported")
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (self.num_agents, self.obs_dim), np.float32)
        self.single_action_space = gym.spaces.MultiDiscrete([moves.pop()] * self.num_agents)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._obs = np.zeros((num_envs, self.num_agents, self.obs_dim), np.float32)
        self._needs_reset = np.zeros(num_envs, bool)
        self._ep_return = np.zeros((num_envs, self.num_agents))
        self._ep_len = np.zeros(num_envs, np.int64)
        self._seed = 0

    def _put(self, i: int, obs: dict) -> None:
        self._obs[i] = 0.0
        for k, a in enumerate(self.agents):
            self._obs[i, k, :len(obs[a])] = obs[a]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._seed = seed
        for i, env in enumerate(self.envs):
            obs, _ = env.reset(seed=None if seed is None else seed + i)
            self._put(i, obs)
        self._needs_reset[:] = False
        self._ep_return[:] = 0.0
        self._ep_len[:] = 0
        return self._obs.copy(), {}

    def step(self, actions):
        actions = np.asarray(actions)
        reward = np.zeros((self.num_envs, self.num_agents), np.float32)
        term = np.zeros(self.num_envs, bool)
        trunc = np.zeros(self.num_envs, bool)
        bench = np.zeros((self.num_envs, 2), np.float32)
        stepped = np.zeros(self.num_envs, bool)
        for i, env in enumerate(self.envs):
            if self._needs_reset[i]:  # NEXT_STEP: this step only resets, its action is ignored
                obs, _ = env.reset()
                self._put(i, obs)
                self._needs_reset[i] = False
                self._ep_return[i] = 0.0
                self._ep_len[i] = 0
                continue
            obs, rew, te, tr, _ = env.step({a: int(actions[i, k]) for k, a in enumerate(self.agents)})
            self._put(i, obs)
            reward[i] = [rew[a] for a in self.agents]
            term[i], trunc[i] = any(te.values()), any(tr.values())
            bench[i] = _coverage(env)
            stepped[i] = True
        self._ep_return[stepped] += reward[stepped]
        self._ep_len[stepped] += 1
        done = term | trunc
        info = {"episode": {"r": self._ep_return.copy(), "l": self._ep_len.copy()}, "_episode": done,
                "benchmark": bench}
        self._needs_reset = done
        return self._obs.copy(), reward, term, trunc, info


def _coverage(env) -> tuple[float, float]:
    world = env.unwrapped.world
    agents = [a.state.p_pos for a in world.agents]
    landmarks = [lm.state.p_pos for lm in world.landmarks]
    if not landmarks:
        return 0.0, 0.0
    dist = sum(min(np.linalg.norm(a - lm) for a in agents) for lm in landmarks)
    collisions = 0
    for i, a in enumerate(world.agents):
        for b in world.agents[i + 1:]:
            if np.linalg.norm(a.state.p_pos - b.state.p_pos) < a.size + b.size:
                collisions += 1
    return float(dist), float(collisions)
