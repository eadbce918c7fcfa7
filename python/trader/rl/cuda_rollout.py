"""The rollout's GPU side without per-step Python and host-synchronisation overhead (issue 18), used
by PPO on CUDA only (the CPU path keeps its plain code, so CPU runs stay bit-identical by seed):

- `GraphedActor`: the policy forward, the sampling, the log-probability and the value of one group of
  envs captured once as a CUDA graph and replayed every step (one launch instead of ~30 kernels).
  Parameters are read from their storage at each replay, so optimizer steps (in place) are seen.
  Discrete actions are sampled with the Gumbel-max trick (argmax(logits + Gumbel noise), Gumbel 1954 /
  Maddison et al. 2014): the same distribution as torch.multinomial, from torch.rand, which a graph
  can capture. bf16 autocast (--bf16) runs the MLPs' matmuls in bf16 and everything else in float32.
- `PinnedStaging`: page-locked host buffers of one group, through which the step results go to the
  device and the actions come back with non_blocking copies; the only host wait per step is the
  actions' copy, which the env needs anyway.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.distributions import Normal

WARMUP_CALLS = 3
"""eager calls on a side stream before capture, as torch.cuda.graphs' documentation asks"""


class GraphedActor:
    """act(obs [n, D] on the device) -> (action, logprob, value), static output tensors of the graph:
    copy them out before the next call."""

    def __init__(self, agent, batch: int, obs_dim: int, bf16: bool):
        self.agent, self.bf16 = agent, bf16
        self.obs = torch.zeros((batch, obs_dim), device="cuda")
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                self._act()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = self._act()

    @torch.no_grad()
    def _act(self):
        agent, x = self.agent, self.obs
        # no autocast weight cache under capture (torch.cuda.graphs' documentation)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16, cache_enabled=False):
            value = agent.get_value(x).float()
            if agent.discrete:
                logp = agent.actor(x).float().log_softmax(-1)
                u = torch.rand_like(logp).clamp_(min=torch.finfo(torch.float32).tiny)
                action = (logp - torch.log(-torch.log(u))).argmax(-1)
                return action, logp.gather(-1, action[:, None]).squeeze(-1), value
            mean = agent.actor_mean(x).float()
            std = agent.actor_logstd.float().expand_as(mean).exp()
            action = mean + std * torch.randn_like(mean)
            # validate_args=False: argument checks would sync the host, which capture forbids
            return action, Normal(mean, std, validate_args=False).log_prob(action).sum(-1), value

    def __call__(self, obs: torch.Tensor):
        self.obs.copy_(obs)
        self.graph.replay()
        return self.out


class PinnedStaging:
    """Page-locked host copies of one group's step results and actions."""

    def __init__(self, n: int, obs_dim: int, act_shape: tuple, action_dtype: torch.dtype):
        def pinned(shape, dtype=torch.float32):
            return torch.empty(shape, dtype=dtype, pin_memory=True)

        self.obs, self.reward, self.term, self.trunc = pinned((n, obs_dim)), pinned(n), pinned(n), pinned(n)
        self.actions = pinned((n, *act_shape), action_dtype)
        self.event = torch.cuda.Event()

    def to_device(self, o, r, term, trunc, device):
        """(obs, reward, terminated, truncated) on the device as float32, copied without a host wait. The
        staging is rewritten at the next step only after `actions_to_host` waited on the stream, which
        orders every copy issued before it."""
        for host, src in ((self.obs, o), (self.reward, r), (self.term, term), (self.trunc, trunc)):
            np.copyto(host.numpy(), src, casting="unsafe")
        return tuple(h.to(device, non_blocking=True) for h in (self.obs, self.reward, self.term, self.trunc))

    def actions_to_host(self, action: torch.Tensor) -> np.ndarray:
        """The actions as numpy, valid until the next call (the env copies them at send)."""
        self.actions.copy_(action, non_blocking=True)
        self.event.record()
        self.event.synchronize()
        return self.actions.numpy()
