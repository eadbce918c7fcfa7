"""Train and test one fold's agents: `trader train`'s entry function (trader.rl.{algo}.train) in run
folders under the report folder, then the trained policy through the one backtest engine
(trader.backtest.engine) on the fold's test rows; the baselines once per fold, in the same engine.

A job is one (fold, seed): independent of the others and seeded by itself, so results do not depend
on the number of jobs running at once (--jobs).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from trader.backtest.engine import (BacktestResult, BaselineOptions, baseline_backtests, compute_metrics,
                                    env_config_from_run, run_backtest, sampling_interval_s)
from trader.evaluate.folds import Fold, train_data, train_fraction


@dataclass(frozen=True)
class Job:
    fold: Fold
    seed: int
    algo: str
    options: dict  # trader train's options (learner and env), as its click parameters name them
    config: str | None  # trader train's --config file
    runs_dir: str  # parent of this job's run folder
    device: str  # cpu or cuda
    rows: int  # market rows of the training dataset (train_fraction is of these)


def train_options(job: Job) -> dict:
    """The options of the job's training run: the user's, then what the fold fixes (data, the rows the
    episodes may reach, the seed, the run folder)."""
    return {**job.options, "data": train_data(job.fold), "train_fraction": train_fraction(job.fold, job.rows),
            "seed": job.seed, "runs_dir": job.runs_dir, "progress_bar": False, "track": False,
            "cuda": job.device == "cuda"}


def resolved_args(job: Job):
    """The learner's Args for the job, exactly as `trader train` resolves them (config file, then options);
    without an encoder, the data is the dataset's market as book_market samples it (the encoder's
    embeddings are cached per dataset folder, so an encoder run keeps the folder)."""
    from trader.rl.policy import learner
    from trader.run.lifecycle import resolve_args

    args = resolve_args(learner(job.algo).Args, job.config, train_options(job))
    if not args.encoder:
        args.data = book_market(args.data)
    return args


@functools.lru_cache(maxsize=2)
def book_market(data):
    """The dataset's market (trader.sim.load_market), sampled once per process: every agent of a fold
    trains and tests on it. Data without exchange timestamps (the Bitstamp 2015 log) is sampled on the
    receive clock, which is all it has."""
    from trader.data.dataset import load_dataset
    from trader.sim import load_market

    ds = load_dataset(data)
    clock = "local" if len(ds.events) and not ds.events["exch_ts"].any() else "exchange"
    return load_market(ds, clock=clock)


def train_and_test(job: Job) -> BacktestResult:
    """Train the job's agent on the fold's past and backtest it on the fold's test rows."""
    from trader.rl.policy import learner, load, observation_market

    args = resolved_args(job)
    if int(args.num_agents) != 1:
        raise ValueError(f"--num-agents: evaluate compares one agent per seed with the baselines, got "
                         f"{args.num_agents}; backtest agents sharing a book with trader backtest")
    result = learner(job.algo).train(args)
    trained = load(result["run_dir"], "cuda" if job.device == "cuda" else "cpu")
    test = job.fold.test_data
    market = observation_market({**trained.args, "data": test}, test) if args.encoder else book_market(test)
    env_cfg = env_config_from_run(trained.args)
    res = run_backtest(market, lambda obs, info: trained.act(obs), f"{job.algo}_seed{job.seed}",
                       start=job.fold.test_start, end=job.fold.test_end, **env_cfg)
    compute_metrics(res, sampling_interval_s(market))
    res.metrics["run_dir"] = str(result["run_dir"])
    return res


def fold_baselines(fold: Fold, env_config: dict, baselines: BaselineOptions) -> tuple[list[BacktestResult], list[str]]:
    """The baselines on the fold's test rows, in the env the agents are tested in."""
    from trader.data.dataset import load_dataset

    market = book_market(fold.test_data)
    results, notes = baseline_backtests(market, load_dataset(fold.test_data).events, env_config,
                                        start=fold.test_start, end=fold.test_end, baselines=baselines)
    interval = sampling_interval_s(market)
    for r in results:
        compute_metrics(r, interval)
    return results, notes


def run_jobs(jobs: list[Job], workers: int, progress) -> list[BacktestResult]:
    """Every job, in `workers` processes at once (1: in this process); `progress()` after each; results
    in the order of `jobs`."""
    if workers <= 1:
        out = []
        for job in jobs:
            out.append(train_and_test(job))
            progress()
        return out
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    results: list = [None] * len(jobs)
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(train_and_test, job): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            progress()
    return results

