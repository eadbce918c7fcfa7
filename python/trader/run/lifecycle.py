"""One training run from start to finish, so that a learner's `train` reads top to bottom like CleanRL's
single-file learners; and the arguments such a run starts from.

    with Run.start(args, "ppo") as run:    # device, seeds, the checkpoint to resume from, run folder,
        ...                                # checkpoint store, logger, interrupt watcher
        global_step = run.begin()          # a resume's RNG states; the clock and the progress bar
        while global_step < args.total_timesteps:
            ...
            if run.end_iteration(global_step, save):  # a stop request: a final save, then leave;
                break                                 # else a checkpoint every --save-freq env steps
        return run.finish(save, modules, stats)       # the final save, everything closed, the result

Between start and begin the learner builds its envs and networks and, on a resume, loads their state
from `run.resumed` (the Checkpoint) and `run.rank_state` (this rank's entry in it). `save(step,
reason)` is the learner's own: what its checkpoint holds, written through `Run.save`.

The arguments (`resolve_args`, `parse_args`): defaults < the saved arguments of the checkpoint a run
resumes < a config file < command-line flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import time
import typing
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from trader.run import distributed
from trader.run.checkpoints import locate_checkpoint, open_store, resume_point, save_checkpoint
from trader.run.config import args_to_dict, field_docs, load_config, make_args
from trader.run.device import rng_state, set_rng_state, setup_torch
from trader.run.interrupt import stop_reason, watcher
from trader.run.logger import Logger, run_folder

Save = Callable[[int, str | None], str]
"""a learner's save(step, reason): writes a checkpoint, returns where"""


def due(step: int, prev_step: int, every: int) -> bool:
    """True when a multiple of `every` lies in (prev_step, step]: checkpoints, updates and logging on a
    fixed schedule of env steps, whatever the number of envs per vector step."""
    return every > 0 and step // every > prev_step // every


class Run:
    """A learner's run: `dist` (this process's rank, trader.run.distributed), `device`, `resumed` (the
    Checkpoint it continues, or None) and `rank_state` (this rank's entry in it), `folder`, `store`
    (rank 0's checkpoint store), `logger` (TensorBoard), `checkpoint` (where the last save went) and
    `interrupted` (why it stopped early: SIGTERM, SIGINT, spot interruption)."""

    def __init__(self, args, algo: str, dist: distributed.Dist, device, source, resumed, folder: Path):
        self.args, self.algo, self.dist, self.device = args, algo, dist, device
        self.resumed, self.folder = resumed, folder
        self.rank_state = resumed.state["ranks"][dist.rank] if resumed is not None else None
        # the store this run saves into: --checkpoint-uri, else the one it resumed from, else RUN/checkpoints
        uri = args.checkpoint_uri or (source.uri if source is not None else folder / "checkpoints")
        self.store = open_store(uri, args.keep_checkpoints) if dist.is_main else None
        self.start_step = int(resumed.metadata["step"]) if resumed is not None else 0
        self.step = self.start_step
        self.checkpoint: str | None = None
        self.interrupted: str | None = None
        self.logger = Logger(folder, args, args.track and dist.is_main,
                             purge_step=self.start_step if resumed is not None else None)
        self._watch = watcher(args.spot_metadata_url, args.spot_poll_s, dist).__enter__()
        self._last_saved = self.start_step
        self._bar = None
        self._start_time = time.time()

    @classmethod
    def start(cls, args, algo: str, data_parallel: bool = False) -> "Run":
        """Device, threads and seeds; the checkpoint to resume from (args.resume: checked to be `algo`'s
        and of this world size); the run folder, the checkpoint store, the logger, the interrupt
        watcher. `data_parallel`: under torchrun this process is one rank (the process group starts here);
        without it a run under torchrun is refused."""
        if data_parallel:
            dist = distributed.init("auto" if args.cuda else "cpu", args.dist_backend)
        elif distributed.under_torchrun():
            raise ValueError(f"{algo}: data-parallel training (--nproc, torchrun) is not supported; run it in one "
                             "process")
        else:
            dist = distributed.Dist()
        device = setup_torch(args.seed, "auto" if args.cuda else "cpu", args.torch_threads, args.torch_deterministic,
                             dist)
        source, resumed = resume_point(args.resume, args.checkpoint_uri, "algo", algo, dist)
        run = cls(args, algo, dist, device, source, resumed, run_folder(args, algo, resumed, dist))
        if dist.is_main:
            print(f"run folder: {run.folder}")
            print(f"checkpoints: {run.store.uri}" + (f" (resumed from {resumed.ref.uri})" if resumed else "")
                  + (f"; {dist.world_size} data-parallel ranks ({dist.backend})" if dist.enabled else ""))
        return run

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()  # on an error the process group stays as it is: other ranks may be mid-collective
        return False

    def begin(self) -> int:
        """The loop starts: a resumed run takes back this rank's RNG states (nothing draws a random number
        between here and the loop), the clock and the progress bar start. Returns the env step to start at."""
        if self.rank_state is not None:
            set_rng_state(self.rank_state["rng"])
        self._bar = tqdm(total=self.args.total_timesteps, initial=self.start_step, unit="step", unit_scale=True,
                         dynamic_ncols=True, disable=not (self.args.progress_bar and self.dist.is_main),
                         mininterval=0.5)
        self._start_time = time.time()
        return self.start_step

    def elapsed(self) -> float:
        """Seconds since the loop started."""
        return time.time() - self._start_time

    def sps(self, step: int) -> int:
        """Env steps per second since the loop started."""
        return int((step - self.start_step) / max(self.elapsed(), 1e-9))

    def end_iteration(self, step: int, save: Save, mean_return: float = float("nan")) -> bool:
        """The end of an iteration at env step `step` (all ranks together): the progress bar moves on;
        when any rank was asked to stop, every rank saves a final checkpoint and True says leave the loop;
        else a checkpoint every --save-freq env steps."""
        self._bar.update(step - self.step)
        self._bar.set_postfix(ret=f"{mean_return:.3g}", sps=self.sps(step), refresh=False)
        self.step = step
        reason = stop_reason(self._watch, self.dist)
        if reason is not None:
            self.interrupted = reason
            if self.dist.is_main:
                print(f"\n{reason}: stopping at step {step}, after a final checkpoint", flush=True)
            self.checkpoint = save(step, reason)
            return True
        if due(step, self._last_saved, self.args.save_freq):
            self.checkpoint = save(step, None)
            self._last_saved = step
        return False

    def save(self, step: int, reason: str | None, *, modules: dict, trainer: dict, rank_state: dict,
             metadata: dict, extra_state: dict | None = None) -> str:
        """A checkpoint of this run at `step`: `modules` as weights, `trainer` (what the ranks share),
        every rank's `rank_state` with its RNG states, `extra_state`, and in the metadata the algorithm,
        the arguments, the run folder and why it was saved besides the learner's `metadata`."""
        meta = {"algo": self.algo, **metadata, "args": args_to_dict(self.args), "run_dir": str(self.folder),
                "reason": reason}
        return save_checkpoint(self.store, step, self.dist, modules=modules, trainer=trainer,
                               rank_state={"rng": rng_state(), **rank_state}, metadata=meta, extra_state=extra_state)

    def close(self) -> None:
        """The progress bar, the logger and the interrupt watcher (their signal handlers) end."""
        if self._bar is not None:
            self._bar.close()
        self.logger.close()
        self._watch.__exit__(None, None, None)

    def finish(self, save: Save, modules: dict, episodes, **extra) -> dict:
        """The final checkpoint (unless a stop request already wrote it), everything closed, and the
        result. Data parallel: checks that every rank ends with the same weights (rank 0 writes
        RUN/ddp_sync.json with each rank's sha256 of them), averages the episode statistics (`episodes`:
        .returns, .lengths of the last episodes) over the ranks, and ends the process group."""
        if self.interrupted is None:
            self.checkpoint = save(self.step, None)
        self.close()
        dist = self.dist
        in_sync = dist.check_sync(modules, self.folder / "ddp_sync.json", step=self.step)
        ret_sum, ret_n, len_sum = dist.sum([sum(episodes.returns), len(episodes.returns), sum(episodes.lengths)])
        result = {"global_step": self.step, "episodic_return": ret_sum / ret_n if ret_n else float("nan"),
                  "episodic_length": len_sum / ret_n if ret_n else float("nan"), "sps": self.sps(self.step),
                  "run_dir": str(self.folder), "checkpoint": self.checkpoint,
                  "checkpoint_store": self.store.uri if self.store else None, "interrupted": self.interrupted,
                  "rank": dist.rank, "world_size": dist.world_size, "ranks_in_sync": in_sync,
                  "state_sha256": distributed.state_digest(modules), **extra}
        dist.close()
        return result


def resolve_args(cls, config: str | None = None, overrides: dict | None = None):
    """The arguments of a run: defaults < config file < overrides (command-line flags). Resuming
    without a config file starts from the arguments saved in the checkpoint's metadata, so
    `--resume RUN` (or `--resume s3://bucket/run`, or `--resume --checkpoint-uri URI`) alone continues
    the run as it was set up, from the store alone."""
    overrides = dict(overrides or {})
    migrate = getattr(cls, "migrate", lambda saved, recorded=False: saved)  # an older run's options -> today's
    layers: list[tuple[str, dict]] = []
    resume = overrides.get("resume")
    if config is None and resume:
        store, step = locate_checkpoint(resume, overrides.get("checkpoint_uri"))
        if step is None and resume == "latest" and store.latest() is None:
            return make_args(cls, ("command line", overrides))  # nothing saved yet: a new run (resume_point)
        manifest = store.manifest(step)
        base = manifest.get("metadata", {}).get("args")
        if not isinstance(base, dict):
            raise ValueError(f"resume: {store.uri} step {manifest['step']} holds no run arguments "
                             "(not a checkpoint of trader train)")
        saved = {k: v for k, v in base.items() if k != "resume"}
        layers.append((f"{store.uri} step {manifest['step']}", migrate(saved, recorded=True)))
    if config is not None:
        layers.append((str(config), migrate(load_config(config))))
    layers.append(("command line", overrides))
    env_id = next((layer["env_id"] for _, layer in reversed(layers) if layer.get("env_id") is not None),
                  getattr(cls, "env_id", None))
    if not (config is None and resume) and env_id == "trader":  # a new run on the trader env: the swept defaults
        from trader.rl.defaults import trader_defaults

        given = {k: v for _, layer in layers for k, v in layer.items()}
        layers.insert(0, ("trader.rl.defaults", trader_defaults(cls, given)))
    return make_args(cls, *layers)


def parse_args(cls, argv: list[str] | None = None):
    """CleanRL-style flags for a learner run as a script: --seed 1 --total-timesteps 100000 --no-cuda
    --config FILE ... (flags override the config file, which overrides the defaults)."""
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
