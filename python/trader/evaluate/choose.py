"""Choosing among seeds on the rows just before the test (issue 13), and measuring whether that choice
carries to the test block. Seeds of one configuration differ by hundreds of bps. On NEXOUSDT's held-out
last 6 h a seed's validation and test PnL correlated at +0.77 to +0.97 and the best of 4 beat every
baseline (session 7); on rows never tested before (NEXOUSDT's first 28 h, Bitstamp's first 18 h) the
correlation ranged from -0.93 to +0.93 by fold and no chosen agent's interval was above flat (session 8).
benchmarks/README.md has both.

`validation_folds` turns each walk-forward fold into two that train on the same rows, the fold's training
rows but the last `seconds`: the first tests on those seconds (validation), the second on the fold's test
block; one training serves both (trader.evaluate.run.Plan.validation). `chosen_on_validation` groups the
seeds by k and keeps, per fold and group, the seed with the best validation PnL; a group is one seed of
the result. No test row is trained on or chosen with.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from trader.evaluate.folds import Fold, need_rows
from trader.evaluate.summary import KEY, METRICS, agent_metric

CHOOSE_AMONG = 4  # seeds per group by default: 20 seeds give 5 chosen agents (benchmarks/README.md, session 7)


def validation_folds(folds: list[Fold], ts_of: Callable[[str | None], np.ndarray], seconds: float,
                     horizon: int) -> tuple[list[Fold], list[Fold]]:
    """(validation folds, test folds) for `folds`; ts_of(dataset) gives its row times (ns). The validation
    block is the last `seconds` before the first row after the training rows (their last row when the
    training dataset ends there). A fold over several datasets trains on the same fraction of each
    (trader.rl.envs.training_start_max), so the earlier datasets lose their tails too."""
    if not seconds > 0:
        raise ValueError(f"validation_s: expected seconds > 0, got {seconds}")
    val, test = [], []
    for f in folds:
        ts = ts_of(f.train_data)
        end = int(ts[f.train_rows]) if f.train_rows < len(ts) else int(ts[-1])
        v = int(np.searchsorted(ts, end - int(seconds * 1e9)))
        need_rows(f.index, "the training rows before the validation block", f.train_data, v, horizon + 2,
                  "use a shorter --validation-s")
        need_rows(f.index, "the validation block", f.train_data, f.train_rows - v, 4, "use a longer --validation-s")
        val.append(Fold(f.index, f.train_data, v, f.train_total, f.train_data, v, f.train_rows - 1, f.train_earlier))
        test.append(dataclasses.replace(f, train_rows=v))
    return val, test


def chosen_on_validation(result: dict, k: int) -> tuple[dict, list[dict]]:
    """The test results of the agents chosen on validation, from a run of a plan with validation folds
    (trader.evaluate.run.run_plan's dict; each job's "validation" its curves there): the seeds, in order, in
    groups of k; in each fold each group keeps its seed with the best validation PnL and is seed g (0, 1, ...)
    of the result. Also, per fold, every seed's validation and test numbers, the seeds chosen and the
    correlation of validation and test PnL over seeds."""
    if k < 1:
        raise ValueError(f"choose_among: expected >= 1, got {k}")
    score = {(j["fold"], j["seed"]): agent_metric({"agents": j["validation"]}, KEY) for j in result["agents"]}
    jobs = {(j["fold"], j["seed"]): {key: v for key, v in j.items() if key != "validation"} for j in result["agents"]}
    agents, per_fold = [], []
    for fold in sorted({f for f, _ in jobs}):
        seeds = sorted(s for f, s in jobs if f == fold)
        if len(seeds) % k:
            raise ValueError(f"choose_among: {len(seeds)} seeds are not groups of {k}")
        def val_pnl(s: int) -> float:  # undefined (None) ranks last
            return -np.inf if score[(fold, s)] is None else score[(fold, s)]

        chosen = {g: max(seeds[g * k:(g + 1) * k], key=val_pnl) for g in range(len(seeds) // k)}
        agents += [{**jobs[(fold, best)], "seed": g, "chosen_seed": best} for g, best in chosen.items()]
        x, y = (np.array(v, dtype=float) for v in zip(*[(score[(fold, s)], agent_metric(jobs[(fold, s)], KEY))
                                                         for s in seeds]))
        per_fold.append({
            "fold": fold, "chosen": chosen,  # correlation: None when either side is constant over the seeds
            "correlation": float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else None,
            "validation": {s: score[(fold, s)] for s in seeds},
            "test": {s: {m: agent_metric(jobs[(fold, s)], m) for m, _, _ in METRICS} for s in seeds}})
    return {"baselines": result["baselines"], "notes": result["notes"], "agents": agents}, per_fold
