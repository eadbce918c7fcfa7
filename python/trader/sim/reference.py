"""Pure-Python reference of the C++ trading env (cpp/env/trading_env.{h,cpp}).

This module exists for two reasons:

* it is the readable specification of the env: one agent loop, written out step by step in plain
  Python, with the same order of operations, the same float64 accounting and the same random draws
  (splitmix64 + Lemire multiply-shift) as the C++ ``TradingEnv``, so that the two produce the same
  observations, rewards and account states step for step (tests/test_reference_env.py checks this);
* it is the Python peer that ``trader-sim bench`` compares the C++ ``EnvPool`` against.

It is about 100x slower than the C++ env: use ``trader._core.EnvPool`` for anything but reading,
testing and benchmarking.

Timeline of one step (cursor c = the book row the agents observed):
  1. each agent's action becomes an order (signed lots) due at row c + latency_steps;
  2. orders due at row c execute against row c's levels, agents in a seeded random priority
     (walking the book, taker fee in bps); depth the book does not show is not filled;
  3. the cursor moves to c + 1; equity is marked at row c + 1's mid; reward = change of equity net
     of fees, times reward_scale; the observation is row c + 1 followed by each agent's account
     features (position / max, unrealized PnL in % of max notional, time left).

Differences from a C++ env in a pool: this env does not autoreset. The C++ env, after a step that
ends an episode, ignores the next action and resets; here call ``reset()`` yourself (``reset()``
without a seed draws the next episode start from the env's own random stream, exactly as the C++
autoreset does).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["ReferenceTradingEnv", "DEFAULT_CONFIG"]

# Same keys and defaults as the C++ EnvConfig (cpp/env/trading_env.h).
DEFAULT_CONFIG: dict[str, Any] = {
    "horizon": 1000,            # steps per episode (then truncated)
    "num_agents": 1,            # K agents sharing the env's book
    "continuous": False,        # False: Discrete(3) hold/buy/sell; True: target position in [-1, 1]
    "trade_lots": 1,            # discrete mode: size of one order (lots)
    "max_position_lots": 10,    # |position| limit (lots)
    "allow_short": True,        # False: position >= 0
    "latency_steps": 0,         # an order sent at row c executes at row c + latency
    "fee_bps": 1.0,             # taker fee, basis points of notional
    "initial_cash": 100000.0,   # quote currency
    "reward_scale": 1.0,        # reward = delta equity (quote) * reward_scale
    "ruin_fraction": 0.5,       # terminated when an agent's equity < ruin_fraction * initial_cash
    "tick_size": 0.01,          # quote per tick
    "lot_size": 1e-5,           # base per lot
    "start_min": 0,             # episode starts are drawn uniformly in [start_min, start_max]
    "start_max": -1,            # -1: the last row that leaves a full horizon
}
_INT_KEYS = ("horizon", "num_agents", "trade_lots", "max_position_lots", "latency_steps", "start_min", "start_max")
_BOOL_KEYS = ("continuous", "allow_short")
_FLOAT_KEYS = ("fee_bps", "initial_cash", "reward_scale", "ruin_fraction", "tick_size", "lot_size")

ACCOUNT_FEATURES = 3

_MASK64 = (1 << 64) - 1


def splitmix64(state: int) -> tuple[int, int]:
    """One splitmix64 draw (Steele, Lea, Flood 2014): returns (new state, 64-bit output)."""
    state = (state + 0x9E3779B97F4A7C15) & _MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return state, z ^ (z >> 31)


def below(r: int, n: int) -> int:
    """Uniform integer in [0, n) from a 64-bit draw by multiply-shift (Lemire 2019)."""
    return (r * n) >> 64


def llround(x: float) -> int:
    """C's llround: nearest integer, halfway cases away from zero (exact for any double)."""
    f = math.floor(x)
    frac = x - f  # exact for doubles
    if frac > 0.5 or (frac == 0.5 and x > 0):
        return int(f) + 1
    return int(f)


class _Agent:
    def __init__(self) -> None:
        self.position = 0         # lots
        self.cash = 0.0           # quote
        self.cost = 0.0           # quote paid for the open position (average-cost accounting)
        self.fees = 0.0           # fees paid this episode, quote
        self.equity = 0.0         # quote, marked at mid
        self.episode_return = 0.0
        self.filled = 0           # signed lots filled this step
        self.unfilled = 0         # lots of orders cancelled this step
        self.pending: list[tuple[int, int]] = []  # FIFO of (due row, signed lots), due rows non-decreasing

    def pending_lots(self) -> int:
        return sum(lots for _, lots in self.pending)


def _parse_config(config: dict[str, Any]) -> dict[str, Any]:
    for key in config:
        if key not in DEFAULT_CONFIG:
            raise ValueError(f"unknown option '{key}'")
    c = dict(DEFAULT_CONFIG)
    for key, value in config.items():
        if key in _INT_KEYS:
            c[key] = int(value)
        elif key in _BOOL_KEYS:
            c[key] = bool(value)
        else:
            c[key] = float(value)

    def need(ok: bool, field: str, what: str) -> None:
        if not ok:
            raise ValueError(f"{field}: expected {what}")

    need(c["horizon"] >= 1, "horizon", ">= 1 steps")
    need(1 <= c["num_agents"] <= 1024, "num_agents", "1 to 1024")
    need(c["trade_lots"] >= 1, "trade_lots", ">= 1 lot")
    need(c["max_position_lots"] >= 1, "max_position_lots", ">= 1 lot")
    need(c["latency_steps"] >= 0, "latency_steps", ">= 0 steps")
    need(c["fee_bps"] >= 0 and math.isfinite(c["fee_bps"]), "fee_bps", "a finite value >= 0")
    need(c["initial_cash"] > 0 and math.isfinite(c["initial_cash"]), "initial_cash", "> 0")
    need(math.isfinite(c["reward_scale"]), "reward_scale", "a finite number")
    need(0 <= c["ruin_fraction"] < 1, "ruin_fraction", "in [0, 1)")
    need(c["tick_size"] > 0, "tick_size", "> 0")
    need(c["lot_size"] > 0, "lot_size", "> 0")
    need(c["start_min"] >= 0, "start_min", ">= 0")
    return c


class ReferenceTradingEnv(gym.Env):
    """One trading env with K agents, step-for-step equal to one env of ``trader._core.EnvPool``.

    ``ReferenceTradingEnv(book, features, seed=s, env_id=i, **config)`` matches env ``i`` of
    ``EnvPool(book, features, num_envs, batch_size, num_threads, s, **config)``.
    """

    metadata = {"render_modes": []}

    def __init__(self, book: np.ndarray, features: np.ndarray, seed: int = 0, env_id: int = 0, **config: Any):
        super().__init__()
        self.cfg = _parse_config(config)
        self.env_id = int(env_id)
        self._load_data(book, features)
        cfg = self.cfg
        K = cfg["num_agents"]
        self.num_agents = K
        self.notional_per_tick_lot = cfg["tick_size"] * cfg["lot_size"]

        obs_shape = (self.dim + ACCOUNT_FEATURES,) if K == 1 else (K, self.dim + ACCOUNT_FEATURES)
        self.observation_space = spaces.Box(-np.inf, np.inf, obs_shape, np.float32)
        if cfg["continuous"]:
            self.action_space = spaces.Box(-1.0, 1.0, (K,), np.float32)
        else:
            self.action_space = spaces.Discrete(3) if K == 1 else spaces.MultiDiscrete([3] * K)

        self.agents = [_Agent() for _ in range(K)]
        self.cursor = 0
        self.steps = 0
        self.rng = 0
        self.needs_reset = True
        self.reseed(seed + self.env_id)

    # ------------------------------------------------------------------ data

    def _load_data(self, book: np.ndarray, features: np.ndarray) -> None:
        book = np.asarray(book)
        features = np.asarray(features)
        if book.ndim != 3 or book.shape[2] != 4 or book.dtype != np.int64:
            raise ValueError("book: expected an int64 array [rows, levels, 4]")
        if features.ndim != 2 or features.shape[0] != book.shape[0] or features.dtype != np.float32:
            raise ValueError(f"features: expected a float32 array [rows, dim] with as many rows as book ({book.shape[0]})")
        cfg = self.cfg
        rows = book.shape[0]
        if rows < cfg["horizon"] + cfg["latency_steps"] + 2:
            raise ValueError(f"book: {rows} rows are fewer than a horizon ({cfg['horizon']}) plus latency plus 2")
        last_start = self._last_start(rows)
        if cfg["start_max"] >= 0 and cfg["start_max"] + cfg["horizon"] + cfg["latency_steps"] >= rows:
            raise ValueError(f"start_max: episodes starting at row {cfg['start_max']} run past the data ({rows} rows)")
        if cfg["start_min"] > last_start:
            raise ValueError(f"start_min: {cfg['start_min']} is after the last start row {last_start}")
        bid = book[:, 0, 0]
        ask = book[:, 0, 2]
        bad = np.flatnonzero((bid <= 0) | (ask <= 0) | (bid >= ask))
        if bad.size:
            r = int(bad[0])
            raise ValueError(f"book: row {r} needs a best bid and a best ask with bid < ask "
                             f"(got bid {int(bid[r])}, ask {int(ask[r])} ticks)")
        nonfinite = np.argwhere(~np.isfinite(features))
        if nonfinite.size:
            raise ValueError(f"features: non-finite value at row {nonfinite[0][0]}, column {nonfinite[0][1]}")
        self.book = book
        self.features = features
        self.rows = rows
        self.levels = book.shape[1]
        self.dim = features.shape[1]
        # mid of each row in ticks: 0.5 * (best bid + best ask), as a double
        self.mid = [0.5 * float(b + a) for b, a in zip(bid.tolist(), ask.tolist())]

    def _last_start(self, rows: int) -> int:
        cfg = self.cfg
        return cfg["start_max"] if cfg["start_max"] >= 0 else rows - 1 - cfg["horizon"] - cfg["latency_steps"]

    # ------------------------------------------------------------------ random stream

    def reseed(self, seed: int) -> None:
        """The env's random state becomes `seed` (like the C++ TradingEnv::reseed)."""
        self.rng = int(seed) & _MASK64
        self.needs_reset = True

    def _next_random(self) -> int:
        self.rng, r = splitmix64(self.rng)
        return r

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.reseed(seed + self.env_id)
        cfg = self.cfg
        # episode start: uniform in [start_min, last start]
        span = self._last_start(self.rows) - cfg["start_min"] + 1
        self.cursor = cfg["start_min"] + below(self._next_random(), span)
        self.steps = 0
        self.needs_reset = False
        for a in self.agents:
            a.position = 0
            a.cash = cfg["initial_cash"]
            a.cost = 0.0
            a.fees = 0.0
            a.equity = cfg["initial_cash"]
            a.episode_return = 0.0
            a.filled = 0
            a.unfilled = 0
            a.pending = []
        return self._observation(), self._info()

    def step(self, action):
        if self.needs_reset:
            raise RuntimeError("step: the episode has ended (or never started); call reset() first")
        cfg = self.cfg
        K = self.num_agents
        actions = self._parse_action(action)

        # 1. actions -> orders due at cursor + latency
        for k in range(K):
            a = self.agents[k]
            a.filled = 0
            a.unfilled = 0
            lots = self._order_from_action(a, actions[k])
            if lots != 0:
                a.pending.append((self.cursor + cfg["latency_steps"], lots))

        # 2. orders due now execute against this row, agents in a seeded random priority
        consumed = {"bid": [0] * self.levels, "ask": [0] * self.levels}  # lots taken this row by earlier agents
        priority = list(range(K))
        if K > 1:
            for k in range(K - 1, 0, -1):  # Fisher-Yates, K - 1 draws every step
                j = below(self._next_random(), k + 1)
                priority[k], priority[j] = priority[j], priority[k]
        row_levels = self.book[self.cursor].tolist()  # [levels][bid px, bid qty, ask px, ask qty]
        for k in priority:
            a = self.agents[k]
            while a.pending and a.pending[0][0] <= self.cursor:
                _, lots = a.pending.pop(0)
                self._execute(a, lots, row_levels, consumed)

        # 3. advance, mark to market, reward
        self.cursor += 1
        self.steps += 1
        mark = self.mid[self.cursor] * self.notional_per_tick_lot  # quote per lot at mid
        rewards = []
        ruined = False
        for a in self.agents:
            equity = a.cash + float(a.position) * mark
            r = (equity - a.equity) * cfg["reward_scale"]
            a.equity = equity
            a.episode_return += r
            rewards.append(r)
            ruined = ruined or equity < cfg["ruin_fraction"] * cfg["initial_cash"]
        truncated = (not ruined) and self.steps >= cfg["horizon"]
        if ruined or truncated:
            self.needs_reset = True
            for a in self.agents:  # orders still in flight are cancelled with the episode
                a.unfilled += sum(abs(o[1]) for o in a.pending)
                a.pending = []

        reward = np.asarray(rewards, dtype=np.float32)
        return (self._observation(), reward[0] if K == 1 else reward, bool(ruined), bool(truncated), self._info())

    # ------------------------------------------------------------------ mechanics

    def _parse_action(self, action) -> list:
        K = self.num_agents
        a = np.asarray(action)
        if a.size != K:
            raise ValueError(f"action: expected {K} value(s), got shape {a.shape}")
        if self.cfg["continuous"]:
            if a.dtype.kind not in "fiu":
                raise ValueError("action: expected a float array (continuous mode: target position in [-1, 1])")
            values = [float(v) for v in a.astype(np.float32).reshape(-1)]  # the C++ takes float32
            for i, v in enumerate(values):
                if not (-1.0 <= v <= 1.0):
                    raise ValueError(f"action: value {v} at index {i} is not in [-1, 1]")
        else:
            if a.dtype.kind not in "iu":
                raise ValueError("action: expected an integer array (discrete mode: 0 hold, 1 buy, 2 sell)")
            values = [int(v) for v in a.reshape(-1)]
            for i, v in enumerate(values):
                if v not in (0, 1, 2):
                    raise ValueError(f"action: value {v} at index {i} is not 0 (hold), 1 (buy) or 2 (sell)")
        return values

    def _order_from_action(self, a: _Agent, action) -> int:
        """Signed lots to order so that the expected position moves as the action asks, within limits."""
        cfg = self.cfg
        hi = cfg["max_position_lots"]
        lo = -hi if cfg["allow_short"] else 0
        expected = a.position + a.pending_lots()  # as if every pending order fills
        if cfg["continuous"]:
            target = llround(action * float(hi))
        elif action == 1:
            target = expected + cfg["trade_lots"]
        elif action == 2:
            target = expected - cfg["trade_lots"]
        else:
            return 0
        target = min(max(target, lo), hi)
        return target - expected

    def _execute(self, a: _Agent, lots: int, levels: list, consumed: dict) -> None:
        """A market order of `lots` (signed) walks the levels of the row, after earlier agents' fills."""
        if lots == 0:
            return
        buy = lots > 0
        remaining = lots if buy else -lots
        taken = consumed["ask" if buy else "bid"]
        px_col = 2 if buy else 0
        ticks_x_lots = 0.0  # sum of price * qty over the fills
        filled = 0
        for l in range(self.levels):
            if remaining <= 0:
                break
            px = levels[l][px_col]
            if px <= 0:
                break  # the book shows no more levels
            avail = levels[l][px_col + 1] - taken[l]
            if avail <= 0:
                continue
            take = min(avail, remaining)
            taken[l] += take
            remaining -= take
            filled += take
            ticks_x_lots += float(px) * float(take)
        a.unfilled += remaining  # depth the book does not show is cancelled
        if filled == 0:
            return
        notional = ticks_x_lots * self.notional_per_tick_lot
        fee = notional * self.cfg["fee_bps"] * 1e-4
        signed_fill = filled if buy else -filled
        a.fees += fee
        a.cash -= (notional if buy else -notional) + fee
        a.filled += signed_fill
        # Average-cost basis of the open position: add on a same-side fill, reduce proportionally,
        # restart at this fill's price on a flip (or zero when flat).
        before = a.position
        after = before + signed_fill
        avg_px_value = notional / float(filled)  # quote per lot of this fill
        if before == 0 or (before > 0) == buy:
            a.cost += notional if buy else -notional
        elif (after > 0) == (before > 0) and after != 0:
            a.cost *= float(after) / float(before)
        else:
            a.cost = float(after) * avg_px_value
        a.position = after

    # ------------------------------------------------------------------ output

    def _observation(self) -> np.ndarray:
        cfg = self.cfg
        K = self.num_agents
        D = self.dim
        row = self.features[self.cursor]
        mark = self.mid[self.cursor] * self.notional_per_tick_lot
        max_notional = float(cfg["max_position_lots"]) * mark
        # time left is computed in float32 in the C++
        time_left = np.float32(cfg["horizon"] - self.steps) / np.float32(cfg["horizon"])
        obs = np.empty((K, D + ACCOUNT_FEATURES), dtype=np.float32)
        for k in range(K):
            a = self.agents[k]
            obs[k, :D] = row
            obs[k, D] = np.float32(float(a.position) / float(cfg["max_position_lots"]))
            upnl = float(a.position) * mark - a.cost
            obs[k, D + 1] = np.float32(upnl / max_notional * 100.0)
            obs[k, D + 2] = time_left
        return obs[0] if K == 1 else obs

    def _info(self) -> dict[str, Any]:
        def per_agent(values, dtype):
            arr = np.asarray(values, dtype=dtype)
            return arr[0] if self.num_agents == 1 else arr

        ag = self.agents
        return {
            "position": per_agent([a.position for a in ag], np.int64),
            "equity": per_agent([a.equity for a in ag], np.float64),
            "fees": per_agent([a.fees for a in ag], np.float64),
            "filled": per_agent([a.filled for a in ag], np.int64),
            "unfilled": per_agent([a.unfilled for a in ag], np.int64),
            "episode_return": per_agent([a.episode_return for a in ag], np.float32),
            "episode_length": self.steps,
            "t": self.cursor,
        }
