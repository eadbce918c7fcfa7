"""Issue 13: a candidate's runs in several WORK folders of `markout_reward.py`, read as one evaluation each: the
same runs for other seeds (`--first-seed`: another machine's share), or other runs beside them.

Per run (PRESET__CANDIDATE) this reads every WORK's evaluation.json that has it, checks that their baselines agree
(the same test rows give the same baseline PnL whatever the machine: anything else means the runs are not the same
evaluation) and that a seed in two of them has the same PnL, and reports the union of their seeds as
markout_reward.together does (over seeds, then over test blocks): per recording, for the four recordings together
and, where the WORKs also hold the held-out tails' runs (markout_reward.py --held-out), for those with the tails'
blocks too. For each --pair A,B: A minus B seed for seed, per recording and together. PnL in bps of 2,000 quote
(every run read here has that max position notional).

    PYTHONPATH=python:benchmarks python3 benchmarks/gather_seeds.py --work runs/a200 --work runs/held_out \
        --candidate markout_10s_symmetric_abstain_0.9 --candidate markout_10s_symmetric_abstain_0.9_latency_100ms \
        --pair markout_10s_symmetric_abstain_0.9_latency_100ms,markout_10s_symmetric_abstain_0.9 --out OUT
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from markout_reward import (ALL_DATASETS, blocks_of, max_notional_of, paired, summed_per_seed, table_together,
                            together)
from oos_goal import HELD_OUT
from sweep_defaults import MAX_NOTIONAL, _ci
from trader.evaluate.summary import activity

BASELINE_RTOL = 1e-9  # baselines of the same rows, run on two machines
TAILS = tuple(h[0] for h in HELD_OUT)  # markout_reward.py --held-out's runs: the last 6 h of two recordings


def gathered(works: list[Path], run: str) -> dict | None:
    """RUN's overall part (as an evaluation.json's summary holds it) over the seeds of every WORK that has it; None
    when none has it. ValueError when two WORKs disagree on a baseline or a seed."""
    reports = [(w, json.loads(p.read_text())) for w in works if (p := w / run / "evaluation.json").exists()]
    if not reports:
        return None
    overall_of = [(w, r["summary"]["overall"]) for w, r in reports]
    if max_notional_of(run) != MAX_NOTIONAL:
        raise ValueError(f"{run}: max position notional {max_notional_of(run):,.0f}, not {MAX_NOTIONAL:,.0f}")
    (w0, first), seeds = overall_of[0], {}
    for w, ov in overall_of:
        for b, v in first["baselines"].items():
            if not math.isclose(ov["baselines"].get(b, math.nan), v, rel_tol=BASELINE_RTOL, abs_tol=1e-9):
                raise ValueError(f"{w / run}: baseline {b} made {ov['baselines'].get(b)}, {w0 / run} {v}: not the "
                                 "same evaluation")
        for s, v in ov["agent_per_seed"].items():
            if s in seeds and not math.isclose(seeds[s], v, rel_tol=BASELINE_RTOL, abs_tol=1e-9):
                raise ValueError(f"{w / run}: seed {s} made {v}, another WORK {seeds[s]}")
            seeds[s] = v
    jobs = list({(j["fold"], j["seed"]): j for _, r in reports for j in r["jobs"]}.values())  # a seed in two: once
    return {"agent_per_seed": dict(sorted(seeds.items(), key=lambda kv: int(kv[0]))), "baselines": first["baselines"],
            "blocks": blocks_of({"jobs": jobs, "baselines": reports[0][1]["baselines"]}),
            **activity([j["metrics"] for j in jobs]), "works": [str(w) for w, _ in overall_of]}


def summary(name: str, ov: dict) -> dict:
    """One recording's gathered run: over seeds and over its test blocks, as markout_reward.together reads four."""
    return {**together(name, [ov], [ov["blocks"]]), "works": ov["works"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, action="append", required=True, help="a WORK of markout_reward.py (repeat)")
    p.add_argument("--candidate", action="append", required=True, help="a candidate run in them (repeat)")
    p.add_argument("--pair", action="append", default=[], help="A,B: candidate A minus candidate B, seed for seed")
    p.add_argument("--out", type=Path, required=True, help="folder for gather_seeds.md and .json")
    a = p.parse_args()
    datasets = sorted({d.name.partition("__")[0] for w in a.work for c in a.candidate for d in w.glob(f"*__{c}")
                       if (d / "evaluation.json").exists()})
    runs = {(d, c): ov for d in datasets for c in a.candidate if (ov := gathered(a.work, f"{d}__{c}"))}
    rows = [summary(f"{d}__{c}", ov) for (d, c), ov in runs.items()]
    for c in a.candidate:
        for label, group in (("all four", ALL_DATASETS), ("all four and the held-out tails", ALL_DATASETS + TAILS)):
            if all((d, c) in runs for d in group):
                rows.append(together(f"{label}__{c}", [runs[(d, c)] for d in group],
                                     [runs[(d, c)]["blocks"] for d in group]))
    pairs = []
    for pair in a.pair:
        x, _, y = pair.partition(",")
        for d in datasets:
            if (d, x) in runs and (d, y) in runs:
                pairs.append({"run": d, "a": x, "b": y, **paired(runs[(d, x)]["agent_per_seed"],
                                                                   runs[(d, y)]["agent_per_seed"])})
        if all((d, c) in runs for d in ALL_DATASETS for c in (x, y)):
            sums = [summed_per_seed([runs[(d, c)] for d in ALL_DATASETS]) for c in (x, y)]
            pairs.append({"run": "all four", "a": x, "b": y, **paired(*sums)})
    lines = [f"PnL in bps of {MAX_NOTIONAL:,.0f} quote, each seed's summed over folds; mean [95 % CI] over seeds, then "
             "over test blocks (each block's mean over seeds).", "", *table_together(rows)]
    if pairs:
        lines += ["", "| recording | A minus B, seed for seed | seeds | A | B |", "|---|---:|---:|---|---|",
                  *[f"| {q['run']} | {_ci(q)} | {q['seeds']} | {q['a']} | {q['b']} |" for q in pairs]]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "gather_seeds.md").write_text("\n".join(lines) + "\n")
    (a.out / "gather_seeds.json").write_text(json.dumps({"runs": rows, "pairs": pairs}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
