"""`trader train`: train PPO, SAC or MADDPG on the trading env or a standard task.

Options are CleanRL / RL Zoo flag names. Every learner option (see `python -m trader.rl.ppo --help`)
can also be set in a --config file (YAML or JSON); flags given on the command line override the
file, which overrides the learner's defaults. `--resume RUN` alone continues a run with its saved config.
"""

from __future__ import annotations

import importlib

import click

from trader.rl import ALGOS
from trader.rl.common import resolve_args

# click parameter name -> learner Args field, where they differ
_RENAMED = {"env": "env_id", "track_tensorboard": "track"}


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--algo", type=click.Choice(ALGOS), default="ppo", help="learner")
@click.option("--env", "--env-id", "env", default=None,
              help="trader (order-book env), a gymnasium id (CartPole-v1, Pendulum-v1, ...) or mpe2:NAME "
                   "[default: trader]")
@click.option("--data", type=click.Path(exists=True, file_okay=False), default=None,
              help="trader: dataset folder [default: the bundled sample]")
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML or JSON file of learner options (flags given here override it)")
@click.option("--seed", type=int, default=None, help="seed of the experiment [default: 1]")
@click.option("--total-timesteps", type=int, default=None, help="total env steps [default: per algorithm]")
@click.option("--num-envs", type=int, default=None, help="parallel envs [default: per algorithm]")
@click.option("--num-threads", type=int, default=None, help="trader: worker threads of the env pool [default: 1]")
@click.option("--learning-rate", type=float, default=None, help="learning rate [default: per algorithm]")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False), default=None,
              help="where checkpoints go [default: RUN/checkpoints]")
@click.option("--save-freq", type=int, default=None, help="env steps between checkpoints, 0: final only [default: 0]")
@click.option("--resume", type=click.Path(exists=True), default=None,
              help="continue from a checkpoint file, checkpoint folder or run folder")
@click.option("--curiosity", type=click.Choice(["none", "rnd", "icm"]), default=None,
              help="intrinsic reward [default: none]")
@click.option("--curiosity-coef", type=float, default=None, help="weight of the intrinsic reward [default: 0.01]")
@click.option("--cuda/--no-cuda", default=None, help="use cuda or mps when there is one [default: --cuda]")
@click.option("--track-tensorboard/--no-track-tensorboard", default=None,
              help="write TensorBoard scalars into the run folder [default: on]")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None,
              help="parent of run folders [default: runs]")
@click.option("--horizon", type=int, default=None, help="trader: steps per episode [default: 500]")
@click.option("--fee-bps", type=float, default=None, help="trader: taker fee in basis points [default: 1.0]")
@click.option("--trade-size", type=float, default=None, help="trader: size of one order, base units [default: 0.01]")
@click.option("--max-position", type=float, default=None, help="trader: |position| limit, base units [default: 0.1]")
@click.option("--continuous/--discrete", default=None,
              help="trader: target-position actions in [-1, 1] instead of hold/buy/sell [default: discrete]")
@click.option("--num-agents", type=int, default=None, help="trader, maddpg: agents sharing each book [default: 2]")
@click.option("--train-fraction", type=float, default=None,
              help="trader: episodes use the first fraction of the rows; the rest is held out [default: 0.7]")
@click.option("--progress-bar/--no-progress-bar", default=None, help="show a progress bar [default: on]")
def train(algo: str, config: str | None, **options) -> None:
    """Train an agent; writes runs/{env}__{algo}__{seed}__{time} (TensorBoard scalars, checkpoints)."""
    learner = importlib.import_module(f"trader.rl.{algo}")
    given = {_RENAMED.get(k, k): v for k, v in options.items() if v is not None}
    try:
        args = resolve_args(learner.Args, config, given)
    except (ValueError, FileNotFoundError) as e:
        raise click.UsageError(str(e)) from None
    try:
        result = learner.train(args)
    except ValueError as e:  # bad option combinations found when the env is built
        raise click.UsageError(str(e)) from None
    click.echo(f"steps: {result['global_step']}  mean episodic return (last 100 episodes): "
               f"{result['episodic_return']:.6g}  steps/s: {result['sps']}")
    click.echo(f"run folder: {result['run_dir']}")
    click.echo(f"final checkpoint: {result['checkpoint']}")

