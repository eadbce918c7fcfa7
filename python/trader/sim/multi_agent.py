"""PettingZoo ParallelEnv: K agents trading in one shared book.

Agents see the same book row and their own account; their orders of the same step consume the same
levels in a seeded random priority, so they compete for liquidity. Backed by a one-env C++ pool.
"""

from __future__ import annotations

import functools

import numpy as np
from pettingzoo import ParallelEnv

from trader.sim.env import Market, TradingVectorEnv, load_market


class TradingParallelEnv(ParallelEnv):
    metadata = {"name": "trader_shared_book_v0", "render_modes": []}

    def __init__(self, market: Market | None = None, *, num_agents: int = 2, seed: int = 0, **config):
        if num_agents < 2:
            raise ValueError("num_agents: expected >= 2 for the multi-agent env (use trader.sim.make for one)")
        self._vec = TradingVectorEnv(market if market is not None else load_market(), num_envs=1, seed=seed,
                                     num_agents=num_agents, **config)
        self.possible_agents = [f"trader_{k}" for k in range(num_agents)]
        self.agents: list[str] = []
        vec = self._vec
        import gymnasium as gym

        obs_box = vec.single_observation_space
        self._obs_space = gym.spaces.Box(-np.inf, np.inf, obs_box.shape[1:], np.float32)
        self._act_space = (gym.spaces.Box(-1.0, 1.0, (1,), np.float32) if vec._continuous
                           else gym.spaces.Discrete(3))

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent):
        return self._obs_space

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent):
        return self._act_space

    def reset(self, seed=None, options=None):
        obs, info = self._vec.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return self._split(obs[0]), self._split_info(info)

    def step(self, actions):
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"actions: missing for agents {missing}")
        extra = [a for a in actions if a not in self.agents]
        if extra:
            raise ValueError(f"actions: agents {extra} are not live")
        if self._vec._continuous:
            batch = np.array([[float(np.asarray(actions[a]).reshape(-1)[0]) for a in self.possible_agents]],
                             dtype=np.float32)
        else:
            batch = np.array([[int(actions[a]) for a in self.possible_agents]], dtype=np.int64)
        obs, reward, term, trunc, info = self._vec.step(batch)
        done = bool(term[0] or trunc[0])
        out = (self._split(obs[0]), {a: float(reward[0, k]) for k, a in enumerate(self.possible_agents)},
               {a: bool(term[0]) for a in self.possible_agents}, {a: bool(trunc[0]) for a in self.possible_agents},
               self._split_info(info))
        if done:
            self.agents = []
        return out

    def _split(self, obs):
        return {a: obs[k].copy() for k, a in enumerate(self.possible_agents)}

    def _split_info(self, info):
        per = ("position", "equity", "fees", "filled", "unfilled")
        return {a: {key: info[key][0, k].item() for key in per} | {"t": int(info["t"][0])}
                for k, a in enumerate(self.possible_agents)}

    def close(self):
        self._vec.close()
