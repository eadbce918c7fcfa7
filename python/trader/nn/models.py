"""Encoders of order-book history.

- DeepLOB (Zhang, Zohren, Roberts 2019, "DeepLOB: Deep Convolutional Neural Networks for Limit Order
  Books", IEEE TSP): three convolution blocks over (time x 4L level features), an inception module,
  an LSTM(64); the reference. Input per level in the paper's order (ask price, ask size, bid price,
  bid size), here as distance to mid in bps and log size.
- TCNEncoder (ours): a causal dilated temporal convolution (WaveNet/TCN style: van den Oord et al.
  2016, Bai et al. 2018) over every row feature. Causal, so one pass over a chunk of rows yields the
  embedding of every row in it: training costs about one window per chunk instead of one per label.
  Dropout after each block's activation (Srivastava et al. 2014) against the memorization of issue 14.
  trader.nn.stream embeds one new row at a time from the blocks' cached inputs.
  With `skip` the logits are a multinomial logistic regression on the input row plus the deep head,
  whose weights start at zero; trader.nn.train fits the regression first, by L-BFGS to convergence
  (trader.nn.baselines.logistic_weights), freezes it, and trains the deep part as a residual on it
  (stagewise additive fitting, Friedman 2001 "Greedy function approximation"; the wide & deep split of
  Cheng et al. 2016, arXiv:1606.07792), validating the regression alone as epoch 0. An earlier version trained
  both parts jointly by AdamW from zero (on the `of+ofi` inputs) and stayed below the regression held
  out; fitting first is the change made for it, measured together with the `of+ofi+trend` inputs
  (benchmarks/README.md, encoder section). The embedding is the deep part's, then the regression's
  logits (3 per horizon).
- TLOB (Berti, Kasneci 2025, "TLOB: A Novel Transformer Model with Dual Attention for Price Trend
  Prediction with Limit Order Book Data"): over a window, transformer layers that alternate attention
  across time (a token per row) and across features (a token per hidden feature, its values over the
  window), then a small MLP. Our inputs are already normalized causally (trader.nn.inputs), so the
  paper's bilinear input normalization (BiN) is left out.

All map [batch, time, features] to logits [batch, time or 1, horizons, 3] and to an embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def deeplob_columns(levels: int) -> list[int]:
    """Columns of book_features in DeepLOB's per-level order: ask dist, ask size, bid dist, bid size."""
    L = levels
    cols = []
    for lvl in range(L):
        cols += [L + lvl, 3 * L + lvl, lvl, 2 * L + lvl]
    return cols


class DeepLOB(nn.Module):
    """Reimplementation of DeepLOB (section III of the paper) with one 3-class head per horizon."""

    def __init__(self, levels: int = 10, horizons: int = 4, lstm_hidden: int = 64):
        super().__init__()
        self.levels = levels
        self.register_buffer("cols", torch.tensor(deeplob_columns(levels)), persistent=False)

        def block(cin, first_kernel, first_stride):
            return nn.Sequential(
                nn.Conv2d(cin, 32, first_kernel, stride=first_stride), nn.LeakyReLU(0.01), nn.BatchNorm2d(32),
                nn.Conv2d(32, 32, (4, 1), padding="same"), nn.LeakyReLU(0.01), nn.BatchNorm2d(32),
                nn.Conv2d(32, 32, (4, 1), padding="same"), nn.LeakyReLU(0.01), nn.BatchNorm2d(32),
            )

        self.conv1 = block(1, (1, 2), (1, 2))  # price and size of each level
        self.conv2 = block(32, (1, 2), (1, 2))  # ask and bid of each level
        self.conv3 = block(32, (1, levels), (1, 1))  # all levels
        self.inc1 = nn.Sequential(nn.Conv2d(32, 64, 1, padding="same"), nn.LeakyReLU(0.01), nn.BatchNorm2d(64),
                                  nn.Conv2d(64, 64, (3, 1), padding="same"), nn.LeakyReLU(0.01), nn.BatchNorm2d(64))
        self.inc2 = nn.Sequential(nn.Conv2d(32, 64, 1, padding="same"), nn.LeakyReLU(0.01), nn.BatchNorm2d(64),
                                  nn.Conv2d(64, 64, (5, 1), padding="same"), nn.LeakyReLU(0.01), nn.BatchNorm2d(64))
        self.inc3 = nn.Sequential(nn.MaxPool2d((3, 1), stride=1, padding=(1, 0)),
                                  nn.Conv2d(32, 64, 1, padding="same"), nn.LeakyReLU(0.01), nn.BatchNorm2d(64))
        self.lstm = nn.LSTM(192, lstm_hidden, batch_first=True)
        self.heads = nn.Linear(lstm_hidden, horizons * 3)
        self.horizons = horizons
        self.embedding_dim = lstm_hidden

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, W, F] normalized book_features rows -> [B, 64] (the LSTM's last hidden state)."""
        x = x.index_select(2, self.cols).unsqueeze(1)  # [B, 1, W, 4L]
        x = self.conv3(self.conv2(self.conv1(x)))  # [B, 32, W, 1]
        x = torch.cat([self.inc1(x), self.inc2(x), self.inc3(x)], dim=1)  # [B, 192, W, 1]
        x = x.squeeze(3).transpose(1, 2)  # [B, W, 192]
        out, _ = self.lstm(x)
        return out[:, -1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.embed(x)).view(-1, 1, self.horizons, 3)


class CausalBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int, dropout: float = 0.0):
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.dilation = dilation
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation)
        self.mix = nn.Conv1d(channels, channels, 1)
        self.norm = nn.LayerNorm(channels)  # per row, over channels: statistics over time would leak the future
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        y = self.conv(F.pad(x, (self.pad, 0)))
        y = self.norm(y.transpose(1, 2)).transpose(1, 2)
        return x + self.mix(self.drop(F.gelu(y)))


class TCNEncoder(nn.Module):
    """Causal dilated convolutions; receptive field 1 + (kernel - 1) * sum(dilations) rows."""

    def __init__(self, in_features: int, channels: int = 64, embedding_dim: int = 32, kernel: int = 4,
                 dilations=(1, 2, 4, 8, 16), horizons: int = 4, dropout: float = 0.0, skip: bool = False):
        super().__init__()
        self.inp = nn.Conv1d(in_features, channels, 1)
        self.blocks = nn.Sequential(*[CausalBlock(channels, kernel, d, dropout) for d in dilations])
        self.out = nn.Conv1d(channels, embedding_dim, 1)
        self.heads = nn.Conv1d(embedding_dim, horizons * 3, 1)
        self.skip = nn.Conv1d(in_features, horizons * 3, 1) if skip else None
        if skip:
            nn.init.zeros_(self.heads.weight)
            nn.init.zeros_(self.heads.bias)
        self.horizons = horizons
        self.embedding_dim = embedding_dim + (horizons * 3 if skip else 0)
        self.receptive_field = 1 + (kernel - 1) * sum(dilations)

    def _deep(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, F, T] -> the deep embedding [B, embedding_dim, T]."""
        return torch.tanh(self.out(self.blocks(self.inp(x))))

    def embed_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, T, F] -> embeddings [B, T, D]; row t depends on rows <= t only."""
        x = x.transpose(1, 2)
        e = self._deep(x)
        if self.skip is not None:
            e = torch.cat([e, self.skip(x)], dim=1)
        return e.transpose(1, 2)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_sequence(x)[:, -1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, F] -> logits [B, T, H, 3] for every row."""
        xt = x.transpose(1, 2)
        logits = self.heads(self._deep(xt))
        if self.skip is not None:
            logits = logits + self.skip(xt)
        return logits.transpose(1, 2).reshape(x.shape[0], x.shape[1], self.horizons, 3)


class TLOB(nn.Module):
    """Dual-attention transformer over a window of rows (section 3 of the paper), one 3-class head per
    horizon. Pre-norm encoder layers; learned positional embedding of the rows."""

    def __init__(self, in_features: int, window: int, hidden: int = 40, layers: int = 2, embedding_dim: int = 32,
                 horizons: int = 4, dropout: float = 0.1):
        super().__init__()

        def layer(d_model, heads):
            return nn.TransformerEncoderLayer(d_model, heads, 2 * d_model, dropout, activation="gelu",
                                              batch_first=True, norm_first=True)

        self.inp = nn.Linear(in_features, hidden)
        self.pos = nn.Parameter(torch.zeros(1, window, hidden))
        self.temporal = nn.ModuleList([layer(hidden, 4) for _ in range(layers)])  # tokens: rows
        self.spatial = nn.ModuleList([layer(window, 1) for _ in range(layers)])  # tokens: hidden features
        reduced = max(1, hidden // 4) * max(1, window // 4)
        self.reduce_h = nn.Linear(hidden, max(1, hidden // 4))
        self.reduce_t = nn.Linear(window, max(1, window // 4))
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(reduced, embedding_dim))
        self.heads = nn.Linear(embedding_dim, horizons * 3)
        self.window = window
        self.horizons = horizons
        self.embedding_dim = embedding_dim

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, W, F] normalized rows -> [B, D]."""
        if x.shape[1] != self.window:
            raise ValueError(f"TLOB: expected windows of {self.window} rows, got {x.shape[1]}")
        h = self.inp(x) + self.pos
        for temporal, spatial in zip(self.temporal, self.spatial):
            h = spatial(temporal(h).transpose(1, 2)).transpose(1, 2)
        h = self.reduce_t(F.gelu(self.reduce_h(h)).transpose(1, 2))  # [B, hidden/4, W/4]
        return torch.tanh(self.out(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.embed(x)).view(-1, 1, self.horizons, 3)


MODELS = ("tcn", "tlob", "deeplob")


def build_model(kind: str, in_features: int, levels: int, horizons: int, *, window: int = 100,
                channels: int = 64, embedding_dim: int = 32, dropout: float = 0.0, tcn_blocks: int = 5,
                skip: bool = False) -> nn.Module:
    """The encoder `kind` (one of MODELS); DeepLOB keeps the paper's sizes and reads the book columns."""
    if kind == "deeplob":
        return DeepLOB(levels=levels, horizons=horizons)
    if kind == "tcn":
        return TCNEncoder(in_features, channels=channels, embedding_dim=embedding_dim, horizons=horizons,
                          dropout=dropout, dilations=tuple(2 ** i for i in range(tcn_blocks)), skip=skip)
    if kind == "tlob":
        return TLOB(in_features, window, embedding_dim=embedding_dim, horizons=horizons, dropout=dropout)
    raise ValueError(f"model: expected one of {', '.join(MODELS)}, got {kind!r}")
