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


def train_committee(algo: str, options: dict, data: str | None, seed: int, k: int, out_dir: Path, jobs: int = 1,
                    progress=None) -> dict:
    """Train k agents (seeds seed..seed+k-1) with `options` (as trader train takes them; their data is `data`,
    one dataset folder or None for the sample), backtest each, their committee and every baseline on the held-out
    rows; writes OUT/committee.json and returns what it holds."""
    from trader.backtest.suite import BaselineOptions
    from trader.evaluate.folds import held_out_fold
    from trader.evaluate.run import Plan, committee_test, run_plan, seed_runs
    from trader.evaluate.summary import KEY, agent_metric
    from trader.rl.policy import learner
    from trader.run.lifecycle import resolve_args
    from trader.sim import load_market

    args = resolve_args(learner(algo).Args, None, {**options, "data": [data] if data else None})
    rows = len(load_market(data, feature_set=args.feature_set, interval_ms=args.interval_ms).ts)
    fold = held_out_fold(data, rows, args.train_fraction)
    if fold.test_end - fold.test_start < 1:
        raise ValueError(f"--train-fraction {args.train_fraction:g}: {data or 'the bundled sample'} keeps "
                         f"{rows - fold.train_rows} of its {rows} rows held out; the committee is tested on them")
    plan = Plan(algo, options, [fold], list(range(seed, seed + k)), out_dir, BaselineOptions(), job_folder="seeds")
    result = run_plan(plan, jobs, progress)
    tested = committee_test(plan, fold, result["agents"])
    committee = {  # train_fraction: the rows after it are the held-out rows of trader backtest, as in any run
        "train_fraction": args.train_fraction, "metric": KEY,
        "held_out": f"{data or 'sample'}: trained on rows 0..{fold.train_rows - 1}, tested on rows "
                    f"{fold.test_start}..{fold.test_end}",
        "members": seed_runs(result["agents"], out_dir),
        "committee": {KEY: agent_metric(tested, KEY), "trades": agent_metric(tested, "trades")},
        "baselines": {c["name"]: c["metrics"][KEY] for c in result["baselines"][fold.index]},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / COMMITTEE_FILE).write_text(json.dumps(committee, indent=1) + "\n")
    return committee
