"""Issue 13: does pricing inventory risk harder turn the quoting agents' fill edge into net PnL?

Session 9 split the confirmation runs' PnL (benchmarks/pnl_split.py): on Bitstamp at low fees every seed's
fills earned +34 bps of max notional (95 % CI +28 to +40) while the inventory they held lost -59 (-93 to
-22). The candidates below (fixed before any of them ran) differ from session 8's `quote_dampened` only in
how the reward prices inventory:

- `dampened_0.5`: session 8's agent, the dampened-PnL reward of Spooner et al. (2018) with eta 0.5;
- `dampened_1`: eta 1, every gain of the inventory's mark-to-market removed from the reward, every loss kept;
- `dampened_1_flatten`: the same, and the quote action may also flatten the position with a market order;
- `penalty_0.5_per_s`: the PnL reward less a holding cost of 0.5 bps of the max notional per second at full
  inventory, quadratic in position / limit (the env's inventory_penalty, whose rate is per step: set to 0.5 x
  the grid's seconds per step, so that a cost per second carries from one grid to another).

Protocol, leave one dataset out: every candidate runs walk-forward (20 seeds, every seed tested, no choice
among seeds, 40,000 steps, sizes 200 / 2,000 of quote currency, low fees) on Bitstamp BTC/USD's first 18 h
(3 folds, 2 s grid); the candidate with the best mean there, if it is not session 8's, then runs with session
8's on NEXOUSDT's first 28 h (4 folds, 100 ms), where the choice is tested (--test-seeds seeds each: session 9
ran 10 there, the 2-core box's time). A run whose evaluation.json exists is read, not run again.

    PYTHONPATH=python OMP_NUM_THREADS=1 python3 benchmarks/inventory_risk.py --work runs/inventory_risk --jobs 16

Writes WORK/inventory_risk.md and .json: per run, every seed's net PnL, its inventory and fills parts (bps of
max notional, summed over folds, mean [95 % bootstrap CI]) and the best baseline.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from choice_confirm import PRESETS, convert, evaluate
from oos_goal import options_of
from sweep_defaults import _ci

CANDIDATES = {
    "dampened_0.5": {},
    "dampened_1": {"dampen_eta": 1.0},
    "dampened_1_flatten": {"dampen_eta": 1.0, "quote_flatten": True},
    "penalty_0.5_per_s": {"reward": "inventory_penalty", "inventory_penalty_bps_per_s": 0.5},
}
SELECT_ON, TEST_ON = "bitstamp18h", "nexo28h"
BEFORE = "dampened_0.5"  # session 8's


def write_config(work: Path, name: str, options: dict, venue: str, interval_ms: float, timesteps: int) -> Path:
    """WORK/NAME__VENUE.json: session 8's quote_dampened options at low fees with `options` on top."""
    config = work / f"{name}__{venue}.json"
    options = {**options_of("quote_dampened", "low", venue, timesteps), **options}
    if "inventory_penalty_bps_per_s" in options:  # the env's rate is per step
        options["inventory_penalty_bps"] = options.pop("inventory_penalty_bps_per_s") * interval_ms / 1000
    config.write_text(json.dumps(options))
    return config


def overall(out: Path) -> dict:
    """An evaluation's every-seed PnL, its inventory and fills parts, the best baseline."""
    ov = json.loads((out / "evaluation.json").read_text())["summary"]["overall"]
    return {"run": out.name, "every_seed": ov["agent"], **ov["agent_split"],
            "best_baseline": ov["best_baseline"], "best_baseline_pnl": ov["baselines"][ov["best_baseline"]],
            "minus_best": ov["agent_minus_best_baseline"]}


def run(work: Path, data: str, preset: str, name: str, seeds: int, timesteps: int, jobs: int,
        candidates: dict = CANDIDATES, extra: list[str] = (), folds: int | None = None) -> dict:
    """`trader evaluate` of candidate `name` (session 8's options with candidates[name] on top) on
    PRESETS[preset] (`extra`: more of its arguments; `folds`: other than the preset's), or its report if it
    exists: overall()."""
    out = work / f"{preset}__{name}"
    if not (out / "evaluation.json").exists():
        *_, preset_folds, interval_ms, venue = PRESETS[preset]
        folds = folds or preset_folds
        config = write_config(work, name, candidates[name], venue, interval_ms, timesteps)
        evaluate(work, out.name, data, folds, seeds, config, jobs, interval_ms, extra)
    return overall(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", type=Path, default=Path("../shared/data"))
    p.add_argument("--work", type=Path, default=Path("runs") / "inventory_risk")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--test-seeds", type=int, default=10, help=f"seeds of the runs on {TEST_ON}")
    p.add_argument("--timesteps", type=int, default=40_000, help="env steps per agent")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--select-only", action="store_true", help=f"stop after the runs on {SELECT_ON}")
    a = p.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    rows = []

    def write() -> None:
        lines = ["| run | every seed: PnL | inventory | fills, net of fees | best baseline | minus the best baseline |",
                 "|---|---:|---:|---:|---|---:|",
                 *[f"| {r['run']} | {_ci(r['every_seed'])} | {_ci(r['inventory'])} | {_ci(r['fills'])} | "
                   f"{r['best_baseline']} {r['best_baseline_pnl']:+.2f} | {_ci(r['minus_best'])} |" for r in rows]]
        (a.work / "inventory_risk.md").write_text("\n".join(lines) + "\n")
        (a.work / "inventory_risk.json").write_text(json.dumps(rows, indent=1))
        print("\n".join(lines), flush=True)

    data = convert(a.shared, a.work, SELECT_ON)
    for name in CANDIDATES:
        rows.append(run(a.work, data, SELECT_ON, name, a.seeds, a.timesteps, a.jobs))
        write()
    best = max(rows, key=lambda r: r["every_seed"]["mean"])["run"].split("__")[1]
    print(f"chosen on {SELECT_ON}: {best}", flush=True)
    if a.select_only or best == BEFORE:
        return  # session 8's candidate again: nothing new to test on NEXOUSDT
    data = convert(a.shared, a.work, TEST_ON)
    for name in (best, BEFORE):
        rows.append(run(a.work, data, TEST_ON, name, a.test_seeds, a.timesteps, a.jobs))
        write()


if __name__ == "__main__":
    main()
