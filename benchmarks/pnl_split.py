"""Where did the agents' PnL come from? After benchmarks/choice_confirm.py (or any `trader evaluate` whose run
folders are kept), every seed's checkpoint backtested again on its fold's test block, its PnL split in two
(trader.backtest.engine.compute_metrics): inventory, the position held times the mid's move (a directional
bet), and fills, what the fills earned against the mid after them net of fees (spread captured minus
adverse selection), and the fills' markouts (each step's net fill valued at the mid 10, 60 and 300 s later:
an edge that falls with the horizon is adverse selection). Evaluations run before the split existed do not have
it in their reports.

    PYTHONPATH=python OMP_NUM_THREADS=1 python3 benchmarks/pnl_split.py --work runs/confirm \
        --runs bitstamp18h__quote_dampened__low bitstamp18h__quote_dampened__vip0

Writes WORK/pnl_split.md and .json: per run, every seed's PnL, its inventory and fills parts (bps of max
notional, summed over folds, mean over seeds [95 % bootstrap CI]) and the same split of the baselines that
trade. Each seed's and baseline's PnL is checked against its report's to the last digit (a baseline its
report lacks, as Avellaneda-Stoikov on Bitstamp before session 9, is added unchecked).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from choice_confirm import test_blocks
from sweep_defaults import _ci
from trader.backtest.engine import MARKOUTS_S

PARTS = ("pnl_bps_of_max_notional", "pnl_inventory_bps_of_max_notional", "pnl_fills_bps_of_max_notional")


def split(folder: Path) -> dict:
    from trader.backtest.engine import env_config_from_run
    from trader.backtest.suite import run_agent, run_baselines
    from trader.data.dataset import load_dataset
    from trader.evaluate.stats import bootstrap_mean
    from trader.rl.policy import load, observation_market
    from trader.sim import load_market

    report = json.loads((folder / "evaluation.json").read_text())
    choice = report["context"].get("choice")
    seeds = choice["seeds"] if choice else report["context"]["seeds"]
    keys = PARTS + tuple(f"fills_marked_{h}s_bps_of_max_notional" for h in MARKOUTS_S)
    totals = {s: dict.fromkeys(keys, 0.0) for s in seeds}
    baselines: dict[str, dict] = {}
    for i, data, start, end, train_rows in test_blocks(report):
        for s in seeds:
            run = load(next((folder / f"fold_{i}").glob(f"trader__*__{s}__*")))
            market = observation_market(run.args, data)
            (res,) = run_agent(market, lambda obs, info: run.act(obs), run.algo, env_config_from_run(run.args),
                               start, end)
            own = (choice["folds"][i - 1]["test"][str(s)] if choice else
                   next(j for j in report["jobs"] if j["fold"] == i and j["seed"] == s)["metrics"][0])[PARTS[0]]
            if res.metrics[PARTS[0]] != own:
                raise SystemExit(f"{folder} fold {i} seed {s}: backtest gives {res.metrics[PARTS[0]]}, its report {own}")
            for key in keys:
                totals[s][key] += res.metrics[key]
        # as trader.evaluate.run.run_baselines_for: the test dataset on the agents' grid, fitted on the training rows
        test = load_dataset(data)
        plain = load_market(test, interval_ms=run.args.get("interval_ms", 100.0))
        for r in run_baselines(plain, test.events, env_config_from_run(run.args), start, end,
                               fit=(plain, test.events, train_rows))[0]:
            own = report["baselines"][str(i)].get(r.name, {}).get(PARTS[0])  # None: it did not run then
            if own is not None and r.metrics[PARTS[0]] != own:
                raise SystemExit(f"{folder} fold {i} {r.name}: backtest gives {r.metrics[PARTS[0]]}, its report {own}")
            if r.metrics["trades"] or r.name in baselines:
                acc = baselines.setdefault(r.name, dict.fromkeys(PARTS, 0.0))
                for key in PARTS:
                    acc[key] += r.metrics[key]
        print(f"{folder.name} fold {i} done", flush=True)
    return {"seeds": {key: bootstrap_mean([totals[s][key] for s in seeds])._asdict() for key in keys},
            "per_seed": totals, "baselines": baselines}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("runs") / "choice_confirm")
    p.add_argument("--runs", nargs="+", required=True, help="evaluation folders under --work")
    a = p.parse_args()
    rows = {run: split(a.work / run) for run in a.runs}
    lines = ["| run | every seed: PnL | inventory | fills, net of fees | " +
             " | ".join(f"fills marked {h} s later" for h in MARKOUTS_S) +
             " | baselines that trade: PnL = inventory + fills |", "|---|" + "---:|" * (3 + len(MARKOUTS_S)) + "---|",
             *[f"| {run} | " + " | ".join(_ci(r["seeds"][k]) for k in r["seeds"]) + " | " +
               "; ".join(f"{n} {b[PARTS[0]]:+.1f} = {b[PARTS[1]]:+.1f} + {b[PARTS[2]]:+.1f}"
                         for n, b in r["baselines"].items()) + " |" for run, r in rows.items()]]
    (a.work / "pnl_split.md").write_text("\n".join(lines) + "\n")
    (a.work / "pnl_split.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
