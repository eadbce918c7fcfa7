"""Curiosity: an intrinsic reward for novel transitions, added to the env reward times
--curiosity-coef: random network distillation (RND) or the intrinsic curiosity module (ICM). Both
modules train themselves (own optimizer) on the learner's batches and are checkpointed with it."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from trader.rl.nets import RunningMeanStd, mlp


class RND(nn.Module):
    """Random network distillation (Burda et al. 2019): r_int(s') = ||f_hat(s') - f(s')||^2, f a fixed
    random network, f_hat a predictor trained on visited states, so the error is large where the agent
    has rarely been. Observations are whitened by running statistics and clipped to [-5, 5] (Sec. 2.4);
    intrinsic rewards are divided by a running std (of the rewards; the paper uses intrinsic returns)."""

    def __init__(self, obs_dim: int, hidden: int = 64, feature_dim: int = 64, lr: float = 1e-4):
        super().__init__()
        self.target = mlp(obs_dim, (hidden, hidden), feature_dim, nn.LeakyReLU, out_std=1.0)
        self.predictor = mlp(obs_dim, (hidden, hidden, hidden), feature_dim, nn.LeakyReLU, out_std=1.0)
        self.target.requires_grad_(False)
        self.obs_rms = RunningMeanStd((obs_dim,))
        self.reward_rms = RunningMeanStd(())
        self.optimizer = torch.optim.Adam(self.predictor.parameters(), lr=lr)

    def _error(self, next_obs: torch.Tensor) -> torch.Tensor:
        x = self.obs_rms.normalize(next_obs, clip=5.0)
        return (self.predictor(x) - self.target(x)).square().mean(-1)

    @torch.no_grad()
    def reward(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        r = self._error(next_obs)
        self.reward_rms.update(r)
        return r / torch.sqrt(self.reward_rms.var + 1e-8)

    def update(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor) -> float:
        self.obs_rms.update(next_obs)
        loss = self._error(next_obs).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()


class ICM(nn.Module):
    """Intrinsic curiosity module (Pathak et al. 2017): features phi(s) are learned by an inverse model
    that predicts a_t from (phi(s_t), phi(s_{t+1})), so they keep what the agent can influence; a forward
    model predicts phi(s_{t+1}) from (phi(s_t), a_t) and its error is the intrinsic reward
    r_int = 1/2 ||f(phi(s_t), a_t) - phi(s_{t+1})||^2. Loss (1 - beta) L_inverse + beta L_forward,
    beta = 0.2 (Sec. 2.2, 4). Actions: integers (discrete, `num_actions` > 0) or vectors (continuous)."""

    def __init__(self, obs_dim: int, action_dim: int, num_actions: int = 0, hidden: int = 64,
                 feature_dim: int = 32, beta: float = 0.2, lr: float = 1e-3):
        super().__init__()
        self.num_actions, self.beta = num_actions, beta
        a_dim = num_actions if num_actions else action_dim
        self.features = mlp(obs_dim, (hidden,), feature_dim, nn.ELU)
        self.inverse = mlp(2 * feature_dim, (hidden,), a_dim, nn.ELU)
        self.forward_model = mlp(feature_dim + a_dim, (hidden,), feature_dim, nn.ELU)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr)

    def _encode_action(self, actions: torch.Tensor) -> torch.Tensor:
        if self.num_actions:
            return F.one_hot(actions.long().reshape(-1), self.num_actions).float()
        return actions.float().reshape(len(actions), -1)

    def _losses(self, obs, actions, next_obs):
        phi, phi_next = self.features(obs), self.features(next_obs)
        a = self._encode_action(actions)
        forward_err = 0.5 * (self.forward_model(torch.cat([phi, a], -1)) - phi_next.detach()).square().sum(-1)
        pred = self.inverse(torch.cat([phi, phi_next], -1))
        if self.num_actions:
            inverse_loss = F.cross_entropy(pred, actions.long().reshape(-1))
        else:
            inverse_loss = F.mse_loss(pred, a)
        return forward_err, inverse_loss

    @torch.no_grad()
    def reward(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        return self._losses(obs, actions, next_obs)[0]

    def update(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor) -> float:
        forward_err, inverse_loss = self._losses(obs, actions, next_obs)
        loss = (1 - self.beta) * inverse_loss + self.beta * forward_err.mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()


def make_curiosity(kind: str, obs_dim: int, action_dim: int, num_actions: int, device: torch.device):
    """None, RND or ICM for --curiosity none|rnd|icm."""
    if kind == "none":
        return None
    if kind == "rnd":
        return RND(obs_dim).to(device)
    if kind == "icm":
        return ICM(obs_dim, action_dim, num_actions).to(device)
    raise ValueError(f"curiosity: expected none, rnd or icm, got {kind!r}")


def curiosity_state(module) -> dict:
    return {} if module is None else {"model": module.state_dict(), "optimizer": module.optimizer.state_dict()}


def load_curiosity_state(module, state: dict) -> None:
    if module is not None and state:
        module.load_state_dict(state["model"])
        module.optimizer.load_state_dict(state["optimizer"])
