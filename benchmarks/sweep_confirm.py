"""Stage 2 of the defaults sweep (issue 13): combinations of the best single changes of stage 1
(benchmarks/sweep_defaults.py) on the same selection data, then the honest check of the chosen one
against the old defaults on recordings the sweep never saw.

    PYTHONPATH=python python3 benchmarks/sweep_confirm.py --shared ./shared/data --work runs/sweep2 --jobs 16

Phase 1, selection: COMBINATIONS on stage 1's 5 walk-forward folds over its 7 Binance datasets (DATASETS of
sweep_defaults: each fold trains on 2 datasets, tests on the next), --seeds seeds. The chosen combination:
among those whose agents trade (some fill in at least half of the fold x seed tests: a point that stays
flat cannot "win" by not losing), the highest lower 95 % bound of agent minus the best baseline (summed
over folds, bps of max notional), ties by the mean.

Phase 2, held out: the chosen combination and the old defaults (trader.rl.defaults before the sweep:
feature set 1) on HELD_OUT, recordings no stage used for selection: Bitstamp BTC/USD 2015-05-01 and
Binance spot NEXOUSDT from 2024-07-23 15:59:43 UTC on, each its first HELD_OUT_S seconds cut into
--folds + 1 blocks, expanding-window walk-forward (fold i trains on blocks before i, tests on block i).
For NEXO the first block starts with the 20 minutes stage 1 used; they are training rows only, every
test block lies after them. Same sizes (TRADE_NOTIONAL / MAX_NOTIONAL of quote currency) for both.

Writes WORK/<phase>/<point>/evaluation.md and .json, WORK/confirm.md (both tables: the numbers of
issue 13's goal, agent vs flat and every baseline with the bootstrap interval) and WORK/defaults.txt
(the TRADER_DEFAULTS line of the chosen combination).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sweep_defaults import DATASETS, MAX_NOTIONAL, TRADE_NOTIONAL, _ci, _defaults_line, convert_all, trading_share

OLD = {"learning_rate": 2.5e-4, "ent_coef": 0.01, "horizon": 500, "reward_scale": 1.0, "num_envs": 4, "feature_set": 1,
       "actions": "discrete", "reward": "pnl"}
BASE = {**OLD, "feature_set": 2}  # stage 1's base point
COMBINATIONS = {  # greedy from stage 1's best single change (reward_scale 10: the only interval above 0)
    "rs10": {"reward_scale": 10.0},
    "rs10+ne16": {"reward_scale": 10.0, "num_envs": 16},
    "rs10+ne16+h200": {"reward_scale": 10.0, "num_envs": 16, "horizon": 200},
    "rs10+ne16+h200+lr1e-3": {"reward_scale": 10.0, "num_envs": 16, "horizon": 200, "learning_rate": 1e-3},
    "rs10+ne16+fs1": {"reward_scale": 10.0, "num_envs": 16, "feature_set": 1},
}
# (name, converter format, files) of recordings stage 1 never selected on
HELD_OUT = [
    ("bitstamp_btcusd_20150501", "bitstamp", ["bitstamp_btcusd_2015-05-01_l3_events_top20/2015-05-01.log.bz2"]),
    ("nexo_spot_0723_3h", "binance", ["binance_spot_nexousdt_raw_feed/nexousdt_20240723.dat.gz",
                                      "binance_spot_nexousdt_raw_feed/nexousdt_20240724.dat.gz"]),
]
HELD_OUT_S = 3 * 3600


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", type=Path, default=Path("../shared/data"))
    p.add_argument("--work", type=Path, default=Path("runs") / "sweep2")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--timesteps", type=int, default=40_000, help="env steps per agent")
    p.add_argument("--folds", type=int, default=4, help="held-out walk-forward folds per recording")
    p.add_argument("--held-out-s", type=float, default=HELD_OUT_S, help="seconds kept of each held-out recording")
    p.add_argument("--datasets", type=int, default=len(DATASETS), help="the first N selection datasets (a CPU slice)")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--held-out", choices=list(COMBINATIONS), default=None,
                   help="skip phase 1: put this combination against the old defaults on the held-out data")
    a = p.parse_args()

    from trader.backtest.suite import BaselineOptions
    from trader.data.cli import data
    from trader.data.dataset import load_dataset, write_dataset
    from trader.evaluate.folds import block_folds, dataset_folds
    from trader.evaluate.report import evaluation_context, write_evaluation
    from trader.evaluate.run import Plan, run_plans
    from trader.evaluate.summary import summarize
    from trader.sim import load_market

    t_all = time.perf_counter()
    a.work.mkdir(parents=True, exist_ok=True)
    selection = convert_all(a.shared, a.work)[:a.datasets]
    held = []
    for name, fmt, files in HELD_OUT:
        full, out = a.work / "data" / f"{name}_full", a.work / "data" / f"{name}_{a.held_out_s:g}s"
        if not (out / "meta.json").exists():
            if not (full / "meta.json").exists():
                data.main(["convert", *[str(a.shared / f) for f in files], "-o", str(full), "--format", fmt],
                          standalone_mode=False)
            # the first held_out_s seconds (the converter's --duration does not cut snapshot tables): a prefix
            # of the events is a valid recording of its own
            ds = load_dataset(full)
            ts = ds.events["local_ts"]
            write_dataset(out, ds.events[ts < ts[0] + int(a.held_out_s * 1e9)],
                          {**ds.meta, "cut": f"first {a.held_out_s:g} s of {full.name}"})
        held.append(str(out))
    markets: dict = {}

    def market(path: str, feature_set: int):
        key = (path, feature_set)
        if key not in markets:
            markets[key] = load_market(path, feature_set=feature_set)
        return markets[key]

    def plan(phase: str, name: str, options: dict, folds) -> Plan:
        args = {**options, "trade_notional": TRADE_NOTIONAL, "max_position_notional": MAX_NOTIONAL,
                "total_timesteps": a.timesteps, "cuda": False}
        return Plan("ppo", args, folds, list(range(a.seeds)), a.work / phase / name, BaselineOptions(0.6, 0, 0.01))

    def report(p: Plan, result: dict, paths: list[str]) -> dict:
        summary = summarize(result)
        by_path = {x: market(x, p.args["feature_set"]) for x in paths}
        write_evaluation(p.out_dir, result, summary, evaluation_context(p, by_path, time.perf_counter() - t_all, False))
        return summary

    t0 = time.perf_counter()
    names = [] if a.held_out else list(COMBINATIONS)
    plans = []
    for name in names:
        options = {**BASE, **COMBINATIONS[name]}
        rows = [len(market(x, options["feature_set"]).book) for x in selection]
        plans.append(plan("selection", name, options, dataset_folds(selection, rows, options["horizon"], 2)))
    results = run_plans(plans, a.jobs, lambda done, n, what: print(f"  selection {done}/{n} {what} "
                                                                    f"{time.perf_counter() - t0:.0f} s", flush=True))
    sel = []
    for name, p, result in zip(names, plans, results):
        ov = report(p, result, selection)["overall"]
        sel.append({"name": name, "overall": ov, "trading": trading_share(result)})
    eligible = [r for r in sel if r["trading"] >= 0.5 and r["overall"]["agent_minus_best_baseline"]["low"] is not None]
    best = max(eligible, key=lambda r: (r["overall"]["agent_minus_best_baseline"]["low"],
                                        r["overall"]["agent_minus_best_baseline"]["mean"])) if eligible else None
    if a.held_out:
        best = {"name": a.held_out}
    t_sel = time.perf_counter() - t0

    chosen = {**BASE, **COMBINATIONS[best["name"]]} if best else None
    contenders = [("old defaults", OLD)] + ([(f"chosen: {best['name']}", chosen)] if best else [])
    plans2, keys = [], []
    for label, options in contenders:
        for path in held:
            folds = block_folds(path, len(market(path, options["feature_set"]).book), a.folds, options["horizon"])
            plans2.append(plan("held_out", f"{'old' if label == 'old defaults' else 'chosen'}_{Path(path).name}",
                               options, folds))
            keys.append((label, path))
    t1 = time.perf_counter()
    results2 = run_plans(plans2, a.jobs, lambda done, n, what: print(f"  held out {done}/{n} {what} "
                                                                      f"{time.perf_counter() - t1:.0f} s", flush=True))
    held_rows = []
    for (label, path), p, result in zip(keys, plans2, results2):
        summary = report(p, result, [path])
        held_rows.append({"label": label, "data": Path(path).name, "overall": summary["overall"],
                          "trading": trading_share(result)})

    lines = [
        f"Stage 2 of the defaults sweep: {a.seeds} seeds, {a.timesteps:,} env steps per agent, sizes "
        f"{TRADE_NOTIONAL:g} / {MAX_NOTIONAL:g} of quote currency. Net PnL summed over folds, bps of max notional, "
        "mean over seeds [95 % bootstrap CI].", "",
        f"Selection data (stage 1 and this table): {', '.join(Path(x).name for x in selection)}; "
        + (f"phase 1 not run (--held-out {a.held_out})." if a.held_out else
           f"{len(plans[0].folds)} walk-forward folds, each training on the 2 datasets before its test dataset."), "",
        "| combination (on stage 1's base) | agent | agent - best baseline | best baseline | seeds beating flat | "
        "tests with fills |", "|---|---:|---:|---|---:|---:|",
        *[f"| {r['name']} | {_ci(r['overall']['agent'])} | {_ci(r['overall']['agent_minus_best_baseline'])} | "
          f"{r['overall']['best_baseline']} | {r['overall']['seeds_beating_flat']:.0%} | {r['trading']:.0%} |"
          for r in sel], "",
        (f"Held out: {a.held_out}, given with --held-out." if a.held_out else
         f"Chosen: {best['name'] if best else 'none (no combination trades in half its tests)'} (highest lower bound "
         f"of agent - best baseline among those that trade). {t_sel:.0f} s."), "",
        f"Held-out data (never used for selection): {', '.join(Path(x).name for x in held)}, first "
        f"{a.held_out_s / 3600:g} h each, {a.folds} expanding-window folds each (NEXO's first block holds the 20 "
        "minutes stage 1 used, as training rows only).", "",
        "| defaults | data | agent | agent - best baseline | best baseline | every baseline (sum over folds) | "
        "seeds beating flat | seeds beating every baseline | tests with fills |",
        "|---|---|---:|---:|---|---|---:|---:|---:|",
        *[f"| {r['label']} | {r['data']} | {_ci(r['overall']['agent'])} | "
          f"{_ci(r['overall']['agent_minus_best_baseline'])} | {r['overall']['best_baseline']} | "
          + ", ".join(f"{k} {v:+.2f}" for k, v in sorted(r["overall"]["baselines"].items()))
          + f" | {r['overall']['seeds_beating_flat']:.0%} | {r['overall']['seeds_beating_every_baseline']:.0%} | "
          f"{r['trading']:.0%} |" for r in held_rows], "",
        f"All {time.perf_counter() - t_all:.0f} s with --jobs {a.jobs} (cpu).",
    ]
    if chosen:
        lines += ["", "trader/rl/defaults.py TRADER_DEFAULTS line of the chosen combination:", "",
                  f"    {_defaults_line(chosen).strip()}"]
        (a.work / "defaults.txt").write_text(_defaults_line(chosen) + "\n")
    (a.work / "confirm.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
