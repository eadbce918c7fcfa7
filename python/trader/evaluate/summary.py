"""The numbers of an evaluation: per fold and overall, the agent's mean over seeds with a bootstrap 95 %
interval, every baseline, the agent minus the best baseline with its interval, and the fraction of
seeds that beat flat; overall also the same across the test blocks (across_blocks), and the committee of the
seeds (committee_summary) when the evaluation tested one, and the seeds under the paper-first gate
(gate_open).

Overall, one seed's track record is the sum over folds of its PnL in bps of the max position notional
(scale-free: folds may trade different instruments and quote currencies); the best baseline is the one
with the highest such sum among those that ran in every fold.
"""

from __future__ import annotations

import numpy as np

from trader.backtest.report import COLUMNS
from trader.evaluate.stats import bootstrap_mean

# (metric, header, format) of the tables: the backtest report's columns (trader.backtest.report.COLUMNS)
METRICS = [(key, *COLUMNS[key]) for key in (
    "pnl_quote", "pnl_bps_of_notional", "pnl_bps_of_max_notional", "pnl_inventory_bps_of_max_notional",
    "pnl_fills_bps_of_max_notional", "sharpe_period", "max_drawdown_quote", "turnover",
    "maker_fees", "taker_fees", "fill_ratio", "trades", "mean_abs_inventory_base")]
KEY = "pnl_bps_of_max_notional"
SPLIT = {"inventory": "pnl_inventory_bps_of_max_notional", "fills": "pnl_fills_bps_of_max_notional"}  # adds up to KEY
# Test blocks below this many get no interval across them: the percentile bootstrap of a mean of n values is too
# narrow for small n (its spread is sqrt((n - 1) / n) of the standard error and its coverage falls well below the
# nominal level; Hesterberg 2015, "What teachers should know about the bootstrap", The American Statistician 69(4)).
MIN_BLOCKS = 5
Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile: a two-sided 95 % interval


def agent_metric(job: dict, key: str) -> float | None:
    """One seed's value: the mean over its agents (one, or K in one book), None if undefined for all."""
    vals = [a["metrics"][key] for a in job["agents"] if a["metrics"][key] is not None]
    return float(np.mean(vals)) if vals else None


def activity(tests: list[list[dict]]) -> dict:
    """How much the agents traded: `tests` holds each fold x seed test's metrics, one dict per agent. The number
    of tests, those in which some agent traded, and the share of test steps at the position limit (mean over
    tests and agents): an agent at 0 that never traded is flat by abstaining, one at 0 that traded is not."""
    return {"tests": len(tests), "tests_that_traded": sum(any(m["trades"] > 0 for m in t) for t in tests),
            "time_at_limit_pct": float(np.mean([m["time_at_limit_pct"] for t in tests for m in t]))}


def over_blocks(values: list[float], seed: int = 0) -> dict:
    """The mean of one value per test block with its bootstrap 95 % interval over blocks (none below MIN_BLOCKS)."""
    ci = bootstrap_mean(values, seed=seed)._asdict()
    return ci if len(values) >= MIN_BLOCKS else {**ci, "low": None, "high": None}


def blocks_needed(values: list[float]) -> int | None:
    """How many test blocks like these a 95 % interval of their mean needs to lie above zero: at their mean m and
    standard deviation s, the smallest n (at least MIN_BLOCKS, below which no interval is given) with
    m - Z95 s / sqrt(n) > 0, the normal approximation of the sample size of a one-sample mean (Cohen 1988,
    "Statistical power analysis for the behavioral sciences", ch. 2). None when the mean is not above zero (no
    number of such blocks puts it there) or fewer than MIN_BLOCKS blocks estimate the spread. Issue 13: the seeds
    of one recipe agree block for block (benchmarks/README.md, session 29), so it is the blocks, not the seeds,
    that an evaluation must add to tell a small edge from zero."""
    x = np.asarray(values, dtype=float)
    if len(x) < MIN_BLOCKS or not x.mean() > 0:
        return None
    return max(MIN_BLOCKS, int(np.floor((Z95 * x.std(ddof=1) / x.mean()) ** 2)) + 1)


def across_blocks(agent: list[float], baselines: list[dict[str, float]], best: str, seed: int = 0) -> dict:
    """The chance of the market periods themselves, which the seeds' interval leaves out (every seed trades the
    same rows): `agent` holds the agent's PnL per test block (its mean over seeds), `baselines` each baseline's in
    the same blocks. The mean over blocks of the agent and of the agent minus baseline `best`, each with its
    bootstrap 95 % interval over blocks (none below MIN_BLOCKS blocks), the blocks such an interval of the agent
    minus `best` would need to lie above zero at its mean and spread (blocks_needed), and the blocks in which the
    agent beat every baseline."""
    minus_best = [a - b[best] for a, b in zip(agent, baselines)]
    return {"n": len(agent), "agent": over_blocks(agent, seed),
            "agent_minus_best_baseline": over_blocks(minus_best, seed), "blocks_needed": blocks_needed(minus_best),
            "beating_every_baseline": sum(a > max(b.values()) for a, b in zip(agent, baselines))}


def gate_open(blocks: list[float]) -> list[bool]:
    """Paper first (issue 13): a seed trades test block k only while its agents' PnL over the test blocks before k
    is above zero, and stays flat otherwise, the first block included, which has no record. The record counts every
    earlier block whether the seed traded it or not, as a deployment that keeps paper trading while it is flat
    knows it; so every decision reads only blocks that ended before block k begins. `blocks`: one seed's PnL per
    test block in time order; whether the gate is open in each."""
    record, out = 0.0, []
    for value in blocks:
        out.append(record > 0)
        record += value
    return out


def track_record_gate(blocks_by_seed: dict) -> dict:
    """Each seed's PnL per test block (in time order) under the paper-first gate (gate_open): flat's 0 where it
    is closed."""
    return {s: [v if o else 0.0 for v, o in zip(blocks, gate_open(blocks))] for s, blocks in blocks_by_seed.items()}


def gate_summary(blocks_by_seed: dict, seeds_mean: list[float], baselines: list[dict[str, float]], best: str,
                 seed: int = 0) -> dict:
    """The seeds under track_record_gate as one more walk-forward agent: per test block their mean, its sum over
    folds, across the blocks as across_blocks reads the agent, minus the seeds' mean block for block (what the gate
    adds), each seed's gated sum, and the fold x seed tests the gate let trade."""
    gated = track_record_gate(blocks_by_seed)
    per_block = [float(np.mean(v)) for v in zip(*gated.values())]
    return {"per_block": per_block, "total": float(sum(per_block)),
            "per_seed": {s: float(sum(v)) for s, v in gated.items()},
            "open": sum(sum(gate_open(v)) for v in blocks_by_seed.values()),
            "tests": sum(len(v) for v in blocks_by_seed.values()),
            "blocks": across_blocks(per_block, baselines, best, seed),
            "minus_seeds_mean": over_blocks([g - a for g, a in zip(per_block, seeds_mean)], seed)}


def committee_summary(committees: dict, seeds_mean: list[float], baselines: list[dict[str, float]], best: str,
                      seed: int = 0) -> dict:
    """The committee of each fold's seeds (trader.evaluate.run.committee_test's results by fold, in fold order) as
    one more walk-forward agent: its PnL summed over folds, across the test blocks as across_blocks reads the
    agent, and minus the seeds' mean block for block (what voting adds to the seeds it is made of); or the folds
    where it could not be tested and why."""
    untested = {i: c["note"] for i, c in committees.items() if "note" in c}
    if untested:
        return {"untested": untested}
    per_block = [agent_metric(c, KEY) for _, c in sorted(committees.items())]
    return {"seeds": next(iter(committees.values()))["seeds"], "per_block": per_block, "total": float(sum(per_block)),
            "blocks": across_blocks(per_block, baselines, best, seed),
            "minus_seeds_mean": over_blocks([c - a for c, a in zip(per_block, seeds_mean)], seed)}


def _interval(values: list, seed: int) -> dict | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return bootstrap_mean(vals, seed=seed)._asdict()


def summarize(results: dict, seed: int = 0) -> dict:
    folds, totals_base, block_agent, block_base, by_seed = [], {}, [], [], {}
    totals = {key: {} for key in (KEY, *SPLIT.values())}  # metric -> seed -> its sum over folds
    for index, base_curves in sorted(results["baselines"].items()):
        jobs = [j for j in results["agents"] if j["fold"] == index]
        strategies = {"agent": {k: _interval([agent_metric(j, k) for j in jobs], seed) for k, _, _ in METRICS}}
        committee = results.get("committees", {}).get(index, {})
        if "agents" in committee:
            strategies["committee"] = {k: agent_metric(committee, k) for k, _, _ in METRICS}
        for c in base_curves:
            strategies[c["name"]] = {k: c["metrics"][k] for k, _, _ in METRICS}
        best = max((c for c in base_curves), key=lambda c: c["metrics"][KEY])
        agent_vals = [agent_metric(j, KEY) for j in jobs]
        block_agent.append(float(np.mean(agent_vals)))
        block_base.append({c["name"]: c["metrics"][KEY] for c in base_curves})
        folds.append({
            "fold": index, "strategies": strategies, "best_baseline": best["name"],
            "agent_minus_best_baseline": _interval([v - best["metrics"][KEY] for v in agent_vals], seed),
            "seeds_beating_flat": float(np.mean([v > _flat(base_curves) for v in agent_vals])),
        })
        for j in jobs:
            for key, per_seed in totals.items():
                per_seed[j["seed"]] = per_seed.get(j["seed"], 0.0) + agent_metric(j, key)
            by_seed.setdefault(j["seed"], []).append(agent_metric(j, KEY))
        for c in base_curves:
            totals_base[c["name"]] = totals_base.get(c["name"], 0.0) + c["metrics"][KEY]
    # A baseline that could not run in some fold (e.g. no fit) has no walk-forward total to compare with.
    partial = sorted(n for n in totals_base if sum(n in {c["name"] for c in cs} for cs in results["baselines"].values())
                     < len(results["baselines"]))
    totals_base = {n: v for n, v in totals_base.items() if n not in partial}
    seeds = sorted(totals[KEY])
    agent_totals = [totals[KEY][s] for s in seeds]
    best_name = max(totals_base, key=totals_base.get)
    overall = {
        "metric": f"{KEY}, summed over folds",
        "agent": _interval(agent_totals, seed),
        "agent_per_seed": dict(zip(seeds, agent_totals)),
        "agent_split": {part: _interval([totals[key][s] for s in seeds], seed) for part, key in SPLIT.items()},
        "baselines": totals_base,
        "baselines_not_in_every_fold": partial,
        "best_baseline": best_name,
        "agent_minus_best_baseline": _interval([v - totals_base[best_name] for v in agent_totals], seed),
        "seeds_beating_flat": float(np.mean([v > totals_base.get("flat", 0.0) for v in agent_totals])),
        "seeds_beating_every_baseline": float(np.mean([v > max(totals_base.values()) for v in agent_totals])),
        "blocks": across_blocks(block_agent, block_base, best_name, seed),
        **activity([[a["metrics"] for a in j["agents"]] for j in results["agents"]]),
    }
    if len(block_agent) > 1 and all(len(v) == len(block_agent) for v in by_seed.values()):  # every seed, every fold
        overall["track_record_gate"] = gate_summary(by_seed, block_agent, block_base, best_name, seed)
    if results.get("committees"):
        overall["committee"] = committee_summary(results["committees"], block_agent, block_base, best_name, seed)
    return {"folds": folds, "overall": overall}


def _flat(curves: list[dict]) -> float:
    return next((c["metrics"][KEY] for c in curves if c["name"] == "flat"), 0.0)
