"""How often the move guard (cpp/env/move_guard.h, issue 13) is up on the recordings' own mids, no agent involved:
per recording and parameter set, the share of armed rows it holds up and the number of trips that raise it. Run
before choosing the guard's parameters for benchmarks/markout_reward.py (session 17), so the choice rests on how
much of each recording it takes away, not on any agent's result.

    PYTHONPATH=python python3 benchmarks/move_guard_stats.py --work runs/a200    # the datasets markout_reward.py converted
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from trader.sim import load_market
from trader.sim.reference_guard import ARM_WINDOWS, move_guard

S = 1_000_000_000
# (dataset folder under WORK/data, --interval-ms) as benchmarks/choice_confirm.py's PRESETS sample them
RECORDINGS = (("nexo28h_first_101223s", 100.0), ("bitstamp18h_first_64500s", 2000.0))
# (window s, sigmas, half-life s, hold s)
SETTINGS = ((60, 4.0, 1800, 300), (60, 5.0, 1800, 300), (60, 6.0, 1800, 300), (60, 5.0, 3600, 600), (300, 4.0, 3600, 600))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("runs") / "a200")
    a = p.parse_args()
    print("| recording | hours | window | sigmas | half-life | hold | rows up (of the armed rows) | trips |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, interval_ms in RECORDINGS:
        m = load_market(a.work / "data" / name, interval_ms=interval_ms)
        ts = m.ts.astype(np.int64)
        mid = (0.5 * (m.book[:, 0, 0] + m.book[:, 0, 2])).tolist()
        for window, sigmas, halflife, hold in SETTINGS:
            up = np.asarray(move_guard(ts.tolist(), mid, window * S, sigmas, halflife * S, hold * S))
            armed = ts >= ts[0] + ARM_WINDOWS * window * S
            trips = int(np.sum(up[armed][1:] & ~up[armed][:-1]))  # rows where it goes up again
            print(f"| {name} | {(ts[-1] - ts[0]) / 3.6e12:.1f} | {window} s | {sigmas:g} | {halflife} s | {hold} s | "
                  f"{100 * up[armed].mean():.2f} % | {trips} |", flush=True)


if __name__ == "__main__":
    main()
