"""Encoders of order-book history.

- DeepLOB (Zhang, Zohren, Roberts 2019, "DeepLOB: Deep Convolutional Neural Networks for Limit Order
  Books", IEEE TSP): three convolution blocks over (time x 4L level features), an inception module,
  an LSTM(64); the reference. Input per level in the paper's order (ask price, ask size, bid price,
  bid size), here as distance to mid in bps and log size.
- TCNEncoder (ours): a causal dilated temporal convolution (WaveNet/TCN style: van den Oord et al.
  2016, Bai et al. 2018) over every row feature. Causal, so one pass over a chunk of rows yields the
  embedding of every row in it: training costs about one window per chunk instead of one per label.

Both map [batch, time, features] to logits [batch, time or 1, horizons, 3] and to an embedding.
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
    def __init__(self, channels: int, kernel: int, dilation: int):
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation)
        self.mix = nn.Conv1d(channels, channels, 1)
        self.norm = nn.LayerNorm(channels)  # per row, over channels: statistics over time would leak the future

    def forward(self, x):
        y = self.conv(F.pad(x, (self.pad, 0)))
        y = self.norm(y.transpose(1, 2)).transpose(1, 2)
        return x + self.mix(F.gelu(y))


class TCNEncoder(nn.Module):
    """Causal dilated convolutions; receptive field 1 + (kernel - 1) * sum(dilations) rows."""

    def __init__(self, in_features: int, channels: int = 64, embedding_dim: int = 32, kernel: int = 4,
                 dilations=(1, 2, 4, 8, 16), horizons: int = 4):
        super().__init__()
        self.inp = nn.Conv1d(in_features, channels, 1)
        self.blocks = nn.Sequential(*[CausalBlock(channels, kernel, d) for d in dilations])
        self.out = nn.Conv1d(channels, embedding_dim, 1)
        self.heads = nn.Conv1d(embedding_dim, horizons * 3, 1)
        self.horizons = horizons
        self.embedding_dim = embedding_dim
        self.receptive_field = 1 + (kernel - 1) * sum(dilations)

    def embed_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, T, F] -> embeddings [B, T, D]; row t depends on rows <= t only."""
        h = self.blocks(self.inp(x.transpose(1, 2)))
        return torch.tanh(self.out(h)).transpose(1, 2)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_sequence(x)[:, -1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, F] -> logits [B, T, H, 3] for every row."""
        e = self.embed_sequence(x).transpose(1, 2)
        return self.heads(e).transpose(1, 2).reshape(x.shape[0], x.shape[1], self.horizons, 3)


def build_model(kind: str, in_features: int, levels: int, horizons: int, **kw) -> nn.Module:
    if kind == "deeplob":
        return DeepLOB(levels=levels, horizons=horizons)
    if kind == "tcn":
        return TCNEncoder(in_features, horizons=horizons, **kw)
    raise ValueError(f"model: expected 'tcn' or 'deeplob', got {kind!r}")
