"""After benchmarks/choice_confirm.py: each group of K seeds as one agent, the mean of their action
probabilities deciding (the most probable action), instead of the one seed best on validation; backtested
from the same checkpoints on the same test blocks (no training). Written after the choice failed on these
rows (session 8): a first look at the next idea, not a held-out test.

    PYTHONPATH=python OMP_NUM_THREADS=1 python3 benchmarks/ensemble_check.py --work runs/confirm --runs bitstamp18h__quote_dampened__low

Writes WORK/ensemble_check.md and .json: per run, the ensembles' net PnL (bps of max notional, summed over
folds, mean over groups [95 % bootstrap CI]) beside choice_confirm.py's chosen and every-seed numbers.
PPO checkpoints with discrete actions (market orders, quotes) only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from choice_confirm import summary, test_blocks
from sweep_defaults import _ci


def ensemble(runs: list[str]):
    """obs batch -> the action with the highest mean probability over the PPO runs (their policies'
    logits, observations normalized by each run's own statistics)."""
    from trader.rl.ppo import restore
    from trader.run.checkpoints import load_checkpoint

    members = []
    for run in runs:
        ckpt = load_checkpoint(run, state=False)
        spec = ckpt.metadata["policy_spec"]
        if ckpt.metadata.get("algo") != "ppo" or not spec["num_actions"]:
            raise SystemExit(f"{run}: expected a PPO run with discrete actions")
        members.append(restore(spec, ckpt.weights))

    @torch.no_grad()
    def act(obs, info):
        probs = sum(torch.softmax(agent.actor(inputs(obs)), -1) for agent, inputs in members)
        return probs.argmax(-1).numpy()

    return act


def check(folder: Path, k: int) -> dict:
    from trader.backtest.engine import env_config_from_run
    from trader.backtest.suite import run_agent
    from trader.evaluate.summary import KEY
    from trader.evaluate.stats import bootstrap_mean
    from trader.rl.policy import load, observation_market

    report = json.loads((folder / "evaluation.json").read_text())
    seeds = report["context"]["choice"]["seeds"]
    totals = [0.0] * (len(seeds) // k)
    for i, data, start, end, _ in test_blocks(report):
        runs = {s: str(next((folder / f"fold_{i}").glob(f"trader__ppo__{s}__*"))) for s in seeds}
        args = load(runs[seeds[0]]).args
        market = observation_market(args, data)
        # check: one seed alone is that seed's own backtest, to the last digit
        (alone,) = run_agent(market, ensemble([runs[seeds[0]]]), "ppo", env_config_from_run(args), start, end)
        own = report["context"]["choice"]["folds"][i - 1]["test"][str(seeds[0])][KEY]
        if alone.metrics[KEY] != own:
            raise SystemExit(f"{folder} fold {i}: seed {seeds[0]} alone gives {alone.metrics[KEY]}, its test {own}")
        for g in range(len(totals)):
            group = [runs[s] for s in seeds[g * k:(g + 1) * k]]
            (result,) = run_agent(market, ensemble(group), "ppo", env_config_from_run(args), start, end)
            totals[g] += result.metrics[KEY]
        print(f"{folder.name} fold {i} done", flush=True)
    return {"ensemble": bootstrap_mean(totals)._asdict(), "per_group": totals, **summary(folder)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("runs") / "choice_confirm")
    p.add_argument("--runs", nargs="+", required=True, help="run folders of choice_confirm.py under --work")
    p.add_argument("--k", type=int, default=4, help="seeds per ensemble (choice_confirm.py's groups)")
    a = p.parse_args()
    rows = {run: check(a.work / run, a.k) for run in a.runs}
    lines = ["| run | ensemble of 4 | chosen (best of 4) | every seed |", "|---|---:|---:|---:|",
             *[f"| {run} | {_ci(r['ensemble'])} | {_ci(r['chosen'])} | {_ci(r['every_seed'])} |"
               for run, r in rows.items()]]
    (a.work / "ensemble_check.md").write_text("\n".join(lines) + "\n")
    (a.work / "ensemble_check.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
