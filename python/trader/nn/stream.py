"""Streaming inference of the causal TCN for live trading: embed one new row reusing the state of the
rows before it.

Block b of the TCN reads its input at rows t, t - d, ..., t - (kernel - 1) d. The stream keeps, per
block, a ring of its last (kernel - 1) d + 1 inputs (the "fast WaveNet" queues of Paine et al. 2016,
arXiv:1611.09482), so a new row costs one kernel-tap matrix product and one 1x1 product per block
instead of a pass over the whole receptive field. Rings start at zero, which is the zero padding of
`TCNEncoder.embed_sequence` at the start of a series: the embeddings equal embed_sequence over the
series so far, and, from the receptive field on, the full-window result. numpy float32 at batch 1:
torch's per-operator overhead (about 5 µs on a CPU) would cost more than the arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

from trader.nn.models import TCNEncoder


class TCNStream:
    """`push(row)` -> the embedding [D] of that row; `reset()` starts a new series."""

    def __init__(self, model: TCNEncoder):
        def w(t):
            return t.detach().cpu().numpy().astype(np.float32)

        self.inp_w, self.inp_b = w(model.inp.weight[:, :, 0]), w(model.inp.bias)
        self.blocks = []
        for blk in model.blocks:
            k = blk.conv.kernel_size[0]
            # taps ordered oldest first, as Conv1d's kernel: W[:, :, j] multiplies x[t - (k - 1 - j) d]
            conv_w = w(blk.conv.weight).transpose(0, 2, 1).reshape(blk.conv.out_channels, -1)
            conv_b = w(blk.conv.bias)
            # Folded: LayerNorm's centering into the convolution (y - mean(y) is linear in the taps), and
            # GELU(v) = 0.5 v (1 + erf(v / sqrt 2)) as u (1 + erf(u)) with u = v / sqrt 2, its factor
            # 0.5 sqrt 2 into the 1x1 mix.
            self.blocks.append({
                "d": blk.dilation, "conv_w": conv_w - conv_w.mean(0), "conv_b": conv_b - conv_b.mean(),
                "g": w(blk.norm.weight) / np.float32(np.sqrt(2.0)), "beta": w(blk.norm.bias) / np.float32(np.sqrt(2.0)),
                "eps": blk.norm.eps, "n": blk.conv.out_channels,
                "mix_w": w(blk.mix.weight[:, :, 0]) * np.float32(0.5 * np.sqrt(2.0)), "mix_b": w(blk.mix.bias),
                "ring": np.zeros((2 * ((k - 1) * blk.dilation + 1), blk.conv.in_channels), np.float32),
            })
        self.out_w, self.out_b = w(model.out.weight[:, :, 0]), w(model.out.bias)
        # the logistic regression on the row (TCNEncoder's skip): its logits follow the deep embedding
        self.skip = None if model.skip is None else (w(model.skip.weight[:, :, 0]), w(model.skip.bias))
        self.embedding_dim = model.embedding_dim
        self.t = 0

    def reset(self) -> None:
        """Zero rings: the next row is the first of a series."""
        for b in self.blocks:
            b["ring"][:] = 0.0
        self.t = 0

    def push(self, row: np.ndarray) -> np.ndarray:
        row = np.asarray(row, dtype=np.float32)
        h = self.inp_w @ row + self.inp_b
        t = self.t
        for b in self.blocks:
            # the ring holds its n = (k - 1) d + 1 rows twice, so the taps t - (k - 1) d, ..., t are one
            # strided slice, oldest first, without index arithmetic
            ring, d = b["ring"], b["d"]
            n = len(ring) // 2
            p = t % n
            ring[p] = h
            ring[p + n] = h
            y = b["conv_w"] @ ring[p + 1:p + n + 1:d].reshape(-1)
            y += b["conv_b"]  # centered: LayerNorm's mean is 0
            inv_std = 1.0 / math.sqrt(float(np.dot(y, y)) / b["n"] + b["eps"])
            u = y * b["g"]
            u *= inv_std
            u += b["beta"]
            h = h + b["mix_w"] @ (u * (1.0 + erf(u)))
            h += b["mix_b"]
        self.t = t + 1
        e = np.tanh(self.out_w @ h + self.out_b)
        return e if self.skip is None else np.concatenate([e, self.skip[0] @ row + self.skip[1]])
