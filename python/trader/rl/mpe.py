"""The multi-agent particle envs (mpe2, Lowe et al. 2017's tasks) as one vector env with the trader
env's multi-agent layout, for MADDPG's reference task, and the cooperative-navigation measures of the
paper's Table 2 that MADDPG logs on them."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode


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


class Coverage:
    """Running means, per env step, of info["benchmark"]'s cooperative-navigation measures (landmark
    distance, collisions) over real transitions; logged as charts/landmark_distance and charts/collisions."""

    def __init__(self):
        self.sum, self.count = np.zeros(2), 0

    def add(self, info: dict, real: np.ndarray) -> None:
        """One vector step's measures of the envs whose step was a real transition (not an autoreset)."""
        if "benchmark" in info:
            self.sum += info["benchmark"][real].sum(0)
            self.count += int(real.sum())

    def log(self, logger, step: int) -> None:
        """The means since the last log (a trader.run.logger.Logger), then start again."""
        if self.count:
            logger.scalar("charts/landmark_distance", self.sum[0] / self.count, step)
            logger.scalar("charts/collisions", self.sum[1] / self.count, step)
            self.sum, self.count = np.zeros(2), 0
