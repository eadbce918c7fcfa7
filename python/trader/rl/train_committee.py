"""`trader train --committee K` (issue 13): K agents of one recipe (seeds SEED..SEED+K-1) train on the run's
training rows, and their committee (trader.rl.committee: at every step what a strict majority of their actions
backs) is the run's agent. OUT/committee.json names the members, and OUT stands for their committee wherever a run
folder is taken (`trader backtest --checkpoint OUT`, `trader live --checkpoint OUT`:
trader.run.checkpoints.read_committee). Each member and the committee are backtested on the held-out rows (after
--train-fraction) next to every baseline, through the one backtest engine.

Why: `trader evaluate --seeds N` tests, per fold, the committee of its seeds beside them, and one seed of a quoting
recipe can hold a position into a move that the others stay out of. Over issue 13's 22 test blocks the committee of
five seeds made +5.59 [+0.50, +11.40] bps of max notional a block above flat where the seeds' mean made +4.02
[-2.25, +10.33] (benchmarks/README.md, session 32's "What the 22-block reading did"). This command makes the agent
that such an evaluation measures.
"""

from __future__ import annotations

import json
from pathlib import Path

from trader.run.checkpoints import COMMITTEE_FILE


def held_out_fold(data: str | None, train_fraction: float, feature_set: int, interval_ms: float):
    """The run's own split as a fold: training on rows [0, train_fraction x rows), testing on the rest."""
    from trader.evaluate.folds import Fold
    from trader.sim import load_market

    rows = len(load_market(data, feature_set=feature_set, interval_ms=interval_ms).ts)
    train_rows = int(rows * train_fraction)  # as trader.rl.envs.training_start_max and trader backtest cut the rows
    if rows - train_rows < 2:
        raise ValueError(f"--train-fraction {train_fraction:g}: {data or 'the bundled sample'} keeps "
                         f"{rows - train_rows} of its {rows} rows held out; the committee is tested on them")
    return Fold(1, data, train_rows, rows, data, train_rows, rows - 1)


def train_committee(algo: str, options: dict, data: str | None, seed: int, k: int, out_dir: Path, jobs: int = 1,
                    progress=None) -> dict:
    """Train k agents (seeds seed..seed+k-1) with `options` (as trader train takes them; their data is `data`,
    one dataset folder or None for the sample), backtest each, their committee and every baseline on the held-out
    rows; writes OUT/committee.json and returns what it holds."""
    from trader.backtest.suite import BaselineOptions
    from trader.evaluate.run import Plan, committee_test, run_plan
    from trader.evaluate.summary import KEY, agent_metric
    from trader.rl.policy import learner
    from trader.run.lifecycle import resolve_args

    args = resolve_args(learner(algo).Args, None, {**options, "data": [data] if data else None})
    fold = held_out_fold(data, args.train_fraction, args.feature_set, args.interval_ms)
    plan = Plan(algo, options, [fold], list(range(seed, seed + k)), out_dir, BaselineOptions(), job_folder="seeds")
    result = run_plan(plan, jobs, progress)
    tested = committee_test(plan, fold, result["agents"])

    def inside(run: str) -> str:  # relative to OUT, so that the folder can move
        return str(Path(run).resolve().relative_to(out_dir.resolve()))

    committee = {  # train_fraction: the rows after it are the held-out rows of trader backtest, as in any run
        "train_fraction": args.train_fraction, "metric": KEY,
        "held_out": f"{data or 'sample'}: trained on rows 0..{fold.train_rows - 1}, tested on rows "
                    f"{fold.test_start}..{fold.test_end}",
        "members": {str(j["seed"]): {"run_dir": inside(j["run_dir"]), KEY: agent_metric(j, KEY),
                                     "trades": agent_metric(j, "trades")} for j in result["agents"]},
        "committee": {KEY: agent_metric(tested, KEY), "trades": agent_metric(tested, "trades")},
        "baselines": {c["name"]: c["metrics"][KEY] for c in result["baselines"][fold.index]},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / COMMITTEE_FILE).write_text(json.dumps(committee, indent=1) + "\n")
    return committee
