"""PettingZoo ParallelEnv: K agents trading in one shared book.

Agents see the same book row and their own account; their market orders of the same step consume the
same levels in a seeded random priority, and their resting quotes share each level's queue in arrival
order (ties: that priority) and compete for the same trades. Backed by a one-env C++ pool; options as
trader.sim.make (trader.sim.spec).
"""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
from pettingzoo import ParallelEnv

from trader.sim import spec
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
        self._obs_space, self._act_space = spec.single_agent_spaces(self._vec.env_config,
                                                                    self._vec.market.features.shape[1])
        self._per_agent = [f.name for f in spec.OUTPUTS if f.per_agent and f.name not in ("obs", "reward")]

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
        if isinstance(self._act_space, gym.spaces.Box):
            batch = np.stack([np.asarray(actions[a], dtype=np.float32).reshape(self._act_space.shape)
                              for a in self.possible_agents])[None]
            if batch.shape[-1] == 1:
                batch = batch[..., 0]
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
        return {a: {key: info[key][0, k].item() for key in self._per_agent}
                | {"t": int(info["t"][0]), "market_has_trades": bool(info["market_has_trades"][0])}
                for k, a in enumerate(self.possible_agents)}

    def close(self):
        self._vec.close()
