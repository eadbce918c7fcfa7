"""Observations for the policy, built from live samples exactly as the training env builds them.

Row features: ``trader.sim.features.book_features`` on the sampled top levels and trade flow (the
previous sample gives the mid return), or, with an encoder, the encoder's embedding of the rows so far
(as ``trader.nn.embed.embed_rows`` embeds a dataset). Then the account features of ``cpp/env/trading_env.cpp`` (``write``): position /
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
    ``trader.nn.embed.embed_rows`` embeds a dataset: input rows of ``trader.nn.inputs`` normalized as
    in training (``InputStream``); a causal model (TCN) embeds each new row from its cached state
    (``trader.nn.stream.TCNStream``), a windowed one (DeepLOB, TLOB) the last ``window`` rows, the
    first row repeated ``window - 1`` times before it."""

    def __init__(self, model_dir: str | Path, device: str = "cpu"):
        import torch

        from trader.nn.data import normalizer
        from trader.nn.inputs import InputStream, RollingNorm
        from trader.nn.stream import TCNStream
        from trader.nn.train import load_encoder

        self.torch = torch
        self.model, self.config, mean, std = load_encoder(model_dir, device)
        self.window = int(self.config["window"])
        self.levels = int(self.config["levels"])
        self.device = device
        norm = self.config.get("norm", {"kind": "train"})  # checkpoints from before issue 14: "train"
        push = (RollingNorm(norm["halflife"], self.config["in_features"]).push if norm["kind"] == "rolling"
                else lambda row: normalizer(norm, mean, std)(row[None])[0])
        self._inputs = lambda lot_size: InputStream(self.config.get("inputs", "book"), lot_size, push)
        self.inputs = None  # made at the first row, when the lot size is known
        self.stream = TCNStream(self.model) if hasattr(self.model, "embed_sequence") else None
        self._rows: deque = deque(maxlen=self.window)
        self.dim: int | None = None

    def __call__(self, features: np.ndarray, top: np.ndarray, lot_size: float) -> np.ndarray:
        """The embedding of the next row: its book_features row and its sampled levels [L, 4]."""
        if self.inputs is None:
            self.inputs = self._inputs(lot_size)
        x = self.inputs.push(features, top)
        if self.stream is not None:
            e = self.stream.push(x)
        else:
            if not self._rows:
                self._rows.extend([x] * (self.window - 1))
            self._rows.append(x)
            with self.torch.no_grad():
                t = self.torch.as_tensor(np.stack(self._rows)[None], device=self.device)
                e = self.model.embed(t)[0].cpu().numpy()
        e = e.astype(np.float32)
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
            row = self.encoder(row, top, self.lot_size)
        max_notional = self.max_position * mid
        time_left = (self.horizon - self.steps % self.horizon) / self.horizon
        account = np.array([position / self.max_position, unrealized / max_notional * 100.0, time_left],
                           dtype=np.float32)
        self.steps += 1
        return np.concatenate([row.astype(np.float32), account])
