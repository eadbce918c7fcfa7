"""Issue 13: does a reward that credits each fill with its markout teach the quoting agents to avoid the
fills that lose?

Session 9 found the quoting agents' fills adversely selected within seconds (benchmarks/README.md, "Where
the PnL comes from"): on Bitstamp at low fees their fills earned +34 bps of max notional against the next
row's mid and -47 marked 10 s later. Every reward tried so far (PnL, dampened PnL, a holding cost) pays a
fill through the moves of the whole inventory that follow it, step by step; the markout reward
(`--reward markout`) pays each step only for its own fills, valued at the mid `--markout-ms` later, net of
fees, and nothing for the inventory (with the mid a martingale beyond that horizon, the same expected PnL
with less noise per action). One candidate, fixed before it ran: session 8's agent (quote_dampened's
options) with the markout reward at 10 s, the horizon the markouts named.

Protocol: inventory_risk.py's, one candidate, so nothing is chosen: walk-forward on Bitstamp BTC/USD's first
18 h (3 folds, 2 s grid, 20 seeds) and NEXOUSDT's first 28 h (4 folds, 100 ms, --test-seeds seeds: 10 as
session 9's), every seed tested, 40,000 steps, sizes 200 / 2,000 of quote currency, low fees. Beside each,
session 9's runs of the same seeds and rows (benchmarks/results/inventory_risk_s9/: the holding cost and
session 8's dampened reward), seed for seed: the difference and its bootstrap interval.

Then recordings the markout idea never looked at: Binance BTCUSDT and ETHUSDT (USD-M 07-18/19, spot 08-08/09,
USD-M 08-08, evaluate_shared.py's sequences without Bitstamp; one dataset per fold in time order, the last
two overlapping: a cross-market test), the markout reward and session 9's two rewards run there alike
(--test-seeds seeds, the same options), each against the others seed for seed.

    PYTHONPATH=python OMP_NUM_THREADS=1 python3 benchmarks/markout_reward.py --work runs/markout --jobs 2

Writes WORK/markout_reward.md and .json.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from choice_confirm import convert, evaluate
from evaluate_shared import GROUPS
from evaluate_shared import convert as convert_group
from inventory_risk import CANDIDATES as BEFORE_CANDIDATES
from inventory_risk import overall, run, write_config
from sweep_defaults import _ci

CANDIDATES = {"markout_10s": {"reward": "markout", "markout_ns": 10_000_000_000}}
# session 9's reports of the same protocol (their per-seed totals are read from them)
BEFORE = Path(__file__).parent / "results" / "inventory_risk_s9"
BEFORE_RUNS = ("penalty_0.5_per_s", "dampened_0.5")


def per_seed(report_md: Path) -> dict[int, float]:
    """Each seed's PnL summed over folds, from an evaluation.md's "agent per seed" line."""
    line = next(x for x in report_md.read_text().splitlines() if x.startswith("- agent per seed:"))
    return {int(s): float(v) for s, v in re.findall(r"seed (\d+): ([-+]?\d+\.\d+)", line)}


def paired(a: dict[int, float], b: dict[int, float], seed: int = 0) -> dict:
    """Mean of a - b over the seeds both ran, with a 95 % percentile bootstrap interval (10,000 resamples)."""
    seeds = sorted(set(a) & set(b))
    d = np.array([a[s] - b[s] for s in seeds])
    boot = np.random.default_rng(seed).choice(d, size=(10_000, len(d))).mean(axis=1)
    return {"mean": float(d.mean()), "low": float(np.percentile(boot, 2.5)), "high": float(np.percentile(boot, 97.5)),
            "seeds": len(seeds)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", type=Path, default=Path("../shared/data"))
    p.add_argument("--work", type=Path, default=Path("runs") / "markout")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--test-seeds", type=int, default=10, help="seeds of the NEXOUSDT run")
    p.add_argument("--timesteps", type=int, default=40_000, help="env steps per agent")
    p.add_argument("--jobs", type=int, default=1)
    a = p.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for preset, seeds in (("bitstamp18h", a.seeds), ("nexo28h", a.test_seeds)):
        data = convert(a.shared, a.work, preset)
        for name in CANDIDATES:
            row = run(a.work, data, preset, name, seeds, a.timesteps, a.jobs, CANDIDATES)
            ours = per_seed(a.work / f"{preset}__{name}" / "evaluation.md")
            row["minus"] = {b: paired(ours, per_seed(BEFORE / f"{preset}__{b}.md")) for b in BEFORE_RUNS}
            rows.append(row)
    everyone = {**CANDIDATES, **{b: BEFORE_CANDIDATES[b] for b in BEFORE_RUNS}}
    for group in ("BTC", "ETH"):
        paths = [p for i, (fmt, files) in enumerate(GROUPS[group]["sources"]) if fmt == "binance"
                 for p in convert_group(a.shared, a.work, f"binance_{group}_{i}", fmt, files)]
        for name, options in everyone.items():
            out = a.work / f"binance_{group}__{name}"
            if not (out / "evaluation.json").exists():
                config = write_config(a.work, name, options, "binance_spot", 100.0, a.timesteps)
                evaluate(a.work, out.name, paths, None, a.test_seeds, config, a.jobs, 100.0, ["--allow-overlap"])
        for name in CANDIDATES:
            row = overall(a.work / f"binance_{group}__{name}")
            ours = per_seed(a.work / f"binance_{group}__{name}" / "evaluation.md")
            row["minus"] = {b: paired(ours, per_seed(a.work / f"binance_{group}__{b}" / "evaluation.md"))
                            for b in BEFORE_RUNS}
            rows.append(row)
        rows += [{**overall(a.work / f"binance_{group}__{b}"), "minus": None} for b in BEFORE_RUNS]
    lines = ["| run | every seed: PnL | inventory | fills, net of fees | best baseline | "
             + " | ".join(f"minus {b}, seed for seed" for b in BEFORE_RUNS) + " |",
             "|---|---:|---:|---:|---|" + "---:|" * len(BEFORE_RUNS),
             *[f"| {r['run']} | {_ci(r['every_seed'])} | {_ci(r['inventory'])} | {_ci(r['fills'])} | "
               f"{r['best_baseline']} {r['best_baseline_pnl']:+.2f} | "
               + " | ".join(f"{_ci(r['minus'][b])} ({r['minus'][b]['seeds']} seeds)" if r["minus"] else ""
                            for b in BEFORE_RUNS) + " |"
               for r in rows]]
    (a.work / "markout_reward.md").write_text("\n".join(lines) + "\n")
    (a.work / "markout_reward.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
