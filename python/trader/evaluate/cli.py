"""`trader evaluate`: walk-forward evaluation of an algorithm on data it never trained on.

    trader evaluate --data DAY --folds 3 --seeds 5 --algo ppo --actions quote --total-timesteps 200000
    trader evaluate --data DAY1 --data DAY2 --data DAY3 --seeds 5   # datasets in time order

Writes evaluation.md, evaluation.json and plots into -o/--out (default runs/evaluate__{algo}__{date-time}), with
every fold's runs and finished jobs under fold_N/ (`--resume` goes on with a killed evaluation from them).
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import click
from click.core import ParameterSource

from trader.evaluate.choose import CHOOSE_AMONG
from trader.options import SEED, feature_set_option, out_option
from trader.rl.committee import COMMITTEE_MIN_SEEDS
from trader.rl.policy import ALGOS
from trader.run.logger import run_dir
from trader.sim.flags import env_options, flag_message, pop_env_values


def _datasets(data: tuple[str, ...]) -> list[str | None]:
    """The dataset folders in the order given; a collection folder (index.json) stands for its parts."""
    from trader.data.dataset import load_collection

    if not data:
        return [None]
    out: list[str | None] = []
    for d in data:
        if (Path(d) / "index.json").is_file():
            out += [str(p.path) for p in load_collection(d, mmap=True)]
        else:
            out.append(d)
    return out


def check_outside_tests(flag: str, paths: list[str | None], plan_folds, by_path: dict, run_args,
                        allow_overlap: bool) -> None:
    """Data trained on beside the folds' own rows (--train-also, the encoder's): no such dataset is a test dataset,
    and (unless allow_overlap) none spans the time of a test block, so that no fold learns from its test rows or
    from the market of its test period (issue 13)."""
    from trader.sim import load_market

    def key(p):
        return str(Path(p).resolve()) if p else "sample"

    tests = {key(f.test_data) for f in plan_folds}
    for p in paths:
        if key(p) in tests:
            raise ValueError(f"{flag} {p or 'the bundled sample'}: it is a test dataset of this evaluation; "
                             "every fold would learn from its test rows")
        if allow_overlap:
            continue
        if p and not Path(p).is_dir():  # an encoder's data moved since it trained
            raise ValueError(f"{flag} {p}: no such folder, so its time cannot be checked against the test blocks; "
                             "give it back at that path, or --allow-overlap")
        ts = load_market(p, feature_set=run_args.feature_set, interval_ms=run_args.interval_ms).ts
        for f in plan_folds:
            test_ts = by_path[f.test_data].ts
            lo, hi = int(test_ts[f.test_start]), int(test_ts[f.test_end])
            if int(ts[0]) <= hi and lo <= int(ts[-1]):
                raise ValueError(f"{flag} {p or 'the bundled sample'}: its rows span the test block of fold {f.index} "
                                 f"({f.test_data or 'sample'} rows {f.test_start}..{f.test_end}); give data of other "
                                 "times, or --allow-overlap for a cross-instrument test")


@click.command("evaluate", context_settings={"show_default": True})
@click.option("--data", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="dataset folder(s) in time order (a collection folder counts as its parts); one dataset is cut "
                   "into --folds + 1 blocks [default: the bundled sample]")
@click.option("--folds", type=click.IntRange(min=1), default=3,
              help="one dataset: walk-forward folds (fold i trains on blocks 0..i-1, tests on block i; with "
                   "--tail-s, the blocks of its tail)")
@click.option("--tail-s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="one dataset: test only its last SECONDS, cut into --folds blocks; fold i trains on every row "
                   "before its block (a held-out check on the end of a recording whose start other runs used)")
@click.option("--seeds", type=click.IntRange(min=1), default=5, help="agents per fold (seeds --first-seed..+N-1)")
@click.option("--first-seed", type=click.IntRange(min=0), default=SEED,
              help="the first agent's seed: to split an evaluation's seeds over machines, give each its own range, "
                   "gather their fold_*/seed_*.job.pkl in one --out and run all the seeds there with --resume")
@click.option("--algo", type=click.Choice(ALGOS), default="ppo", help="learner")
@click.option("--config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML or JSON file of learner options (as trader train takes)")
@click.option("--total-timesteps", type=click.IntRange(min=1), default=None,
              help="env steps per agent [default: the learner's]")
@click.option("--num-envs", type=click.IntRange(min=1), default=None, help="parallel envs [default: the learner's]")
@click.option("--num-threads", type=click.IntRange(min=1), default=None, help="env pool threads [default: 1]")
@click.option("--learning-rate", type=float, default=None, help="[default: the learner's]")
@click.option("--encoder", type=click.Path(exists=True, file_okay=False), default=None,
              help="an encoder of trader train-encoder: agents observe its embeddings (evaluate with and without "
                   "it to see whether embeddings help); refused when its run trained on a test dataset or, unless "
                   "--allow-overlap, on data over a test block's time")
@click.option("--encoder-with-features/--encoder-alone", default=None,
              help="with --encoder: agents observe the book features (--feature-set) beside its embeddings, or its "
                   "embeddings alone (as trader train's) [default: alone]")
@click.option("--mirror/--no-mirror", default=None,
              help="agents also train on each training dataset's mirror image (as trader train --mirror); the "
                   "tests stay on the recordings [default: off]")
@env_options()
@feature_set_option("train's; 2 or 3 with --train-window > 1 over several instruments")
@click.option("--interval-ms", type=click.FloatRange(min=0, min_open=True), default=None,
              help="the env's rows: the book sampled every this many ms, as trader train's [default: 100]")
@click.option("--train-window", type=click.IntRange(min=1), default=1,
              help="datasets: each fold trains on this many datasets before its test dataset, together (episodes "
                   "never cross from one to another)")
@click.option("--train-also", type=click.Path(exists=True, file_okay=False), multiple=True,
              help="dataset folder(s) every fold also trains on, all their rows (other recordings: leave one "
                   "recording out and walk forward on it); refused when one is a test dataset or its time span "
                   "overlaps a test block's, unless --allow-overlap")
@click.option("--allow-overlap", is_flag=True,
              help="datasets: allow a test dataset that starts before its training dataset ends, and --train-also "
                   "data or the encoder's training data over a test block's time (other instruments over the same "
                   "time: a cross-instrument test, not walk-forward)")
@click.option("--validation-s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="choose among seeds (trader.evaluate.choose): every agent trains without the last SECONDS of its "
                   "training rows and is backtested on them; in each fold, of every --choose-among seeds the one "
                   "best there is tested")
@click.option("--choose-among", type=click.IntRange(min=1), default=None,
              help="--validation-s: seeds per group (--seeds must be a multiple); a group is one seed of the report "
                   f"[default: {CHOOSE_AMONG}]")
@click.option("--imbalance-threshold", type=float, default=0.6, help="order-imbalance baseline threshold")
@click.option("--quote-offset-ticks", type=int, default=0, help="fixed-spread baseline: ticks from the touch")
@click.option("--as-gamma", type=float, default=0.01, help="Avellaneda-Stoikov baseline risk aversion")
@click.option("--jobs", type=click.IntRange(min=1), default=1, help="fold x seed jobs run at once (processes)")
@click.option("--cuda/--no-cuda", default=False, help="train on cuda when there is one")
@out_option("report folder [default: runs/evaluate__{algo}__{date-time}]")
@click.option("--resume", is_flag=True,
              help="take back the fold x seed jobs an earlier run of the same evaluation finished in --out (a killed "
                   "evaluation goes on where it stopped; a job of other options there is an error)")
@click.option("--committee/--no-committee", default=True,
              help=f"also test, per fold, the committee of its seeds (with {COMMITTEE_MIN_SEEDS} or more): one agent "
                   "that takes at every step what a strict majority of the seeds' actions backs (trader.rl.committee)")
@click.option("--progress-bar/--no-progress-bar", default=True, help="show a progress bar over folds x seeds")
def evaluate(data, folds, tail_s, seeds, first_seed, algo, config, train_window, train_also, allow_overlap,
             validation_s, choose_among, imbalance_threshold, quote_offset_ticks, as_gamma, jobs, cuda, out, resume, committee,
             progress_bar, **options):
    """Walk-forward evaluation: every fold trains --seeds agents on its past and backtests them and every
    baseline on its next, unseen block through the `trader backtest` engine; reports means over seeds with
    bootstrap 95 % intervals, the agent minus the best baseline, and the fraction of seeds beating flat."""
    from trader.backtest.suite import BaselineOptions
    from trader.evaluate.folds import block_folds, dataset_folds, tail_folds
    from trader.evaluate.report import evaluation_context, write_evaluation
    from trader.evaluate.choose import chosen_on_validation, validation_folds
    from trader.evaluate.run import Plan, run_committees, run_plan
    from trader.evaluate.summary import summarize
    from trader.rl.cli import check_interval
    from trader.rl.policy import learner
    from trader.run.config import load_config
    from trader.run.lifecycle import resolve_args
    from trader.sim import load_market, spec

    if resume and not out:
        raise click.UsageError("--resume: give the --out folder of the evaluation to go on with")
    if choose_among is not None and validation_s is None:
        raise click.UsageError("--choose-among: give it with --validation-s (the seeds are chosen on those seconds)")
    choose_among = CHOOSE_AMONG if choose_among is None else choose_among
    if validation_s is not None and seeds % choose_among:
        raise click.UsageError(f"--seeds {seeds} is not a multiple of --choose-among {choose_among} (each group of "
                               f"--choose-among seeds gives one chosen agent: e.g. --seeds {5 * choose_among} for 5)")
    env = pop_env_values(options)
    given = {k: v for k, v in options.items() if v is not None} | env
    if train_also:
        given["train_also"] = list(train_also)
    args = {**(load_config(config) if config else {}), **given, "cuda": cuda}
    also = args.get("train_also") or []  # the flag's or the config file's: checked alike below
    if also:
        args["train_also"] = also = [str(p) for p in _datasets(tuple(also))]
    if args.get("mirror") and args.get("encoder"):
        raise click.UsageError("--mirror: not with --encoder (its embeddings are of the recordings themselves)")
    if args.get("encoder_with_features") and not args.get("encoder"):
        raise click.UsageError("--encoder-with-features: give it with --encoder")
    module = learner(algo)
    try:
        base_options = BaselineOptions(imbalance_threshold, quote_offset_ticks, as_gamma)
        base_options.check()
        spec.check_config(**{k: v for k, v in args.items() if k in spec.defaults()})
        run_args = resolve_args(module.Args, None, args)  # what each fold's run will use (trader.rl.defaults)
        horizon = run_args.horizon
        paths = _datasets(data)
        check_interval(SimpleNamespace(interval_ms=run_args.interval_ms, resume=None, data=[p for p in paths if p],
                                       train_also=also),
                       given="interval_ms" in args)
        markets = [load_market(p, feature_set=run_args.feature_set, interval_ms=run_args.interval_ms)
                   for p in paths]
        widths = {m.features.shape[1] for m in markets}
        if len(widths) > 1:
            raise ValueError("data: the datasets give observations of different widths "
                             + ", ".join(f"{p or 'sample'}: {m.features.shape[1]}" for p, m in zip(paths, markets)))
        if len(paths) == 1:
            plan_folds = (block_folds(paths[0], len(markets[0].book), folds, horizon) if tail_s is None
                          else tail_folds(paths[0], markets[0].ts, tail_s, folds, horizon))
        else:
            if tail_s is not None:
                raise click.UsageError(f"--tail-s: cuts one dataset's end into test blocks; {len(paths)} datasets "
                                       "given (with several, each one after the first --train-window is a fold)")
            if click.get_current_context().get_parameter_source("folds") != ParameterSource.DEFAULT:
                raise click.UsageError(f"--folds {folds}: with several datasets each one after the first --train-window "
                                       f"is a fold ({len(paths)} datasets here); --folds cuts one dataset into blocks")
            for (p0, m0), (p1, m1) in zip(zip(paths, markets), zip(paths[1:], markets[1:])):
                if m1.ts[0] < m0.ts[-1] and not allow_overlap:
                    raise ValueError(f"data: {p1} starts before {p0} ends: give datasets in time order, or "
                                     "--allow-overlap for a cross-instrument test")
            plan_folds = dataset_folds(paths, [len(m.book) for m in markets], horizon, train_window)
        by_path = dict(zip(paths, markets))
        if also:
            check_outside_tests("--train-also", also, plan_folds, by_path, run_args, allow_overlap)
        if args.get("encoder"):  # an encoder trained on a test block would carry its rows into every fold
            from trader.nn.embed import encoder_training_data

            check_outside_tests(f"--encoder {args['encoder']} trained on", encoder_training_data(args["encoder"]),
                                plan_folds, by_path, run_args, allow_overlap)
        val_folds = None
        if validation_s is not None:
            val_folds, plan_folds = validation_folds(plan_folds, lambda p: by_path[p].ts, validation_s, horizon)
    except ValueError as e:
        raise click.UsageError(flag_message(str(e))) from None
    out_dir = Path(out) if out else run_dir("runs", "evaluate", algo)
    seed_list = list(range(first_seed, first_seed + seeds))
    plan = Plan(algo, args, plan_folds, seed_list, out_dir, base_options, tuple(val_folds or ()), resume=resume)
    click.echo(f"{len(plan_folds)} folds x {seeds} seeds -> {out_dir}")
    for f in val_folds or []:
        click.echo("  validation " + f.describe())
    for f in plan_folds:
        click.echo("  " + f.describe())
    bar = None
    if progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan_folds) * seeds, unit="agent", desc="folds x seeds")
    t0 = time.perf_counter()
    try:
        results = run_plan(plan, jobs, (lambda done, total, what: bar.update(1)) if bar else None)
    except ValueError as e:
        raise click.UsageError(flag_message(str(e))) from None
    finally:
        if bar:
            bar.close()
    committees = {}
    if committee and seeds >= COMMITTEE_MIN_SEEDS:
        click.echo(f"testing the committee of the {seeds} seeds in each of the {len(plan_folds)} folds")
        committees = run_committees(plan, results["agents"], jobs)
    context = evaluation_context(plan, by_path, time.perf_counter() - t0, cuda)
    if val_folds is not None:
        every = summarize(results)["overall"]  # every seed, unchosen: what the choice adds to
        results, per_fold = chosen_on_validation(results, choose_among)
        context["seeds"] = sorted({j["seed"] for j in results["agents"]})
        context["choice"] = {"validation_s": validation_s, "choose_among": choose_among, "seeds": seed_list,
                             "folds": per_fold, "every_seed": {k: every[k] for k in (
                                 "agent", "best_baseline", "agent_minus_best_baseline", "seeds_beating_flat")}}
    results["committees"] = committees  # of every seed trained, also where --choose-among kept some of them
    summary = summarize(results)
    write_evaluation(out_dir, results, summary, context)
    click.echo((out_dir / "evaluation.md").read_text())
    click.echo(f"wrote {out_dir}/evaluation.md, evaluation.json and plots")
