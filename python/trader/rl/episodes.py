"""Statistics of finished episodes (returns, lengths), for the learners' logs, results and evaluation."""

from __future__ import annotations

import numpy as np


class EpisodeStats:
    """Returns and lengths of finished episodes, read from info["episode"] / info["_episode"] (the trader
    env, gymnasium's RecordEpisodeStatistics and the MPE adapter all write them). Multi-agent returns
    [B, K] are averaged over agents."""

    def __init__(self, window: int = 100):
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.window = window

    def add(self, info: dict) -> tuple[np.ndarray, np.ndarray]:
        """Record the episodes that ended in this step's `info`; their (returns, lengths)."""
        done = np.asarray(info.get("_episode", ()), dtype=bool)
        if not done.any():
            return np.zeros(0), np.zeros(0)
        r = np.asarray(info["episode"]["r"], dtype=np.float64)[done]
        r = r.reshape(len(r), -1).mean(axis=1)
        ln = np.asarray(info["episode"]["l"])[done]
        self.returns = (self.returns + r.tolist())[-self.window:]
        self.lengths = (self.lengths + ln.tolist())[-self.window:]
        return r, ln

    def log(self, logger, step: int, r: np.ndarray, ln: np.ndarray) -> None:
        """The episodes that just finished (`add`'s result) as TensorBoard scalars (a trader.run.logger.Logger)."""
        if len(r):
            logger.scalar("charts/episodic_return", r.mean(), step)
            logger.scalar("charts/episodic_length", ln.mean(), step)

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else float("nan")
