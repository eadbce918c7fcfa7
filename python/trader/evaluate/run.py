"""Running a walk-forward evaluation: for every fold, the baselines once (they are deterministic) and
one agent per seed, trained by the learner's own `train` on the fold's training rows only and tested
through the one backtest engine (trader.backtest.suite) on the fold's test rows (and, with a validation
fold, on its rows too: trader.evaluate.choose).

Jobs (fold x seed) run in this process or, with jobs > 1, in worker processes (spawned: each builds its
own env pool and torch state; results do not depend on the job count). A worker ends with the process
that started it: a killed evaluation leaves no worker training agents whose results nobody will read.

Each finished job is kept in its fold's folder (``seed_N.job.pkl``, written whole or not at all) with a key
of what it depends on (learner, arguments, folds, seed). A plan with ``resume`` takes those jobs back instead
of training them again, so a killed evaluation (a spot machine taken back, a time limit) goes on where it
stopped; a job file of another plan there is an error, never mixed in. The files are pickles: resume only
from folders an evaluation of yours wrote.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import multiprocessing as mp
import os
import pickle
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from trader.evaluate.folds import Fold


@dataclass(frozen=True)
class Plan:
    """What to evaluate: the learner, its arguments (a dict as `trader train` takes them, env options by
    their spec names), the folds and the seeds."""

    algo: str
    args: dict[str, Any]
    folds: list[Fold]
    seeds: list[int]
    out_dir: Path
    baseline_options: Any  # trader.backtest.suite.BaselineOptions
    validation: tuple[Fold, ...] = ()  # per fold (same index, same training rows): a block the agent is also tested on
    job_folder: str = "fold_{index}"  # each fold's runs go into out_dir / this
    resume: bool = False  # take back the jobs a run of this plan finished in out_dir

    def __post_init__(self) -> None:
        for v in self.validation:  # one training serves both tests only if both folds train on the same rows
            f = next((f for f in self.folds if f.index == v.index), None)
            if f is None or (f.train_data, f.train_rows, f.train_earlier) != (v.train_data, v.train_rows,
                                                                                v.train_earlier):
                raise ValueError(f"validation fold {v.index}: no fold of the plan trains on its rows")

    def job_dir(self, fold: Fold) -> Path:
        return self.out_dir / self.job_folder.format(index=fold.index)

    def validation_of(self, fold: Fold) -> Fold | None:
        return next((v for v in self.validation if v.index == fold.index), None)

    def job_file(self, fold: Fold, seed: int) -> Path:
        return self.job_dir(fold) / f"seed_{seed}.job.pkl"

    def job_key(self, fold: Fold, seed: int) -> str:
        """What one job's result depends on: the learner, its arguments, the fold and its validation block, the seed."""
        what = (self.algo, sorted((k, repr(v)) for k, v in self.args.items()), fold, self.validation_of(fold), seed)
        return hashlib.sha256(repr(what).encode()).hexdigest()

    def finished_job(self, fold: Fold, seed: int) -> dict | None:
        """The job a run of this plan finished and kept, when resuming; None: to be run."""
        path = self.job_file(fold, seed)
        if not self.resume or not path.is_file():
            return None
        with open(path, "rb") as f:
            kept = pickle.load(f)
        if kept.get("key") != self.job_key(fold, seed):
            raise ValueError(f"{path}: a job of an evaluation with other options, data or folds; give another "
                             "--out, or leave out --resume to run every job again")
        return kept["job"]


def curve(result) -> dict:
    """What the report keeps of one backtest result: metrics and the per-step series."""
    return {"name": result.name, "metrics": result.metrics, "equity": result.equity - result.equity[0],
            "position_base": result.position * result.lot_size, "actions": result.actions}


def env_config(plan: Plan) -> dict:
    """The env options of every run of the plan (its arguments' spec options)."""
    from trader.backtest.engine import env_config_from_run

    return env_config_from_run(plan.args)


def run_baselines_for(plan: Plan, fold: Fold) -> tuple[list[dict], list[str]]:
    from trader.backtest.suite import run_baselines
    from trader.data.dataset import load_dataset
    from trader.sim import load_market

    test = load_dataset(fold.test_data)
    interval_ms = plan.args.get("interval_ms", 100.0)  # the agents' grid (trader train --interval-ms)
    market = load_market(test, interval_ms=interval_ms)
    train = test if fold.train_data == fold.test_data else load_dataset(fold.train_data)
    fit_market = market if train is test else load_market(train, interval_ms=interval_ms)
    results, notes = run_baselines(market, test.events, env_config(plan), fold.test_start, fold.test_end,
                                   plan.baseline_options, fit=(fit_market, train.events, fold.train_rows))
    return [curve(r) for r in results], notes


def train_and_test(plan: Plan, fold: Fold, seed: int) -> dict:
    """Train one agent on the fold's training rows, then backtest it on the fold's test rows ("agents") and,
    when the plan has a validation fold for it, on that fold's test rows ("validation")."""
    from trader.rl.policy import learner, load
    from trader.run.lifecycle import resolve_args

    module = learner(plan.algo)
    data = fold.train_data if not fold.train_earlier else fold.train_datasets  # several: one multi-dataset env
    given = dict(plan.args, data=data, train_fraction=fold.train_fraction, seed=seed,
                 runs_dir=str(plan.job_dir(fold)), progress_bar=False)
    args = resolve_args(module.Args, None, given)
    t0 = time.perf_counter()
    result = module.train(args)
    train_s = time.perf_counter() - t0
    trained = load(result["run_dir"])
    markets: dict = {}
    job = {"fold": fold.index, "seed": seed, "run_dir": result["run_dir"], "train_s": train_s,
           "steps": result["global_step"], "agents": backtest_on_fold(trained, plan.algo, fold, markets)}
    val = plan.validation_of(fold)
    if val is not None:
        job["validation"] = backtest_on_fold(trained, plan.algo, val, markets)
    return job


def backtest_on_fold(trained, name: str, fold: Fold, markets: dict | None = None) -> list[dict]:
    """A trained policy (trader.rl.policy.TrainedPolicy) backtested on the fold's test rows: one curve per agent
    (`markets`: the observation markets by test dataset, filled as they are read)."""
    from trader.backtest.engine import env_config_from_run
    from trader.backtest.suite import run_agent
    from trader.rl.policy import observation_market

    markets = {} if markets is None else markets
    if fold.test_data not in markets:
        markets[fold.test_data] = observation_market(trained.args, fold.test_data)
    agents = run_agent(markets[fold.test_data], lambda obs, info: trained.act(obs), name,
                       env_config_from_run(trained.args), fold.test_start, fold.test_end,
                       int(trained.args.get("num_agents", 1)))
    return [curve(r) for r in agents]


def committee_test(plan: Plan, fold: Fold, jobs: list[dict]) -> dict:
    """The committee of the fold's agents (trader.rl.committee; `jobs`: their job results) backtested on the
    fold's test rows: {"seeds": [...], "agents": [curves]}, or {"seeds": [...], "note": why not} when a member's
    weights are not in the fold's folder (jobs gathered from another machine without their run folders)."""
    from trader.rl.committee import load_committee

    seeds = sorted(j["seed"] for j in jobs)
    run_dirs = [plan.job_dir(fold) / Path(j["run_dir"]).name for j in sorted(jobs, key=lambda j: j["seed"])]
    missing = [f"seed {s} ({d})" for s, d in zip(seeds, run_dirs) if not d.is_dir()]
    if missing:
        return {"seeds": seeds, "note": "no weights of " + ", ".join(missing)}
    trained = load_committee([str(d) for d in run_dirs])
    return {"seeds": seeds, "agents": backtest_on_fold(trained, "committee", fold)}


def seed_runs(agents: list[dict], out_dir: Path) -> dict[str, dict]:
    """Per seed of finished jobs (`agents`, one fold): its run folder relative to `out_dir` (so that the folder can
    move), its PnL (trader.evaluate.summary.KEY) and trades: what trader train --validation-s and --committee record."""
    from trader.evaluate.summary import KEY, agent_metric

    return {str(j["seed"]): {"run_dir": str(Path(j["run_dir"]).resolve().relative_to(out_dir.resolve())),
                             KEY: agent_metric(j, KEY), "trades": agent_metric(j, "trades")} for j in agents}


def run_committees(plan: Plan, agents: list[dict], jobs: int = 1) -> dict:
    """committee_test of every fold of the plan ({fold index: its result}), in `jobs` worker processes."""
    work = [(fold, [{"seed": j["seed"], "run_dir": j["run_dir"]} for j in agents if j["fold"] == fold.index])
            for fold in plan.folds]
    if jobs <= 1:
        return {fold.index: committee_test(plan, fold, js) for fold, js in work}
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_end_with,
                                initargs=(os.getpid(),)) as pool:
        futures = {fold.index: pool.submit(_committee_job, plan, fold, js) for fold, js in work}
        return {index: fut.result() for index, fut in futures.items()}


def run_job(plan: Plan, fold: Fold, seed: int) -> dict:
    """train_and_test, its result kept in the fold's folder (a temporary file renamed: whole or absent)."""
    job = train_and_test(plan, fold, seed)
    path = plan.job_file(fold, seed)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump({"key": plan.job_key(fold, seed), "job": job}, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return job


def _worker_threads(plan: Plan) -> None:
    import torch  # a spawned worker: one torch thread unless the arguments say otherwise

    torch.set_num_threads(max(1, int(plan.args.get("torch_threads", 1) or 1)))


def _job(plan: Plan, fold: Fold, seed: int) -> dict:
    _worker_threads(plan)
    return run_job(plan, fold, seed)


def _committee_job(plan: Plan, fold: Fold, jobs: list[dict]) -> dict:
    _worker_threads(plan)
    return committee_test(plan, fold, jobs)


def _end_with(parent: int) -> None:
    """Pool initializer: SIGKILL to this worker when the thread that spawned it ends (Linux's prctl
    PR_SET_PDEATHSIG; not SIGTERM, which a training in the worker catches to checkpoint and stop, the job then
    going on to its backtests, and which orphaned idle workers were seen to catch and outlive); elsewhere
    workers finish the task in hand and stop when they next read the queue."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)


def run_plan(plan: Plan, jobs: int = 1, progress: Callable[[int, int, str], None] | None = None) -> dict:
    """{"baselines": {fold: [curves]}, "notes": {fold: [...]}, "agents": [job results]} for every fold and seed.
    `progress(done, total, what)` after each agent."""
    return run_plans([plan], jobs, progress)[0]


def run_plans(plans: list[Plan], jobs: int = 1, progress: Callable[[int, int, str], None] | None = None,
              plan_done: Callable[[int, dict], None] | None = None) -> list[dict]:
    """run_plan's result for each plan, all their jobs in one pool of `jobs` processes (a sweep keeps
    every worker busy across its points). `plan_done(p, result)` as soon as plan p is complete (jobs are
    queued plan by plan, so a caller cut short keeps the plans done by then)."""
    work = [(p, fold, seed) for p in range(len(plans)) for fold in plans[p].folds for seed in plans[p].seeds]
    kept = {(p, fold.index, seed): job for p, fold, seed in work
            if (job := plans[p].finished_job(fold, seed)) is not None}
    out = [{"baselines": {}, "notes": {}, "agents": []} for _ in plans]
    left = [len(plan.folds) * len(plan.seeds) for plan in plans]

    def finished(p: int, fold: Fold, seed: int, result: dict, baselines: Callable[[], None]) -> None:
        out[p]["agents"].append(result)
        left[p] -= 1
        if progress:
            progress(sum(len(o["agents"]) for o in out), len(work), f"plan {p + 1} fold {fold.index} seed {seed}")
        if left[p] == 0:
            baselines()
            out[p]["agents"].sort(key=lambda r: (r["fold"], r["seed"]))
            if plan_done:
                plan_done(p, out[p])

    if jobs <= 1:
        def baselines_of(p: int) -> Callable[[], None]:
            def run() -> None:
                for fold in plans[p].folds:
                    out[p]["baselines"][fold.index], out[p]["notes"][fold.index] = run_baselines_for(plans[p], fold)
            return run
        for p, fold, seed in work:
            job = kept.get((p, fold.index, seed))
            finished(p, fold, seed, job if job is not None else run_job(plans[p], fold, seed), baselines_of(p))
    else:
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_end_with,
                                    initargs=(os.getpid(),)) as pool:
            base = [{fold.index: pool.submit(run_baselines_for, plan, fold) for fold in plan.folds} for plan in plans]
            agents = {pool.submit(_job, plans[p], fold, seed): (p, fold, seed) for p, fold, seed in work
                      if (p, fold.index, seed) not in kept}

            def collect(p: int) -> Callable[[], None]:
                def run() -> None:
                    for index, fut in base[p].items():
                        out[p]["baselines"][index], out[p]["notes"][index] = fut.result()
                return run
            for p, fold, seed in work:
                if (p, fold.index, seed) in kept:
                    finished(p, fold, seed, kept[p, fold.index, seed], collect(p))
            for fut in cf.as_completed(agents):
                p, fold, seed = agents[fut]
                finished(p, fold, seed, fut.result(), collect(p))
    return out
