"""`trader train --validation-s S --choose-among K` (issue 13): K agents (seeds SEED..SEED+K-1) train on the
run's training rows but their last S seconds, each is backtested on those seconds through the one backtest
engine, and the one with the best net PnL there is the run's agent. OUT/choice.json names it, and OUT
stands for its run wherever a run folder is taken (`trader backtest --checkpoint OUT`, `trader live`:
trader.run.checkpoints.read_choice).

Why: seeds of one configuration differ by hundreds of bps of max notional on the same rows, and the
choice avoids the worst of them; whether it carries to later rows depends on the data (it beat every
baseline on NEXOUSDT's held-out last 6 h, but on rows never tested before no chosen agent's interval was
above flat: benchmarks/README.md, sessions 7 and 8). `trader evaluate --validation-s S --choose-among K`
measures the choice walk-forward on your data; this command makes the agent it measures. The rows after
--train-fraction stay untouched for `trader backtest`.
"""

from __future__ import annotations

import json
from pathlib import Path

from trader.run.checkpoints import CHOICE_FILE


def validation_fold(data: str | None, train_fraction: float, validation_s: float, horizon: int,
                    feature_set: int, interval_ms: float):
    """The fold of the choice: training on the first `train_fraction` of the dataset's rows but their last
    `validation_s` seconds, testing on those seconds."""
    import numpy as np

    from trader.evaluate.choose import validation_folds
    from trader.evaluate.folds import held_out_fold
    from trader.sim import load_market

    ts = load_market(data, feature_set=feature_set, interval_ms=interval_ms).ts
    run = held_out_fold(data, len(ts), train_fraction)
    (val,), _ = validation_folds([run], lambda _: np.asarray(ts), validation_s, horizon)
    return val


def train_and_choose(algo: str, options: dict, data: str | None, seed: int, validation_s: float, k: int,
                     out_dir: Path, jobs: int = 1, progress=None) -> dict:
    """Train k agents (seeds seed..seed+k-1) with `options` (as trader train takes them; their data is
    `data`, one dataset folder or None for the sample), backtest each and every baseline on the validation
    block, keep the best agent; writes OUT/choice.json and returns what it holds."""
    from trader.backtest.suite import BaselineOptions
    from trader.evaluate.run import Plan, run_plan, seed_runs
    from trader.evaluate.summary import KEY
    from trader.rl.policy import learner
    from trader.run.lifecycle import resolve_args

    args = resolve_args(learner(algo).Args, None, {**options, "data": [data] if data else None})
    val = validation_fold(data, args.train_fraction, validation_s, args.horizon, args.feature_set,
                          args.interval_ms)
    plan = Plan(algo, options, [val], list(range(seed, seed + k)), out_dir, BaselineOptions(), job_folder="seeds")
    result = run_plan(plan, jobs, progress)
    seeds = seed_runs(result["agents"], out_dir)
    best = max(seeds, key=lambda s: -float("inf") if seeds[s][KEY] is None else seeds[s][KEY])
    baselines = {c["name"]: c["metrics"][KEY] for c in result["baselines"][val.index]}
    choice = {  # train_fraction: the rows after it are held out for trader backtest, as in any run
        "validation_s": validation_s, "train_fraction": args.train_fraction, "metric": KEY,
        "validation": f"{data or 'sample'}: trained on rows 0..{val.train_rows - 1}, chosen on rows "
                      f"{val.test_start}..{val.test_end} (the last {validation_s:g} s of the training rows)",
        "seeds": seeds,
        "baselines": baselines,
        "chosen": {"seed": int(best), "run_dir": seeds[best]["run_dir"]},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CHOICE_FILE).write_text(json.dumps(choice, indent=1) + "\n")
    return choice
