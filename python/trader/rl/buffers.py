"""The replay buffer of the off-policy learners (SAC, MADDPG): transitions in tensors preallocated on
the training device, sampled uniformly, saved whole in a checkpoint."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class ReplayBatch(NamedTuple):
    observations: torch.Tensor
    actions: torch.Tensor
    next_observations: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor


class ReplayBuffer:
    """Transitions in tensors preallocated on the training device; when full, the oldest rows are
    overwritten (a ring). It stores `terminated`, not `truncated`: a time-limit truncation still
    bootstraps from next_observations (Pardo et al. 2018; the same fix as SB3's handle_timeout_termination).
    Shapes are per transition: obs_shape (D,) or (K, D) for K agents; reward_shape () or (K,)."""

    def __init__(self, capacity: int, obs_shape: tuple, action_shape: tuple, device: torch.device,
                 action_dtype: torch.dtype = torch.float32, reward_shape: tuple = ()):
        self.capacity, self.device = int(capacity), device
        self.observations = torch.zeros((self.capacity, *obs_shape), dtype=torch.float32, device=device)
        self.next_observations = torch.zeros_like(self.observations)
        self.actions = torch.zeros((self.capacity, *action_shape), dtype=action_dtype, device=device)
        self.rewards = torch.zeros((self.capacity, *reward_shape), dtype=torch.float32, device=device)
        self.terminated = torch.zeros(self.capacity, dtype=torch.float32, device=device)
        self.pos, self.full = 0, False

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(self, obs, next_obs, actions, rewards, terminated, rows: torch.Tensor | None = None) -> None:
        """Append a batch of transitions (leading dim = batch; numpy, or torch on any device); `rows`
        (indices into the batch, on the buffer's device) keeps only those. The batch lands in at most two
        contiguous slices of the ring: no ring index tensor, no host synchronisation (issue 18)."""
        batch = [(x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x))).to(self.device)
                 for x in (obs, next_obs, actions, rewards, terminated)]
        if rows is not None:
            batch = [x[rows] for x in batch]
        n = len(batch[0])
        if n == 0:
            return
        if n > self.capacity:  # as if written one by one: only the newest `capacity` survive
            self.pos = (self.pos + n - self.capacity) % self.capacity
            batch = [x[-self.capacity:] for x in batch]
            n = self.capacity
        first = min(n, self.capacity - self.pos)  # up to the ring's end; the rest from its start
        for store, x in zip(self.stores(), batch):
            x = x.to(store.dtype).reshape(n, *store.shape[1:])
            store[self.pos:self.pos + first] = x[:first]
            store[:n - first] = x[first:]
        self.full = self.full or self.pos + n >= self.capacity
        self.pos = (self.pos + n) % self.capacity

    def stores(self) -> tuple[torch.Tensor, ...]:
        """The storage tensors, in add's argument order."""
        return self.observations, self.next_observations, self.actions, self.rewards, self.terminated

    def sample(self, batch_size: int) -> ReplayBatch:
        """Uniform sample with replacement (torch's global generator, so seeding makes it repeatable)."""
        idx = torch.randint(len(self), (batch_size,), device=self.device)
        return ReplayBatch(self.observations[idx], self.actions[idx], self.next_observations[idx],
                           self.rewards[idx], self.terminated[idx])

    def state_dict(self) -> dict:
        n = len(self)
        # copies: a saved slice would carry its whole preallocated storage
        rows = {name: getattr(self, name)[:n].to("cpu", copy=True)
                for name in ("observations", "next_observations", "actions", "rewards", "terminated")}
        return {"pos": self.pos, "full": self.full, **rows}

    def load_state_dict(self, state: dict) -> None:
        n = len(state["observations"])
        if n > self.capacity:
            raise ValueError(f"replay buffer: checkpoint holds {n} transitions, capacity is {self.capacity}")
        for name in ("observations", "next_observations", "actions", "rewards", "terminated"):
            getattr(self, name)[:n] = state[name].to(self.device)
        self.pos, self.full = int(state["pos"]), bool(state["full"])


def real_rows(prev_done: np.ndarray, device: torch.device) -> torch.Tensor | None:
    """The rows of a vector step that are transitions, for ReplayBuffer.add: all but the envs whose
    previous step ended an episode (under NEXT_STEP autoreset their step only reset them; its action was
    ignored). None when that is every row, the common case: no index, nothing to copy to the device."""
    if not prev_done.any():
        return None
    return torch.from_numpy(np.flatnonzero(~prev_done)).to(device)
