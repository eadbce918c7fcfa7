"""Register the trading env in envpool's registry as "Trader-v0".

    from trader.sim.envpool_compat import register_envpool
    register_envpool()
    env = envpool.make_gymnasium("Trader-v0", num_envs=1024, batch_size=256, num_threads=2, seed=0,
                                 horizon=500, taker_fee_bps=1.0)
    env.async_reset()
    obs, reward, terminated, truncated, info = env.recv()
    env.send(actions, info["env_id"])

`envpool.make_gymnasium` resolves the classes below by name from this module: it merges the
registered keyword arguments with the caller's, builds the config with `TraderEnvSpec.gen_config`,
wraps it in `TraderEnvSpec(config)` and constructs `TraderGymnasiumEnvPool(spec)`, which is a
`TradingVectorEnv` (our C++ pool, our send/recv) plus the few envpool extras: `reset(env_id)`,
`recv(reset=...)`, `config`, `all_env_ids`, `is_async`, `info["elapsed_step"]`.

envpool's standard options, mapped to the pool:
  num_envs               number of envs
  batch_size             rows per recv; 0 (envpool's default) = num_envs (sync)
  num_threads            threads stepping envs; 0 (envpool's default) = min(batch_size, CPU count).
                         Ours count the thread that calls recv, which steps envs while it waits.
  seed                   env i is seeded with seed + i (envpool's default seed, 42, applies)
  max_episode_steps      same as `horizon` (steps before truncation; default: the spec's horizon)
  reward_threshold       kept in the config, not used
  base_path, gym_reset_return_info (True only): accepted
Refused with ValueError: per-env seed lists (`seed=[...]`, `env_seed`), max_num_players other than 1
(use num_agents: K agents per env), thread_affinity_offset other than -1 (no thread pinning),
render_* options (no rendering), from_pixels, and any unknown option.
Env options: the market's (data, depth, interval_ms, features; `data` may be a loaded `Market`) and
every option of trader.sim.spec.options() except tick_size and lot_size (set from the market).
"""

from __future__ import annotations

import os
from collections import namedtuple
from typing import Any

import numpy as np

from trader.sim import spec
from trader.sim.env import Market, TradingVectorEnv, load_market

TASK_ID = "Trader-v0"

_MARKET_OPTIONS = ("data", "depth", "interval_ms", "features")
_ENV_OPTIONS = tuple(o.name for o in spec.options() if o.name not in ("tick_size", "lot_size"))
_ENVPOOL_OPTIONS = ("num_envs", "batch_size", "num_threads", "seed", "env_seed", "max_num_players",
                    "thread_affinity_offset", "base_path", "gym_reset_return_info", "max_episode_steps",
                    "reward_threshold")
_DEFAULT_HORIZON = spec.defaults()["horizon"]

TraderConfig = namedtuple("TraderConfig", ("num_envs", "batch_size", "num_threads", "seed", "max_num_players",
                                           "thread_affinity_offset", "base_path", "gym_reset_return_info",
                                           "max_episode_steps", "reward_threshold", "options"))


def _gen_config(**kwargs: Any) -> TraderConfig:
    unknown = [k for k in kwargs if k not in _ENVPOOL_OPTIONS + _MARKET_OPTIONS + _ENV_OPTIONS]
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown option for {TASK_ID} (envpool options: "
                         f"{', '.join(_ENVPOOL_OPTIONS)}; env options: {', '.join(_MARKET_OPTIONS + _ENV_OPTIONS)})")
    num_envs = int(kwargs.get("num_envs", 1))
    if num_envs < 1:
        raise ValueError(f"num_envs: expected >= 1, got {num_envs}")
    batch_size = int(kwargs.get("batch_size", 0)) or num_envs
    if not 1 <= batch_size <= num_envs:
        raise ValueError(f"batch_size: expected 0 (= num_envs) or 1 to num_envs ({num_envs}), got {batch_size}")
    num_threads = int(kwargs.get("num_threads", 0))
    if num_threads < 0:
        raise ValueError(f"num_threads: expected >= 0 (0: automatic), got {num_threads}")
    num_threads = num_threads or min(batch_size, os.cpu_count() or 1)
    seed = kwargs.get("seed", 42)
    if isinstance(seed, (list, tuple, np.ndarray)) or list(kwargs.get("env_seed", [])):
        raise ValueError("seed / env_seed: per-env seed lists are not supported; pass one int seed "
                         "(env i uses seed + i)")
    if int(seed) < 0:
        raise ValueError(f"seed: expected >= 0, got {seed}")
    if int(kwargs.get("max_num_players", 1)) != 1:
        raise ValueError("max_num_players: only 1 is supported; for K agents per env pass num_agents=K "
                         "(observations [batch, K, dim], actions [batch, K])")
    if int(kwargs.get("thread_affinity_offset", -1)) != -1:
        raise ValueError("thread_affinity_offset: thread pinning is not supported (leave it at -1)")
    if not kwargs.get("gym_reset_return_info", True):
        raise ValueError("gym_reset_return_info: reset always returns (obs, info)")
    options = {k: kwargs[k] for k in _MARKET_OPTIONS + _ENV_OPTIONS if k in kwargs}
    steps = kwargs.get("max_episode_steps")
    if steps is not None and "horizon" in options and int(options["horizon"]) != int(steps):
        raise ValueError(f"max_episode_steps: {steps} differs from horizon {options['horizon']} (they are the same "
                         "setting: pass one)")
    horizon = int(options.get("horizon", steps if steps is not None else _DEFAULT_HORIZON))
    options["horizon"] = horizon
    return TraderConfig(num_envs, batch_size, num_threads, int(seed), 1, -1, kwargs.get("base_path"), True,
                        horizon, kwargs.get("reward_threshold"), options)


class TraderEnvSpec:
    """envpool EnvSpec of Trader-v0: holds the config; `gen_config(**kwargs)` validates and normalizes it."""

    gen_config = staticmethod(_gen_config)
    _config_keys = list(TraderConfig._fields)

    def __init__(self, config: TraderConfig):
        self.config = config

    @property
    def _config_values(self) -> tuple:
        return tuple(self.config)

    @property
    def reward_threshold(self) -> float | None:
        return self.config.reward_threshold

    def __repr__(self) -> str:
        return f"TraderEnvSpec({self.config})"


def _no_render(name: str) -> property:
    # envpool.make sets render_mode / render_env_id / render_width / ... as `_<name>` on the env it built.
    def fset(self, value):
        if value is not None:
            raise ValueError(f"{name}: {TASK_ID} does not render")

    return property(lambda self: None, fset)


class TraderGymnasiumEnvPool(TradingVectorEnv):
    """A TradingVectorEnv built from a TraderEnvSpec, with envpool's extras."""

    _render_mode = _no_render("render_mode")
    _render_env_id = _no_render("render_env_id")
    _render_width = _no_render("render_width")
    _render_height = _no_render("render_height")
    _render_camera_id = _no_render("render_camera_id")

    def __init__(self, spec: TraderEnvSpec):
        c = spec.config
        options = dict(c.options)
        data = options.pop("data", None)
        market_kw = {k: options.pop(k) for k in ("depth", "interval_ms", "features") if k in options}
        market = data if isinstance(data, Market) else load_market(data, **market_kw)
        super().__init__(market, num_envs=c.num_envs, batch_size=c.batch_size, num_threads=c.num_threads,
                         seed=c.seed, **options)
        self.spec = spec
        self._all_env_ids = np.arange(self.num_envs, dtype=np.int32)

    @property
    def config(self) -> dict[str, Any]:
        return self.spec.config._asdict()

    @property
    def all_env_ids(self) -> np.ndarray:
        return self._all_env_ids

    @property
    def is_async(self) -> bool:
        return self.batch_size != self.num_envs

    def __len__(self) -> int:
        return self.num_envs

    def reset(self, env_id=None, *, seed: int | None = None, options: dict | None = None):
        """Reset the envs in env_id (default all; or options={"reset_mask": bool[num_envs]}) and recv
        their first observations. `seed` reseeds every env (env i: seed + i) from its next reset."""
        if options:
            if set(options) - {"reset_mask"}:
                raise ValueError(f"options: only 'reset_mask' is supported, got {sorted(options)}")
            if env_id is not None:
                raise ValueError("Pass either env_id or options['reset_mask'], not both.")
            mask = np.asarray(options["reset_mask"], dtype=bool)
            if mask.shape != (self.num_envs,):
                raise ValueError(f"reset_mask must have shape ({self.num_envs},), got {mask.shape}")
            env_id = np.flatnonzero(mask).astype(np.int32)
        if seed is not None:
            self._pool.seed(int(seed))
        self._pool.send_reset(None if env_id is None else np.asarray(env_id).reshape(-1))
        return self.recv(reset=True)

    def recv(self, reset: bool = False, return_info: bool = True):
        obs, reward, terminated, truncated, info = super().recv()
        info["elapsed_step"] = info["episode"]["l"]
        if reset:
            return obs, info
        return obs, reward, terminated, truncated, info


class TraderDMEnvPool:
    """envpool's registry requires a dm_env class; Trader-v0 offers the gymnasium API only."""

    def __init__(self, spec: TraderEnvSpec):
        raise TypeError(f"{TASK_ID} has no dm_env interface: use envpool.make_gymnasium")


def register_envpool() -> bool:
    """Register Trader-v0 in envpool's registry (idempotent). False when envpool cannot be imported."""
    try:
        from envpool.registration import registry
    except (ImportError, OSError):
        return False
    entry = registry.specs.get(TASK_ID)
    if entry is None:
        registry.register(task_id=TASK_ID, import_path=__name__, spec_cls="TraderEnvSpec",
                          dm_cls="TraderDMEnvPool", gymnasium_cls="TraderGymnasiumEnvPool")
    elif entry[0] != __name__:
        raise RuntimeError(f"{TASK_ID} is already registered in envpool by {entry[0]}")
    return True
