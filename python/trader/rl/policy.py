"""The trained policy of a `trader train` checkpoint, for backtests, evaluation and live trading, and
the registry of the learners it comes from.

    trained = load("runs/trader__ppo__0__20261204-150000")  # a run folder, a checkpoint store (a folder or
    actions = trained.act(obs)                              # s3://bucket/prefix) or one checkpoint in it

An agent trained with `--encoder` observes that encoder's embeddings: `encoder_market` gives the
training env, `trader backtest` and `trader live` the same rows, checked against the encoder's
sha256 recorded in the agent's arguments.

Each learner (trader.rl.{algo}) has `Args`, `train(args)`, `DATA_PARALLEL` and `make_policy(spec,
weights, device)`, which builds its deterministic policy from a checkpoint's policy spec and weights.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from trader.run.checkpoints import load_checkpoint

ALGOS = ("ppo", "sac", "maddpg")
"""the learners, each the module trader.rl.{algo}"""


def learner(algo: str) -> ModuleType:
    """The module of a learner; a ValueError for a name not in ALGOS."""
    if algo not in ALGOS:
        raise ValueError(f"algo: expected one of {', '.join(ALGOS)}, got {algo!r}")
    return importlib.import_module(f"trader.rl.{algo}")


@dataclass(frozen=True)
class TrainedPolicy:
    """`act`: obs batch (numpy) -> action batch (numpy), deterministic (argmax or mean action); `algo`;
    `args`: the run's arguments as saved; `spec`: its policy spec (obs_dim, num_actions, ...);
    `checkpoint`: where it was loaded from (a step folder or s3:// URI)."""

    act: Callable[[np.ndarray], np.ndarray]
    algo: str
    args: dict
    spec: dict
    checkpoint: str


def load(target: str | os.PathLike, device: str = "cpu", env_id: str | None = "trader") -> TrainedPolicy:
    """The policy of a checkpoint (its weights only are read; checksums verified): `target` is a run
    folder, a checkpoint store (a folder or s3://bucket/prefix: its latest) or one checkpoint in it
    (.../step_000000001000). `env_id`: the env the run must have trained on (None: any). A ValueError
    when it is no checkpoint of `trader train` or trained elsewhere; FileNotFoundError, StoreError
    (trader.store) when it cannot be found or read."""
    ckpt = load_checkpoint(target, state=False)
    meta = ckpt.metadata
    algo = meta.get("algo")
    if algo not in ALGOS:
        raise ValueError(f"{ckpt.ref.uri} is not a checkpoint of trader train (algo {algo!r}; expected one of "
                         f"{', '.join(ALGOS)})")
    args = meta.get("args", {})
    if env_id is not None and args.get("env_id") != env_id:
        raise ValueError(f"{ckpt.ref.uri}: that run trained on {args.get('env_id')!r}, not on the {env_id} env")
    act = learner(algo).make_policy(meta["policy_spec"], ckpt.weights, device)
    return TrainedPolicy(act, algo, args, meta["policy_spec"], ckpt.ref.uri)


def encoder_market(args, market):
    """`market` (loaded from a dataset folder: market.name) with its features replaced by the embeddings
    of args.encoder for that dataset, or with args.encoder_with_features by its features, then the embeddings
    (args: a learner's Args or a checkpoint's saved args dict); records
    the encoder's sha256 in args the first time (training) and checks it afterwards. A ValueError on
    another encoder, a sampling mismatch or data given as Markets."""
    from dataclasses import replace

    from trader.nn.embed import agent_features

    get = args.get if isinstance(args, dict) else lambda k: getattr(args, k)
    data = get("data")
    folders = data if isinstance(data, (list, tuple)) else [data]
    if not all(isinstance(d, (str, os.PathLike, type(None))) for d in folders) or not market.name:
        raise ValueError("encoder: give the data as dataset folders, not Markets (the embeddings are cached per dataset)")
    interval_ms = float(np.median(np.diff(market.ts))) / 1e6 if len(market.ts) > 1 else 100.0
    emb, sha = agent_features(get("encoder"), market.name, interval_ms=round(interval_ms, 6), rows=len(market.book),
                              expect_sha256=get("encoder_sha256"))
    if isinstance(args, dict):
        args["encoder_sha256"] = sha
    else:
        args.encoder_sha256 = sha
    if get("encoder_with_features"):  # the book features of the run's set, then the embeddings
        emb = np.concatenate([market.features, emb], axis=1)
    return replace(market, features=np.ascontiguousarray(emb, dtype=np.float32))


def observation_market(args: dict, data=None):
    """The market a trained agent observes on `data` (default: its own): the book features of the set
    it recorded (trader.sim.features), or the embeddings of the encoder it was trained with."""
    from trader.sim import features, load_market

    market = load_market(data if data is not None else args.get("data"), feature_set=features.run_set(args),
                         interval_ms=args.get("interval_ms", 100.0))
    if not args.get("encoder"):
        return market
    return encoder_market({**args, "data": data if data is not None else args.get("data")}, market)
