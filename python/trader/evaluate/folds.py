"""Walk-forward folds: each trains on the past and tests on the next block nobody trained on.

- One dataset cut into `folds + 1` equal blocks of rows: fold i trains on blocks 0..i-1 (an expanding
  window: rows [0, b_i)) and tests on block i (rows [b_i, b_{i+1})).
- The last seconds of one recording (`tail_folds`): that tail cut into `folds` equal blocks of rows, fold i
  training on every row before its block (an expanding window) and testing on it; a held-out check on the
  end of a long recording whose start other stages used.
- Several datasets in time order: fold i trains on the `window` datasets before dataset i (all of their
  rows, in one multi-dataset env whose episodes never cross from one to another) and tests on dataset i.

A training run sees rows [0, train_rows) only: its episodes start at most at train_rows - 1 - horizon
(trader.rl.envs.training_start_max with train_fraction = train_rows / rows), so no training episode
reaches a test row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fold:
    index: int  # 1-based
    train_data: str | None  # dataset folder (None: the bundled sample); the latest one trained on
    train_rows: int  # rows [0, train_rows) of train_data, of train_total rows
    train_total: int
    test_data: str | None
    test_start: int  # first test row
    test_end: int  # last test row (inclusive)
    train_earlier: tuple[str, ...] = ()  # datasets before train_data also trained on (all their rows)

    @property
    def train_datasets(self) -> list[str | None]:
        return [*self.train_earlier, self.train_data]

    @property
    def train_fraction(self) -> float:
        return self.train_rows / self.train_total

    def describe(self) -> str:
        train = " + ".join(self.train_earlier + (f"{self.train_data or 'sample'} rows 0..{self.train_rows - 1}",))
        return f"fold {self.index}: train {train}; test {self.test_data or 'sample'} rows {self.test_start}..{self.test_end}"


def held_out_fold(data: str | None, rows: int, train_fraction: float) -> Fold:
    """A run's own split of its `rows` as a fold: training on rows [0, int(rows x train_fraction)) (as
    trader.rl.envs.training_start_max and trader backtest cut them), testing on the rest."""
    train_rows = int(rows * train_fraction)
    return Fold(1, data, train_rows, rows, data, train_rows, rows - 1)


def need_rows(fold: int, what: str, data: str | None, rows: int, need: int, hint: str) -> None:
    if rows < need:
        raise ValueError(f"fold {fold}: {what} of {data or 'the bundled sample'} has {rows} rows, fewer than the "
                         f"{need} it needs; {hint}")


def block_folds(data: str | None, rows: int, folds: int, horizon: int) -> list[Fold]:
    """`folds` walk-forward folds over one dataset of `rows` rows (see the module docstring)."""
    if folds < 1:
        raise ValueError(f"folds: expected >= 1, got {folds}")
    bounds = [round(j * rows / (folds + 1)) for j in range(folds + 2)]
    out = []
    for i in range(1, folds + 1):
        need_rows(i, "the training rows", data, bounds[i], horizon + 2,
                  "use fewer --folds or a shorter --horizon")
        need_rows(i, "the test block", data, bounds[i + 1] - bounds[i], 4, "use fewer --folds")
        out.append(Fold(i, data, bounds[i], rows, data, bounds[i], bounds[i + 1] - 1))
    return out


def tail_folds(data: str | None, ts, tail_s: float, folds: int, horizon: int) -> list[Fold]:
    """`folds` walk-forward folds whose test blocks (equal in rows) tile the last `tail_s` seconds of one
    recording (ts: its rows' times, ns, ascending); fold i trains on every row before its test block."""
    import numpy as np

    if folds < 1:
        raise ValueError(f"folds: expected >= 1, got {folds}")
    if not tail_s > 0:
        raise ValueError(f"tail_s: expected seconds > 0, got {tail_s}")
    ts = np.asarray(ts)
    first = int(np.searchsorted(ts, ts[-1] - int(tail_s * 1e9)))
    bounds = [first + round(j * (len(ts) - first) / folds) for j in range(folds + 1)]
    out = []
    for i in range(1, folds + 1):
        need_rows(i, "the training rows", data, bounds[i - 1], horizon + 2,
                  "hold out fewer seconds or use a shorter --horizon")
        need_rows(i, "the test block", data, bounds[i] - bounds[i - 1], 4, "use fewer folds")
        out.append(Fold(i, data, bounds[i - 1], len(ts), data, bounds[i - 1], bounds[i] - 1))
    return out


def dataset_folds(datasets: list[str], rows: list[int], horizon: int, window: int = 1) -> list[Fold]:
    """One fold per dataset after the first `window`: train on the `window` datasets before it, test on all of it."""
    if window < 1:
        raise ValueError(f"train_window: expected >= 1, got {window}")
    if len(datasets) < window + 1:
        raise ValueError(f"data: walk-forward over datasets with --train-window {window} needs at least "
                         f"{window + 1} datasets (or one with --folds)")
    out = []
    for n, i in enumerate(range(window, len(datasets)), start=1):
        for j in range(i - window, i):
            need_rows(n, "the training dataset", datasets[j], rows[j], horizon + 2, "use a shorter --horizon")
        need_rows(n, "the test dataset", datasets[i], rows[i], 4, "drop it")
        out.append(Fold(n, datasets[i - 1], rows[i - 1], rows[i - 1], datasets[i], 0, rows[i] - 1,
                        tuple(datasets[i - window:i - 1])))
    return out
