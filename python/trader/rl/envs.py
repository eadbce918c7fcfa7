"""The envs the learners train on, all as NEXT_STEP-autoreset vector envs with info["episode"] /
info["_episode"] episode statistics:

- `trader`: the C++ order-book env pool (trader.sim.make); K agents give obs [B, K, D], reward [B, K];
- a gymnasium id: gymnasium.make_vec(..., "sync") with RecordEpisodeStatistics;
- `mpe2:NAME` (e.g. mpe2:simple_spread_v3): N copies of an MPE PettingZoo ParallelEnv behind the same
  multi-agent layout as the trader env, for MADDPG's reference task (trader.rl.mpe).

`EnvRunner` puts one of them behind send()/recv(): the C++ pool steps in its worker threads between the
two calls while the learner works. It records every action sent, so that a resumed run can bring the
envs back to where they were by replaying them from the seeded reset (neither the pool nor gymnasium's
envs can snapshot their state; both are deterministic given seed and actions).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from trader.rl.args import TraderEnvArgs
from trader.rl.episodes import EpisodeStats
from trader.rl.mpe import MPEVectorEnv


def make_env(args, num_envs: int, seed: int):
    """A vector env of `num_envs` envs for args.env_id; env i is seeded with seed + i at reset."""
    if args.env_id == "trader":
        from trader.sim import make

        held = training_markets(args)  # their tails held out for backtests
        also = training_markets(args, also=True) if args.train_also else []  # in full
        markets = held + also
        if args.encoder:  # the encoder's embeddings replace the book features of every dataset (issue 14)
            from trader.rl.policy import encoder_market

            markets = [encoder_market(args, m) for m in markets]
        start_max = [training_start_max(len(m.book), args.train_fraction if i < len(held) else 1.0, args.horizon,
                                        m.name) for i, m in enumerate(markets)]
        options = {f.name: getattr(args, f.name) for f in dataclasses.fields(TraderEnvArgs)}
        return make(markets[0] if len(markets) == 1 else markets, num_envs=num_envs, num_threads=args.num_threads,
                    seed=seed, start_max=start_max[0] if len(markets) == 1 else start_max, **options)
    if args.env_id.startswith("mpe2:"):
        return MPEVectorEnv(args.env_id.split(":", 1)[1], num_envs)
    envs = gym.make_vec(args.env_id, num_envs=num_envs, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AutoresetMode.NEXT_STEP})
    return gym.wrappers.vector.RecordEpisodeStatistics(envs)


def training_markets(args, also: bool = False) -> list:
    """The Markets of args.data (also: of args.train_also): one Market, a list of them, or dataset folders (a
    folder, a collection, a folder of datasets, or a list of those: trader.sim.dataset_folders); None: the bundled
    sample. With args.mirror, each folder's mirror image follows the folders' Markets."""
    from trader.sim import Market, dataset_folders, load_market

    data, mirror = args.train_also if also else args.data, getattr(args, "mirror", False)
    items = [] if data is None else [data] if isinstance(data, (str, Market)) else list(data)
    if items and all(isinstance(m, Market) for m in items):
        if mirror:
            raise ValueError("mirror: needs dataset folders (their events are reflected), not Markets")
        return items
    if mirror and args.encoder:
        raise ValueError("mirror: not with --encoder (its embeddings are of the recordings themselves)")
    if getattr(args, "encoder_with_features", False) and not args.encoder:
        raise ValueError("--encoder-with-features: give it with --encoder (the features it puts beside its embeddings "
                         "are the observation without one)")
    folders = dataset_folders(items) if items else [None]
    return [load_market(folder, interval_ms=args.interval_ms, feature_set=args.feature_set, mirror=reflected)
            for reflected in ((False, True) if mirror else (False,)) for folder in folders]


def training_start_max(rows: int, train_fraction: float, horizon: int, name: str = "") -> int:
    """Last episode start whose episode ends inside the first `train_fraction` of the rows (the rest is
    held out: `trader backtest` runs there). With several datasets, each keeps its own tail."""
    if not 0 < train_fraction <= 1:
        raise ValueError(f"train_fraction: expected a value in (0, 1], got {train_fraction}")
    train_end = int(rows * train_fraction)
    start_max = train_end - 1 - horizon
    if start_max < 0:
        where = f"{name}: " if name else ""
        raise ValueError(f"{where}horizon: {horizon} steps do not fit in the training rows ({train_end} of {rows}); "
                         "lower --horizon or raise --train-fraction")
    return start_max


@dataclass(frozen=True)
class SingleAgentSpaces:
    """What PPO and SAC take from an env: flat Box observations of obs_dim; Discrete actions
    (num_actions of them, action_dim 1, no bounds) or Box actions (num_actions 0, action_dim values
    within low..high)."""

    obs_dim: int
    num_actions: int
    action_dim: int
    act_shape: tuple
    low: np.ndarray | None
    high: np.ndarray | None

    @property
    def discrete(self) -> bool:
        return self.num_actions > 0

    def policy_spec(self) -> dict:
        """The spaces in a checkpoint's policy spec (JSON)."""
        return {"obs_dim": self.obs_dim, "num_actions": self.num_actions, "action_dim": self.action_dim,
                "low": None if self.low is None else self.low.tolist(),
                "high": None if self.high is None else self.high.tolist()}


def single_agent_spaces(env, algo: str) -> SingleAgentSpaces:
    """The spaces of a vector env for a single-agent learner (`algo` names it in the errors)."""
    obs_space, act_space = env.single_observation_space, env.single_action_space
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise ValueError(f"env: {algo} expects flat Box observations, got {obs_space}")
    if isinstance(act_space, gym.spaces.Discrete):
        return SingleAgentSpaces(obs_space.shape[0], int(act_space.n), 1, (), None, None)
    if isinstance(act_space, gym.spaces.Box):
        return SingleAgentSpaces(obs_space.shape[0], 0, int(np.prod(act_space.shape)), act_space.shape,
                                 act_space.low, act_space.high)
    raise ValueError(f"env: {algo} expects a Discrete or Box action space, got {act_space}")


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
    check_autoreset(env)
    stats = EpisodeStats(window=10**9)
    obs, _ = env.reset(seed=seed)
    while len(stats.returns) < num_episodes:
        obs, _, _, _, info = env.step(policy(obs))
        stats.add(info)
    return np.asarray(stats.returns[:num_episodes])
