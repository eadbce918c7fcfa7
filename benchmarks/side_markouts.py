"""Which side does the data pay? Per-side fills and markouts of one fixed quoter, on every fold's training rows
and test block (issue 13, session 13).

Session 12's quoting agents on Bitstamp BTC/USD sat short at the position limit in every test block, with
the markout reward and with the training rows' drift taken out of it (benchmarks/README.md, "An agent that
starts flat"). This asks the data, with no agent: a quoter at the touch on both sides every step
(`encode_quote(0, 0)`, the env options of a benchmark's candidate: sizes, fees, latency, queue model) runs
once over each fold's training rows and once over its test block, and its fills are split by side. For each
side: the number of steps with a fill and the mean move of the mid after them, signed so that a move against
the fill is negative (bps of the mid at the step's start): 0 s is the next row, then 2, 10 and 60 s. The spread
the fill captured is not in it (the env reports lots, not prices), so this is adverse selection alone, side
by side.

`--mirror` runs the same on the recording reflected in price (bids <-> asks, buyer <-> seller aggressor, as
tests/test_quotes.py's side-symmetry test): a side that the data favours changes places, one that the
simulator favoured would not.

    PYTHONPATH=python python3 benchmarks/side_markouts.py --data runs/markout/data/bitstamp18h_first_64500s \
        --config runs/a200/markout_10s_abstain_0.9__bitstamp.json --interval-ms 2000 --folds 3 [--mirror]

(the dataset and the candidate's options as benchmarks/markout_reward.py writes them). Prints one line per
block; --out FILE also writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HORIZONS_S = (0, 2, 10, 60)


def side_markouts(market, start: int, end: int, env_config: dict, interval_ms: float) -> dict:
    """The touch quoter over rows start..end: per side, steps with a fill and the signed mid move after them."""
    from trader.backtest.engine import run_backtest
    from trader.sim import spec

    L = env_config.get("quote_levels", spec.defaults()["quote_levels"])
    act = np.array([spec.encode_quote(0, 0, quote_levels=L)])
    res = run_backtest(market, lambda obs, info: act, "touch", start=start, end=end, **env_config)
    bought = np.diff(res.position)
    rows = np.arange(1, len(res.mid))  # step i starts at row i - 1 and its fills are marked from row i
    out = {"rows": [start, end], "drift_bps": float((res.mid[-1] / res.mid[0] - 1) * 1e4),
           "time_at_limit_pct": float((np.abs(res.position) >= res.max_position_lots).mean() * 100)}
    for side, filled in (("bid", bought > 0), ("ask", bought < 0)):
        out[side] = {"fills": int(filled.sum())}
        for h in HORIZONS_S:
            later = np.minimum(rows + round(h * 1000 / interval_ms), len(res.mid) - 1)
            move = (res.mid[later] - res.mid[rows - 1]) / res.mid[rows - 1] * np.sign(bought) * 1e4
            out[side][f"{h}s_bps"] = float(move[filled].mean()) if filled.any() else None
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="one dataset folder, cut into --folds + 1 blocks")
    p.add_argument("--config", type=Path, required=True, help="a candidate's options (JSON, as markout_reward.py writes)")
    p.add_argument("--interval-ms", type=float, required=True)
    p.add_argument("--folds", type=int, required=True)
    p.add_argument("--mirror", action="store_true", help="the recording reflected in price, bids <-> asks")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()

    from trader.backtest.engine import env_config_from_run
    from trader.evaluate.folds import block_folds
    from trader.sim.env import load_market

    options = json.loads(a.config.read_text())
    env_config = env_config_from_run(options)
    env_config.pop("reward", None)  # the quoter's fills, not a reward, are measured
    market = load_market(a.data, interval_ms=a.interval_ms, feature_set=options.get("feature_set"), mirror=a.mirror)
    folds = block_folds(a.data, len(market.ts), a.folds, options["horizon"])
    blocks = [(f"fold {f.index} train", 0, f.train_rows - 1) for f in folds]
    blocks += [(f"fold {f.index} test", f.test_start, f.test_end) for f in folds]
    report = {}
    for name, start, end in blocks:
        r = report[name] = side_markouts(market, start, end, env_config, a.interval_ms)
        cells = "  ".join(f"{side} {r[side]['fills']:4d} fills: " + " ".join(
            f"{h}s {r[side][f'{h}s_bps']:+.2f}" for h in HORIZONS_S) for side in ("bid", "ask"))
        print(f"{name:14s} rows {start:6d}-{end:6d}  drift {r['drift_bps']:+7.1f} bps  at limit "
              f"{r['time_at_limit_pct']:4.1f} %  {cells}", flush=True)
    if a.out:
        a.out.write_text(json.dumps({"data": a.data, "mirror": a.mirror, "env_config": env_config, "blocks": report},
                                    indent=1))


if __name__ == "__main__":
    main()
