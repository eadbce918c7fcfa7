"""Issue 13: one recipe change read block for block: `markout_reward.py` WORKs of the same folds, WITH the change
(their runs of --candidate) and WITHOUT it (their runs of --without-candidate, default the same name), of the same
seeds or of other ones (a block's PnL is each side's mean over its seeds); several WORKs a side are seed groups of
the same runs (`--first-seed`), read as one. Session
21 read two changes so: every fold also training on the other full recording (`--train-also`: Bitstamp's folds on
all 34 h of NEXOUSDT, NEXOUSDT's on all 24 h of Bitstamp), against session 19's runs that trained on their own past
only; and a 2 bps markout hurdle (`markout_hurdle_bps`). Per run (a preset, or a held-out tail) and pooled over runs:
each seed's PnL summed over folds (mean [95 % CI] over seeds), its inventory and fills parts, the tests that traded,
then per test block (the agent's mean over seeds; mean [95 % CI] over blocks) for both, WITH minus WITHOUT block for
block, and the committee of the seeds per block; issue 13's goal read both ways for each side (each seed's PnL summed
over a pool's blocks, and per block against every baseline), with two seed groups a side how well they agree
block for block, and, where all four runs are there, the choice between the two sides made leaving one recording out
(each recording scored with the side that did better on the other's blocks: what choosing on these recordings is
worth on a recording it was not made on). PnL in bps of 2,000 quote a block.

    PYTHONPATH=python:benchmarks python3 benchmarks/paired_blocks.py --with runs/s21/x --without runs/s19/z \
        --candidate markout_10s_symmetric_abstain_0.9 --out OUT
    PYTHONPATH=python:benchmarks python3 benchmarks/paired_blocks.py --with runs/s21/h --without runs/s19/z \
        --candidate markout_10s_symmetric_abstain_0.9_hurdle_2bps --without-candidate markout_10s_symmetric_abstain_0.9 \
        --out OUT
    PYTHONPATH=python:benchmarks python3 benchmarks/paired_blocks.py --with runs/s21/h --with runs/s21/h5 \
        --without runs/s19/z --without runs/s19/z5 --candidate markout_10s_symmetric_abstain_0.9_hurdle_2bps \
        --without-candidate markout_10s_symmetric_abstain_0.9 --out OUT   # ten seeds a side
    PYTHONPATH=python:benchmarks python3 benchmarks/paired_blocks.py --with runs/s26/p \
        --without-stored results/cap_s25/vs_recipe_100ms/paired__...position_cap_1.json --without-side with \
        --without-group 0 --candidate markout_10s_symmetric_abstain_0.9_latency_100ms_position_cap_1_penalty_2 \
        --without-candidate markout_10s_symmetric_abstain_0.9_latency_100ms_position_cap_1 --out OUT  # a stored side
    PYTHONPATH=python:benchmarks python3 benchmarks/paired_blocks.py --with runs/s27/p5 \
        --with-stored results/charge_s26/vs_capped_recipe/paired__...penalty_2.json \
        --without-stored results/cap_s25/vs_recipe_100ms/paired__...position_cap_1.json --without-side with \
        --candidate markout_10s_symmetric_abstain_0.9_latency_100ms_position_cap_1_penalty_2 \
        --without-candidate markout_10s_symmetric_abstain_0.9_latency_100ms_position_cap_1 --out OUT  # seeds 0-4 stored
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from markout_reward import blocks_of, interval
from sweep_defaults import _ci
from trader.evaluate.summary import across_blocks, blocks_needed

RUNS = ("bitstamp18h", "nexo28h", "bitstamp_btcusd_20150501", "nexo_spot_34h")
POOLS = {"both presets (14 blocks)": RUNS[:2], "presets and tails (22 blocks)": RUNS}
# the recordings the runs cut: a preset is the head of its recording, the held-out tail its last 6 h
RECORDINGS = {"Bitstamp BTC/USD": ("bitstamp18h", "bitstamp_btcusd_20150501"), "NEXOUSDT": ("nexo28h", "nexo_spot_34h")}


def read(works: list[Path], run: str) -> dict:
    """RUN over the seeds of every WORK (seed groups of one evaluation, e.g. --first-seed 5), as merged() reads seed
    groups: each seed's PnL, the inventory and fills parts and each block's PnL as means over all the seeds, the
    tests, and per block the mean of the WORKs' committees (None unless every WORK tested one)."""
    groups = []
    for w in works:
        report = json.loads((w / run / "evaluation.json").read_text())
        ov = report["summary"]["overall"]
        blocks, baselines = blocks_of(report)
        groups.append({"per_seed": ov["agent_per_seed"],
                       "split": {k: {"mean": ov["agent_split"][k]["mean"]} for k in ("inventory", "fills")},
                       "tests": ov["tests"], "traded": ov["tests_that_traded"], "blocks": [float(v) for v in blocks],
                       "baseline_blocks": baselines, "group_blocks": [[float(v) for v in blocks]],
                       "committee": (ov.get("committee") or {}).get("per_block")})
    return merged(groups)


def stored(path: Path, side: str, run: str, group: int | None = None) -> dict:
    """RUN as read() gives it, from one side ("with" or "without") of a paired report this script wrote (its
    JSON): the runs a report compared need not be kept to be compared again. `group`: only that seed group (its
    WORK's place on that side: 0 is the first, seeds 0-4 in every report so far), whose per-block means the report
    keeps; the split into inventory and fills, the tests and the committee are not kept per group (None)."""
    rows = [x for x in json.loads(path.read_text())["runs"] if x["run"] == run]
    if not rows:
        raise SystemExit(f"{path}: no run {run}")
    x = rows[0]
    traded, tests = (int(v) for v in x[f"{side}_traded"].split(" of "))
    out = {"per_seed": x[f"{side}_per_seed"], "split": x[f"{side}_split"], "tests": tests, "traded": traded,
           "blocks": x[f"{side}_blocks"], "baseline_blocks": x[f"{side}_baselines"],
           "group_blocks": x[f"{side}_groups"], "committee": x[f"{side}_committee"]}
    if group is None:
        return out
    seeds = sorted(out["per_seed"], key=int)
    size = len(seeds) // len(out["group_blocks"])  # groups of equal size, in seed order
    mine = seeds[group * size:(group + 1) * size]
    return {**out, "per_seed": {s: out["per_seed"][s] for s in mine}, "split": None, "tests": None, "traded": None,
            "blocks": out["group_blocks"][group], "group_blocks": [out["group_blocks"][group]], "committee": None}


def merged(parts: list[dict]) -> dict:
    """Seed groups of one run (read() or stored() each) as one side: their seeds together, the means weighted by their
    seed counts, the committees per block by their groups' counts (each group's committee counts once); the split,
    the tests and the committee only where every group has them."""
    n = [len(x["per_seed"]) for x in parts]
    if len(parts) == 1:
        return parts[0]
    if len({s for x in parts for s in x["per_seed"]}) != sum(n):
        raise SystemExit("seed groups that share seeds: give groups of other seeds (--first-seed)")
    if any(not np.allclose(x["baseline_blocks"][i][b], parts[0]["baseline_blocks"][i][b]) for x in parts
           for i in range(len(parts[0]["baseline_blocks"])) for b in parts[0]["baseline_blocks"][i]):
        raise SystemExit("seed groups whose baselines differ: not the same runs")
    every = all(x["split"] for x in parts) and all(x["tests"] is not None for x in parts)
    committees = [x["committee"] for x in parts]
    return {"per_seed": {s: v for x in parts for s, v in x["per_seed"].items()},
            "split": {k: {"mean": float(np.average([x["split"][k]["mean"] for x in parts], weights=n))}
                      for k in ("inventory", "fills")} if every else None,
            "tests": sum(x["tests"] for x in parts) if every else None,
            "traded": sum(x["traded"] for x in parts) if every else None,
            "blocks": [float(v) for v in np.average([x["blocks"] for x in parts], axis=0, weights=n)],
            "baseline_blocks": parts[0]["baseline_blocks"],
            "group_blocks": [g for x in parts for g in x["group_blocks"]],
            # a part's committee is the mean of its seed groups' committees (a stored side may hold several)
            "committee": list(np.average(committees, axis=0, weights=[len(x["group_blocks"]) for x in parts]))
            if all(committees) else None}


def _needed(ci: dict, needed: int | None) -> str:
    """Where an interval over blocks crosses zero: the blocks like these it needs to lie above zero
    (trader.evaluate.summary.blocks_needed), or that none do (a mean at or below zero)."""
    if ci["low"] > 0:
        return ""
    return f" (needs {needed} blocks)" if needed is not None else " (no number of blocks)"


def minus_each_baseline(blocks: list[float], baselines: list[dict]) -> dict:
    """Per baseline: the blocks' PnL minus that baseline's, block for block, as interval() reads it."""
    return {b: interval([v - row[b] for v, row in zip(blocks, baselines)]) for b in baselines[0]}


def left_one_recording_out(rows: list[dict]) -> dict | None:
    """The choice between the two sides made as a user makes it, without the blocks it is judged on (leave one
    recording out): for each recording, the side whose mean PnL per block is higher on the other recordings' blocks
    (a tie keeps "without", the status quo), scored on that recording's blocks; pooled over every recording's blocks,
    beside always choosing either side. None unless every run of RECORDINGS is in `rows`."""
    by_run = {x["run"]: x for x in rows}
    if not all(r in by_run for runs in RECORDINGS.values() for r in runs):
        return None

    def blocks(side: str, recordings) -> list[float]:
        return [v for rec in recordings for r in RECORDINGS[rec] for v in by_run[r][f"{side}_blocks"]]

    choices, side_of = {}, {}
    for rec, runs in RECORDINGS.items():
        others = [o for o in RECORDINGS if o != rec]
        elsewhere = {side: float(np.mean(blocks(side, others))) for side in ("with", "without")}
        side = "with" if elsewhere["with"] > elsewhere["without"] else "without"
        choices[rec] = {"chosen": side, "elsewhere": elsewhere, "here": float(np.mean(blocks(side, [rec])))}
        side_of.update({r: side for r in runs})
    # the blocks in RUNS order, as the pooled table's, so that "always" reads the same interval there and here
    chosen = [v for r in RUNS for v in by_run[r][f"{side_of[r]}_blocks"]]
    always = {side: interval([v for r in RUNS for v in by_run[r][f"{side}_blocks"]]) for side in ("with", "without")}
    return {"choices": choices, "chosen": interval(chosen), **always, "n": len(chosen)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--with", dest="with_", type=Path, action="append", required=True,
                   help="a WORK with the change; repeat it for more seed groups of the same runs")
    p.add_argument("--without", type=Path, action="append", default=[], help="a WORK without it (repeatable)")
    p.add_argument("--without-stored", type=Path, default=None, metavar="JSON",
                   help="instead of --without: a paired report's JSON (this script's), its side --without-side")
    p.add_argument("--without-side", choices=("with", "without"), default="without")
    p.add_argument("--without-group", type=int, default=None, metavar="G",
                   help="with --without-stored: only its seed group G (0: the first WORK of that side)")
    p.add_argument("--with-stored", type=Path, default=None, metavar="JSON",
                   help="beside --with: one more seed group of the change, from a paired report's JSON (its side "
                        "--with-side, seed group --with-group), e.g. seeds 0-4 whose WORK is not kept")
    p.add_argument("--with-side", choices=("with", "without"), default="with")
    p.add_argument("--with-group", type=int, default=None, metavar="G",
                   help="with --with-stored: only its seed group G (0: the first WORK of that side)")
    p.add_argument("--candidate", required=True)
    p.add_argument("--without-candidate", default=None, help="WITHOUT's candidate [default: --candidate]")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    if bool(a.without) == bool(a.without_stored):
        p.error("give --without WORKs or --without-stored JSON, one of the two")
    rows = []
    other = a.without_candidate or a.candidate

    def without(r: str) -> dict:
        if a.without_stored:
            return stored(a.without_stored, a.without_side, r, a.without_group)
        return read(a.without, f"{r}__{other}")

    def with_(r: str) -> dict:
        mine = read(a.with_, f"{r}__{a.candidate}")
        return merged([stored(a.with_stored, a.with_side, r, a.with_group), mine]) if a.with_stored else mine

    runs = {r: (with_(r), without(r)) for r in RUNS
            if all((w / f"{r}__{a.candidate}" / "evaluation.json").exists() for w in a.with_)}
    for r, (w, wo) in runs.items():
        if len(w["blocks"]) != len(wo["blocks"]):
            raise SystemExit(f"{r}: the two sides ran other folds ({len(w['blocks'])} and {len(wo['blocks'])} blocks)")
        rows.append({"run": r, "blocks_n": len(w["blocks"]),
                     "with_every_seed": interval([w["per_seed"][s] for s in sorted(w["per_seed"], key=int)]),
                     "without_every_seed": interval([wo["per_seed"][s] for s in sorted(wo["per_seed"], key=int)]),
                     "with_split": w["split"], "without_split": wo["split"],
                     "with_traded": f"{w['traded']} of {w['tests']}",
                     "without_traded": f"{wo['traded']} of {wo['tests']}" if wo["tests"] is not None else "n/a",
                     "with_blocks": w["blocks"], "without_blocks": wo["blocks"],
                     "with_baselines": w["baseline_blocks"], "without_baselines": wo["baseline_blocks"],
                     "with_per_seed": w["per_seed"], "without_per_seed": wo["per_seed"],
                     "with_groups": w["group_blocks"], "without_groups": wo["group_blocks"],
                     "with_committee": w["committee"], "without_committee": wo["committee"]})
    pooled = []
    for name, members in POOLS.items():
        got = [x for x in rows if x["run"] in members]
        if len(got) != len(members):
            continue
        # a committee per block only where every run tested one (else its blocks would not be these)
        cat = {k: [v for x in got for v in x[k]] if all(x[k] for x in got) else [] for k in (
            "with_blocks", "without_blocks", "with_committee", "without_committee")}
        goal = {}
        for side in ("with", "without"):
            # issue 13's goal read both ways: each seed's PnL summed over the pool's blocks, and per block (the chance
            # of the market periods) against the best baseline (by its sum over the blocks) and every other
            # of the seeds every run of the pool tested; each side against its own baselines (the same blocks, but a
            # side may run at another latency)
            base = [b for x in got for b in x[f"{side}_baselines"]]
            total = {b: sum(row[b] for row in base) for b in base[0]}
            best = max(total, key=total.get)
            seeds = set.intersection(*(set(x[f"{side}_per_seed"]) for x in got))
            summed = [sum(x[f"{side}_per_seed"][s] for x in got) for s in sorted(seeds, key=int)]
            goal[side] = {"every_seed_summed": interval(summed), "seeds_above_flat": int(sum(v > 0 for v in summed)),
                          "seeds": len(summed), "best_baseline": best,
                          **across_blocks(cat[f"{side}_blocks"], base, best),
                          "minus_each_baseline": minus_each_baseline(cat[f"{side}_blocks"], base)}
            if cat[f"{side}_committee"]:  # the committees (per block their mean) read against the same baselines
                goal[side]["committee_minus_each_baseline"] = minus_each_baseline(cat[f"{side}_committee"], base)
                goal[side]["committee_blocks_needed"] = blocks_needed(
                    [c - b[best] for c, b in zip(cat[f"{side}_committee"], base)])
            # with two seed groups a side: do they agree block for block (a recipe's own per-block profile) or not
            if all(len(x[f"{side}_groups"]) >= 2 for x in got):
                g0, g1 = ([v for x in got for v in x[f"{side}_groups"][i]] for i in (0, 1))
                goal[side]["seed_groups_correlation"] = float(np.corrcoef(g0, g1)[0, 1])
        pooled.append({"pool": name, "n": len(cat["with_blocks"]), "goal": goal,
                       "with": interval(cat["with_blocks"]), "without": interval(cat["without_blocks"]),
                       "with_minus_without": interval([x - y for x, y in zip(cat["with_blocks"], cat["without_blocks"])]),
                       "with_committee": interval(cat["with_committee"]) if cat["with_committee"] else None,
                       "without_committee": interval(cat["without_committee"]) if cat["without_committee"] else None})
    source = (f"{a.without_stored}'s {a.without_side} side"
              + (f", seed group {a.without_group}" if a.without_group is not None else "") if a.without_stored
              else ", ".join(map(str, a.without)))
    mine = ", ".join(map(str, a.with_)) + (f" and {a.with_stored}'s {a.with_side} side" + (
        f", seed group {a.with_group}" if a.with_group is not None else "") if a.with_stored else "")
    same = all(x["with_per_seed"].keys() == x["without_per_seed"].keys() for x in rows)
    lines = [f"`{a.candidate}` in {mine} against `{other}` in {source}, "
             + ("the same seeds and folds" if same else "the same folds, other seeds (each side's own, every seed "
                "summed over its seeds; the blocks compared as each side's mean over its seeds)") + "; PnL in bps "
             "of 2,000 quote.", "",
             "| run | blocks | every seed, with | every seed, without | inventory / fills, with | inventory / fills, "
             "without | tests that traded, with / without | per block, with | per block, without | with minus without, "
             "block for block |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for x in rows:
        wb, ob = x["with_blocks"], x["without_blocks"]
        lines.append(f"| {x['run']} | {x['blocks_n']} | {_ci(x['with_every_seed'])} | {_ci(x['without_every_seed'])} | "
                     f"{x['with_split']['inventory']['mean']:+.2f} / {x['with_split']['fills']['mean']:+.2f} | "
                     + (f"{x['without_split']['inventory']['mean']:+.2f} / "
                        f"{x['without_split']['fills']['mean']:+.2f} | " if x["without_split"] else "n/a | ") +
                     f"{x['with_traded']} / {x['without_traded']} | {sum(wb) / len(wb):+.2f} | {sum(ob) / len(ob):+.2f} | "
                     f"{sum(u - v for u, v in zip(wb, ob)) / len(wb):+.2f} |")
    lines += ["", "| pooled | blocks | per block, with | per block, without | with minus without | committee per block, "
              "with | committee per block, without |", "|---|---:|---:|---:|---:|---:|---:|"]
    for x in pooled:
        lines.append(f"| {x['pool']} | {x['n']} | {_ci(x['with'])} | {_ci(x['without'])} | {_ci(x['with_minus_without'])} | "
                     + " | ".join(_ci(x[k]) if x[k] else "n/a" for k in ("with_committee", "without_committee")) + " |")
    lines += ["", "| pooled | side | every seed, summed over the blocks | seeds above flat | per block minus the best "
              "baseline | per block minus each other baseline | blocks beating every baseline |", "|---|---|---:|---:|---:|---|---:|"]
    for x in pooled:
        for side, g in x["goal"].items():
            others = ", ".join(f"{b} {_ci(i)}" for b, i in g["minus_each_baseline"].items() if b != g["best_baseline"])
            vs_best = g["minus_each_baseline"][g["best_baseline"]]
            lines.append(f"| {x['pool']} | {side} | {_ci(g['every_seed_summed'])} | {g['seeds_above_flat']} of {g['seeds']} | "
                         f"{g['best_baseline']} {_ci(vs_best)}{_needed(vs_best, g['blocks_needed'])} | {others} | "
                         f"{g['beating_every_baseline']} of {g['n']} |")
    committees = [(x["pool"], side, g) for x in pooled for side, g in x["goal"].items() if "committee_minus_each_baseline" in g]
    if committees:
        lines += ["", "| pooled | side | committee per block minus each baseline (per block the mean of the seed groups' "
                  "committees) |", "|---|---|---|"]
        lines += [f"| {pool} | {side} | " + ", ".join(
            f"{b} {_ci(i)}" + (_needed(i, g["committee_blocks_needed"]) if b == g["best_baseline"] else "")
            for b, i in g["committee_minus_each_baseline"].items()) + " |" for pool, side, g in committees]
    loro = left_one_recording_out(rows)
    if loro:
        lines += ["", f"Leave one recording out: each recording gets the side with the higher mean per block on the "
                  f"other's blocks ({loro['n']} blocks, per block mean [95 % CI] over blocks).", "",
                  "| recording | per block elsewhere, with / without | chosen | per block here, the chosen side |",
                  "|---|---:|---|---:|"]
        lines += [f"| {rec} | {c['elsewhere']['with']:+.2f} / {c['elsewhere']['without']:+.2f} | {c['chosen']} | "
                  f"{c['here']:+.2f} |" for rec, c in loro["choices"].items()]
        lines.append(f"| **every recording, the choices made so** | | | **{_ci(loro['chosen'])}** (always with "
                     f"{_ci(loro['with'])}, always without {_ci(loro['without'])}) |")
    for x in pooled:
        for side, g in x["goal"].items():
            if "seed_groups_correlation" in g:
                lines.append(f"\n{x['pool']}, {side}: the first two seed groups' per-block PnL correlate "
                             f"{g['seed_groups_correlation']:+.2f}.")
    a.out.mkdir(parents=True, exist_ok=True)
    stem = f"paired__{a.candidate}"  # a candidate's name has dots: no with_suffix
    (a.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    (a.out / f"{stem}.json").write_text(json.dumps({"runs": rows, "pooled": pooled, "left_one_recording_out": loro},
                                                   indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
