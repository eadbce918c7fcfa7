"""Issue 13, session 25: the trained recipes under the paper-first gate (trader.evaluate.summary.track_record_gate),
read over the test blocks of `markout_reward.py` WORKs that exist. Nothing trains: each seed's agents of a walk-forward
evaluation trade test block k only while their PnL over that evaluation's blocks before k is above zero, and stay
flat otherwise, the first block included. A deployment that paper-trades first and keeps paper trading while it is
flat can follow that rule live; it reads only blocks that ended before block k begins.

The rule and this reading were fixed and committed before the gate was computed on any run: the gate's record is
the seed's cumulative PnL over every earlier block of the same evaluation (a preset, or a held-out tail), a record
of exactly zero keeps it flat, and the first block is flat. The reading that decides is the recipe at 100 ms with
ten seeds over the 22 blocks (runs/s19/l and runs/s22/l59, `trader train --actions quote`'s default): issue 13's goal
under the gate is its PnL per block, minus flat and minus every other baseline, with each 95 % interval above zero.
Every other candidate's existing runs are read the same way and reported, none chosen. Several WORKs of one
candidate are its seed groups (`--first-seed`), read as one. PnL in bps of 2,000 quote a block.

    PYTHONPATH=python:benchmarks python3 benchmarks/track_record.py --work runs/s19/l --work runs/s22/l59 \
        --candidate markout_10s_symmetric_abstain_0.9_latency_100ms --out OUT
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from markout_reward import blocks_of, interval
from paired_blocks import POOLS, RUNS
from sweep_defaults import _ci
from trader.evaluate.summary import KEY, gate_summary


def read(works: list[Path], run: str) -> dict:
    """RUN over the seeds of every WORK: each seed's PnL per test block in fold order, and each block's baselines."""
    by_seed, base = {}, None
    for w in works:
        report = json.loads((w / run / "evaluation.json").read_text())
        folds = sorted(report["baselines"], key=int)
        for job in sorted(report["jobs"], key=lambda j: (j["seed"], int(j["fold"]))):
            by_seed.setdefault(job["seed"], {})[str(job["fold"])] = float(np.mean([m[KEY] for m in job["metrics"]]))
        base = base or blocks_of(report)[1]
    if any(list(v) != folds for v in by_seed.values()):
        raise SystemExit(f"{run}: a seed lacks a fold in {', '.join(map(str, works))}")
    return {"by_seed": {s: [v[f] for f in folds] for s, v in by_seed.items()}, "baselines": base}


def reading(runs: dict[str, dict]) -> dict:
    """The runs' blocks as one set, ungated and gated (each run's gate_summary, concatenated): per block the mean over
    seeds with its interval over blocks, the gated minus the ungated block for block, the gated minus each baseline,
    each seed's gated PnL summed over the blocks (over seeds), and the fold x seed tests the gate let trade."""
    ungated, gated, base, open_, tests = [], [], [], 0, 0
    summed: dict = {}
    for r in runs.values():
        seeds_mean = [float(np.mean(v)) for v in zip(*r["by_seed"].values())]
        g = gate_summary(r["by_seed"], seeds_mean, r["baselines"], "flat")
        ungated += seeds_mean
        gated += g["per_block"]
        base += r["baselines"]
        open_, tests = open_ + g["open"], tests + g["tests"]
        for s, v in g["per_seed"].items():
            summed[s] = summed.get(s, 0.0) + v
    seeds = sorted(summed, key=int)
    return {"blocks": len(gated), "ungated": interval(ungated), "gated": interval(gated),
            "gated_minus_ungated": interval([a - b for a, b in zip(gated, ungated)]),
            "gated_minus": {b: interval([a - row[b] for a, row in zip(gated, base)]) for b in base[0]},
            "gated_summed": interval([summed[s] for s in seeds]), "seeds": len(seeds),
            "seeds_above_flat": sum(summed[s] > 0 for s in seeds), "open": open_, "tests": tests,
            "per_block": {"ungated": ungated, "gated": gated}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, action="append", required=True, help="a WORK of the candidate (repeatable)")
    p.add_argument("--candidate", required=True)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    runs = {r: read(a.work, f"{r}__{a.candidate}") for r in RUNS
            if all((w / f"{r}__{a.candidate}" / "evaluation.json").exists() for w in a.work)}
    rows = {name: reading({r: runs[r] for r in members}) for name, members in
            [*((r, (r,)) for r in runs), *POOLS.items()] if all(r in runs for r in members)}
    lines = [f"`{a.candidate}` in {', '.join(map(str, a.work))} under the paper-first gate "
             "(trader.evaluate.summary.track_record_gate); PnL in bps of 2,000 quote per test block, mean [95 % CI] "
             "over blocks.", "",
             "| blocks of | n | ungated | gated | gated minus ungated | gated minus each baseline | every seed gated, "
             "summed (over seeds) | seeds above flat | tests the gate let trade |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for name, x in rows.items():
        minus = ", ".join(f"{b} {_ci(i)}" for b, i in x["gated_minus"].items())
        lines.append(f"| {name} | {x['blocks']} | {_ci(x['ungated'])} | {_ci(x['gated'])} | "
                     f"{_ci(x['gated_minus_ungated'])} "
                     f"| {minus} | {_ci(x['gated_summed'])} | {x['seeds_above_flat']} of {x['seeds']} | "
                     f"{x['open']} of {x['tests']} |")
    a.out.mkdir(parents=True, exist_ok=True)
    stem = f"gate__{a.candidate}"  # a candidate's name has dots: no with_suffix
    (a.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    (a.out / f"{stem}.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
