"""The learners' formulas on hand-computed cases: GAE under NEXT_STEP autoreset (trader.rl.ppo), PPO's
clipped losses, the discrete SAC target and actor loss, and MADDPG's straight-through Gumbel-softmax."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trader.rl import maddpg, ppo, sac  # noqa: E402


def t(x):
    return torch.tensor(x, dtype=torch.float32)


# ---- GAE ----------------------------------------------------------------------------------------


def test_gae_termination_in_the_middle():
    # one env, gamma = lambda = 0.5; episode ends (terminated) at t=1, t=2 is the autoreset step
    rewards = t([[1.0], [2.0], [0.0], [3.0]])
    values = t([[0.5], [1.0], [9.0], [2.0]])  # values[2] = V(final obs of the episode)
    term, trunc = t([[0], [1], [0], [0]]), t([[0], [0], [0], [0]])
    adv, ret = ppo.gae(rewards, values, t([4.0]), term, trunc, 0.5, 0.5)
    # t=3: 3 + 0.5*4 - 2 = 3
    # t=2 (autoreset step, masked by the learner): 0 + 0.5*2 - 9 + 0.25*3 = -7.25
    # t=1: terminated, no bootstrap, no credit from t=2: 2 - 1 = 1
    # t=0: 1 + 0.5*1 - 0.5 + 0.25*1 = 1.25
    np.testing.assert_allclose(adv[:, 0].numpy(), [1.25, 1.0, -7.25, 3.0])
    np.testing.assert_allclose(ret.numpy(), (adv + values).numpy())


def test_gae_truncation_bootstraps_from_the_final_observation():
    rewards = t([[1.0], [2.0], [0.0], [3.0]])
    values = t([[0.5], [1.0], [9.0], [2.0]])
    term, trunc = t([[0], [0], [0], [0]]), t([[0], [1], [0], [0]])
    adv, _ = ppo.gae(rewards, values, t([4.0]), term, trunc, 0.5, 0.5)
    # t=1: truncated: 2 + 0.5 * V(final obs) = 9 - 1 = 5.5, and still no credit from t=2
    # t=0: 1 + 0.5*1 - 0.5 + 0.25*5.5 = 2.375
    np.testing.assert_allclose(adv[:, 0].numpy(), [2.375, 5.5, -7.25, 3.0])


def test_gae_without_dones_matches_the_discounted_sum_of_deltas():
    g, lam = 0.9, 0.8
    r = torch.rand(6, 3)
    v = torch.rand(6, 3)
    nv = torch.rand(3)
    z = torch.zeros(6, 3)
    adv, _ = ppo.gae(r, v, nv, z, z, g, lam)
    v_next = torch.cat([v[1:], nv[None]])
    delta = r + g * v_next - v
    expected = torch.stack([sum((g * lam) ** (k - s) * delta[k] for k in range(s, 6)) for s in range(6)])
    torch.testing.assert_close(adv, expected)


# ---- losses -------------------------------------------------------------------------------------


def test_ppo_clipped_surrogate_hand_case():
    ratio = t([1.5, 0.5, 1.0])
    adv = t([1.0, -1.0, 2.0])
    # per sample max(-A r, -A clip(r, 0.8, 1.2)): max(-1.5, -1.2) = -1.2; max(0.5, 0.8) = 0.8; -2
    loss = ppo.policy_loss(ratio.log(), adv, 0.2)
    assert loss.item() == pytest.approx((-1.2 + 0.8 - 2.0) / 3)


def test_ppo_value_loss_hand_case():
    new, old, ret = t([2.0, 0.0]), t([1.0, 0.0]), t([3.0, 1.0])
    # unclipped: (2-3)^2 = 1, (0-1)^2 = 1; clipped: old + clip(new-old, +-0.5) = 1.5 -> 2.25; 0 -> 1
    assert ppo.value_loss(new, old, ret, 0.5, clip_vloss=False).item() == pytest.approx(0.5 * (1 + 1) / 2)
    assert ppo.value_loss(new, old, ret, 0.5, clip_vloss=True).item() == pytest.approx(0.5 * (2.25 + 1) / 2)


def test_discrete_sac_target_and_actor_loss_hand_case():
    probs = t([[0.25, 0.75]])
    log_probs = probs.log()
    q1, q2 = t([[1.0, 4.0]]), t([[2.0, 3.0]])  # min: [1, 3]
    alpha, gamma = 0.5, 0.9
    v = 0.25 * (1 - 0.5 * np.log(0.25)) + 0.75 * (3 - 0.5 * np.log(0.75))
    y = sac.discrete_soft_target(probs, log_probs, q1, q2, t([1.0]), t([0.0]), alpha, gamma)
    assert y.item() == pytest.approx(1 + 0.9 * v, rel=1e-6)
    y_term = sac.discrete_soft_target(probs, log_probs, q1, q2, t([1.0]), t([1.0]), alpha, gamma)
    assert y_term.item() == pytest.approx(1.0)
    loss = sac.discrete_actor_loss(probs, log_probs, q1, q2, alpha)
    assert loss.item() == pytest.approx(0.25 * (0.5 * np.log(0.25) - 1) + 0.75 * (0.5 * np.log(0.75) - 3), rel=1e-6)


# ---- Gumbel-softmax -----------------------------------------------------------------------------


def test_gumbel_softmax_is_one_hot_forward_and_differentiable():
    torch.manual_seed(0)
    logits = torch.randn(32, 5, requires_grad=True)
    y = maddpg.gumbel_softmax(logits, hard=True)
    assert torch.all((y == 0) | (y == 1)) and torch.all(y.sum(-1) == 1)
    (y * torch.arange(5.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_gumbel_softmax_hard_samples_follow_the_softmax():
    torch.manual_seed(1)
    probs = torch.tensor([0.2, 0.3, 0.5])
    y = maddpg.gumbel_softmax(probs.log().expand(40_000, 3), hard=True)
    freq = y.mean(0)
    torch.testing.assert_close(freq, probs, atol=0.01, rtol=0)
