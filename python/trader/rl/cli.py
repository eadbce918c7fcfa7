"""`trader train`: train PPO, SAC or MADDPG on the trading env or a standard task.

Options are CleanRL / RL Zoo flag names. Every learner option (see `python -m trader.rl.ppo --help`)
can also be set in a --config file (YAML or JSON); flags given on the command line override the
file, which overrides the learner's defaults. `--resume RUN` alone continues a run with its saved config;
`--resume --checkpoint-uri s3://bucket/run` (or `--resume s3://bucket/run`) continues it from S3 alone.
`--nproc N` trains PPO data-parallel in N processes under torchrun (see trader.rl.distributed).
"""

from __future__ import annotations

import importlib
import sys

import click

from trader.rl import ALGOS, distributed
from trader.rl.common import resolve_args

# click parameter name -> learner Args field, where they differ
_RENAMED = {"env": "env_id", "track_tensorboard": "track"}


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--algo", type=click.Choice(ALGOS), default=None,
              help="learner [default: ppo; with --resume, the checkpoint's]")
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
@click.option("--checkpoint-uri", "--checkpoint-dir", "checkpoint_uri", default=None, metavar="URI",
              help="where checkpoints go: a folder or s3://bucket/prefix (S3 endpoint from AWS_ENDPOINT_URL, "
                   "credentials from boto3's chain) [default: RUN/checkpoints]")
@click.option("--keep-checkpoints", type=click.IntRange(min=0), default=None,
              help="checkpoints kept in the store, the newest; 0: all [default: 3]")
@click.option("--save-freq", type=int, default=None,
              help="env steps between checkpoints; 0: only the final one (and one on SIGTERM, SIGINT or a spot "
                   "notice) [default: 0]")
@click.option("--resume", is_flag=False, flag_value="latest", default=None, metavar="[URI]",
              help="continue a run: alone, from the latest checkpoint of --checkpoint-uri; or from a run folder, "
                   "a checkpoint store (folder or s3://bucket/prefix) or one checkpoint in it (.../step_N). "
                   "Without --config the run's saved options are used")
@click.option("--spot-metadata-url", default=None, metavar="URL",
              help="poll this instance metadata address for spot interruption notices and stop with a final "
                   "save ('aws': http://169.254.169.254) [default: env TRADER_SPOT_METADATA_URL, else off]")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="data-parallel processes (ppo): runs torchrun --nproc-per-node N over this command; each "
                   "process steps --num-envs envs, one per GPU on cuda (NCCL), gloo on the CPU")
@click.option("--dist-backend", type=click.Choice(["auto", "gloo", "nccl"]), default=None,
              help="torch.distributed backend with --nproc / torchrun [default: auto: nccl on cuda, else gloo]")
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
def train(algo: str | None, config: str | None, nproc: int, **options) -> None:
    """Train an agent; writes runs/{env}__{algo}__{seed}__{time} (TensorBoard scalars, config) and its
    checkpoints (RUN/checkpoints or --checkpoint-uri). SIGTERM, SIGINT or a spot notice stop it with a
    final checkpoint (exit status 0; 130 after SIGINT); --resume continues from there."""
    if algo is None:
        algo = _resumed_algo(options["resume"], options["checkpoint_uri"]) if options["resume"] else "ppo"
    if nproc > 1:
        if algo != "ppo":
            raise click.UsageError(f"--nproc: data-parallel training is supported for ppo, not {algo}")
        if distributed.under_torchrun():
            raise click.UsageError("--nproc: already running under torchrun")
        _launch(click.get_current_context(), nproc)
        return
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
    if result["rank"] == 0:
        _report(result)
        distributed.write_result(result)
    code = distributed.exit_code(result["interrupted"])
    if code:
        sys.exit(code)


def _resumed_algo(resume: str, checkpoint_uri: str | None) -> str:
    from trader.rl.common import locate_checkpoint
    from trader.store import StoreError

    try:
        store, step = locate_checkpoint(resume, checkpoint_uri)
        algo = store.manifest(step).get("metadata", {}).get("algo")
    except (ValueError, FileNotFoundError, StoreError) as e:
        raise click.UsageError(f"--resume: {e}") from None
    if algo not in ALGOS:
        raise click.UsageError(f"--resume: {resume} is not a checkpoint of trader train (algo {algo!r})")
    return algo


def _report(result: dict) -> None:
    click.echo(f"steps: {result['global_step']}  mean episodic return (last 100 episodes): "
               f"{result['episodic_return']:.6g}  steps/s: {result['sps']}")
    if result["world_size"] > 1:
        click.echo(f"data parallel: {result['world_size']} ranks, weights identical on every rank: "
                   f"{result['ranks_in_sync']}")
    click.echo(f"run folder: {result['run_dir']}")
    if result["interrupted"]:
        click.echo(f"stopped by {result['interrupted']} at step {result['global_step']}; "
                   f"checkpoint saved: {result['checkpoint']}")
        nproc = f" --nproc {result['world_size']}" if result["world_size"] > 1 else ""
        click.echo(f"resume with: trader train{nproc} --resume {result['checkpoint_store']}")
    else:
        click.echo(f"final checkpoint: {result['checkpoint']}")


def command_line(ctx: click.Context, drop: tuple[str, ...] = ("nproc",)) -> list[str]:
    """The options given to this command (on its command line or from the environment), as arguments
    again, without `drop`: what the launched processes run."""
    from click.core import ParameterSource

    argv: list[str] = []
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name in drop:
            continue
        if ctx.get_parameter_source(param.name) not in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            continue
        value = ctx.params[param.name]
        if value is None:
            continue
        if param.is_bool_flag and param.secondary_opts:
            argv.append(param.opts[0] if value else param.secondary_opts[0])
        elif param.is_flag and not param.secondary_opts and isinstance(value, bool):
            if value:
                argv.append(param.opts[0])
        elif param.multiple:
            for v in value:
                argv += [param.opts[0], str(v)]
        else:
            argv += [param.opts[0], str(value)]
    return argv


def _launch(ctx: click.Context, nproc: int, command: str = "train") -> None:
    """torchrun --nproc-per-node N -m trader.cli COMMAND (these options); exit with the run's status."""
    argv = command_line(ctx)
    click.echo(f"launching {nproc} processes: torchrun --nproc-per-node {nproc} -m trader.cli {command} "
               + " ".join(argv))
    rc, result = distributed.launch(nproc, ["trader.cli", command, *argv])
    if result is None:
        raise click.ClickException(f"the data-parallel run failed (torchrun exit status {rc}); see the output above")
    code = distributed.exit_code(result.get("interrupted"))
    if not result.get("interrupted") and rc != 0:
        code = rc
    sys.exit(code)
