"""Observations for the policy, built from live samples exactly as the training env builds them.

Row features: ``trader.sim.features.book_features`` on the sampled top levels and trade flow (the
previous sample gives the mid return), or, with an encoder, the encoder's embedding of the last
``window`` normalized feature rows (``trader.nn.embed.embed_rows``: rows before a full window repeat
the first row). Then the account features of ``cpp/env/trading_env.cpp`` (``write``): position /
max position, unrealized PnL in % of the max notional at the mid, and the fraction of the episode
left, which live counts down over ``horizon`` steps and starts again (as episodes do in training).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np

from trader.sim.features import book_features


class Encoder:
    """A trained encoder (``trader train-encoder`` folder) applied to the rows seen so far, as
    ``trader.nn.embed.embed_rows`` embeds a dataset: the first row is repeated ``window - 1`` times
    before it; a causal model (TCN, ``embed_sequence``) sees its whole receptive field, a windowed one
    (DeepLOB) the last ``window`` rows."""

    def __init__(self, model_dir: str | Path, device: str = "cpu"):
        import torch

        from trader.nn.train import load_encoder

        self.torch = torch
        self.model, self.config, self.mean, self.std = load_encoder(model_dir, device)
        self.window = int(self.config["window"])
        self.levels = int(self.config["levels"])
        self.device = device
        self.causal = hasattr(self.model, "embed_sequence")
        keep = max(self.window, int(getattr(self.model, "receptive_field", 0))) if self.causal else self.window
        self._rows: deque = deque(maxlen=keep)
        self.dim: int | None = None

    def __call__(self, features: np.ndarray) -> np.ndarray:
        x = ((features - self.mean) / self.std).astype(np.float32)
        if not self._rows:
            self._rows.extend([x] * (self.window - 1))
        self._rows.append(x)
        with self.torch.no_grad():
            t = self.torch.as_tensor(np.stack(self._rows)[None], device=self.device)
            if self.causal:
                e = self.model.embed_sequence(t)[0, -1]
            else:
                e = self.model.embed(t[:, -self.window:])[0]
        e = e.cpu().numpy().astype(np.float32)
        self.dim = len(e)
        return e


class ObservationBuilder:
    def __init__(self, lot_size: float, *, max_position: float, horizon: int, encoder: Encoder | None = None):
        if max_position <= 0:
            raise ValueError("max_position must be > 0")
        self.lot_size = lot_size
        self.max_position = max_position
        self.horizon = max(1, int(horizon))
        self.encoder = encoder
        self.steps = 0
        self._prev_top: np.ndarray | None = None

    def features(self, top: np.ndarray, flow: np.ndarray) -> np.ndarray:
        """The feature row of this sample (book_features of [previous, current], last row)."""
        prev = top if self._prev_top is None else self._prev_top
        rows = book_features(np.stack([prev, top]), self.lot_size, np.stack([np.zeros(2, np.int64), flow]))
        self._prev_top = top.copy()
        return rows[1]

    def observe(self, top: np.ndarray, flow: np.ndarray, *, position: float, unrealized: float,
                mid: float) -> np.ndarray:
        """float32 [D + 3]: features (or embedding), then the account features; advances the step."""
        row = self.features(top, flow)
        if self.encoder is not None:
            row = self.encoder(row)
        max_notional = self.max_position * mid
        time_left = (self.horizon - self.steps % self.horizon) / self.horizon
        account = np.array([position / self.max_position, unrealized / max_notional * 100.0, time_left],
                           dtype=np.float32)
        self.steps += 1
        return np.concatenate([row.astype(np.float32), account])
