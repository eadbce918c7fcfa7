"""Convert the Binance BTC and ETH sequences of ../shared/data and train both encoders on them pooled.

    python benchmarks/encoder_report.py --raw ../shared/data/binance_hftbacktest_raw_feed --out runs/encoder_report
Writes OUT/data/<sequence>/ (event datasets) and OUT/run/report.md + report.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from trader.data.binance import convert_sequence, group_sequences, sequence_name
from trader.data.dataset import write_dataset


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True, help="folder with spot/, usdm/, cm/ raw feed files")
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more train-encoder options")
    a = ap.parse_args()
    out = Path(a.out)
    files = sorted(Path(a.raw).glob("*/*.gz"))
    dirs = []
    for seq in group_sequences(files):
        d = out / "data" / sequence_name(seq)
        if not (d / "meta.json").is_file():
            events, meta = convert_sequence(seq)
            write_dataset(d, events, meta)
        dirs.append(d)
        print(f"dataset {d}")
    cmd = [sys.executable, "-m", "trader.cli", "train-encoder", "--out", str(out / "run"), "--epochs", str(a.epochs),
           "--device", a.device]
    for d in dirs:
        cmd += ["--data", str(d)]
    cmd += a.extra
    print(" ".join(cmd), flush=True)
    sys.exit(subprocess.call(cmd))


if __name__ == "__main__":
    main()
