"""The learners' shared pieces on hand-computed cases: GAE under NEXT_STEP autoreset, PPO's losses, the
discrete SAC target, the replay buffer's ring, Gumbel-softmax, config files, checkpoints, curiosity."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trader.rl import common, distributed, ppo, sac  # noqa: E402


@pytest.fixture(autouse=True)
def restore_torch_globals():
    """The learners set torch's thread count and deterministic mode for the process, as scripts do;
    put them back for the tests that run after these."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def t(x):
    return torch.tensor(x, dtype=torch.float32)


# ---- GAE ----------------------------------------------------------------------------------------


def test_gae_termination_in_the_middle():
    # one env, gamma = lambda = 0.5; episode ends (terminated) at t=1, t=2 is the autoreset step
    rewards = t([[1.0], [2.0], [0.0], [3.0]])
    values = t([[0.5], [1.0], [9.0], [2.0]])  # values[2] = V(final obs of the episode)
    term, trunc = t([[0], [1], [0], [0]]), t([[0], [0], [0], [0]])
    adv, ret = common.gae(rewards, values, t([4.0]), term, trunc, 0.5, 0.5)
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
    adv, _ = common.gae(rewards, values, t([4.0]), term, trunc, 0.5, 0.5)
    # t=1: truncated: 2 + 0.5 * V(final obs) = 9 - 1 = 5.5, and still no credit from t=2
    # t=0: 1 + 0.5*1 - 0.5 + 0.25*5.5 = 2.375
    np.testing.assert_allclose(adv[:, 0].numpy(), [2.375, 5.5, -7.25, 3.0])


def test_gae_without_dones_matches_the_discounted_sum_of_deltas():
    g, lam = 0.9, 0.8
    r = torch.rand(6, 3)
    v = torch.rand(6, 3)
    nv = torch.rand(3)
    z = torch.zeros(6, 3)
    adv, _ = common.gae(r, v, nv, z, z, g, lam)
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


# ---- replay buffer ------------------------------------------------------------------------------


def test_replay_buffer_wraps_around():
    rb = common.ReplayBuffer(5, (2,), (), torch.device("cpu"), action_dtype=torch.long)
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


def test_replay_buffer_multi_agent_shapes_and_state_round_trip():
    rb = common.ReplayBuffer(8, (3, 4), (3,), torch.device("cpu"), action_dtype=torch.long, reward_shape=(3,))
    rb.add(np.ones((5, 3, 4)), np.ones((5, 3, 4)), np.ones((5, 3)), np.ones((5, 3)), np.zeros(5))
    other = common.ReplayBuffer(8, (3, 4), (3,), torch.device("cpu"), action_dtype=torch.long, reward_shape=(3,))
    other.load_state_dict(rb.state_dict())
    assert len(other) == 5 and other.pos == 5 and torch.equal(other.rewards, rb.rewards)


# ---- Gumbel-softmax -----------------------------------------------------------------------------


def test_gumbel_softmax_is_one_hot_forward_and_differentiable():
    torch.manual_seed(0)
    logits = torch.randn(32, 5, requires_grad=True)
    y = common.gumbel_softmax(logits, hard=True)
    assert torch.all((y == 0) | (y == 1)) and torch.all(y.sum(-1) == 1)
    (y * torch.arange(5.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_gumbel_softmax_hard_samples_follow_the_softmax():
    torch.manual_seed(1)
    probs = torch.tensor([0.2, 0.3, 0.5])
    y = common.gumbel_softmax(probs.log().expand(40_000, 3), hard=True)
    freq = y.mean(0)
    torch.testing.assert_close(freq, probs, atol=0.01, rtol=0)


# ---- arguments, config, checkpoints -------------------------------------------------------------


def test_config_file_overrides_defaults_and_rejects_unknown_keys(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("num-steps: 64\nhidden_sizes: [32, 16]\nlearning_rate: 1e-3\n")
    args = common.resolve_args(ppo.Args, str(cfg), {"seed": "7", "learning_rate": 0.5})
    assert args.num_steps == 64 and args.hidden_sizes == (32, 16) and args.seed == 7 and args.learning_rate == 0.5
    (tmp_path / "c.json").write_text(json.dumps({"num_stepz": 3}))
    with pytest.raises(ValueError, match="unknown option 'num_stepz'.*did you mean num_steps"):
        common.resolve_args(ppo.Args, str(tmp_path / "c.json"))
    with pytest.raises(ValueError, match="num_steps: expected int"):
        common.resolve_args(ppo.Args, None, {"num_steps": "many"})


def test_resume_starts_from_the_saved_arguments(tmp_path):
    net = torch.nn.Linear(1, 1)
    store = common.open_store(tmp_path / "elsewhere")
    common.save_checkpoint(store, 64, distributed.Dist(), modules={"net": net}, trainer={}, rank_state={},
                           metadata={"args": {"num_steps": 7, "seed": 3, "resume": None}})
    args = common.resolve_args(ppo.Args, None, {"resume": str(tmp_path / "elsewhere"), "seed": 4})
    assert (args.num_steps, args.seed, args.resume) == (7, 4, str(tmp_path / "elsewhere"))


def test_parse_args_cleanrl_flags(tmp_path):
    args = common.parse_args(sac.Args, ["--env-id", "Pendulum-v1", "--total-timesteps", "1000", "--no-autotune",
                                        "--hidden-sizes", "8,8"])
    assert (args.env_id, args.total_timesteps, args.autotune, args.hidden_sizes) == ("Pendulum-v1", 1000, False, (8, 8))


def test_checkpoint_is_atomic_and_latest_is_found(tmp_path):
    net = torch.nn.Linear(2, 2)
    store = common.open_store(tmp_path, keep_last=2)
    for step in (10, 20, 30):
        common.save_checkpoint(store, step, distributed.Dist(), modules={"net": net}, trainer={"x": step},
                               rank_state={"n": step}, metadata={"algo": "test"})
    assert store.list() == [20, 30] and not list(tmp_path.glob(".tmp-*"))
    assert common.find_checkpoint(tmp_path) == str(tmp_path / "step_000000000030")
    ckpt = common.load_checkpoint(tmp_path)
    assert ckpt.state["trainer"]["x"] == 30 and ckpt.state["ranks"] == [{"n": 30}]
    assert ckpt.metadata == {"algo": "test", "step": 30, "world_size": 1}
    weights = common.load_weights(tmp_path / "step_000000000020")
    torch.testing.assert_close(weights["net"]["weight"], net.weight.detach())
    assert (tmp_path / "step_000000000020" / "weights" / "net.safetensors").is_file()


def test_rng_state_round_trip():
    common.seed_everything(3, True, torch.device("cpu"))
    state = common.rng_state()
    a = (np.random.rand(), torch.rand(3), __import__("random").random())
    common.set_rng_state(state)
    b = (np.random.rand(), torch.rand(3), __import__("random").random())
    assert a[0] == b[0] and torch.equal(a[1], b[1]) and a[2] == b[2]


def test_running_mean_std_matches_numpy():
    rms = common.RunningMeanStd((2,))
    data = torch.randn(300, 2) * 3 + 1
    for chunk in data.split(37):
        rms.update(chunk)
    np.testing.assert_allclose(rms.mean.numpy(), data.double().mean(0).numpy(), rtol=1e-5)
    np.testing.assert_allclose(rms.var.numpy(), data.double().var(0, unbiased=False).numpy(), rtol=1e-3)


# ---- curiosity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rnd", "icm"])
def test_curiosity_reward_falls_on_familiar_transitions(kind):
    torch.manual_seed(0)
    module = common.make_curiosity(kind, 4, 1, 3, torch.device("cpu"))
    obs = torch.randn(256, 4)
    actions = torch.randint(3, (256,))
    next_obs = obs + torch.nn.functional.one_hot(actions, 4).float()[:, :4]
    before = module.reward(obs, actions, next_obs).mean()
    for _ in range(300):
        module.update(obs, actions, next_obs)
    after = module.reward(obs, actions, next_obs).mean()
    novel = module.reward(obs + 5.0, actions, next_obs + 5.0).mean()
    assert after < 0.5 * before and novel > after
