"""Walk-forward folds: each fold trains on the past and tests on the next block nobody trained on.

Two ways to cut the data, both in time order:
- `blocks`: one dataset's rows cut into `folds + 1` equal blocks; fold k (1..folds) trains on blocks
  0..k-1 (an expanding window; episodes end `gap` rows before the test block) and tests on block k.
  With several datasets, each is cut this way on its own and the folds of all are evaluated.
- `datasets`: datasets in time order; fold k trains on datasets 0..k-1 and tests on dataset k whole.

Rows are those of the sampled market (trader.sim.load_market); the train env reaches rows
[0, train_rows) only (trader.rl.envs.training_start_max), the backtest rows [test_start, test_end).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_TEST_ROWS = 20
"""a test block shorter than this has too few steps for a Sharpe or a drawdown"""


@dataclass(frozen=True)
class Fold:
    index: int  # 1-based within its split
    train_data: tuple  # dataset folders trained on (None: the bundled sample), in time order
    train_rows: int | None  # rows [0, train_rows) of train_data[0] (blocks); None: every row of each (datasets)
    test_data: str | None  # the dataset folder tested on
    test_start: int  # first test row
    test_end: int  # one past the last test row

    @property
    def name(self) -> str:
        return f"fold_{self.index}" if self.train_rows is None else f"{_label(self.test_data)}_fold_{self.index}"


def _label(data) -> str:
    from pathlib import Path

    return "sample" if data is None else Path(data).name


def block_folds(data, rows: int, folds: int, *, horizon: int, gap: int = 0) -> list[Fold]:
    """`folds` walk-forward folds over one dataset of `rows` market rows (module docstring). A ValueError
    naming the dataset when its first block cannot hold one training episode of `horizon` steps or a
    test block is shorter than MIN_TEST_ROWS."""
    if folds < 1:
        raise ValueError(f"--folds: expected 1 or more, got {folds}")
    if gap < 0:
        raise ValueError(f"--gap: expected 0 or more rows, got {gap}")
    edges = np.linspace(0, rows, folds + 2).astype(int)
    block = int(np.diff(edges).min())
    if edges[1] - gap < horizon + 2:
        raise ValueError(f"dataset {_label(data)} ({data}): {rows} rows cut into {folds + 1} blocks of about {block} "
                         f"rows leave fold 1 {edges[1] - gap} training rows, fewer than one episode of --horizon "
                         f"{horizon} steps + 2; lower --folds or --horizon, or give a longer dataset")
    if block < MIN_TEST_ROWS:
        raise ValueError(f"dataset {_label(data)} ({data}): test blocks of {block} rows, fewer than {MIN_TEST_ROWS}; "
                         "lower --folds or give a longer dataset")
    return [Fold(k, (data,), int(edges[k]) - gap, data, int(edges[k]), int(edges[k + 1])) for k in range(1, folds + 1)]


def dataset_folds(datasets: list, rows: list[int], starts_ns: list[int], *, horizon: int) -> list[Fold]:
    """Fold k (1..n-1) trains on datasets 0..k-1 and tests on every row of dataset k. A ValueError when
    they are not in time order (by first timestamp) or one is too short for an episode or a test."""
    if len(datasets) < 2:
        raise ValueError("--split datasets: give two or more --data folders in time order")
    for i in range(1, len(datasets)):
        if starts_ns[i] < starts_ns[i - 1]:
            raise ValueError(f"--data: {datasets[i]} starts before {datasets[i - 1]}; give the datasets in time order")
    for d, n in zip(datasets, rows):
        if n < max(horizon + 2, MIN_TEST_ROWS):
            raise ValueError(f"dataset {_label(d)} ({d}): {n} rows, fewer than one episode of --horizon {horizon} "
                             f"steps + 2 (or {MIN_TEST_ROWS} test rows); lower --horizon or leave it out")
    return [Fold(k, tuple(datasets[:k]), None, datasets[k], 0, rows[k]) for k in range(1, len(datasets))]


def train_data(fold: Fold):
    """The --data of the fold's training run. `trader train` takes one dataset per run until
    multi-dataset training lands in the env (issue 13); a fold over several is refused until then."""
    if len(fold.train_data) > 1:
        names = ", ".join(_label(d) for d in fold.train_data)
        raise ValueError(f"{fold.name}: trains on {len(fold.train_data)} datasets ({names}); trader train takes one "
                         "dataset per run until multi-dataset training lands (issue 13): use --split blocks, "
                         "or two datasets")
    return fold.train_data[0]


def train_fraction(fold: Fold, rows: int) -> float:
    """The --train-fraction that makes the train env stop at row fold.train_rows of `rows`:
    trader.rl.envs.training_start_max takes int(rows * fraction) rows, and (train_rows + 0.5) / rows
    lands on train_rows whatever the rounding of the division."""
    if fold.train_rows is None:
        return 1.0
    return (fold.train_rows + 0.5) / rows


def check_depth(data, book: np.ndarray) -> None:
    """A ValueError when the dataset's book has fewer levels a side than the agents observe on most rows
    (their features would be zeros there: a mismatched depth, e.g. a top-5 feed next to full-depth data)."""
    levels = book.shape[1]
    filled = ((book[:, :, 0] > 0) & (book[:, :, 2] > 0)).sum(axis=1)
    median = int(np.median(filled)) if len(filled) else 0
    if median < levels:
        raise ValueError(f"dataset {_label(data)} ({data}): its book has {median} levels a side on the median row, the "
                         f"agents observe {levels}: mismatched depth; leave this dataset out")
