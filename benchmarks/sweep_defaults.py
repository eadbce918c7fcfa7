"""Sweep of `trader train`'s PPO defaults on the trader env (issue 13, "defaults that train"): every point is
judged by `trader evaluate`'s walk-forward over the shared Binance recordings of three instruments, several
seeds, and the result is one line of trader/rl/defaults.py.

    PYTHONPATH=python python3 benchmarks/sweep_defaults.py --shared ./shared/data --work runs/sweep --jobs 16

Data (converted once into WORK/data, then reused): the Binance sequences of BTCUSDT, ETHUSDT (USD-M and
spot) and the first DURATION_NEXO seconds of NEXOUSDT spot, in time order (DATASETS). Each fold trains on
the --train-window datasets before its test dataset, together (other instruments: features of set 2 and
sizes in quote currency, BASE, make that meaningful), and tests on all of it; same-time instruments
overlap (`--allow-overlap`: a cross-instrument test, never a test row seen in training).

Points: BASE (trader.rl.defaults's PPO values, with feature set 2 and sizes of TRADE_NOTIONAL /
MAX_NOTIONAL USDT) and, one option at a time, every other value of GRID. All points run their fold x seed
jobs in one pool of --jobs processes (trader.evaluate.run.run_plans), the same seeds at every point.
Writes WORK/<point>/evaluation.md (the full `trader evaluate` report), WORK/sweep.md (the table for
benchmarks/README.md: agent net PnL summed over folds in bps of max notional, mean over seeds with its
95 % bootstrap interval, agent minus the best baseline, the share of seeds beating flat, train time) and
WORK/defaults.txt: a candidate line of trader/rl/defaults.py. A value replaces the base one only when its
agents trade (fills in at least half the tests) and its agent minus the best baseline beats the base
point's in mean and lower 95 % bound. One option at a time: the combination is not evaluated here; stage 2
(benchmarks/sweep_confirm.py) evaluates combinations and checks the chosen one on held-out recordings.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

# (name, converter format, files under the shared data) in time order
DATASETS = [
    ("btc_usdm_0718", "binance", ["binance_hftbacktest_raw_feed/usdm/btcusdt_20240718.gz",
                                  "binance_hftbacktest_raw_feed/usdm/btcusdt_20240719.gz"]),
    ("eth_usdm_0718", "binance", ["binance_hftbacktest_raw_feed/usdm/ethusdt_20240718.gz",
                                  "binance_hftbacktest_raw_feed/usdm/ethusdt_20240719.gz"]),
    ("nexo_spot_0723", "binance", ["binance_spot_nexousdt_raw_feed/nexousdt_20240723.dat.gz",
                                   "binance_spot_nexousdt_raw_feed/nexousdt_20240724.dat.gz"]),
    ("btc_spot_0808", "binance", ["binance_hftbacktest_raw_feed/spot/btcusdt_20240808.gz",
                                  "binance_hftbacktest_raw_feed/spot/btcusdt_20240809.gz"]),
    ("eth_spot_0808", "binance", ["binance_hftbacktest_raw_feed/spot/ethusdt_20240808.gz",
                                  "binance_hftbacktest_raw_feed/spot/ethusdt_20240809.gz"]),
    ("btc_usdm_0808", "binance", ["binance_hftbacktest_raw_feed/usdm/btcusdt_20240808.gz"]),
    ("eth_usdm_0808", "binance", ["binance_hftbacktest_raw_feed/usdm/ethusdt_20240808.gz"]),
]
DURATION_NEXO = 1200  # s: about as many rows as each other dataset (34 h would outweigh them all)
TRADE_NOTIONAL, MAX_NOTIONAL = 200.0, 2000.0  # USDT: >= 1 lot of every instrument (BTCUSDT USD-M: 0.001 BTC)

# option -> values tried (the base value among them); points are queued in this order
GRID = {
    "feature_set": [1, 2],
    "learning_rate": [1e-4, 2.5e-4, 1e-3],
    "ent_coef": [0.0, 0.01, 0.05],
    "reward_scale": [0.1, 1.0, 10.0],
    "actions": ["discrete", "quote"],
    "reward": ["pnl", "inventory_penalty", "dampened"],
    "horizon": [200, 500, 1000],
    "num_envs": [4, 16, 64],
}


# PPO's own abstain_prior and quote_sides, which every quoting run of these scripts had before `trader train
# --actions quote` started from trader.rl.defaults.QUOTE_DEFAULTS (session 15), and the env's markout weights, which
# they had before those defaults took the loss and inventory weights (session 34): stated, so each reproduces what it
# ran (a candidate that names a weight sets it)
BEFORE_QUOTE_DEFAULTS = {"abstain_prior": 0.0, "quote_sides": "any", "markout_loss_weight": 1.0,
                         "markout_inventory_weight": 0.0}


def base_point() -> dict:
    from trader.rl.defaults import TRADER_DEFAULTS

    return {**TRADER_DEFAULTS["ppo"], "feature_set": 2, "actions": "discrete", "reward": "pnl", **BEFORE_QUOTE_DEFAULTS}


def points(base: dict, params: list[str]) -> list[tuple[str, dict]]:
    """(name, learner options) of the base point, then of each other value of each swept option."""
    out = [("base", dict(base))]
    for name in params:
        for value in GRID[name]:
            if value != base[name]:
                out.append((f"{name}={value}", {**base, name: value}))
    return out


def convert_all(shared: Path, work: Path) -> list[str]:
    """The dataset folders, converted once into WORK/data."""
    from trader.data.cli import data
    from trader.data.dataset import load_collection

    paths = []
    for name, fmt, files in DATASETS:
        out = work / "data" / name
        if not (out / "meta.json").exists() and not (out / "index.json").exists():
            extra = ["--duration", str(DURATION_NEXO)] if name.startswith("nexo") else []
            data.main(["convert", *[str(shared / f) for f in files], "-o", str(out), "--format", fmt, *extra],
                      standalone_mode=False)
        paths += [str(p.path) for p in load_collection(out)] if (out / "index.json").exists() else [str(out)]
    return paths


def _ci(d) -> str:
    if d is None:
        return "n/a"
    return f"{d['mean']:+.2f}" if d["low"] is None else f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"


def trading_share(result: dict) -> float:
    """Share of the fold x seed tests in which the agent filled anything."""
    jobs = result["agents"]
    return sum(any(a["metrics"]["trades"] > 0 for a in j["agents"]) for j in jobs) / len(jobs)


def choose(base: dict, rows: list[dict]) -> dict:
    """Per option, the value whose agent minus the best baseline beats the base point's in mean and lower
    bound, among values whose agents trade (fills in at least half the tests: a point that stays flat
    must not "win" by not losing; stage 1 on the device picked feature_set 1 that way)."""
    ref = next(r for r in rows if r["point"] == "base")["overall"]["agent_minus_best_baseline"]
    chosen = dict(base)
    if ref["low"] is None:
        return chosen
    for name in GRID:
        best = (ref["low"], ref["mean"])
        for r in rows:
            d = r["overall"]["agent_minus_best_baseline"]
            if (r["option"] == name and r["trading"] >= 0.5 and d["low"] is not None and d["low"] > best[0]
                    and d["mean"] > best[1]):
                chosen[name], best = r["value"], (d["low"], d["mean"])
    return chosen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", type=Path, default=Path("../shared/data"))
    p.add_argument("--work", type=Path, default=Path("runs") / "sweep")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--train-window", type=int, default=2, help="datasets each fold trains on")
    p.add_argument("--timesteps", type=int, default=40_000, help="env steps per agent")
    p.add_argument("--params", nargs="+", default=list(GRID), choices=list(GRID), help="options to sweep")
    p.add_argument("--datasets", type=int, default=len(DATASETS), help="the first N of DATASETS (a CPU timing slice)")
    p.add_argument("--jobs", type=int, default=1, help="processes (fold x seed x point jobs at once)")
    p.add_argument("--cuda", action="store_true", help="train on the GPU (default: CPU; small nets and few envs)")
    a = p.parse_args()

    from trader.backtest.suite import BaselineOptions
    from trader.evaluate.folds import dataset_folds
    from trader.evaluate.report import evaluation_context, write_evaluation
    from trader.evaluate.run import Plan, run_plans
    from trader.evaluate.summary import summarize
    from trader.sim import load_market

    t_all = time.perf_counter()
    paths = convert_all(a.shared, a.work)[:a.datasets]
    t_data = time.perf_counter() - t_all
    base = base_point()
    plans, markets = [], {}
    for name, options in points(base, a.params):
        args = {**options, "trade_notional": TRADE_NOTIONAL, "max_position_notional": MAX_NOTIONAL,
                "total_timesteps": a.timesteps, "cuda": a.cuda}
        for path in paths:
            markets.setdefault((path, options["feature_set"]), load_market(path, feature_set=options["feature_set"]))
        rows = [len(markets[(path, options["feature_set"])].book) for path in paths]
        folds = dataset_folds(paths, rows, options["horizon"], a.train_window)
        plans.append(Plan("ppo", args, folds, list(range(a.seeds)), a.work / name, BaselineOptions(0.6, 0, 0.01)))
    total = sum(len(pl.folds) * len(pl.seeds) for pl in plans)
    print(f"{len(plans)} points x {len(plans[0].folds)} folds x {a.seeds} seeds = {total} agents, "
          f"{a.timesteps:,} env steps each, {a.jobs} jobs; data ready in {t_data:.0f} s", flush=True)
    t0 = time.perf_counter()
    named = points(base, a.params)
    rows: list[dict | None] = [None] * len(plans)

    def table(chosen: dict | None) -> list[str]:
        done = [r for r in rows if r is not None]
        head = [
            f"Defaults sweep: PPO, {len(plans[0].folds)} walk-forward folds (each trains on {a.train_window} "
            f"datasets, tests on the next) over {len(paths)} Binance datasets of BTCUSDT, ETHUSDT and NEXOUSDT, "
            f"{a.seeds} seeds, {a.timesteps:,} env steps per agent, sizes {TRADE_NOTIONAL:g} / {MAX_NOTIONAL:g} USDT; "
            f"base {json.dumps(base)}; one option at a time. Net PnL summed over folds, bps of max notional, mean "
            "over seeds [95 % bootstrap CI].", "",
            "| point | agent | agent - best baseline | best baseline | seeds beating flat | tests with fills | "
            "train s / agent |",
            "|---|---:|---:|---|---:|---:|---:|",
            *[f"| {r['point']} | {_ci(r['overall']['agent'])} | {_ci(r['overall']['agent_minus_best_baseline'])} | "
              f"{r['overall']['best_baseline']} | {r['overall']['seeds_beating_flat']:.0%} | {r['trading']:.0%} | "
              f"{r['train_s']:.0f} |" for r in done], "",
            f"{len(done)} of {len(plans)} points, {total} agents planned; {time.perf_counter() - t0:.0f} s with --jobs "
            f"{a.jobs} ({'cuda' if a.cuda else 'cpu'}), data {t_data:.0f} s, all {time.perf_counter() - t_all:.0f} s."]
        if chosen is None:
            return head + ["", "Unfinished: no choice made."]
        return head + ["", "Chosen (per option, the value whose agents trade and whose agent - best baseline beats the "
                           "base point's in mean and lower bound; the combination itself not evaluated: "
                           "benchmarks/sweep_confirm.py does that): trader/rl/defaults.py TRADER_DEFAULTS line",
                       "", f"    {_defaults_line(chosen).strip()}"]

    def plan_done(i: int, result: dict) -> None:
        (name, options), plan = named[i], plans[i]
        summary = summarize(result)
        by_path = {path: markets[(path, options["feature_set"])] for path in paths}
        write_evaluation(plan.out_dir, result, summary,
                         evaluation_context(plan, by_path, time.perf_counter() - t0, a.cuda))
        option = name.partition("=")[0]
        rows[i] = {"point": name, "option": option, "value": options.get(option), "overall": summary["overall"],
                   "train_s": sum(j["train_s"] for j in result["agents"]) / len(result["agents"]),
                   "trading": trading_share(result)}
        (a.work / "sweep.md").write_text("\n".join(table(None)) + "\n")  # what is done so far, if cut short

    a.work.mkdir(parents=True, exist_ok=True)
    run_plans(plans, a.jobs, lambda done, n, what: print(f"  {done}/{n} {what} {time.perf_counter() - t0:.0f} s",
                                                         flush=True), plan_done)
    chosen = choose(base, rows)
    (a.work / "sweep.md").write_text("\n".join(table(chosen)) + "\n")
    (a.work / "defaults.txt").write_text(_defaults_line(chosen) + "\n")
    print("\n".join(table(chosen)))


def _defaults_line(chosen: dict) -> str:
    return f'    "ppo": {json.dumps(chosen)},'.replace("true", "True").replace("false", "False")


if __name__ == "__main__":
    main()
