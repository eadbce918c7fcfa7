"""Network pieces the learners share: an MLP builder with CleanRL's orthogonal init, running
mean/variance statistics (observation and reward normalization) and polyak target updates."""

from __future__ import annotations

import math
import typing

import torch
import torch.nn as nn


def layer_init(layer: nn.Linear, std: float = math.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    """Orthogonal weights and constant biases (Engstrom et al. 2020, "Implementation matters")."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias_const)
    return layer


def mlp(in_dim: int, hidden: typing.Sequence[int], out_dim: int, activation=nn.ReLU,
        out_std: float | None = None) -> nn.Sequential:
    """in_dim -> hidden... -> out_dim with `activation` between layers. With out_std set, orthogonal
    init (sqrt(2) for hidden layers, out_std for the last) as CleanRL's PPO; else torch's default."""
    sizes = [in_dim, *hidden, out_dim]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        lin = nn.Linear(a, b)
        if out_std is not None:
            layer_init(lin, out_std if last else math.sqrt(2))
        layers.append(lin)
        if not last:
            layers.append(activation())
    return nn.Sequential(*layers)


@torch.no_grad()
def polyak_update(net: nn.Module, target: nn.Module, tau: float) -> None:
    """target <- (1 - tau) target + tau net, parameter by parameter (soft target updates, Lillicrap et al. 2016)."""
    for param, target_param in zip(net.parameters(), target.parameters(), strict=True):
        target_param.lerp_(param, tau)


class RunningMeanStd(nn.Module):
    """Running mean and variance (Chan et al.'s parallel update), kept as buffers so that checkpoints
    carry them. Used to normalize observations and rewards. float32, which mps also has."""

    def __init__(self, shape=(), epsilon: float = 1e-4):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.tensor(epsilon))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, *self.mean.shape).float()
        if len(x) == 0:
            return
        b_mean, b_var, b_count = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta, total = b_mean - self.mean, self.count + b_count
        m2 = self.var * self.count + b_var * b_count + delta.square() * self.count * b_count / total
        self.mean += delta * b_count / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def normalize(self, x: torch.Tensor, clip: float = 10.0) -> torch.Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + 1e-8)).clamp(-clip, clip)
