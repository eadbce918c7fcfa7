"""Sweep of `trader train`'s trader-env defaults (issue 13, "defaults that train"), each point judged by
`trader evaluate`'s walk-forward table: learning rate, entropy coefficient, horizon, reward scale and
number of envs, one at a time around the current defaults (a full grid is 3^5 evaluations).

    PYTHONPATH=python python3 benchmarks/sweep_defaults.py --data DIR --cuda --jobs 16 --out runs/sweep

Each point is one `trader evaluate` (folds x seeds, the same seeds at every point) with a --config file
holding the swept value; its report folder is OUT/<name>=<value>. The table (OUT/sweep.md, printed) gives
per point the agent's net PnL summed over folds (bps of max notional, mean over seeds with its 95 %
bootstrap interval), agent minus the best baseline with its interval, and the share of seeds beating
flat. Pick the defaults from it by the lower end of the interval, not the mean.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from click.testing import CliRunner

# swept name -> values (the learner's default is among them or next to them)
GRID = {
    "learning_rate": [1e-4, 2.5e-4, 1e-3],
    "ent_coef": [0.0, 0.01, 0.05],
    "horizon": [200, 500, 2000],
    "reward_scale": [0.1, 1.0, 10.0],
    "num_envs": [4, 16, 64],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", default=[], help="dataset folder (repeat); default: the bundled sample")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--timesteps", type=int, default=100_000, help="env steps per agent")
    p.add_argument("--actions", default="discrete", choices=["discrete", "continuous", "quote"])
    p.add_argument("--params", nargs="+", default=list(GRID), choices=list(GRID), help="which options to sweep")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--cuda", action="store_true")
    p.add_argument("--out", type=Path, default=Path("runs") / f"sweep__{int(time.time())}")
    a = p.parse_args()

    from trader.cli import main as trader

    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.time()
    for name in a.params:
        for value in GRID[name]:
            point = a.out / f"{name}={value}"
            config = a.out / f"{name}={value}.json"
            config.write_text(json.dumps({name: value, "actions": a.actions}))
            argv = ["evaluate", "--folds", str(a.folds), "--seeds", str(a.seeds), "--total-timesteps",
                    str(a.timesteps), "--config", str(config), "--jobs", str(a.jobs), "--out", str(point),
                    "--no-progress-bar", "--cuda" if a.cuda else "--no-cuda"]
            for d in a.data:
                argv += ["--data", d]
            t = time.time()
            res = CliRunner().invoke(trader, argv)
            if res.exit_code != 0:
                rows.append(f"| {name} | {value:g} | failed: {res.output.strip().splitlines()[-1]} | | | |")
                continue
            o = json.loads((point / "evaluation.json").read_text())["summary"]["overall"]
            rows.append(f"| {name} | {value:g} | {_ci(o['agent'])} | {_ci(o['agent_minus_best_baseline'])} "
                        f"({o['best_baseline']}) | {o['seeds_beating_flat']:.0%} | {time.time() - t:.0f} s |")
            print(rows[-1], flush=True)
    lines = [f"Sweep: {a.folds} folds x {a.seeds} seeds, {a.timesteps:,} env steps per agent, actions {a.actions}, "
             f"data {', '.join(a.data) or 'the bundled sample'}; one option at a time, the others at the defaults. "
             "Net PnL summed over folds, bps of max notional, mean over seeds [95 % bootstrap CI].", "",
             "| option | value | agent | agent - best baseline | seeds beating flat | time |",
             "|---|---:|---:|---:|---:|---:|", *rows, "", f"Wall time {time.time() - t0:.0f} s."]
    (a.out / "sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _ci(d) -> str:
    return "n/a" if d is None else f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"


if __name__ == "__main__":
    main()
