"""Leave-one-dataset-out scores of logistic regressions on encoder inputs (issue 14): which inputs
carry the signal, in seconds instead of the minutes a deep model takes.

    PYTHONPATH=python python3 benchmarks/encoder_linear_lodo.py --series-from ../main/shared/lodo_series \
        --inputs ofi,of+ofi,of+ofi+trend

The same folds, splits, label thresholds and causal normalization as benchmarks/encoder_lodo.py (its
series cache, its defaults): for every dataset d, a multinomial logistic regression per horizon
(trader.nn.baselines.logistic_weights) fitted on the training rows of the other datasets, scored on
every labelled row of d. `ofi` is the bar of issue 14 (trader.nn.baselines.ofi_features: OFI sums
scaled by the dataset's mean depth, standardized with the training rows); the other names are
trader.nn.inputs kinds, z-scored causally (RollingNorm). Deterministic (L-BFGS from zero weights).
Prints macro-F1 (%) per horizon, mean over the held-out datasets, then per dataset.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoder_lodo import HORIZONS, cached_datasets, load_all  # noqa: E402

from trader.nn.baselines import fit_logistic_regression, ofi_features, scores  # noqa: E402
from trader.nn.data import build, normalizer  # noqa: E402


def lodo(series: list, features: list[np.ndarray], a) -> np.ndarray:
    """macro-F1 [held-out dataset, horizon] of the regression on `features` (one array per series)."""
    opts = dict(horizons=HORIZONS, window=a.window, norm="rolling", norm_halflife=a.norm_halflife,
                alpha_scope="series")
    out = []
    for j, held in enumerate(series):
        train_idx = [i for i in range(len(series)) if i != j]
        train = build([series[i] for i in train_idx], fractions=(0.8, 0.2, 0.0), **opts)
        test = build([], test_series=[held], **opts)
        r_tr, (_, t_te) = train.rows("train"), test.rows("test")[0]
        x_tr = np.concatenate([features[train_idx[i]][t] for i, t in r_tr])
        row = []
        for h in range(len(HORIZONS)):
            y_tr = np.concatenate([train.labels[i][t, h] for i, t in r_tr])
            pred = fit_logistic_regression(x_tr, y_tr)(features[j][t_te]).argmax(1)
            row.append(scores(test.labels[0][t_te, h], pred)["macro_f1"] * 100)
        out.append(row)
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series-from", required=True, help="series cache of benchmarks/encoder_lodo.py")
    ap.add_argument("--inputs", default="ofi,of+ofi,of+ofi+trend", help="comma-separated: ofi or trader.nn.inputs kinds")
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--interval-ms", type=float, default=100.0)
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--norm-halflife", type=float, default=5000.0)
    ap.add_argument("--max-rows", type=int, default=60_000)
    a = ap.parse_args()
    a.inputs_list = a.inputs.split(",")
    a.inputs = "book"  # cached_datasets lists the book caches
    dirs = cached_datasets(a)
    book = load_all(dirs, a, "book")
    for kind in a.inputs_list:
        if kind == "ofi":
            feats = [ofi_features(s.book) for s in book]
        else:
            norm = normalizer({"kind": "rolling", "halflife": a.norm_halflife})
            feats = [norm(s.features) for s in load_all(dirs, a, kind)]
        f1 = lodo(book, feats, a)
        print(f"{kind}: " + " / ".join(f"{x:.1f}" for x in f1.mean(0)) + "  (k = "
              + ", ".join(map(str, HORIZONS)) + ", mean over held-out datasets)", flush=True)
        for s, row in zip(book, f1):
            print(f"    {s.name}: " + " / ".join(f"{x:.1f}" for x in row))


if __name__ == "__main__":
    main()
