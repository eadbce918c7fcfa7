"""The feature row of each live row, built exactly as training builds a dataset's: the feature set the
agent trained on (``trader.sim.features``, row by row: ``FeatureStream``) on the sampled top levels and
trade flow, or, with an encoder, the encoder's embedding of the rows so far (as
``trader.nn.embed.embed_rows`` embeds a dataset: of set 1's rows). The account and quote features after
it are the execution kernel's (``trader.live.kernel``): the env writes them.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np

from trader.sim.features import DEFAULT_SET, FeatureStream


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


class RowFeatures:
    """Feature rows of consecutive live rows: set `feature_set` of trader.sim.features, or an encoder's
    embedding of set 1's (the encoder's inputs, trader.nn.inputs), or (with_features) both, the set's first, as
    trader.rl.policy.encoder_market lays them out."""

    def __init__(self, lot_size: float, encoder: Encoder | None = None, feature_set: int = DEFAULT_SET,
                 interval_s: float | None = None, with_features: bool = False):
        self.lot_size = lot_size
        self.encoder = encoder
        self.stream = FeatureStream(lot_size, 1 if encoder is not None else feature_set, interval_s)
        self.features = (FeatureStream(lot_size, feature_set, interval_s) if encoder is not None and with_features
                         else None)

    def __call__(self, top: np.ndarray, flow: np.ndarray) -> np.ndarray:
        """float32 [D]: the row's features (the last row of trader.sim.features.features over the rows so
        far), its embedding, or both."""
        row = self.stream.push(top, flow)
        if self.encoder is not None:
            row = self.encoder(row, top, self.lot_size)
        if self.features is not None:
            row = np.concatenate([self.features.push(top, flow), row])
        return np.ascontiguousarray(row, dtype=np.float32)
