"""`trader train`: train PPO, SAC or MADDPG on the trading env or a standard task.

Options are CleanRL / RL Zoo flag names. Every learner option (see `python -m trader.rl.ppo --help`)
can also be set in a --config file (YAML or JSON); flags given on the command line override the
file, which overrides the learner's defaults. `--resume RUN` alone continues a run with its saved config;
`--resume --checkpoint-uri s3://bucket/run` (or `--resume s3://bucket/run`) continues it from S3 alone.
`--nproc N` trains a data-parallel learner (PPO) in N processes under torchrun (see trader.run.distributed).
The trader env's options are flags generated from its declaration (trader.sim.flags).
"""

from __future__ import annotations

import dataclasses
import os
import sys

import click

from trader.evaluate.choose import CHOOSE_AMONG
from trader.options import SEED, feature_set_option
from trader.rl.committee import COMMITTEE_MIN_SEEDS
from trader.rl.policy import ALGOS, learner
from trader.run import distributed
from trader.run.checkpoints import locate_checkpoint
from trader.run.config import load_config
from trader.run.interrupt import exit_code
from trader.run.launch import relaunch, write_result
from trader.run.lifecycle import resolve_args
from trader.sim.flags import env_options, flag_message, pop_env_values
from trader.store import StoreError

# click parameter name -> learner Args field, where they differ
_RENAMED = {"env": "env_id", "track_tensorboard": "track"}


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--algo", type=click.Choice(ALGOS), default=None,
              help="learner [default: ppo; with --resume, the checkpoint's]")
@click.option("--env", "--env-id", "env", default=None,
              help="trader (order-book env), a gymnasium id (CartPole-v1, Pendulum-v1, ...) or mpe2:NAME "
                   "[default: trader]")
@click.option("--data", type=click.Path(exists=True, file_okay=False), multiple=True,
              help="trader: dataset folder, collection or folder of datasets; repeat it to train on several "
                   "(episodes never cross from one dataset to another) [default: the bundled sample]")
@click.option("--train-also", type=click.Path(exists=True, file_okay=False), multiple=True,
              help="trader: dataset folder(s) also trained on, all their rows: no held-out tail, --train-fraction "
                   "cuts --data only (other recordings add to training; --data keeps its tail for trader backtest)")
@click.option("--mirror/--no-mirror", default=None,
              help="trader: also train on each dataset's mirror image (prices reflected, bids <-> asks), drawn as "
                   "one more dataset: no side of the training days is learned as a side [default: off]")
@click.option("--encoder", type=click.Path(exists=True, file_okay=False), default=None,
              help="trader: an encoder folder of trader train-encoder (RUN/MODEL or RUN/MODEL/best); the agent "
                   "observes its embeddings plus the account features, and backtests and live runs use it too")
@click.option("--encoder-with-features/--encoder-alone", default=None,
              help="trader, with --encoder: observe the book features (--feature-set) beside its embeddings, or its "
                   "embeddings alone [default: alone]")
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML or JSON file of learner options (flags given here override it)")
@click.option("--seed", type=int, default=None, help=f"seed of the experiment [default: {SEED}]")
@click.option("--total-timesteps", type=int, default=None, help="total env steps [default: per algorithm]")
@click.option("--num-envs", type=int, default=None, help="parallel envs [default: per algorithm]")
@click.option("--num-threads", type=int, default=None, help="trader: worker threads of the env pool [default: 1]")
@click.option("--learning-rate", type=float, default=None, help="learning rate [default: per algorithm]")
@click.option("--checkpoint-uri", default=None, metavar="URI",
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
@click.option("-o", "--out", type=click.Path(file_okay=False), default=None,
              help="the run folder (config, TensorBoard scalars, checkpoints) [default: "
                   "runs/{env}__{algo}__{seed}__{date-time}]")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None, hidden=True,
              help="deprecated: the parent of the generated run folder; use -o/--out for the folder itself")
@env_options()
@click.option("--interval-ms", type=float, default=None,
              help="trader: the env's rows (its step) are the book sampled every this many ms; refused below half "
                   "the data's own update spacing unless given on purpose [default: 100]")
@feature_set_option("1; with --resume, the run's")
@click.option("--train-fraction", type=float, default=None,
              help="trader: episodes use the first fraction of the rows; the rest is held out [default: 0.7]")
@click.option("--progress-bar/--no-progress-bar", default=None, help="show a progress bar [default: on]")
@click.option("--validation-s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="trader, one dataset: train --choose-among agents (seeds SEED, SEED+1, ...) without the last "
                   "SECONDS of the training rows, backtest each on them and keep the best (trader.rl.choose): "
                   "OUT/choice.json names it and OUT stands for it as --checkpoint of backtest and live")
@click.option("--choose-among", type=click.IntRange(min=2), default=None,
              help=f"--validation-s: agents to train and choose from [default: {CHOOSE_AMONG}]")
@click.option("--committee", type=click.IntRange(min=COMMITTEE_MIN_SEEDS), default=None, metavar="K",
              help="trader, one dataset: train K agents (seeds SEED, SEED+1, ...) and make their committee the run's "
                   "agent (at every step what a strict majority of their actions backs; trader.rl.train_committee), "
                   "each member and the committee backtested on the held-out rows: OUT/committee.json names the "
                   "members and OUT stands for their committee as --checkpoint of backtest and live")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="--validation-s, --committee: agents trained at once (processes) [default: 1]")
def train(algo: str | None, config: str | None, nproc: int, validation_s: float | None, choose_among: int | None,
          committee: int | None, jobs: int | None, **options) -> None:
    """Train an agent; writes its run folder (-o/--out, default runs/{env}__{algo}__{seed}__{date-time}:
    config, TensorBoard scalars) and its checkpoints (RUN/checkpoints or --checkpoint-uri). SIGTERM, SIGINT
    or a spot notice stop it with a final checkpoint (exit status 0; 130 after SIGINT); --resume continues
    from there."""
    if choose_among is not None and validation_s is None:
        raise click.UsageError("--choose-among: give it with --validation-s (agents chosen on those seconds)")
    if jobs is not None and validation_s is None and committee is None:
        raise click.UsageError("--jobs: give it with --validation-s or --committee (the agents trained at once)")
    if validation_s is not None and committee is not None:
        raise click.UsageError("--committee: the run's agent is the committee of its seeds, and --validation-s "
                               "chooses one of them; give one of the two")
    seeds = ("--validation-s: each of the --choose-among agents" if validation_s is not None else
             "--committee: each member" if committee is not None else None)
    if seeds and (options["resume"] or options["checkpoint_uri"] or nproc > 1):
        raise click.UsageError(f"{seeds} is a run of its own under OUT/seeds, with its checkpoints there; give no "
                               "--resume, --checkpoint-uri or --nproc")
    if algo is None:
        algo = _resumed_algo(options["resume"], options["checkpoint_uri"]) if options["resume"] else "ppo"
    module = learner(algo)
    if nproc > 1:
        if not module.DATA_PARALLEL:
            raise click.UsageError(f"--nproc: {algo} trains in one process; data-parallel training is for "
                                   + ", ".join(a for a in ALGOS if learner(a).DATA_PARALLEL))
        if distributed.under_torchrun():
            raise click.UsageError("--nproc: already running under torchrun")
        relaunch(click.get_current_context(), nproc, "train")
        return
    if options["runs_dir"] is not None:
        click.echo("note: --runs-dir is deprecated; use -o/--out RUN_FOLDER", err=True)
    env = pop_env_values(options)
    given = {_RENAMED.get(k, k): v for k, v in options.items() if v is not None and v != ()} | env
    try:
        args = resolve_args(module.Args, config, given)
    except (ValueError, FileNotFoundError) as e:
        raise click.UsageError(str(e)) from None
    try:
        _check_run(algo, args, {*given, *(load_config(config) if config else {})})
    except ValueError as e:
        raise click.UsageError(flag_message(str(e))) from None
    if validation_s is not None:
        _choose(algo, args, {**(load_config(config) if config else {}), **given}, validation_s,
                CHOOSE_AMONG if choose_among is None else choose_among, jobs or 1)
        return
    if committee is not None:
        _committee(algo, args, {**(load_config(config) if config else {}), **given}, committee, jobs or 1)
        return
    try:
        result = module.train(args)
    except ValueError as e:  # bad option combinations found when the env is built
        raise click.UsageError(flag_message(str(e))) from None
    if result["rank"] == 0:
        _report(result)
        write_result(result)
    code = exit_code(result["interrupted"])
    if code:
        sys.exit(code)


def _seeds_run(flag: str, why: str, name: str, algo: str, args, options: dict, k: int, train) -> tuple:
    """--validation-s or --committee (`flag`): k agents of one dataset's run trained into OUT/seeds by
    `train(keep, data, out, progress)`, which returns what the run writes; (that, OUT). `why`: why one dataset;
    `name`: the default folder's prefix."""
    from pathlib import Path

    from trader.run.logger import run_dir
    from trader.sim.env import dataset_folders

    if args.env_id != "trader":
        raise click.UsageError(f"{flag}: the agents are tested on the trader env's rows, not on {args.env_id}")
    folders = dataset_folders(args.data) if args.data else [None]
    if len(folders) != 1:
        raise click.UsageError(f"{flag}: give one dataset ({why}), got {len(folders)}")
    out = Path(args.out) if args.out else run_dir(args.runs_dir, name, algo, args.seed)
    if out.is_dir() and any(out.iterdir()):
        raise click.UsageError(f"-o/--out: {out} already holds files; give a new folder")
    keep = {k: v for k, v in options.items() if k not in ("out", "runs_dir", "seed", "data")}
    bar = None
    if args.progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=k, unit="agent", desc="agents")
    try:
        return train(keep, str(folders[0]) if folders[0] else None, out,
                     (lambda done, total, what: bar.update(1)) if bar else None), out
    except ValueError as e:
        raise click.UsageError(flag_message(str(e))) from None
    finally:
        if bar:
            bar.close()


def _value(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.2f}"


def _choose(algo: str, args, options: dict, validation_s: float, k: int, jobs: int) -> None:
    """--validation-s: k agents, the best on the validation block kept (trader.rl.choose)."""
    from trader.rl.choose import train_and_choose

    choice, out = _seeds_run(
        "--validation-s", "the validation block is the last seconds of its training rows; trader evaluate "
        "--validation-s takes several", "choose", algo, args, options, k,
        lambda keep, data, out, progress: train_and_choose(algo, keep, data, args.seed, validation_s, k, out, jobs,
                                                           progress))
    metric = choice["metric"]
    click.echo(f"validation: {choice['validation']}; {metric}:")
    for seed, s in choice["seeds"].items():
        click.echo(f"  seed {seed}: {_value(s[metric])} ({s['trades']:g} trades)  {out / s['run_dir']}")
    click.echo("  baselines: " + ", ".join(f"{n} {v:+.2f}" for n, v in sorted(choice["baselines"].items())))
    chosen = choice["chosen"]
    click.echo(f"chosen: seed {chosen['seed']}, {out / chosen['run_dir']}")
    click.echo(f"wrote {out}/choice.json; backtest it with: trader backtest --checkpoint {out}")


def _committee(algo: str, args, options: dict, k: int, jobs: int) -> None:
    """--committee: k agents whose committee is the run's agent (trader.rl.train_committee)."""
    from trader.rl.train_committee import train_committee

    committee, out = _seeds_run(
        "--committee", "the members and their committee are tested on its held-out rows; trader evaluate --seeds "
        "tests committees walk-forward over several", "committee", algo, args, options, k,
        lambda keep, data, out, progress: train_committee(algo, keep, data, args.seed, k, out, jobs, progress))
    metric = committee["metric"]
    click.echo(f"held out: {committee['held_out']}; {metric}:")
    for seed, s in committee["members"].items():
        click.echo(f"  seed {seed}: {_value(s[metric])} ({s['trades']:g} trades)  {out / s['run_dir']}")
    c = committee["committee"]
    click.echo(f"  the committee of the {k}: {_value(c[metric])} ({c['trades']:g} trades)")
    click.echo("  baselines: " + ", ".join(f"{n} {v:+.2f}" for n, v in sorted(committee["baselines"].items())))
    click.echo(f"wrote {out}/committee.json; the folder is their committee: trader backtest --checkpoint {out}, "
               f"trader live --checkpoint {out}")


def _check_run(algo: str, args, given: set[str]) -> None:
    """Refuse, before a run folder is made, a run that cannot learn (issue 17): no env steps, no envs, an
    unknown env id, a budget below one PPO update or ending before SAC's / MADDPG's first update, the
    default 100 ms grid over data that changes far less often; say so when PPO's whole updates leave
    part of the budget unused (`given`: the options given as flags or in the config file)."""
    if args.total_timesteps < 1:
        raise ValueError(f"--total-timesteps: expected >= 1 env steps, got {args.total_timesteps}")
    if args.num_envs < 1:
        raise ValueError(f"--num-envs: expected >= 1 envs, got {args.num_envs}")
    if args.env_id != "trader" and not args.env_id.startswith("mpe2:"):
        import gymnasium as gym

        try:
            gym.spec(args.env_id)
        except gym.error.Error as e:
            raise ValueError(f"--env: {e} (expected trader, mpe2:NAME or a gymnasium id such as CartPole-v1)") from None
    if args.env_id == "trader":  # the env's options, checked as the C++ pool will
        from trader.rl.args import TraderEnvArgs
        from trader.sim import spec

        spec.check_config(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TraderEnvArgs)})
        check_interval(args, "interval_ms" in given)
    steps = args.total_timesteps
    if algo == "ppo":  # one update = num_envs x num_steps env steps on each data-parallel rank
        ranks = int(os.environ.get("WORLD_SIZE", "1"))
        update = args.num_envs * args.num_steps * ranks
        how = f"--num-envs {args.num_envs} x num_steps {args.num_steps}" + (f" x {ranks} ranks" if ranks > 1 else "")
        if steps < update:
            raise ValueError(f"--total-timesteps: {steps} env steps are below one PPO update ({how} = {update}); "
                             f"give at least {update}")
        if steps % update:
            click.echo(f"note: PPO trains in whole updates of {update} env steps ({how}): --total-timesteps {steps} "
                       f"runs {steps // update * update} steps", err=True)
    elif steps <= args.learning_starts:  # sac, maddpg: no update before learning_starts env steps
        raise ValueError(f"--total-timesteps: {steps} env steps end before {algo.upper()}'s first update after its "
                         f"warm-up of learning_starts = {args.learning_starts} env steps; raise --total-timesteps "
                         "or set learning_starts lower in --config")


def check_interval(args, given: bool) -> None:
    """--interval-ms against each dataset's own book update spacing: a 1-minute dataset sampled on the
    default 100 ms grid would repeat every book 600 times (issue 17). Refused when the grid is the
    default, a warning when it was given; a resumed run keeps its grid. Also trader evaluate's check."""
    from trader.sim.env import book_spacing_ms, dataset_folders

    if not args.interval_ms > 0:
        raise ValueError(f"--interval-ms: expected a grid > 0 ms, got {args.interval_ms}")
    also = getattr(args, "train_also", None) or []
    if args.resume or any(not isinstance(d, (str, os.PathLike)) for d in [*(args.data or []), *also]):
        return
    try:
        extra = dataset_folders(also) if also else []
    except ValueError as e:
        raise ValueError(f"--train-also: {e}") from None
    for folder in [*(dataset_folders(args.data) if args.data else [None]), *extra]:
        spacing = book_spacing_ms(folder)
        if spacing is None or args.interval_ms >= spacing / 2:
            continue
        what = (f"{folder or 'the bundled sample'} updates its book every {spacing:g} ms (median): a {args.interval_ms:g} "
                f"ms grid repeats each book about {spacing / args.interval_ms:.0f} times")
        if not given:
            raise ValueError(f"--interval-ms: {what}; give --interval-ms {spacing:g} (the data's spacing), or a finer "
                             "grid on purpose")
        click.echo(f"warning: --interval-ms {args.interval_ms:g}: {what}", err=True)


def _resumed_algo(resume: str, checkpoint_uri: str | None) -> str:
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
