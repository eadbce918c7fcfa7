"""Issue 13: does the committee of an evaluation's seeds (trader.rl.committee: at every step what a strict majority of
their actions backs) earn more per test block than the seeds it is made of?

Every `trader evaluate` of 3 or more seeds also tests, per fold, the committee of its seeds (evaluation.json:
summary.overall.committee). This reads such evaluations, one WORK of `markout_reward.py` per committee (its seeds),
and pools the test blocks of the recordings given: per block the committee's PnL, the mean of its seeds' PnL and
each baseline's, in bps of the max position notional. Per committee, and for the committees of one candidate
together (per block the mean of the committees against the mean of all their seeds), it gives the mean over blocks
with its bootstrap 95 % interval (trader.evaluate.summary.across_blocks), the committee minus the seeds' mean block
for block, the committee minus each baseline block for block (issue 13's goal read for it), and the blocks in which
each beat every baseline.

    PYTHONPATH=python:benchmarks python3 benchmarks/committee_blocks.py --work runs/s19/z --work runs/s19/z5 \
        --candidate markout_10s_symmetric_abstain_0.9 --runs bitstamp18h,nexo28h --out OUT
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from markout_reward import blocks_of
from sweep_defaults import _ci
from trader.evaluate.summary import across_blocks, over_blocks


def committee_blocks(report: dict) -> dict:
    """One evaluation.json's blocks: the committee's PnL, the seeds' mean and the baselines, per test block."""
    committee = report["summary"]["overall"].get("committee")
    if committee is None or "untested" in committee:
        raise ValueError(f"no committee tested in every fold: {committee}")
    seeds_mean, baselines = blocks_of(report)
    return {"seeds": committee["seeds"], "committee": committee["per_block"], "seeds_mean": seeds_mean,
            "baselines": baselines}


def read_blocks(blocks: list[dict], label: str) -> dict:
    """Pooled blocks (committee_blocks of several runs, concatenated) read over blocks."""
    committee = [c for b in blocks for c in b["committee"]]
    seeds_mean = [s for b in blocks for s in b["seeds_mean"]]
    baselines = [x for b in blocks for x in b["baselines"]]
    best = max(baselines[0], key=lambda n: sum(x[n] for x in baselines))  # the best baseline over these blocks
    com, seeds = across_blocks(committee, baselines, best), across_blocks(seeds_mean, baselines, best)
    return {"label": label, "blocks": len(committee), "best_baseline": best, "committee": com, "seeds_mean": seeds,
            "committee_minus_seeds_mean": over_blocks([c - s for c, s in zip(committee, seeds_mean)]),
            "committee_minus_each_baseline": {n: over_blocks([c - x[n] for c, x in zip(committee, baselines)])
                                              for n in baselines[0]},
            "committee_per_block": committee, "seeds_mean_per_block": seeds_mean}


def committees_averaged(works: list[list[dict]]) -> list[dict]:
    """Several WORKs' committee_blocks of the same runs (the same test blocks, as many seeds each) as one: per block
    the mean of the committees and of all their seeds. ValueError when their baselines differ (other blocks)."""
    def flat(blocks: list[dict], key: str) -> list:
        return [v for b in blocks for v in b[key]]

    if any(flat(w, "baselines") != flat(works[0], "baselines") for w in works):
        raise ValueError("the WORKs' baselines differ: not the same test blocks")
    return [{"committee": np.mean([flat(w, "committee") for w in works], axis=0).tolist(),
             "seeds_mean": np.mean([flat(w, "seeds_mean") for w in works], axis=0).tolist(),
             "baselines": flat(works[0], "baselines")}]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, action="append", required=True,
                   help="a WORK of markout_reward.py: one committee per run (repeat)")
    p.add_argument("--candidate", action="append", required=True, help="a candidate run in them (repeat)")
    p.add_argument("--runs", default="bitstamp18h,nexo28h",
                   help="comma-separated recordings (a WORK's runs RECORDING__CANDIDATE) whose blocks are pooled")
    p.add_argument("--out", type=Path, required=True, help="folder for committee_blocks.md and .json")
    a = p.parse_args()
    recordings = a.runs.split(",")
    rows = []
    for cand in a.candidate:
        per_work = []
        for w in a.work:
            paths = [w / f"{r}__{cand}" / "evaluation.json" for r in recordings]
            if all(x.exists() for x in paths):
                per_work.append((w, [committee_blocks(json.loads(x.read_text())) for x in paths]))
        for w, blocks in per_work:
            rows.append(read_blocks(blocks, f"{cand}, seeds {blocks[0]['seeds']} ({w})"))
        if len(per_work) > 1:
            rows.append(read_blocks(committees_averaged([bl for _, bl in per_work]),
                                    f"{cand}, the {len(per_work)} committees together"))
    lines = [f"Test blocks of {', '.join(recordings)} pooled; PnL in bps of max position notional per block; mean [95 % "
             "CI] over blocks.", "",
             "| committee | blocks | committee: PnL per block | seeds' mean: PnL per block | committee minus seeds' mean, "
             "block for block | blocks above every baseline: committee, seeds' mean |",
             "|---|---:|---:|---:|---:|---:|",
             *[f"| {r['label']} | {r['blocks']} | {_ci(r['committee']['agent'])} | {_ci(r['seeds_mean']['agent'])} | "
               f"{_ci(r['committee_minus_seeds_mean'])} | {r['committee']['beating_every_baseline']}, "
               f"{r['seeds_mean']['beating_every_baseline']} |" for r in rows],
             "", "| committee | minus each baseline, per block |", "|---|---|",
             *[f"| {r['label']} | " + ", ".join(f"{n} {_ci(i)}" for n, i in r["committee_minus_each_baseline"].items())
               + " |" for r in rows]]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "committee_blocks.md").write_text("\n".join(lines) + "\n")
    (a.out / "committee_blocks.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
