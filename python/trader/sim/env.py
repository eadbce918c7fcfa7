"""Python face of the C++ trading env pool: gymnasium VectorEnv and Env, PettingZoo ParallelEnv.

    env = trader.sim.make(num_envs=1024, num_threads=2)        # gymnasium.vector.VectorEnv
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(actions)

    env = trader.sim.make(num_envs=1024, batch_size=256)      # envpool-style async
    env.async_reset()
    obs, reward, terminated, truncated, info = env.recv()     # info["env_id"]: whose rows these are
    env.send(actions, info["env_id"])

Results are numpy views of the pool's own buffers (no copy): they stay valid until the pool has
written as many rows again as it holds (one more step in sync mode); copy what you keep longer.
Autoreset is gymnasium's NEXT_STEP mode: the step after a terminated or truncated one resets the env
and ignores its action. Units: trade_size and max_position in base currency (e.g. BTC), fees in bps,
cash and equity in quote currency; inside the core everything is ticks and lots.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from trader import _core
from trader.sim.features import book_features

_ACCOUNT = ("position / max position", "unrealized PnL, % of max notional", "fraction of the episode left")
_FIELDS = ("obs", "reward", "terminated", "truncated", "env_id", "t", "episode_length", "episode_return",
           "position", "equity", "fees", "filled", "unfilled")


@dataclass
class Market:
    """Book rows, their features and the instrument grid the env trades on."""

    book: np.ndarray  # int64 [T, L, 4] ticks / lots
    features: np.ndarray  # float32 [T, D]
    ts: np.ndarray  # int64 [T] ns
    tick_size: float
    lot_size: float
    symbol: str = ""


def load_market(data=None, *, depth: int = 10, interval_ms: float = 100.0, clock: str = "exchange",
                features=None) -> Market:
    """Sample a dataset (default: the bundled sample) on a time grid (interval_ms > 0) or after every
    book message (interval_ms = 0) and build the observation features (default: book_features).
    Rows before both sides of the book exist are dropped. `features`: None, an array [T, D] aligned
    with the sampled rows, or a path to a .npy file of one."""
    from trader.data.dataset import Dataset, load_dataset

    ds = data if isinstance(data, Dataset) else load_dataset(data)
    ts, book, flow = ds.sample_top(depth=depth, interval_ns=int(interval_ms * 1e6), clock=clock)
    valid = (book[:, 0, 0] > 0) & (book[:, 0, 2] > 0)
    first = int(np.argmax(valid)) if valid.any() else len(valid)
    ts, book, flow = ts[first:], np.ascontiguousarray(book[first:]), flow[first:]
    tick, lot = float(Decimal(ds.meta["tick_size"])), float(Decimal(ds.meta["lot_size"]))
    if features is None:
        feats = book_features(book, lot, flow)
    else:
        feats = np.load(features) if isinstance(features, (str, bytes)) or hasattr(features, "__fspath__") else features
        feats = np.asarray(feats)
        if feats.ndim != 2 or len(feats) not in (len(book), len(book) + first):
            raise ValueError(f"features: expected shape [{len(book)}, D] (one row per sampled book row), got {feats.shape}")
        feats = np.ascontiguousarray(feats[-len(book):], dtype=np.float32)
    return Market(book, feats, ts, tick, lot, ds.symbol)


def _pool_config(market: Market, trade_size: float, max_position: float, config: dict) -> dict:
    lots = round(trade_size / market.lot_size)
    max_lots = round(max_position / market.lot_size)
    if lots < 1:
        raise ValueError(f"trade_size: {trade_size} is less than one lot ({market.lot_size})")
    if max_lots < lots:
        raise ValueError(f"max_position: {max_position} is less than trade_size {trade_size}")
    return dict(config, trade_lots=lots, max_position_lots=max_lots, tick_size=market.tick_size,
                lot_size=market.lot_size)


def _spaces(pool, K: int):
    obs = gym.spaces.Box(-np.inf, np.inf, (pool.obs_dim,) if K == 1 else (K, pool.obs_dim), np.float32)
    if pool.continuous:
        act = gym.spaces.Box(-1.0, 1.0, (1,) if K == 1 else (K,), np.float32)
    else:
        act = gym.spaces.Discrete(3) if K == 1 else gym.spaces.MultiDiscrete([3] * K)
    return obs, act


class TradingVectorEnv(VectorEnv):
    """N envs in one C++ pool. `batch_size < num_envs` turns on the async send/recv API."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, market: Market, *, num_envs: int = 1, batch_size: int | None = None, num_threads: int = 1,
                 seed: int = 0, trade_size: float = 0.01, max_position: float = 0.1, **config):
        self.market = market
        self.num_envs = int(num_envs)
        batch = self.num_envs if batch_size is None else int(batch_size)
        self._pool = _core.EnvPool(market.book, market.features, self.num_envs, batch, int(num_threads), int(seed),
                                   **_pool_config(market, trade_size, max_position, config))
        self.num_agents = self._pool.num_agents
        self.batch_size = batch
        self.single_observation_space, self.single_action_space = _spaces(self._pool, self.num_agents)
        self.observation_space = batch_space(self.single_observation_space, batch)
        self.action_space = batch_space(self.single_action_space, batch)
        self._continuous = self._pool.continuous

    # -- gymnasium API ----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._pool.seed(int(seed))
        self._pool.send_reset()
        obs, _, _, _, info = self.recv()
        return obs, info

    def step(self, actions, env_id=None):
        self.send(actions, env_id)
        return self.recv()

    # -- envpool-style async API --------------------------------------------------------------------
    def async_reset(self) -> None:
        """Reset every env; results come from recv() in batches of batch_size."""
        self._pool.send_reset()

    def send(self, actions, env_id=None) -> None:
        actions = np.asarray(actions)
        if self._continuous and self.num_agents == 1 and actions.ndim == 2 and actions.shape[1] == 1:
            actions = actions[:, 0]
        self._pool.send(actions, None if env_id is None else np.asarray(env_id))

    def recv(self):
        r = dict(zip(_FIELDS, self._pool.recv()))
        K = self.num_agents
        squeeze = (lambda a: a[:, 0]) if K == 1 else (lambda a: a)
        done = r["terminated"] | r["truncated"]
        info = {
            "env_id": r["env_id"],
            "t": r["t"],
            "position": squeeze(r["position"]),
            "equity": squeeze(r["equity"]),
            "fees": squeeze(r["fees"]),
            "filled": squeeze(r["filled"]),
            "unfilled": squeeze(r["unfilled"]),
            "episode": {"r": squeeze(r["episode_return"]), "l": r["episode_length"]},
            "_episode": done,
        }
        return squeeze(r["obs"]), squeeze(r["reward"]), r["terminated"], r["truncated"], info

    def close_extras(self, **kwargs) -> None:
        self._pool = None

    @property
    def account_features(self) -> tuple[str, ...]:
        return _ACCOUNT


class TradingEnv(gym.Env):
    """One env (the single-env view of the pool), for gymnasium's env checker and simple loops.
    No autoreset: call reset() after a terminated or truncated step."""

    metadata = {"render_modes": []}

    def __init__(self, market: Market | None = None, *, seed: int = 0, **config):
        self._vec = TradingVectorEnv(market if market is not None else load_market(), num_envs=1, seed=seed, **config)
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space
        self._needs_reset = True

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, info = self._vec.reset(seed=seed)
        self._needs_reset = False
        return obs[0].copy(), _first(info)

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError("step() called before reset() or after the episode ended")
        a = np.asarray(action)
        obs, reward, term, trunc, info = self._vec.step(a.reshape((1,) + a.shape))
        self._needs_reset = bool(term[0] or trunc[0])
        return obs[0].copy(), float(reward[0]), bool(term[0]), bool(trunc[0]), _first(info)


def _first(info: dict) -> dict:
    out = {}
    for k, v in info.items():
        if isinstance(v, dict):
            out[k] = _first(v)
        else:
            x = v[0]
            out[k] = x.copy() if isinstance(x, np.ndarray) else x.item()
    return out


def make(data=None, *, num_envs: int = 1, batch_size: int | None = None, num_threads: int = 1, seed: int = 0,
         depth: int = 10, interval_ms: float = 100.0, features=None, **config) -> TradingVectorEnv:
    """A TradingVectorEnv over a dataset folder (default: the bundled sample).

    Options (unknown ones raise ValueError): num_agents, continuous, trade_size and max_position
    (base units), allow_short, latency_steps, fee_bps, initial_cash, reward_scale, ruin_fraction,
    horizon (steps), start_min / start_max (rows)."""
    config.setdefault("horizon", 500)
    market = data if isinstance(data, Market) else load_market(data, depth=depth, interval_ms=interval_ms,
                                                                  features=features)
    return TradingVectorEnv(market, num_envs=num_envs, batch_size=batch_size, num_threads=num_threads, seed=seed,
                            **config)
