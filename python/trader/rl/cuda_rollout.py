"""The learners' per-step work on the device without per-step Python and host-synchronisation overhead
(issue 18): PPO's rollout step of one env group (`GroupStep`), the capture of a function of fixed
tensors as a CUDA graph (`capture`; `graphed` for a function of one tensor, as SAC's and MADDPG's acting
forward), graph-safe policy sampling (`sample_action_value`), and the page-locked host buffers through
which step results go in and actions come out (`HostStaging`).

`GroupStep` holds the two halves of a rollout step of one group as functions of fixed tensors: `record`
stores a step's results (rewards, terminations, truncations at the step's row; the raw and the
normalized next observations; the done flags) and `act` stores the observation and its validity,
samples the policy and stores action, log-probability and value at the next row, then hands the env its
actions. Rows are chosen by step counters kept on the device (`index_copy_`), so:

- on CUDA with --cuda-graphs each half is captured once as a CUDA graph and replayed every step (two
  launches instead of ~40 kernels and their Python); the discrete actions are sampled by Gumbel-max
  (`gumbel_max`: torch.multinomial's distribution, from torch.rand, which a graph can capture); bf16
  autocast (--bf16) runs the MLPs' matmuls in bf16 and everything else in float32;
- elsewhere (the CPU; CUDA with --no-cuda-graphs) the same functions run eagerly with the agent's own
  sampling (torch.distributions): CPU runs are bit-identical to the plain loop they replaced.

Parameters are read from their storage at each replay, so optimizer steps (in place) are seen.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch.distributions import Normal

WARMUP_CALLS = 3
"""eager calls on a side stream before capture, as torch.cuda.graphs' documentation asks"""


def graphs_available(device) -> bool:
    """Whether the learners' --cuda-graphs applies on `device` (a CUDA device; the CPU runs eagerly)."""
    return torch.device(device).type == "cuda"


def capture(fn: Callable[[], object], state: Sequence[torch.Tensor] = ()) -> tuple[torch.cuda.CUDAGraph, object]:
    """fn (no arguments: it reads and writes fixed tensors; no gradients) captured as a CUDA graph:
    (graph, fn's outputs as static tensors, which each replay rewrites). The warm-up calls run fn for
    real: the tensors in `state` (counters, running statistics, ...) are put back as they were before."""
    with torch.no_grad():
        saved = [t.clone() for t in state]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = fn()
        for t, s in zip(state, saved):
            t.copy_(s)
    return graph, out


def graphed(fn: Callable[[torch.Tensor], torch.Tensor],
            example: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> fn(x), one tensor in (shaped as `example`) and one out, replayed from a CUDA graph; the
    result is a copy (the graph rewrites its own output at the next call)."""
    x_in = torch.zeros_like(example)
    graph, out = capture(lambda: fn(x_in))

    def call(x: torch.Tensor) -> torch.Tensor:
        x_in.copy_(x)
        graph.replay()
        return out.clone()

    return call


def gumbel_max(logits: torch.Tensor) -> torch.Tensor:
    """A sample of Categorical(logits=logits) per row, graph-safe: argmax(logits + Gumbel noise) (Gumbel
    1954; Maddison et al. 2014), the noise from torch.rand (torch.multinomial's sampling is not capturable)."""
    u = torch.rand_like(logits).clamp_(min=torch.finfo(logits.dtype).tiny)
    return (logits - torch.log(-torch.log(u))).argmax(-1)


@torch.no_grad()
def sample_action_value(agent, x: torch.Tensor, bf16: bool = False):
    """(action, log-probability, value) of PPO's agent (trader.rl.ppo.Agent) at observations x, with
    graph-safe sampling: Gumbel-max for discrete actions, validate_args=False for the Gaussian (argument
    checks would sync the host, which capture forbids)."""
    # no autocast weight cache under capture (torch.cuda.graphs' documentation)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
        value = agent.get_value(x).float()
        if agent.discrete:
            logp = agent.actor(x).float().log_softmax(-1)
            action = gumbel_max(logp)
            return action, logp.gather(-1, action[:, None]).squeeze(-1), value
        mean = agent.actor_mean(x).float()
        std = agent.actor_logstd.float().expand_as(mean).exp()
        action = mean + std * torch.randn_like(mean)
        return action, Normal(mean, std, validate_args=False).log_prob(action).sum(-1), value


class PageLocked:
    """Host arrays registered as page-locked memory (cudaHostRegister) until `release`: a non-blocking
    copy from an array inside one of them to the device is an asynchronous DMA with no staging copy on
    the host (issue 18: the rollout copied the pool's observations, 3.2 MB a step at 16,384 envs and
    12.8 MB at 65,536, into a pinned buffer on one core first). Registered: an env pool's `obs_buffer`,
    memory that never moves while the pool lives; release before the pool is freed. Registration that
    fails (no CUDA, the driver refuses) leaves the staging copy in place."""

    def __init__(self):
        self.ranges: list[tuple[int, int]] = []  # (address, bytes)

    def register(self, a: np.ndarray) -> bool:
        if not torch.cuda.is_available() or not a.flags.c_contiguous or a.nbytes == 0:
            return False
        err = torch.cuda.cudart().cudaHostRegister(a.ctypes.data, a.nbytes, 0)
        if int(getattr(err, "value", err)) != 0:
            return False
        self.ranges.append((a.ctypes.data, a.nbytes))
        return True

    def holds(self, a: np.ndarray) -> bool:
        """Whether a (C-contiguous) lies inside a registered range."""
        if not self.ranges or not a.flags.c_contiguous:
            return False
        start = a.ctypes.data
        return any(p <= start and start + a.nbytes <= p + n for p, n in self.ranges)

    def release(self) -> None:
        for p, _ in self.ranges:
            torch.cuda.cudart().cudaHostUnregister(p)
        self.ranges = []


class HostStaging:
    """Host buffers of fixed shapes (page-locked on CUDA) and, on CUDA, their device twins: `stage`
    copies numpy arrays in (cast to each buffer's dtype) and, on CUDA, on to the device with
    non-blocking copies. The host buffers are rewritten at the next `stage`: the caller waits on the
    stream (`fetch`) in between, which orders every copy issued before it."""

    def __init__(self, shapes: Sequence[tuple], dtypes: Sequence[torch.dtype], device: torch.device,
                 page_locked: PageLocked | None = None):
        self.cuda = torch.device(device).type == "cuda"
        self.page_locked = page_locked if self.cuda else None
        self.host = [torch.zeros(s, dtype=d, pin_memory=self.cuda) for s, d in zip(shapes, dtypes)]
        self.host_np = [h.numpy() for h in self.host]  # numpy views of the same memory
        self.device = [torch.zeros(s, dtype=d, device=device) for s, d in zip(shapes, dtypes)] if self.cuda \
            else self.host
        self.event = torch.cuda.Event() if self.cuda else None

    def stage(self, *arrays) -> list[torch.Tensor]:
        """The arrays in the first device buffers (returned; on the CPU the host buffers themselves). An
        array in page-locked memory of the right dtype goes to the device directly; it must stay unchanged
        until the next `fetch` (the pool writes a block only after the actions that fetch returns)."""
        for host, host_np, dev, src in zip(self.host, self.host_np, self.device, arrays):
            if self.page_locked is not None and src.dtype == host_np.dtype and self.page_locked.holds(src):
                dev.copy_(torch.from_numpy(src).view(dev.shape), non_blocking=True)
                continue
            np.copyto(host_np, src, casting="unsafe")
            if self.cuda:
                dev.copy_(host, non_blocking=True)
        return self.device[:len(arrays)]

    def fetch(self, *tensors: torch.Tensor) -> list[np.ndarray]:
        """Device tensors as numpy arrays through the host buffers (valid until the next fetch): the
        one host wait, for the copies to land."""
        if not self.cuda:
            return [t.numpy() for t in tensors]
        for host, t in zip(self.host, tensors):
            host.copy_(t, non_blocking=True)
        self.event.record()
        self.event.synchronize()
        return self.host_np[:len(tensors)]


ROW_FIELDS = ("obs", "actions", "logprobs", "rewards", "terminations", "truncations", "values", "valid")
"""PPO's rollout storage [num_steps, num_envs, ...] that a group step writes one row of"""


class GroupStep:
    """The rollout step of the envs `cols` (one env group) on PPO's storage: `storage` maps ROW_FIELDS
    and raw_next_obs, next_obs, next_done ([num_envs, ...]) to their tensors; `normalize` is the
    observation normalization (--norm-obs: updates the running statistics, whose tensors `state`
    lists); low/high bound continuous actions (None: discrete)."""

    def __init__(self, storage: dict, cols: slice, agent, normalize: Callable, state: Sequence[torch.Tensor],
                 low: torch.Tensor | None, high: torch.Tensor | None, graphs: bool, bf16: bool,
                 page_locked: PageLocked | None = None):
        self.rows = {name: storage[name][:, cols] for name in ROW_FIELDS}
        self.raw_next_obs, self.next_obs, self.next_done = (storage[k][cols] for k in
                                                            ("raw_next_obs", "next_obs", "next_done"))
        self.agent, self.normalize, self.low, self.high, self.bf16 = agent, normalize, low, high, bf16
        device, (num_steps, n) = self.next_obs.device, self.rows["rewards"].shape
        self.num_steps = num_steps
        self.t_record = torch.zeros(1, dtype=torch.long, device=device)  # the next rows to write
        self.t_act = torch.zeros(1, dtype=torch.long, device=device)
        actions = self.rows["actions"]
        self.env_action = torch.zeros((n, *actions.shape[2:]), dtype=actions.dtype, device=device)
        self.results = HostStaging([tuple(self.raw_next_obs.shape), (n,), (n,), (n,)], [torch.float32] * 4, device,
                                   page_locked)
        self.action_out = HostStaging([tuple(self.env_action.shape)], [actions.dtype], device)
        self.graphs = graphs
        if graphs:
            self.record_graph, _ = capture(self._record, [self.t_record, self.raw_next_obs, self.next_obs,
                                                          self.next_done, *state])
            self.act_graph, _ = capture(self._act, [self.t_act])

    def record(self, o, r, terminated, truncated) -> None:
        """Store a step's results of this group (numpy arrays, the env's views)."""
        self.results.stage(o, r, terminated, truncated)
        self.record_graph.replay() if self.graphs else self._record()

    def act(self) -> np.ndarray:
        """Act on the group's next observations; the env's actions (clipped to the action space), valid
        until the next call (the env copies them at send)."""
        self.act_graph.replay() if self.graphs else self._act()
        return self.action_out.fetch(self.env_action)[0]

    @torch.no_grad()
    def _record(self) -> None:
        o, r, terminated, truncated = self.results.device
        t, rows = self.t_record, self.rows
        for name, x in (("rewards", r), ("terminations", terminated), ("truncations", truncated)):
            rows[name].index_copy_(0, t, x[None])
        self.raw_next_obs.copy_(o)
        self.next_done.copy_(torch.maximum(terminated, truncated) > 0)
        self.next_obs.copy_(self.normalize(self.raw_next_obs))
        t.add_(1).remainder_(self.num_steps)

    @torch.no_grad()
    def _act(self) -> None:
        t, rows, x = self.t_act, self.rows, self.next_obs
        rows["obs"].index_copy_(0, t, x[None])
        rows["valid"].index_copy_(0, t, (~self.next_done)[None])
        if self.graphs:
            action, logprob, value = sample_action_value(self.agent, x, self.bf16)
        else:
            action, logprob, _, value = self.agent.get_action_and_value(x)
        for name, v in (("values", value), ("actions", action), ("logprobs", logprob)):
            rows[name].index_copy_(0, t, v[None])
        self.env_action.copy_(action if self.low is None else torch.clamp(action, self.low, self.high))
        t.add_(1).remainder_(self.num_steps)
