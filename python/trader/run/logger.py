"""Run folders: the one name every command gives them, {what}__{algo}__...__{date-time} under runs/
(CleanRL's runs/{env}__{algo}__{seed}__{time}, with the time as a date); a training run's folder with
its config.yaml; the TensorBoard scalars written into it."""

from __future__ import annotations

import re
import time
from pathlib import Path

from trader.run.config import args_to_dict


def _write_config(path: Path, args) -> None:
    import yaml

    (path / "config.yaml").write_text(yaml.safe_dump(args_to_dict(args), sort_keys=False))


def run_dir(parent: str | Path, *parts) -> Path:
    """PARENT/{part}__{part}__...__{YYYYmmdd-HHMMSS}, local time (`trader train`: trader__ppo__0__...,
    `train-encoder`: encoder__tcn+deeplob__..., `evaluate`: evaluate__ppo__...); -1, -2, ... appended
    when a folder of that name exists (two runs started within the same second)."""
    name = "__".join(re.sub(r"[^A-Za-z0-9_.+-]+", "-", str(p)) for p in (*parts, time.strftime("%Y%m%d-%H%M%S")))
    base = path = Path(parent) / name
    n = 1
    while path.exists():
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    return path


def new_run_folder(args, algo: str) -> Path:
    """A new run folder with the run's config.yaml: args.out, else runs_dir/{env}__{algo}__{seed}__{date-time}.
    An --out folder that holds files is refused (its run is continued with --resume)."""
    if args.out:
        path = Path(args.out)
        if path.is_dir() and any(path.iterdir()):
            raise ValueError(f"--out: {path} is not empty; continue the run there with --resume {path}, or give "
                             "another folder")
    else:
        path = run_dir(args.runs_dir, args.env_id, algo, args.seed)
    path.mkdir(parents=True, exist_ok=True)
    _write_config(path, args)
    return path


def run_folder(args, algo: str, resumed, dist) -> Path:
    """Rank 0: a new run folder, or the resumed run's (`resumed`: its Checkpoint), recreated under
    runs_dir when it is not on this machine (a resume from S3 elsewhere, say). Every rank gets the path."""
    def make() -> str:
        if resumed is None:
            return str(new_run_folder(args, algo))
        path = Path(resumed.metadata.get("run_dir", ""))
        if not path.is_dir():
            path = Path(args.out) if args.out else Path(args.runs_dir) / (path.name or f"resumed__{algo}")
            path.mkdir(parents=True, exist_ok=True)
            if not (path / "config.yaml").exists():
                _write_config(path, args)
        return str(path)

    return Path(dist.run_on_main(make))


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
