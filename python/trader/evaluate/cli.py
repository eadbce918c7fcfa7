"""`trader evaluate`: walk-forward folds x seeds, every agent trained by `trader train`'s entry and
tested by the backtest engine next to the baselines; one report folder.

The learner and env options are `trader train`'s own click options (taken from the train command, so
they stay one declaration); the options that the folds decide (data, seed, train fraction, run folder)
are evaluate's.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from trader.rl.cli import train

# train's options that evaluate sets per fold and seed, or that make no sense for a batch of short runs
_FOLD_SET = {"data", "seed", "train_fraction", "runs_dir", "progress_bar", "resume", "checkpoint_uri",
             "keep_checkpoints", "save_freq", "spot_metadata_url", "nproc", "dist_backend", "env", "cuda",
             "track_tensorboard"}


def _train_options(command: click.Command) -> click.Command:
    for param in train.params:
        if param.name not in _FOLD_SET:
            command.params.append(param)
    return command


@_train_options
@click.command("evaluate", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "datasets", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Dataset folder; repeat for several, in time order [default: the bundled sample].")
@click.option("--split", type=click.Choice(["blocks", "datasets"]), default="blocks", show_default=True,
              help="blocks: cut each dataset into --folds + 1 blocks, train on the past blocks, test on the next; "
                   "datasets: train on the datasets before each one, test on it whole.")
@click.option("--folds", type=int, default=3, show_default=True, help="blocks: test blocks per dataset.")
@click.option("--gap", type=int, default=0, show_default=True,
              help="blocks: rows between the last row a training episode may reach and the test block.")
@click.option("--seeds", type=int, default=5, show_default=True, help="Agents trained per fold (seeds --seed ...).")
@click.option("--seed", "base_seed", type=int, default=1, show_default=True, help="Seed of the first agent of each fold.")
@click.option("--jobs", type=int, default=1, show_default=True,
              help="Agents trained at once, each in its own process (results do not depend on it).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where the agents train and act.")
@click.option("--imbalance-threshold", type=float, default=0.6, show_default=True,
              help="Order-imbalance baseline: trade when |imbalance| exceeds this.")
@click.option("--quote-offset-ticks", type=int, default=0, show_default=True,
              help="Fixed-spread baseline (quote runs): quote this many ticks from each touch.")
@click.option("--as-gamma", type=float, default=0.01, show_default=True,
              help="Avellaneda-Stoikov baseline (quote runs): risk aversion, per tick per quote size.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Report folder [default: evaluations/{algo}__{time}].")
def evaluate(datasets, split, folds, gap, seeds, base_seed, jobs, device, imbalance_threshold, quote_offset_ticks,
             as_gamma, out, algo, config, **options):
    """Walk-forward evaluation: per fold, --seeds agents trained on the past, tested on the next unseen
    block next to the baselines; writes evaluation.md, evaluation.json and plots (agents' run folders
    under OUT/runs)."""
    from trader.evaluate.evaluation import Evaluation, EvaluationError

    if seeds < 1:
        raise click.BadParameter(f"expected 1 or more, got {seeds}", param_hint="--seeds")
    if jobs < 1:
        raise click.BadParameter(f"expected 1 or more, got {jobs}", param_hint="--jobs")
    algo = algo or "ppo"
    out_dir = Path(out) if out else Path("evaluations") / f"{algo}__{int(time.time())}"
    given = {k: v for k, v in options.items() if v is not None}
    try:
        ev = Evaluation.plan(list(datasets) or [None], split=split, folds=folds, gap=gap, seeds=seeds,
                             base_seed=base_seed, algo=algo, options=given, config=config, device=device,
                             out_dir=out_dir)
        ev.run(jobs=jobs, baselines=(imbalance_threshold, quote_offset_ticks, as_gamma))
    except EvaluationError as e:
        raise click.UsageError(str(e)) from None
    click.echo((out_dir / "evaluation.md").read_text())
    click.echo(f"wrote {out_dir}/evaluation.md, evaluation.json and plots; agents' runs in {out_dir}/runs")
