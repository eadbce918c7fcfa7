"""How often the move guard (cpp/env/move_guard.h, issue 13) is up on the recordings' own mids, no agent involved:
per recording and parameter set, the share of armed rows it holds up and the number of trips that raise it. Run
before choosing the guard's parameters for benchmarks/markout_reward.py (session 17), so the choice rests on how
much of each recording it takes away, not on any agent's result. Also what followed the trips (session 31): each time
the guard goes up on a move one way (a fall or a rise alone), the mid's move over the next window in that direction,
so whether the rule's trips mark moves that go on or moves that revert.

    PYTHONPATH=python python3 benchmarks/move_guard_stats.py --work runs/a200    # the datasets markout_reward.py converted
    PYTHONPATH=python python3 benchmarks/move_guard_stats.py --work runs/s31/vm --work runs/s30/w   # presets and tails
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from trader.sim import load_market
from trader.sim.reference_guard import ARM_WINDOWS, NO_LONG, NO_SHORT, move_guard

S = 1_000_000_000
# (dataset folder under WORK/data, --interval-ms) as benchmarks/choice_confirm.py's PRESETS sample them
# and the held-out tails (their whole recordings, as markout_reward.py --held-out converts them)
RECORDINGS = (("nexo28h_first_101223s", 100.0), ("bitstamp18h_first_64500s", 2000.0), ("nexo_spot_34h", 100.0),
              ("bitstamp_btcusd_20150501", 2000.0))
# (window s, sigmas, half-life s, hold s); the last: session 30's slow guard
SETTINGS = ((60, 4.0, 1800, 300), (60, 5.0, 1800, 300), (60, 6.0, 1800, 300), (60, 5.0, 3600, 600),
            (300, 4.0, 3600, 600), (1800, 2.0, 21600, 1800))


def after_trips(ts: np.ndarray, mid: np.ndarray, row_bars: list[int], window_ns: int) -> np.ndarray:
    """For each row where the guard goes up on a move one way (its bits `row_bars` as move_guard(..., "against_move")
    gives them: NO_LONG alone after a fall, NO_SHORT alone after a rise) from nothing barred, the mid's move over the
    next window in that direction, bps (+: the move went on); trips with less than a window of rows after them are
    left out."""
    bars = np.asarray(row_bars)
    out = []
    for r in np.flatnonzero((bars[1:] != 0) & (bars[:-1] == 0)) + 1:
        if bars[r] not in (NO_LONG, NO_SHORT):
            continue
        end = int(np.searchsorted(ts, ts[r] + window_ns))
        if end < len(ts):
            out.append((1.0 if bars[r] == NO_SHORT else -1.0) * 1e4 * np.log(mid[end] / mid[r]))
    return np.asarray(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, action="append",
                   help="a markout_reward.py work folder; each recording is read from the first whose data/ holds it "
                        "(repeatable; default runs/a200)")
    a = p.parse_args()
    works = a.work or [Path("runs") / "a200"]
    print("| recording | hours | window | sigmas | half-life | hold | rows up (of the armed rows) | trips | "
          "one-way trips with a window after | the next window's move in the trip's direction, mean / median bps | "
          "went on |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, interval_ms in RECORDINGS:
        found = [w / "data" / name for w in works if (w / "data" / name).is_dir()]
        if not found:
            print(f"| {name} | not in {', '.join(str(w / 'data') for w in works)} | | | | | | | | | |")
            continue
        m = load_market(found[0], interval_ms=interval_ms)
        ts = m.ts.astype(np.int64)
        mid = (0.5 * (m.book[:, 0, 0] + m.book[:, 0, 2])).tolist()
        for window, sigmas, halflife, hold in SETTINGS:
            # one pass: "both" is up on exactly the rows where "against_move" bars anything
            bars = move_guard(ts.tolist(), mid, window * S, sigmas, halflife * S, hold * S, "against_move")
            up = np.asarray(bars) != 0
            armed = ts >= ts[0] + ARM_WINDOWS * window * S
            trips = int(np.sum(up[armed][1:] & ~up[armed][:-1]))  # rows where it goes up again
            went = after_trips(ts, np.asarray(mid), bars, window * S)
            moved = f"{went.mean():+.1f} / {np.median(went):+.1f}" if len(went) else ""
            print(f"| {name} | {(ts[-1] - ts[0]) / 3.6e12:.1f} | {window} s | {sigmas:g} | {halflife} s | {hold} s | "
                  f"{100 * up[armed].mean():.2f} % | {trips} | {len(went)} | {moved} | {int(np.sum(went > 0))} |",
                  flush=True)


if __name__ == "__main__":
    main()
