"""The learners' shared parts: the replay buffer's ring and its state (trader.rl.buffers), running
statistics (trader.rl.nets) and curiosity (trader.rl.curiosity) on a familiar and a novel transition."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trader.rl.buffers import ReplayBuffer, real_rows  # noqa: E402
from trader.rl.curiosity import make_curiosity  # noqa: E402
from trader.rl.nets import RunningMeanStd  # noqa: E402


# ---- replay buffer ------------------------------------------------------------------------------


def test_replay_buffer_wraps_around():
    rb = ReplayBuffer(5, (2,), (), torch.device("cpu"), action_dtype=torch.long)
    for start in (0, 3):  # 3 rows, then 3 more: the 6th row overwrites slot 0
        n = np.arange(start, start + 3)
        rb.add(np.stack([n, n], 1), np.stack([n + 100, n + 100], 1), n, n * 10.0, n % 2)
    assert len(rb) == 5 and rb.full and rb.pos == 1
    assert rb.observations[:, 0].tolist() == [5, 1, 2, 3, 4]
    assert rb.next_observations[:, 0].tolist() == [105, 101, 102, 103, 104]
    assert rb.actions.tolist() == [5, 1, 2, 3, 4]
    assert rb.rewards.tolist() == [50, 10, 20, 30, 40]
    assert rb.terminated.tolist() == [1, 1, 0, 1, 0]
    rb.add(np.full((7, 2), 7.0), np.zeros((7, 2)), np.zeros(7), np.zeros(7), np.zeros(7))  # more than capacity
    assert rb.observations[:, 0].tolist() == [7.0] * 5 and rb.pos == 3
    batch = rb.sample(64)
    assert batch.observations.shape == (64, 2) and batch.actions.dtype == torch.long


def test_replay_buffer_keeps_the_real_rows_of_a_step():
    """Tensors in, `rows` from the done flags of the previous step (real_rows): the envs that only
    reset are left out, in order, across the ring's end."""
    rb = ReplayBuffer(4, (1,), (), torch.device("cpu"), action_dtype=torch.long)
    assert real_rows(np.zeros(3, bool), torch.device("cpu")) is None  # no episode ended: no index
    rb.add(*(torch.arange(3.0)[:, None], torch.arange(3.0)[:, None], torch.arange(3), torch.arange(3.0),
             torch.zeros(3)), rows=real_rows(np.zeros(3, bool), torch.device("cpu")))
    prev_done = np.array([True, False, True, False, False])
    step = torch.arange(10.0, 15.0)
    rb.add(step[:, None], step[:, None] + 100, step.long(), step, torch.ones(5), rows=real_rows(prev_done, "cpu"))
    assert rb.observations[:, 0].tolist() == [13, 14, 2, 11] and rb.pos == 2 and rb.full
    assert rb.next_observations[:, 0].tolist() == [113, 114, 2, 111]
    assert rb.actions.tolist() == [13, 14, 2, 11] and rb.terminated.tolist() == [1, 1, 0, 1]
    rb.add(step[:, None], step[:, None], step.long(), step, step, rows=real_rows(np.ones(5, bool), "cpu"))
    assert rb.pos == 2  # every env only reset: nothing stored


def test_replay_buffer_multi_agent_shapes_and_state_round_trip():
    rb = ReplayBuffer(8, (3, 4), (3,), torch.device("cpu"), action_dtype=torch.long, reward_shape=(3,))
    rb.add(np.ones((5, 3, 4)), np.ones((5, 3, 4)), np.ones((5, 3)), np.ones((5, 3)), np.zeros(5))
    other = ReplayBuffer(8, (3, 4), (3,), torch.device("cpu"), action_dtype=torch.long, reward_shape=(3,))
    other.load_state_dict(rb.state_dict())
    assert len(other) == 5 and other.pos == 5 and torch.equal(other.rewards, rb.rewards)


# ---- running statistics ---------------------------------------------------------------------------


def test_running_mean_std_matches_numpy():
    rms = RunningMeanStd((2,))
    data = torch.randn(300, 2) * 3 + 1
    for chunk in data.split(37):
        rms.update(chunk)
    np.testing.assert_allclose(rms.mean.numpy(), data.double().mean(0).numpy(), rtol=1e-5)
    np.testing.assert_allclose(rms.var.numpy(), data.double().var(0, unbiased=False).numpy(), rtol=1e-3)


# ---- curiosity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rnd", "icm"])
def test_curiosity_reward_falls_on_familiar_transitions(kind):
    torch.manual_seed(0)
    module = make_curiosity(kind, 4, 1, 3, torch.device("cpu"))
    obs = torch.randn(256, 4)
    actions = torch.randint(3, (256,))
    next_obs = obs + torch.nn.functional.one_hot(actions, 4).float()[:, :4]
    before = module.reward(obs, actions, next_obs).mean()
    for _ in range(300):
        module.update(obs, actions, next_obs)
    after = module.reward(obs, actions, next_obs).mean()
    novel = module.reward(obs + 5.0, actions, next_obs + 5.0).mean()
    assert after < 0.5 * before and novel > after
