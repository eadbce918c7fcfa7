"""What the learners (ppo.py, sac.py, maddpg.py) share: arguments and config files, device and seeding,
the run folder and its TensorBoard writer, checkpoints, a replay buffer, GAE, Gumbel-softmax, curiosity
(RND, ICM) and a small MLP builder. A learner file plus this module (and envs.py for the envs) is the
whole algorithm, in the spirit of CleanRL's single-file learners.

Conventions: vector envs use gymnasium 1.x NEXT_STEP autoreset (the step after a terminated or truncated
one only resets the env, ignores its action and returns reward 0), so the observation that follows a
done step is the episode's true final observation, and the step after it is no transition at all.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import json
import math
import os
import random
import re
import textwrap
import time
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# =====================================================================================================
# Arguments: one dataclass per learner, a docstring under each field (CleanRL's style), overridable by
# a config file (YAML or JSON) and then by command-line flags. Unknown keys are errors, not ignored.
# =====================================================================================================


@dataclass
class CommonArgs:
    env_id: str = "trader"
    """`trader` (the C++ order-book env), a gymnasium id (CartPole-v1, Pendulum-v1, ...) or `mpe2:NAME`"""
    seed: int = 1
    """seed of the experiment (python, numpy, torch and the envs: env i gets seed + i)"""
    total_timesteps: int = 1_000_000
    """total env steps of the experiment (all envs together)"""
    num_envs: int = 1
    """number of parallel envs"""
    learning_rate: float = 3e-4
    """learning rate of the optimizers"""
    cuda: bool = True
    """use an accelerator when one is there (cuda, then mps); else the CPU"""
    torch_deterministic: bool = True
    """deterministic torch algorithms (on the CPU: same seed, same result)"""
    torch_threads: int = 1
    """torch's CPU threads (small networks run fastest on one, and a busy machine makes more threads
    wait on each other; 0: torch's default)"""
    track: bool = True
    """write TensorBoard scalars into the run folder"""
    runs_dir: str = "runs"
    """parent folder of the run folders runs/{env}__{algo}__{seed}__{time}"""
    checkpoint_uri: str | None = None
    """where checkpoints go: a folder or s3://bucket/prefix (default: {run folder}/checkpoints). S3:
    endpoint from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, credentials from boto3's usual chain"""
    checkpoint_dir: str | None = None
    """old name of checkpoint_uri (used when checkpoint_uri is not set)"""
    keep_checkpoints: int = 3
    """checkpoints kept in the store, the newest (0: all)"""
    save_freq: int = 0
    """env steps between checkpoints (0: only the final one, and one on SIGTERM / SIGINT / a spot notice)"""
    resume: str | None = None
    """continue from: `latest` (the latest checkpoint under checkpoint_uri), a checkpoint store (a folder
    or s3://bucket/prefix: its latest), one checkpoint in it (.../step_000000001000) or a run folder"""
    spot_metadata_url: str | None = None
    """poll this instance metadata address for spot interruption notices and stop with a final save
    (`aws`: http://169.254.169.254; default: env TRADER_SPOT_METADATA_URL, else no polling)"""
    spot_poll_s: float = 5.0
    """seconds between spot notice polls"""
    dist_backend: str = "auto"
    """torch.distributed backend under torchrun / --nproc: auto (nccl on cuda, gloo on the CPU), gloo, nccl"""
    progress_bar: bool = True
    """show a progress bar"""
    curiosity: str = "none"
    """intrinsic reward: none, rnd (Burda et al. 2019) or icm (Pathak et al. 2017)"""
    curiosity_coef: float = 0.01
    """weight of the intrinsic reward added to the env reward"""
    # trader env (env_id == "trader"); see trader.sim.make
    data: str | None = None
    """trader: dataset folder (default: the bundled sample; from Python also a trader.sim.Market)"""
    num_threads: int = 1
    """trader: worker threads of the C++ env pool"""
    horizon: int = 500
    """trader: steps per episode"""
    fee_bps: float = 1.0
    """trader: taker fee, basis points of notional"""
    trade_size: float = 0.01
    """trader: size of one order (base currency)"""
    max_position: float = 0.1
    """trader: |position| limit (base currency)"""
    continuous: bool = False
    """trader: continuous target-position actions in [-1, 1] instead of hold/buy/sell"""
    latency_steps: int = 0
    """trader: steps between sending an order and its execution"""
    reward_scale: float = 1.0
    """trader: reward = change of equity (quote currency) times this"""
    num_agents: int = 1
    """trader: agents sharing each env's book (MADDPG: 2 or more)"""
    train_fraction: float = 0.7
    """trader: episodes lie in the first fraction of the data's rows; the rest is held out for backtests"""


def field_docs(cls) -> dict[str, str]:
    """The docstring under each dataclass field (the string literal that follows it), for --help."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                docs[node.target.id] = nxt.value.value
    return docs


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """`value` (from YAML, JSON or a command line) as the field's type, or a ValueError naming the field."""
    origin, targs = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in targs:
                return None
        return _coerce(name, value, next(a for a in targs if a is not type(None)))
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif tp is int:
        if isinstance(value, str):
            value = float(value) if re.fullmatch(r"[-+]?\d+(\.0*)?([eE]\+?\d+)?", value.strip()) else value
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, (str, os.PathLike)):
            return str(value)
    elif origin in (tuple, list):
        items = [v for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if isinstance(items, (list, tuple)):
            out = [_coerce(name, v, targs[0]) for v in items]
            return tuple(out) if origin is tuple else out
    raise ValueError(f"{name}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def load_config(path: str | os.PathLike) -> dict:
    """A config file: JSON (.json) or YAML (anything else), one mapping of field names to values."""
    text = Path(path).read_text()
    if str(path).endswith(".json"):
        cfg = json.loads(text)
    else:
        import yaml

        cfg = yaml.safe_load(text)
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: expected a mapping of option names to values, got {type(cfg).__name__}")
    return cfg


def make_args(cls, *layers: tuple[str, dict]):
    """cls's defaults overridden by each (source, mapping) in turn: a config file, then command-line
    flags. Keys may use dashes or underscores; an unknown key raises a ValueError naming its source."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for source, layer in layers:
        for key, value in layer.items():
            name = key.replace("-", "_")
            if name not in hints:
                close = difflib.get_close_matches(name, list(hints), n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ValueError(f"{source}: unknown option {key!r} for {cls.__module__}.{cls.__name__}{hint}")
            values[name] = _coerce(name, value, hints[name])
    return cls(**values)


def resolve_args(cls, config: str | None = None, overrides: dict | None = None):
    """The arguments of a run: defaults < config file < overrides (command-line flags). Resuming
    without a config file starts from the arguments saved in the checkpoint's metadata, so
    `--resume RUN` (or `--resume s3://bucket/run`, or `--resume --checkpoint-uri URI`) alone continues
    the run as it was set up, from the store alone."""
    overrides = dict(overrides or {})
    layers: list[tuple[str, dict]] = []
    resume = overrides.get("resume")
    if config is None and resume:
        store, step = locate_checkpoint(resume, overrides.get("checkpoint_uri") or overrides.get("checkpoint_dir"))
        if step is None and resume == "latest" and store.latest() is None:
            return make_args(cls, ("command line", overrides))  # nothing saved yet: a new run (resume_point)
        manifest = store.manifest(step)
        base = manifest.get("metadata", {}).get("args")
        if not isinstance(base, dict):
            raise ValueError(f"resume: {store.uri} step {manifest['step']} holds no run arguments "
                             "(not a checkpoint of trader train)")
        layers.append((f"{store.uri} step {manifest['step']}", {k: v for k, v in base.items() if k != "resume"}))
    if config is not None:
        layers.append((str(config), load_config(config)))
    layers.append(("command line", overrides))
    return make_args(cls, *layers)


def parse_args(cls, argv: list[str] | None = None):
    """CleanRL-style flags for a learner run as a script: --seed 1 --total-timesteps 100000 --no-cuda
    --config FILE ... (flags override the config file, which overrides the defaults)."""
    import argparse

    docs = field_docs(cls)
    parser = argparse.ArgumentParser(description=inspect.getdoc(inspect.getmodule(cls)),
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", default=None, help="YAML or JSON file of options")
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{docs.get(f.name, '')} (default: {f.default})"
        if typing.get_type_hints(cls)[f.name] is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(flag, default=argparse.SUPPRESS, help=help_text)
    ns = vars(parser.parse_args(argv))
    config = ns.pop("config")
    return resolve_args(cls, config, ns)


def args_to_dict(args) -> dict:
    """Plain values of the arguments (a Market given as `data` becomes its description)."""
    out = {}
    for f in dataclasses.fields(args):
        v = getattr(args, f.name)
        if not (v is None or isinstance(v, (bool, int, float, str))):
            v = list(v) if isinstance(v, (tuple, list)) else f"<{type(v).__name__}>"
        out[f.name] = v
    return out


# =====================================================================================================
# Device and seeding
# =====================================================================================================


def pick_device(use_accelerator: bool = True) -> torch.device:
    """cuda if there is one, else Apple's mps, else the CPU."""
    if use_accelerator and torch.cuda.is_available():
        return torch.device("cuda")
    if use_accelerator and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int, deterministic: bool, device: torch.device) -> None:
    """Seed python, numpy and torch. On the CPU, deterministic algorithms give the same result for
    the same seed; on cuda, cudnn's deterministic kernels (as CleanRL)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic


def setup_torch(args, dist=None) -> torch.device:
    """The device, torch's CPU threads and the seeds of a run. Data parallel (`dist`, see
    trader.rl.distributed): the rank's device and seed (seed + rank * 10_000)."""
    device = dist.device if dist is not None and dist.device is not None else pick_device(args.cuda)
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    seed_everything(dist.seed(args.seed) if dist is not None else args.seed, args.torch_deterministic, device)
    return device


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state["numpy"] = (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached)
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# =====================================================================================================
# Run folder, TensorBoard, progress
# =====================================================================================================


def run_folder(args, algo: str) -> Path:
    """A new folder runs/{env}__{algo}__{seed}__{time} (CleanRL's naming) with the run's config.yaml."""
    env = re.sub(r"[^A-Za-z0-9_.-]+", "-", args.env_id)
    base = Path(args.runs_dir) / f"{env}__{algo}__{args.seed}__{int(time.time())}"
    path, n = base, 1
    while path.exists():  # two runs started within the same second
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    path.mkdir(parents=True)
    import yaml

    (path / "config.yaml").write_text(yaml.safe_dump(args_to_dict(args), sort_keys=False))
    return path


class Logger:
    """TensorBoard scalars (charts/..., losses/...) into the run folder; no-op when tracking is off or
    tensorboard is not installed. `purge_step` drops the events a resumed run writes again."""

    def __init__(self, run_dir: Path, args, enabled: bool, purge_step: int | None = None):
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            import warnings

            warnings.warn("tensorboard is not installed: no scalars are written (pip install tensorboard)",
                          stacklevel=2)
            return
        self.writer = SummaryWriter(str(run_dir), purge_step=purge_step)
        table = "\n".join(f"|{k}|{v}|" for k, v in args_to_dict(args).items())
        self.writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}")

    def scalar(self, tag: str, value, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, float(value), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class EpisodeStats:
    """Returns and lengths of finished episodes, read from info["episode"] / info["_episode"] (the trader
    env, gymnasium's RecordEpisodeStatistics and the MPE adapter all write them). Multi-agent returns
    [B, K] are averaged over agents."""

    def __init__(self, window: int = 100):
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.window = window

    def add(self, info: dict) -> tuple[np.ndarray, np.ndarray]:
        done = np.asarray(info.get("_episode", ()), dtype=bool)
        if not done.any():
            return np.zeros(0), np.zeros(0)
        r = np.asarray(info["episode"]["r"], dtype=np.float64)[done]
        r = r.reshape(len(r), -1).mean(axis=1)
        ln = np.asarray(info["episode"]["l"])[done]
        self.returns = (self.returns + r.tolist())[-self.window:]
        self.lengths = (self.lengths + ln.tolist())[-self.window:]
        return r, ln

    def log(self, logger: Logger, step: int, r: np.ndarray, ln: np.ndarray) -> None:
        if len(r):
            logger.scalar("charts/episodic_return", r.mean(), step)
            logger.scalar("charts/episodic_length", ln.mean(), step)

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else float("nan")

    @property
    def mean_length(self) -> float:
        return float(np.mean(self.lengths)) if self.lengths else float("nan")


def progress_bar(args, initial: int, enabled: bool = True):
    from tqdm.auto import tqdm

    return tqdm(total=args.total_timesteps, initial=initial, unit="step", unit_scale=True, dynamic_ncols=True,
                disable=not (args.progress_bar and enabled), mininterval=0.5)


def finish(args, dist, stats: EpisodeStats, modules: dict[str, nn.Module], run_dir: Path, store, checkpoint: str,
           interrupted: str | None, global_step: int, start_step: int, start_time: float, **extra) -> dict:
    """A learner's result. Data parallel: checks that every rank ends with the same weights (rank 0 writes
    RUN/ddp_sync.json with each rank's sha256 of them) and averages the episode statistics over the ranks."""
    from trader.rl import distributed

    in_sync, digests = dist.in_sync(modules) if dist.enabled else (True, [])
    if dist.enabled and dist.is_main:
        (run_dir / "ddp_sync.json").write_text(json.dumps(
            {"world_size": dist.world_size, "backend": dist.backend, "step": global_step, "in_sync": in_sync,
             "state_sha256": digests}, indent=1))
    if not in_sync:
        import warnings

        warnings.warn(f"data-parallel ranks ended with different weights: {digests}", stacklevel=2)
    ret_sum, ret_n, len_sum = dist.sum([sum(stats.returns), len(stats.returns), sum(stats.lengths)])
    return {"global_step": global_step, "episodic_return": ret_sum / ret_n if ret_n else float("nan"),
            "episodic_length": len_sum / ret_n if ret_n else float("nan"),
            "sps": int((global_step - start_step) / max(time.time() - start_time, 1e-9)),
            "run_dir": str(run_dir), "checkpoint": checkpoint, "checkpoint_store": store.uri if store else None,
            "interrupted": interrupted, "rank": dist.rank, "world_size": dist.world_size,
            "ranks_in_sync": in_sync, "state_sha256": distributed.state_digest(modules), **extra}


# =====================================================================================================
# Checkpoints, through trader.store: a folder or s3://bucket/prefix, one step_* checkpoint per save with
# a manifest (sha256 of every file), `latest` written last, the newest --keep-checkpoints kept.
#
#   weights/{module}.safetensors   every network and running statistic (the policy for backtests)
#   state/trainer.pt               what all ranks share: optimizers, temperature, curiosity, counters
#   state/ranks.pt                 a list with one entry per rank: its RNG states, its envs' action logs
#                                  (the env cursor: a resume replays them from the seeded reset), its
#                                  last observations and done flags, per-env running returns
#   state/replay_buffer.pt         SAC, MADDPG: the replay buffer's transitions, in the checkpoint itself
#   manifest metadata (JSON)       algo, step, counters, the run's arguments (so a resume from the store
#                                  alone has everything), run folder, policy spec, world size, why saved
# =====================================================================================================

_STEP_NAME = re.compile(r"^step_(\d{12,})$")


def open_store(uri: str | os.PathLike, keep_last: int | None = None):
    """A trader.store CheckpointStore for a folder or s3://bucket/prefix; keep_last 0/None keeps all."""
    from trader.store import CheckpointStore

    return CheckpointStore.open(str(uri), keep_last=keep_last or None)


def _is_store_folder(p: Path) -> bool:
    if not p.is_dir():
        return False
    return (p / "latest").is_file() or any(_STEP_NAME.match(c.name) and c.is_dir() for c in p.iterdir())


def locate_checkpoint(target: str | os.PathLike, checkpoint_uri: str | None = None):
    """(store, step or None for its latest) for a resume or backtest target: `latest` (the latest of
    `checkpoint_uri`), s3://bucket/prefix, s3://bucket/prefix/step_000000001000, a checkpoint folder,
    one step folder in it, or a run folder (its checkpoints/, else the checkpoint_uri in its config.yaml)."""
    from urllib.parse import urlsplit

    text = os.fspath(target)
    if text == "latest":
        if not checkpoint_uri:
            raise ValueError("resume: `latest` continues from the latest checkpoint of --checkpoint-uri; give it")
        return open_store(checkpoint_uri), None
    if text.startswith("s3://"):
        parts = urlsplit(text)
        prefix = parts.path.strip("/")
        head, _, last = prefix.rpartition("/")
        m = _STEP_NAME.match(last)
        if m:
            return open_store(f"s3://{parts.netloc}/{head}" if head else f"s3://{parts.netloc}"), int(m.group(1))
        return open_store(text), None
    p = Path(text).expanduser()
    m = _STEP_NAME.match(p.name)
    if m and (p / "manifest.json").is_file():
        return open_store(p.parent), int(m.group(1))
    if _is_store_folder(p):
        return open_store(p), None
    if _is_store_folder(p / "checkpoints"):
        return open_store(p / "checkpoints"), None
    if (p / "config.yaml").is_file():
        saved = load_config(p / "config.yaml")
        uri = saved.get("checkpoint_uri") or saved.get("checkpoint_dir")
        if uri and os.fspath(uri) != text:
            return locate_checkpoint(uri)
    if not p.exists():
        raise FileNotFoundError(f"{text}: no such run folder, checkpoint folder or s3:// URI")
    raise FileNotFoundError(f"{text}: no checkpoint there (expected a run folder, a checkpoint folder with "
                            "`latest` and step_* folders, or s3://bucket/prefix)")


def load_checkpoint(target: str | os.PathLike, map_location="cpu", checkpoint_uri: str | None = None,
                    state: bool = True):
    """A trader.store Checkpoint (.weights, .state, .metadata, .step, .ref) for a target of
    locate_checkpoint; checksums are verified. The latest of a store falls back to the newest whole
    checkpoint when it is broken (a warning says so). `state=False` reads the weights only."""
    store, step = locate_checkpoint(target, checkpoint_uri)
    include = None
    if not state:
        include = [e["name"] for e in store.manifest(step)["files"] if e.get("kind") == "weights"]
    return store.load(step, map_location=map_location, include=include, fallback=step is None)


def find_checkpoint(target: str | os.PathLike, checkpoint_uri: str | None = None) -> str:
    """Where the checkpoint a target resolves to is: its step folder (path or s3:// URI)."""
    from trader.store import step_dir

    store, step = locate_checkpoint(target, checkpoint_uri)
    if step is None:
        step = store.latest()
        if step is None:
            raise FileNotFoundError(f"{target}: no checkpoint in {store.uri}")
    return f"{store.uri.rstrip('/')}/{step_dir(step)}"


def load_weights(target: str | os.PathLike) -> dict[str, dict[str, torch.Tensor]]:
    """{module: state_dict} of a checkpoint (any target of locate_checkpoint)."""
    return load_checkpoint(target, state=False).weights


def resume_point(args, algo: str, dist=None):
    """(store it came from, Checkpoint) for args.resume, or (None, None): also for `latest` when the store
    has no checkpoint yet, so one command line starts a run and continues it after an interruption.
    Checks the algorithm and that the world size matches the checkpoint's (every rank has its own env
    state in it)."""
    if not args.resume:
        return None, None
    store, step = locate_checkpoint(args.resume, args.checkpoint_uri or args.checkpoint_dir)
    if step is None and args.resume == "latest" and store.latest() is None:
        # the same command line can start a run and restart it after an interruption
        if dist is None or dist.is_main:
            print(f"resume: no checkpoint under {store.uri} yet; starting a new run")
        return None, None
    ckpt = store.load(step, fallback=step is None)
    meta = ckpt.metadata
    if meta.get("algo") != algo:
        raise ValueError(f"resume: {ckpt.ref.uri} is a checkpoint of {meta.get('algo')!r}, not {algo!r}")
    world = 1 if dist is None else dist.world_size
    if int(meta.get("world_size", 1)) != world:
        raise ValueError(f"resume: {ckpt.ref.uri} was written by {meta.get('world_size')} ranks; resume with "
                         f"the same number of processes (--nproc {meta.get('world_size')}), not {world}")
    return store, ckpt


def run_folder_for(args, algo: str, ckpt, dist) -> Path:
    """Rank 0: a new run folder, or the resumed run's (recreated under runs_dir when it is not on this
    machine, e.g. a resume from S3 elsewhere). Every rank gets the path."""
    def make() -> str:
        if ckpt is None:
            return str(run_folder(args, algo))
        path = Path(ckpt.metadata.get("run_dir", ""))
        if not path.is_dir():
            path = Path(args.runs_dir) / (path.name or f"resumed__{algo}")
            path.mkdir(parents=True, exist_ok=True)
            if not (path / "config.yaml").exists():
                import yaml

                (path / "config.yaml").write_text(yaml.safe_dump(args_to_dict(args), sort_keys=False))
        return str(path)

    return Path(dist.run_on_main(make))


def checkpoint_store_for(args, run_dir: Path, resumed_from=None):
    """The store this run saves into: --checkpoint-uri, else the store it resumed from, else
    RUN/checkpoints; keeping the newest --keep-checkpoints."""
    uri = args.checkpoint_uri or args.checkpoint_dir
    if not uri:
        uri = resumed_from.uri if resumed_from is not None else run_dir / "checkpoints"
    return open_store(uri, args.keep_checkpoints)


def save_checkpoint(store, step: int, dist, *, modules: dict[str, nn.Module], trainer: dict, rank_state: dict,
                    metadata: dict, extra_state: dict | None = None) -> str:
    """Gather every rank's `rank_state` on rank 0, which writes the checkpoint (weights of `modules`,
    state/trainer, state/ranks, `extra_state`, `metadata` + world size); every rank gets its location
    (and an error raised on rank 0 is raised on every rank)."""
    ranks = dist.gather(rank_state)

    def write() -> str:
        state = {"trainer": trainer, "ranks": ranks, **(extra_state or {})}
        ref = store.save(step, weights=modules, state=state,
                         metadata={**metadata, "step": step, "world_size": dist.world_size})
        return ref.uri

    return dist.run_on_main(write)


def due(step: int, prev_step: int, every: int) -> bool:
    """True when a multiple of `every` lies in (prev_step, step]: checkpoints and updates on a fixed
    schedule of env steps, whatever the number of envs per vector step."""
    return every > 0 and step // every > prev_step // every


# =====================================================================================================
# Networks
# =====================================================================================================


def layer_init(layer: nn.Linear, std: float = math.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    """Orthogonal weights and constant biases (Engstrom et al. 2020, "Implementation matters")."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias_const)
    return layer


def mlp(in_dim: int, hidden: typing.Sequence[int], out_dim: int, activation=nn.ReLU,
        out_std: float | None = None) -> nn.Sequential:
    """in_dim -> hidden... -> out_dim with `activation` between layers. With out_std set, orthogonal
    init (sqrt(2) for hidden layers, out_std for the last) as CleanRL's PPO; else torch's default."""
    sizes = [in_dim, *hidden, out_dim]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        lin = nn.Linear(a, b)
        if out_std is not None:
            layer_init(lin, out_std if last else math.sqrt(2))
        layers.append(lin)
        if not last:
            layers.append(activation())
    return nn.Sequential(*layers)


@torch.no_grad()
def polyak_update(net: nn.Module, target: nn.Module, tau: float) -> None:
    """target <- (1 - tau) target + tau net, parameter by parameter (soft target updates, Lillicrap et al. 2016)."""
    for param, target_param in zip(net.parameters(), target.parameters(), strict=True):
        target_param.lerp_(param, tau)


class RunningMeanStd(nn.Module):
    """Running mean and variance (Chan et al.'s parallel update), kept as buffers so that checkpoints
    carry them. Used to normalize observations and rewards. float32, which mps also has."""

    def __init__(self, shape=(), epsilon: float = 1e-4):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.tensor(epsilon))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, *self.mean.shape).float()
        if len(x) == 0:
            return
        b_mean, b_var, b_count = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta, total = b_mean - self.mean, self.count + b_count
        m2 = self.var * self.count + b_var * b_count + delta.square() * self.count * b_count / total
        self.mean += delta * b_count / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def normalize(self, x: torch.Tensor, clip: float = 10.0) -> torch.Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + 1e-8)).clamp(-clip, clip)


# =====================================================================================================
# Advantages and sampling
# =====================================================================================================


def gae(rewards: torch.Tensor, values: torch.Tensor, next_value: torch.Tensor, terminated: torch.Tensor,
        truncated: torch.Tensor, gamma: float, gae_lambda: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016) over a rollout [T, N] of NEXT_STEP
    vector envs; values[t] = V(obs[t]), next_value = V(obs after the last step). Returns
    (advantages, returns = advantages + values).

    Under NEXT_STEP autoreset the observation after a terminated or truncated step is the episode's
    final observation (the reset comes one step later), so V(s_{t+1}) is always values[t+1]:
        delta_t = r_t + gamma * V(s_{t+1}) * (1 - terminated_t) - V(s_t)
        A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1},   done = terminated | truncated
    A truncation (time limit) still bootstraps from the final observation (Pardo et al. 2018, "Time
    limits in RL"); a termination does not; no credit flows across an episode's end. The autoreset
    step that follows a done step is no transition: its advantage means nothing and the caller masks
    it out of the losses."""
    T = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(T)):
        next_v = next_value if t == T - 1 else values[t + 1]
        delta = rewards[t] + gamma * next_v * (1.0 - terminated[t]) - values[t]
        done = torch.maximum(terminated[t], truncated[t])
        last = delta + gamma * gae_lambda * (1.0 - done) * last
        advantages[t] = last
    return advantages, advantages + values


def gumbel_softmax(logits: torch.Tensor, temperature: float = 1.0, hard: bool = True) -> torch.Tensor:
    """A differentiable sample of Categorical(softmax(logits)): softmax((logits + g) / temperature) with
    g ~ Gumbel(0, 1) (Jang et al. 2017; Maddison et al. 2017). hard=True gives the one-hot of the
    sample in the forward pass and the soft sample's gradient in the backward pass (straight-through,
    Bengio et al. 2013), as MADDPG needs for discrete actions (Lowe et al. 2017, Sec. 4)."""
    u = torch.rand_like(logits).clamp_(min=torch.finfo(logits.dtype).tiny)
    soft = F.softmax((logits - torch.log(-torch.log(u))) / temperature, dim=-1)
    if not hard:
        return soft
    one_hot = F.one_hot(soft.argmax(-1), logits.shape[-1]).to(soft.dtype)
    return one_hot - soft.detach() + soft


# =====================================================================================================
# Replay buffer (SAC, MADDPG)
# =====================================================================================================


class ReplayBatch(NamedTuple):
    observations: torch.Tensor
    actions: torch.Tensor
    next_observations: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor


class ReplayBuffer:
    """Transitions in tensors preallocated on the training device; when full, the oldest rows are
    overwritten (a ring). It stores `terminated`, not `truncated`: a time-limit truncation still
    bootstraps from next_observations (Pardo et al. 2018; the same fix as SB3's handle_timeout_termination).
    Shapes are per transition: obs_shape (D,) or (K, D) for K agents; reward_shape () or (K,)."""

    def __init__(self, capacity: int, obs_shape: tuple, action_shape: tuple, device: torch.device,
                 action_dtype: torch.dtype = torch.float32, reward_shape: tuple = ()):
        self.capacity, self.device = int(capacity), device
        self.observations = torch.zeros((self.capacity, *obs_shape), dtype=torch.float32, device=device)
        self.next_observations = torch.zeros_like(self.observations)
        self.actions = torch.zeros((self.capacity, *action_shape), dtype=action_dtype, device=device)
        self.rewards = torch.zeros((self.capacity, *reward_shape), dtype=torch.float32, device=device)
        self.terminated = torch.zeros(self.capacity, dtype=torch.float32, device=device)
        self.pos, self.full = 0, False

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(self, obs, next_obs, actions, rewards, terminated) -> None:
        """Append a batch of transitions (leading dim = batch; numpy or torch)."""
        n = len(obs)
        if n == 0:
            return
        if n > self.capacity:  # as if written one by one: only the newest `capacity` survive
            self.pos = (self.pos + n - self.capacity) % self.capacity
            obs, next_obs, actions, rewards, terminated = (x[-self.capacity:] for x in
                                                           (obs, next_obs, actions, rewards, terminated))
            n = self.capacity
        idx = (self.pos + torch.arange(n, device=self.device)) % self.capacity
        for store, x in ((self.observations, obs), (self.next_observations, next_obs), (self.actions, actions),
                         (self.rewards, rewards), (self.terminated, terminated)):
            store[idx] = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x,
                                         device=self.device).to(store.dtype).reshape(n, *store.shape[1:])
        self.full = self.full or self.pos + n >= self.capacity
        self.pos = (self.pos + n) % self.capacity

    def sample(self, batch_size: int) -> ReplayBatch:
        """Uniform sample with replacement (torch's global generator, so seeding makes it repeatable)."""
        idx = torch.randint(len(self), (batch_size,), device=self.device)
        return ReplayBatch(self.observations[idx], self.actions[idx], self.next_observations[idx],
                           self.rewards[idx], self.terminated[idx])

    def state_dict(self) -> dict:
        n = len(self)
        # copies: a saved slice would carry its whole preallocated storage
        rows = {name: getattr(self, name)[:n].to("cpu", copy=True)
                for name in ("observations", "next_observations", "actions", "rewards", "terminated")}
        return {"pos": self.pos, "full": self.full, **rows}

    def load_state_dict(self, state: dict) -> None:
        n = len(state["observations"])
        if n > self.capacity:
            raise ValueError(f"replay buffer: checkpoint holds {n} transitions, capacity is {self.capacity}")
        for name in ("observations", "next_observations", "actions", "rewards", "terminated"):
            getattr(self, name)[:n] = state[name].to(self.device)
        self.pos, self.full = int(state["pos"]), bool(state["full"])


# =====================================================================================================
# Curiosity: an intrinsic reward for novel transitions, added to the env reward times --curiosity-coef.
# Both modules train themselves (own optimizer) on the learner's batches and are checkpointed with it.
# =====================================================================================================


class RND(nn.Module):
    """Random network distillation (Burda et al. 2019): r_int(s') = ||f_hat(s') - f(s')||^2, f a fixed
    random network, f_hat a predictor trained on visited states, so the error is large where the agent
    has rarely been. Observations are whitened by running statistics and clipped to [-5, 5] (Sec. 2.4);
    intrinsic rewards are divided by a running std (of the rewards; the paper uses intrinsic returns)."""

    def __init__(self, obs_dim: int, hidden: int = 64, feature_dim: int = 64, lr: float = 1e-4):
        super().__init__()
        self.target = mlp(obs_dim, (hidden, hidden), feature_dim, nn.LeakyReLU, out_std=1.0)
        self.predictor = mlp(obs_dim, (hidden, hidden, hidden), feature_dim, nn.LeakyReLU, out_std=1.0)
        self.target.requires_grad_(False)
        self.obs_rms = RunningMeanStd((obs_dim,))
        self.reward_rms = RunningMeanStd(())
        self.optimizer = torch.optim.Adam(self.predictor.parameters(), lr=lr)

    def _error(self, next_obs: torch.Tensor) -> torch.Tensor:
        x = self.obs_rms.normalize(next_obs, clip=5.0)
        return (self.predictor(x) - self.target(x)).square().mean(-1)

    @torch.no_grad()
    def reward(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        r = self._error(next_obs)
        self.reward_rms.update(r)
        return r / torch.sqrt(self.reward_rms.var + 1e-8)

    def update(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor) -> float:
        self.obs_rms.update(next_obs)
        loss = self._error(next_obs).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()


class ICM(nn.Module):
    """Intrinsic curiosity module (Pathak et al. 2017): features phi(s) are learned by an inverse model
    that predicts a_t from (phi(s_t), phi(s_{t+1})), so they keep what the agent can influence; a forward
    model predicts phi(s_{t+1}) from (phi(s_t), a_t) and its error is the intrinsic reward
    r_int = 1/2 ||f(phi(s_t), a_t) - phi(s_{t+1})||^2. Loss (1 - beta) L_inverse + beta L_forward,
    beta = 0.2 (Sec. 2.2, 4). Actions: integers (discrete, `num_actions` > 0) or vectors (continuous)."""

    def __init__(self, obs_dim: int, action_dim: int, num_actions: int = 0, hidden: int = 64,
                 feature_dim: int = 32, beta: float = 0.2, lr: float = 1e-3):
        super().__init__()
        self.num_actions, self.beta = num_actions, beta
        a_dim = num_actions if num_actions else action_dim
        self.features = mlp(obs_dim, (hidden,), feature_dim, nn.ELU)
        self.inverse = mlp(2 * feature_dim, (hidden,), a_dim, nn.ELU)
        self.forward_model = mlp(feature_dim + a_dim, (hidden,), feature_dim, nn.ELU)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr)

    def _encode_action(self, actions: torch.Tensor) -> torch.Tensor:
        if self.num_actions:
            return F.one_hot(actions.long().reshape(-1), self.num_actions).float()
        return actions.float().reshape(len(actions), -1)

    def _losses(self, obs, actions, next_obs):
        phi, phi_next = self.features(obs), self.features(next_obs)
        a = self._encode_action(actions)
        forward_err = 0.5 * (self.forward_model(torch.cat([phi, a], -1)) - phi_next.detach()).square().sum(-1)
        pred = self.inverse(torch.cat([phi, phi_next], -1))
        if self.num_actions:
            inverse_loss = F.cross_entropy(pred, actions.long().reshape(-1))
        else:
            inverse_loss = F.mse_loss(pred, a)
        return forward_err, inverse_loss

    @torch.no_grad()
    def reward(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        return self._losses(obs, actions, next_obs)[0]

    def update(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor) -> float:
        forward_err, inverse_loss = self._losses(obs, actions, next_obs)
        loss = (1 - self.beta) * inverse_loss + self.beta * forward_err.mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()


def make_curiosity(kind: str, obs_dim: int, action_dim: int, num_actions: int, device: torch.device):
    """None, RND or ICM for --curiosity none|rnd|icm."""
    if kind == "none":
        return None
    if kind == "rnd":
        return RND(obs_dim).to(device)
    if kind == "icm":
        return ICM(obs_dim, action_dim, num_actions).to(device)
    raise ValueError(f"curiosity: expected none, rnd or icm, got {kind!r}")


def curiosity_state(module) -> dict:
    return {} if module is None else {"model": module.state_dict(), "optimizer": module.optimizer.state_dict()}


def load_curiosity_state(module, state: dict) -> None:
    if module is not None and state:
        module.load_state_dict(state["model"])
        module.optimizer.load_state_dict(state["optimizer"])
