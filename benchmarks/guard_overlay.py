"""Risk rules over trained agents: the move guard over agents trained without it (issue 13, session 17: what `trader
live --guard-window-ms ...` would do to a run that trained without the guard), or a position cap of a few trade sizes
(`--position-cap-trades N --no-guard`, session 21: what `trader backtest --position-cap-trades N` does); with
`--guard-sides against_move` (session 31) the guard bars only the position against the move. Every agent
of a finished walk-forward evaluation (a `trader evaluate` folder: its fold x seed job files and the agents' run
folders) is tested again on its fold's test rows with the rule on, and the baselines with it. Each seed's PnL (bps of the max position
notional) summed over the folds, with the guard minus without, seed for seed: the same agents on the same rows,
only the rule differs, so the interval is the rule's alone (not training noise, as in a comparison of two
evaluations). The guard's options default to benchmarks/markout_reward.py's GUARD. Per test block (each fold's mean
over seeds), with and without the rule, pooled over every --run: mean [95 % CI] over blocks, and with minus without
block for block. With --committee (session 32), also per fold the committee of its seeds under the rule, beside the
evaluation's own committee without it, and the committee minus the seeds' mean.

    PYTHONPATH=python OMP_NUM_THREADS=1 python3 benchmarks/guard_overlay.py --jobs 2 --out runs/s17/overlay.md \\
        --run runs/a200/nexo28h__markout_10s_symmetric_abstain_0.9_latency_100ms ...
    PYTHONPATH=python:benchmarks OMP_NUM_THREADS=1 python3 benchmarks/guard_overlay.py --jobs 2 --no-guard \\
        --position-cap-trades 1 --out runs/s21/cap1.md --run runs/s19/z/nexo28h__markout_10s_symmetric_abstain_0.9 ...
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import pickle
import re
from pathlib import Path

import numpy as np

from markout_reward import GUARD, _ci, interval
from trader.evaluate.folds import Fold
from trader.sim import spec

KEY = "pnl_bps_of_max_notional"
_MARKETS: dict = {}  # per worker: (data, feature set, grid, encoder) -> the market the agents observe


def fold_of(index: int, describe: str) -> Fold:
    """A fold from its report line ("fold 1: train DATA rows 0..N; test DATA rows A..B"). The line does not give the
    training dataset's total rows: train_total is set to train_rows (the baselines' fit reads only the rows)."""
    m = re.search(r"train (?:.* \+ )?(\S+) rows 0\.\.(\d+); test (\S+) rows (\d+)\.\.(\d+)", describe)
    if not m:
        raise ValueError(f"fold without one training dataset's rows: {describe!r}")
    return Fold(index, m[1], int(m[2]) + 1, int(m[2]) + 1, m[3], int(m[4]), int(m[5]))


def retest(run_dirs: list[str], fold: Fold, guard: dict) -> float:
    """One trained agent, or the committee of several (trader.rl.committee, as `trader evaluate` tests it), on its
    fold's test rows with the rule on: its PnL."""
    from trader.backtest.engine import env_config_from_run
    from trader.backtest.suite import run_agent
    from trader.rl.committee import load_committee
    from trader.rl.policy import observation_market
    from trader.sim import features

    trained = load_committee(run_dirs)
    args = trained.args
    key = (fold.test_data, features.run_set(args), args.get("interval_ms", 100.0), args.get("encoder"))
    if key not in _MARKETS:
        _MARKETS.clear()  # one market per worker at a time (NEXOUSDT's is large)
        _MARKETS[key] = observation_market(args, fold.test_data)
    (agent,) = run_agent(_MARKETS[key], lambda obs, info: trained.act(obs), "agent",
                         env_config_from_run(args, **guard), fold.test_start, fold.test_end)
    return float(agent.metrics[KEY])


def baselines(evaluation: dict, fold: Fold, guard: dict) -> dict[str, float]:
    """Every baseline on the fold's test rows with the rule on, run as trader evaluate runs them."""
    from trader.backtest.suite import BaselineOptions
    from trader.evaluate.run import Plan, run_baselines_for

    context = evaluation["context"]
    plan = Plan(context["algo"], {**context["args"], **guard}, [fold], [], Path("."), BaselineOptions())
    curves, _ = run_baselines_for(plan, fold)
    return {c["name"]: float(c["metrics"][KEY]) for c in curves}


def overlay(run: Path, guard: dict, jobs: int, committee: bool = False) -> dict:
    """The run's agents (and with `committee`, per fold the committee of its seeds) tested again under `guard`."""
    evaluation = json.loads((run / "evaluation.json").read_text())
    folds = {i + 1: fold_of(i + 1, f["describe"]) for i, f in enumerate(evaluation["context"]["folds"])}
    per_test_before: dict[tuple[int, int], float] = {}  # (seed, fold) -> PnL
    tasks = []
    for path in sorted(run.glob("fold_*/seed_*.job.pkl")):
        job = pickle.loads(path.read_bytes())["job"]
        per_test_before[job["seed"], job["fold"]] = job["agents"][0]["metrics"][KEY]
        # the agent's folder beside its job file (a run trained on another machine names that machine's path)
        tasks.append((job["seed"], str(path.parent / Path(job["run_dir"]).name), folds[job["fold"]]))
    per_test_after: dict[tuple[int, int], float] = {}
    with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(retest, [run_dir], fold, guard): (seed, fold.index) for seed, run_dir, fold in tasks}
        base = {i: pool.submit(baselines, evaluation, fold, guard) for i, fold in folds.items()}
        councils = {i: pool.submit(retest, [d for _, d in sorted((s, d) for s, d, f in tasks if f.index == i)],
                                   fold, guard) for i, fold in folds.items()} if committee else {}
        for f in cf.as_completed(futures):
            per_test_after[futures[f]] = f.result()
        per_fold_baselines = {i: f.result() for i, f in base.items()}
        committee_with = [councils[i].result() for i in folds] if committee else None
        guarded_baselines: dict[str, float] = {}
        for per_fold in per_fold_baselines.values():
            for name, v in per_fold.items():
                guarded_baselines[name] = guarded_baselines.get(name, 0.0) + v
    plain_baselines: dict[str, float] = {}
    for per_fold in evaluation["baselines"].values():
        for name, metrics in per_fold.items():
            plain_baselines[name] = plain_baselines.get(name, 0.0) + metrics[KEY]
    seeds = sorted({s for s, _ in per_test_before})
    before, after = ({s: sum(m for (t, _), m in per_test.items() if t == s) for s in seeds}
                     for per_test in (per_test_before, per_test_after))  # each seed summed over folds
    blocks_without = [float(np.mean([m for (s, f), m in per_test_before.items() if f == i])) for i in folds]
    blocks_with = [float(np.mean([m for (s, f), m in per_test_after.items() if f == i])) for i in folds]
    extra = {}
    if committee:
        own = evaluation["summary"]["overall"].get("committee") or {}
        if "per_block" not in own:
            raise ValueError(f"{run}: its evaluation tested no committee in every fold ({own.get('untested')})")
        extra = {"committee_blocks_without": own["per_block"], "committee_blocks_with": committee_with}
    return {"run": run.name, "rule": guard, "tests": len(tasks), "seeds": len(seeds), **extra,
            "without": interval([before[s] for s in seeds]),
            "blocks_without": blocks_without, "blocks_with": blocks_with,
            "block_baselines_with": [per_fold_baselines[i] for i in folds],
            "with": interval([after[s] for s in seeds]),
            "with_minus_without": interval([after[s] - before[s] for s in seeds]),
            "baselines_without": plain_baselines, "baselines_with": guarded_baselines,
            "per_seed_without": before, "per_seed_with": after}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, action="append", default=[], help="a trader evaluate folder (repeatable)")
    p.add_argument("--pool", type=Path, action="append", default=[],
                   help="an earlier overlay's .json under the same rule (e.g. from another machine), whose runs "
                        "join the per-block summary (repeatable)")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", type=Path, required=True, help="the report (.md; a .json beside it)")
    for k, v in GUARD.items():
        p.add_argument("--" + k.replace("_", "-"), type=type(v), default=v)
    sides = next(o for o in spec.options() if o.name == "guard_sides")
    p.add_argument("--guard-sides", choices=sides.choices, default=sides.default, help=f"the env's {sides.doc}")
    p.add_argument("--no-guard", action="store_true", help="no move guard over the runs' own options")
    p.add_argument("--committee", action="store_true",
                   help="also test, per fold, the committee of its seeds under the rule (trader.rl.committee), "
                        "beside the evaluation's own committee without it")
    p.add_argument("--position-cap-trades", type=int, default=0,
                   help="a position cap of this many trade sizes (the env's position_cap_trades; 0: the runs' own)")
    a = p.parse_args()
    guard = {} if a.no_guard else {**{k: getattr(a, k) for k in GUARD}, "guard_sides": a.guard_sides}
    if a.position_cap_trades:
        guard["position_cap_trades"] = a.position_cap_trades
    if not guard:
        p.error("no rule: give --position-cap-trades N, or leave out --no-guard")
    if not a.run and not a.pool:
        p.error("nothing to test: give --run (a trader evaluate folder) or --pool (an earlier overlay's .json)")
    pooled = []
    for path in a.pool:
        for r in json.loads(path.read_text()):
            if r.get("rule") != guard:
                p.error(f"--pool {path}: run {r['run']} was tested under {r.get('rule')}, not this rule {guard}")
            pooled.append(r)
    a.out.parent.mkdir(parents=True, exist_ok=True)  # before the runs' tests, which its absence would throw away
    rows = []
    lines = [f"Risk rule {guard} over agents trained without it; PnL in bps of the max position notional, each seed "
             "summed over folds, mean [95 % CI].", "",
             "| run | tests | without the rule | with it | with minus without, seed for seed | best baseline without | "
             "best baseline with |", "|---|---:|---:|---:|---:|---|---|"]
    for run in a.run:
        r = overlay(run, guard, a.jobs, a.committee)
        rows.append(r)
        bw = max(r["baselines_without"], key=r["baselines_without"].get)
        bg = max(r["baselines_with"], key=r["baselines_with"].get)
        lines.append(f"| {r['run']} | {r['tests']} | {_ci(r['without'])} | {_ci(r['with'])} | {_ci(r['with_minus_without'])} | "
                     f"{bw} {r['baselines_without'][bw]:+.2f} | {bg} {r['baselines_with'][bg]:+.2f} |")
        a.out.write_text("\n".join(lines) + "\n")
        a.out.with_suffix(".json").write_text(json.dumps(rows, indent=1, default=float))
        print(lines[-1], flush=True)
    for r in pooled:
        lines.append(f"| {r['run']} (pooled from --pool) | {r['tests']} | {_ci(r['without'])} | {_ci(r['with'])} | "
                     f"{_ci(r['with_minus_without'])} | | |")
    rows += pooled
    a.out.with_suffix(".json").write_text(json.dumps(rows, indent=1, default=float))
    summary = block_summary(rows)
    a.out.write_text("\n".join(lines + summary) + "\n")
    print("\n".join(summary), flush=True)


def block_summary(rows: list[dict]) -> list[str]:
    """Per test block (each fold's mean over seeds; runs of one name, the same evaluation for other seeds, are one
    block): without and with the rule, with it minus the best baseline of each block, minus each baseline, and with
    minus without, each a mean [95 % CI] over the blocks. Where every row tested its committee (--committee), the
    same for the committee (runs of one name: their committees' mean), and the committee minus the seeds' mean."""
    keys = ["blocks_without", "blocks_with"]
    if all("committee_blocks_with" in r for r in rows):
        keys += ["committee_blocks_without", "committee_blocks_with"]
    blocks: dict[tuple[str, int], list[tuple]] = {}
    for r in rows:
        for i, v in enumerate(zip(r["block_baselines_with"], *(r[k] for k in keys))):
            blocks.setdefault((r["run"], i), []).append(v)
    base = [{n: float(np.mean([v[0][n] for v in vs])) for n in vs[0][0]} for vs in blocks.values()]
    series = {k: [float(np.mean([v[j + 1] for v in vs])) for vs in blocks.values()] for j, k in enumerate(keys)}
    without, with_ = series["blocks_without"], series["blocks_with"]
    lines = ["", f"Per test block (each fold's mean over seeds; runs of one name together), the {len(with_)} blocks of "
             "the runs above, mean [95 % CI] over blocks:", ""]
    for label, off, on in [("", without, with_)] + ([("the committee of the seeds ",
                                                       series["committee_blocks_without"],
                                                       series["committee_blocks_with"])] if len(keys) > 2 else []):
        lines += _against_baselines(label, off, on, base)
    if len(keys) > 2:
        lines.append("- the committee with it minus the seeds' mean with it, block for block: "
                     f"{_ci(interval([c - w for c, w in zip(series['committee_blocks_with'], with_)]))}")
    return lines


def _against_baselines(label: str, without: list[float], with_: list[float], base: list[dict]) -> list[str]:
    """One strategy's blocks without and with the rule, set against each baseline with it, block for block."""
    best_with = [max(b.values()) for b in base]
    lines = [f"- {label}without the rule: {_ci(interval(without))}",
             f"- {label}with it: {_ci(interval(with_))}; minus the best baseline with it, block for block: "
             f"{_ci(interval([w - b for w, b in zip(with_, best_with)]))}; blocks above every baseline: "
             f"{sum(w > b for w, b in zip(with_, best_with))} of {len(with_)}"]
    lines += [f"- {label}with it minus {name} with it, block for block: "
              f"{_ci(interval([w - b[name] for w, b in zip(with_, base)]))}" for name in sorted(base[0])]
    lines.append(f"- {label}with minus without, block for block: "
                 f"{_ci(interval([w - o for w, o in zip(with_, without)]))}")
    return lines


if __name__ == "__main__":
    main()
