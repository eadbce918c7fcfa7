"""Checkpoints of a training run, through trader.store: where a resume or backtest target points, the
checkpoint a run resumes from (checked: same algorithm or model, same world size), the store a run
saves into, and one save that gathers every rank's own state first.

A store is a folder or s3://bucket/prefix, one step folder per save with a manifest (sha256 of every
file), `latest` written last, the newest --keep-checkpoints kept. A learner's checkpoint holds:

    weights/{module}.safetensors   every network and running statistic (the policy for backtests)
    state/trainer.pt               what all ranks share: optimizers, temperature, curiosity, counters
    state/ranks.pt                 a list with one entry per rank: its RNG states, its envs' action logs
                                   (the env cursor: a resume replays them from the seeded reset), its
                                   last observations and done flags, per-env running returns
    state/replay_buffer.pt         SAC, MADDPG: the replay buffer's transitions, in the checkpoint itself
    manifest metadata (JSON)       algo, step, counters, the run's arguments (so a resume from the store
                                   alone has everything), run folder, policy spec, world size, why saved
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

from trader.run.config import load_config
from trader.store import Checkpoint, CheckpointStore, parse_step_dir
from trader.store import open_store as open_checkpoint_store


CHOICE_FILE = "choice.json"
"""in the folder of `trader train --choose-among` (trader.rl.choose): the chosen run, which the folder stands for"""
COMMITTEE_FILE = "committee.json"
"""in the folder of `trader train --committee` (trader.rl.train_committee): the members, whose committee the folder
stands for"""


def open_store(uri: str | os.PathLike, keep_last: int | None = None) -> CheckpointStore:
    """A trader.store CheckpointStore for a folder or s3://bucket/prefix; keep_last 0/None keeps all."""
    return open_checkpoint_store(uri, keep_last=keep_last or None)


def _is_store_folder(p: Path) -> bool:
    if not p.is_dir():
        return False
    return (p / "latest").is_file() or any(parse_step_dir(c.name) is not None and c.is_dir() for c in p.iterdir())


def locate_checkpoint(target: str | os.PathLike,
                      checkpoint_uri: str | None = None) -> tuple[CheckpointStore, int | None]:
    """(store, step or None for its latest) for a resume or backtest target: `latest` (the latest of
    `checkpoint_uri`), s3://bucket/prefix, s3://bucket/prefix/step_000000001000, a checkpoint folder,
    one step folder in it, a run folder (its checkpoints/, else the checkpoint_uri in its config.yaml), or
    the folder of `trader train --choose-among` (its chosen run)."""
    text = os.fspath(target)
    if text == "latest":
        if not checkpoint_uri:
            raise ValueError("resume: `latest` continues from the latest checkpoint of --checkpoint-uri; give it")
        return open_store(checkpoint_uri), None
    if text.startswith("s3://"):
        parts = urlsplit(text)
        prefix = parts.path.strip("/")
        head, _, last = prefix.rpartition("/")
        step = parse_step_dir(last)
        if step is not None:
            return open_store(f"s3://{parts.netloc}/{head}" if head else f"s3://{parts.netloc}"), step
        return open_store(text), None
    p = Path(text).expanduser()
    step = parse_step_dir(p.name)
    if step is not None and (p / "manifest.json").is_file():
        return open_store(p.parent), step
    if _is_store_folder(p):
        return open_store(p), None
    if _is_store_folder(p / "checkpoints"):
        return open_store(p / "checkpoints"), None
    choice = read_choice(p)
    if choice is not None:
        return locate_checkpoint(choice["chosen"]["run_dir"])
    committee = read_committee(p)
    if committee is not None:
        raise ValueError(f"{text}: the committee of {len(committee['members'])} agents (trader train --committee), "
                         "not one checkpoint; trader backtest and trader live take it as one agent, and each member "
                         f"is a run of its own: {', '.join(str(m) for m in committee['members'])}")
    if (p / "config.yaml").is_file():
        uri = load_config(p / "config.yaml").get("checkpoint_uri")
        if uri and os.fspath(uri) != text:
            return locate_checkpoint(uri)
    if not p.exists():
        raise FileNotFoundError(f"{text}: no such run folder, checkpoint folder or s3:// URI")
    raise FileNotFoundError(f"{text}: no checkpoint there (expected a run folder, a checkpoint folder with "
                            "`latest` and step_* folders, or s3://bucket/prefix)")


def _seeds_file(folder: str | Path, name: str, what: str, paths) -> dict | None:
    """FOLDER/NAME of trader train's seeds (`what` made it), its run folders made paths by `paths(content)`; None
    for any other folder or an s3:// URI; a ValueError naming the file when it is not such a file."""
    if "://" in str(folder):
        return None
    file = Path(folder) / name
    if not file.is_file():
        return None
    try:
        content = json.loads(file.read_text())
        paths(content)
        float(content["train_fraction"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{file}: not {what} ({e})") from None
    return content


def read_choice(folder: str | Path) -> dict | None:
    """OUT/choice.json of a choice folder, its chosen run folder ("chosen"/"run_dir") as a path; None for
    any other folder or an s3:// URI."""
    def paths(choice: dict) -> None:
        choice["chosen"]["run_dir"] = Path(folder) / choice["chosen"]["run_dir"]

    return _seeds_file(folder, CHOICE_FILE, "a choice of trader train --choose-among", paths)


def read_committee(folder: str | Path) -> dict | None:
    """OUT/committee.json of a committee folder, its "members" as run folder paths in seed order; None for any
    other folder or an s3:// URI."""
    def paths(committee: dict) -> None:
        members = committee["members"]
        if not members:
            raise ValueError("no members")
        committee["members"] = [Path(folder) / members[s]["run_dir"] for s in sorted(members, key=int)]

    return _seeds_file(folder, COMMITTEE_FILE, "a committee of trader train --committee", paths)


def load_checkpoint(target: str | os.PathLike, map_location="cpu", checkpoint_uri: str | None = None,
                    state: bool = True) -> Checkpoint:
    """A trader.store Checkpoint (.weights, .state, .metadata, .step, .ref) for a target of
    locate_checkpoint; checksums are verified. The latest of a store falls back to the newest whole
    checkpoint when it is broken (a warning says so). `state=False` reads the weights only."""
    store, step = locate_checkpoint(target, checkpoint_uri)
    include = None
    if not state:
        include = [e["name"] for e in store.manifest(step)["files"] if e.get("kind") == "weights"]
    return store.load(step, map_location=map_location, include=include, fallback=step is None)


def resume_point(target: str | None, checkpoint_uri: str | None, key: str, value: str,
                 dist) -> tuple[CheckpointStore | None, Checkpoint | None]:
    """(store it came from, Checkpoint) to resume from, or (None, None): without a target, and for
    `latest` when the store has no checkpoint yet, so one command line starts a run and continues it
    after an interruption. The checkpoint's metadata[key] must be `value` (the algorithm, the encoder
    model) and its world size this run's (every rank has its own state in it)."""
    if not target:
        return None, None
    store, step = locate_checkpoint(target, checkpoint_uri)
    if step is None and target == "latest" and store.latest() is None:
        if dist.is_main:
            print(f"resume: no checkpoint under {store.uri} yet; starting a new run")
        return None, None
    ckpt = store.load(step, fallback=step is None)
    meta = ckpt.metadata
    if meta.get(key) != value:
        raise ValueError(f"resume: {ckpt.ref.uri} is a checkpoint of {key} {meta.get(key)!r}, not {value!r}")
    if int(meta.get("world_size", 1)) != dist.world_size:
        raise ValueError(f"resume: {ckpt.ref.uri} was written by {meta.get('world_size')} ranks; resume with "
                         f"the same number of processes (--nproc {meta.get('world_size')}), not {dist.world_size}")
    return store, ckpt


def save_checkpoint(store: CheckpointStore | None, step: int, dist, *, modules: dict, trainer: dict,
                    rank_state: dict, metadata: dict, extra_state: dict | None = None) -> str:
    """Gather every rank's `rank_state` on rank 0, which writes the checkpoint (weights of `modules`,
    state/trainer, state/ranks, `extra_state`, `metadata` + world size) into `store` (only rank 0 has
    one); every rank gets its location (and an error raised on rank 0 is raised on every rank)."""
    ranks = dist.gather(rank_state)

    def write() -> str:
        state = {"trainer": trainer, "ranks": ranks, **(extra_state or {})}
        ref = store.save(step, weights=modules, state=state,
                         metadata={**metadata, "step": step, "world_size": dist.world_size})
        return ref.uri

    return dist.run_on_main(write)

