"""PPO, SAC and MADDPG end to end on a synthetic market whose right answer is known (prices rise one tick
every row: buy and hold), against a random policy; same seed, same weights; a resumed run equals an
uninterrupted one; the `train` command."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trader.rl import maddpg, ppo, sac  # noqa: E402
from trader.rl.envs import EnvRunner, evaluate, make_env  # noqa: E402
from trader.rl.policy import load  # noqa: E402
from trader.run.checkpoints import load_checkpoint  # noqa: E402
from trader.sim import Market  # noqa: E402


pytestmark = pytest.mark.usefixtures("restore_torch_globals")


def rising_market(rows: int = 300) -> Market:
    """Tick 1, lot 1; the mid rises one tick a row, spread one tick, 1000 lots on two levels a side."""
    book = np.zeros((rows, 2, 4), dtype=np.int64)
    mid = 1000 + np.arange(rows)
    for level in range(2):
        book[:, level, 0] = mid - level
        book[:, level, 2] = mid + 1 + level
        book[:, level, 1] = book[:, level, 3] = 1000
    features = np.random.default_rng(0).normal(0.0, 0.1, (rows, 2)).astype(np.float32)
    return Market(book, features, np.arange(rows, dtype=np.int64), tick_size=1.0, lot_size=1.0)


MARKET = rising_market()
# 20-step episodes, no fees; holding 10 lots earns 1 quote a step each (times reward_scale 0.1)
TRADER = dict(env_id="trader", data=MARKET, horizon=20, taker_fee_bps=0.0, trade_size=1.0, max_position=10.0,
              reward_scale=0.1, progress_bar=False, track=False)


def mean_return(policy, args, episodes: int = 64) -> float:
    return float(evaluate(policy, make_env(args, 16, seed=999), episodes).mean())


def random_return(args) -> float:
    env = make_env(args, 16, seed=999)
    env.action_space.seed(0)
    return mean_return(lambda obs: env.action_space.sample(), args)


def weights(result) -> dict:
    return load_checkpoint(result["checkpoint"], state=False).weights


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for module in a:
        for name in a[module]:
            assert torch.equal(a[module][name], b[module][name]), f"{module}.{name} differs"


# ---- learning: beats random where buying and holding is right -------------------------------------


@pytest.mark.parametrize("continuous", [False, True])
def test_ppo_beats_random(tmp_path, continuous):
    args = ppo.Args(**TRADER, actions="continuous" if continuous else "discrete", num_envs=8, num_steps=32, total_timesteps=8192,
                    runs_dir=str(tmp_path))
    result = ppo.train(args)
    trained, rand = mean_return(load(result["checkpoint"]).act, args), random_return(args)
    # best: 15.0 (discrete: a lot bought each step up to 10), 19.5 (continuous: all in at once)
    assert trained > rand + 10.0, (trained, rand)


@pytest.mark.parametrize("continuous", [False, True])
def test_sac_beats_random(tmp_path, continuous):
    args = sac.Args(**TRADER, actions="continuous" if continuous else "discrete", num_envs=4, total_timesteps=3000, learning_starts=500,
                    batch_size=128, hidden_sizes=(64, 64), runs_dir=str(tmp_path))
    result = sac.train(args)
    trained, rand = mean_return(load(result["checkpoint"]).act, args), random_return(args)
    assert trained > rand + 10.0, (trained, rand)


def test_maddpg_beats_random(tmp_path):
    args = maddpg.Args(**TRADER, num_agents=2, num_envs=4, total_timesteps=4000, learning_starts=1000,
                       update_every=4, batch_size=256, learning_rate=1e-3, runs_dir=str(tmp_path))
    result = maddpg.train(args)
    trained, rand = mean_return(load(result["checkpoint"]).act, args), random_return(args)
    assert trained > rand + 10.0, (trained, rand)


# ---- same seed, same result; resume equals an uninterrupted run -----------------------------------

SHORT = {
    "ppo": (ppo, dict(num_envs=4, num_steps=16, total_timesteps=256)),
    "sac": (sac, dict(num_envs=2, total_timesteps=240, learning_starts=100, batch_size=32, hidden_sizes=(32, 32))),
    "maddpg": (maddpg, dict(num_agents=2, num_envs=2, total_timesteps=240, learning_starts=60, update_every=4,
                            batch_size=32, hidden_sizes=(32, 32))),
}


@pytest.mark.parametrize("algo", list(SHORT))
def test_same_seed_same_weights(tmp_path, algo):
    module, kw = SHORT[algo]
    runs = [module.train(module.Args(**TRADER, **kw, seed=5, runs_dir=str(tmp_path / str(i)))) for i in range(2)]
    assert_same_weights(weights(runs[0]), weights(runs[1]))
    other = module.train(module.Args(**TRADER, **kw, seed=6, runs_dir=str(tmp_path / "other")))
    assert any(not torch.equal(weights(runs[0])[m][n], weights(other)[m][n])
               for m in weights(other) for n in weights(other)[m])


RESUME_EXTRAS = {  # exercise the state a checkpoint must carry: curiosity, running statistics, groups
    "ppo": dict(curiosity="rnd", norm_obs=True, norm_reward=True, num_env_groups=2),
    "sac": dict(curiosity="icm", actions="continuous"),
    "maddpg": dict(curiosity="rnd"),
}


@pytest.mark.parametrize("algo", list(SHORT))
def test_resume_equals_an_uninterrupted_run(tmp_path, algo):
    module, kw = SHORT[algo]
    kw = dict(kw, **RESUME_EXTRAS[algo])
    half = kw["total_timesteps"] // 2
    full = module.train(module.Args(**TRADER, **kw, save_freq=half, runs_dir=str(tmp_path)))
    expected = weights(full)
    halfway = [p for p in (tmp_path.glob("*/checkpoints/step_*")) if int(p.name.split("_")[1]) <= half]
    assert len(halfway) == 1
    resumed = module.train(module.Args(**TRADER, **kw, save_freq=half, runs_dir=str(tmp_path), resume=str(halfway[0])))
    assert resumed["global_step"] == full["global_step"]
    assert_same_weights(expected, weights(resumed))


def test_replay_detects_a_different_env(tmp_path):
    args = ppo.Args(**TRADER)
    runner = EnvRunner(make_env(args, 2, seed=0), seed=0)
    runner.reset()
    for _ in range(5):
        runner.send(np.array([1, 2]))
        obs = runner.recv()[0].copy()
    log = runner.action_log()
    assert log.dtype == np.int8 and log.shape == (5, 2)
    np.testing.assert_array_equal(EnvRunner(make_env(args, 2, seed=0), seed=0).replay(log, obs), obs)
    with pytest.raises(RuntimeError, match="not deterministic"):
        EnvRunner(make_env(args, 2, seed=1), seed=1).replay(log, obs)


# ---- the command ----------------------------------------------------------------------------------


def test_train_command(tmp_path):
    from click.testing import CliRunner

    from trader.rl.cli import train

    config = tmp_path / "ppo.yaml"
    config.write_text("num_steps: 16\nhidden_sizes: [16, 16]\n")
    runner = CliRunner()
    out = runner.invoke(train, ["--algo", "ppo", "--total-timesteps", "128", "--num-envs", "4", "--horizon", "50",
                                "--config", str(config), "--runs-dir", str(tmp_path / "runs"), "--no-progress-bar",
                                "--save-freq", "64"])
    assert out.exit_code == 0, out.output
    run = next((tmp_path / "runs").glob("trader__ppo__0__*"))
    assert f"run folder: {run}" in out.output
    assert (run / "config.yaml").exists() and list(run.glob("events.out.tfevents.*"))
    assert load_checkpoint(run, state=False).ref.uri.endswith("/step_000000000128")
    resumed = runner.invoke(train, ["--algo", "ppo", "--resume", str(run), "--total-timesteps", "192",
                                    "--no-progress-bar"])
    assert resumed.exit_code == 0, resumed.output
    assert load_checkpoint(run, state=False).ref.uri.endswith("/step_000000000192")
    config.write_text("num_step: 16\n")
    bad = runner.invoke(train, ["--algo", "ppo", "--config", str(config)])
    assert bad.exit_code == 2 and "unknown option 'num_step'" in bad.output
    bad = runner.invoke(train, ["--algo", "ppo", "--num-agents", "2", "--runs-dir", str(tmp_path / "runs")])
    assert bad.exit_code == 2 and "maddpg" in bad.output


def test_mpe_adapter_next_step_autoreset():
    pytest.importorskip("mpe2")
    from trader.rl.mpe import MPEVectorEnv

    env = MPEVectorEnv("simple_spread_v3", num_envs=2)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 3, 18)
    for _ in range(25):
        obs, reward, term, trunc, info = env.step(np.zeros((2, 3), dtype=np.int64))
    assert trunc.all() and info["_episode"].all() and (info["episode"]["l"] == 25).all()
    obs, reward, term, trunc, info = env.step(np.zeros((2, 3), dtype=np.int64))  # the reset step
    assert (reward == 0).all() and not info["_episode"].any()


# ---- --abstain-prior: the untrained quoting policy starts near flat (issue 13) ----------------------


@pytest.mark.parametrize("prior", [0.0, 0.9])
def test_abstain_prior_is_the_untrained_policys_chance_of_no_quote(tmp_path, prior):
    from trader.rl.ppo import make_policy, restore
    from trader.sim.spec import decode_quote, encode_quote

    L = 5
    # learning rate 0: the checkpoint holds the initial weights (the bundled sample's quote env)
    args = ppo.Args(env_id="trader", actions="quote", quote_levels=L, horizon=50, num_envs=2, num_steps=16,
                    total_timesteps=32, learning_rate=0.0, abstain_prior=prior, runs_dir=str(tmp_path),
                    progress_bar=False, track=False)
    ckpt = load_checkpoint(ppo.train(args)["checkpoint"], state=False)
    env = make_env(args, 2, seed=3)
    obs, _ = env.reset(seed=3)
    agent, inputs = restore(ckpt.metadata["policy_spec"], ckpt.weights)
    with torch.no_grad():
        p = agent.distribution(inputs(obs)).probs.numpy()
    no_bid = p[:, [a for a in range(p.shape[1]) if decode_quote(a, quote_levels=L)[0] == L]].sum(1)
    no_ask = p[:, [a for a in range(p.shape[1]) if decode_quote(a, quote_levels=L)[1] == L]].sum(1)
    expected = prior or 1 / (L + 1)  # off: the orthogonal init's near-uniform policy
    np.testing.assert_allclose(no_bid, expected, atol=0.02)
    np.testing.assert_allclose(no_ask, expected, atol=0.02)
    if prior:  # the deterministic policy of backtests and evaluations quotes nothing
        assert (make_policy(ckpt.metadata["policy_spec"], ckpt.weights)(obs) == encode_quote(L, L, quote_levels=L)).all()


def test_abstain_prior_needs_quote_actions(tmp_path):
    from click.testing import CliRunner

    from trader.rl.cli import train

    config = tmp_path / "ppo.yaml"  # a PPO option like ent_coef: set in --config
    for actions, option, expected in (("discrete", "abstain_prior: 0.9", "needs the trader env with --actions quote"),
                                      ("quote", "abstain_prior: 1", "expected a probability in [0, 1)"),
                                      ("discrete", "quote_sides: both", "needs the trader env with --actions quote"),
                                      ("quote", "quote_sides: two", "expected one of any, both, symmetric, lean")):
        config.write_text(option + "\n")
        out = CliRunner().invoke(train, ["--algo", "ppo", "--actions", actions, "--config", str(config),
                                         "--runs-dir", str(tmp_path), "--no-progress-bar"])
        name = option.split(":")[0]
        assert out.exit_code == 2 and f"{name}: {expected}" in out.output, out.output


@pytest.mark.parametrize("flatten", [False, True])
def test_quote_prior_on_hand_cases(flatten):
    from trader.sim.spec import abstain_log_probs, decode_quote

    L = 3
    for sides, prior, allowed, each_quote in (("any", 0.7, lambda b, a: True, None),
                                              ("both", 0.7, lambda b, a: (b == L) == (a == L), 0.3 / 9),
                                              ("symmetric", 0.7, lambda b, a: b == a, 0.3 / 3),
                                              ("lean", 0.7, lambda b, a: (b == a == L) or (b < L and a < L
                                                                                           and abs(b - a) <= 1), 0.3 / 7),
                                              ("both", 0.0, lambda b, a: (b == L) == (a == L), None)):
        lp = np.array(abstain_log_probs(prior, L, flatten, sides))
        for action, x in enumerate(lp):
            bid, ask, flat = decode_quote(action, quote_levels=L)
            f = (1 - prior if flat else prior) if flatten and prior else 1.0
            if not allowed(bid, ask):
                assert x == -np.inf
            elif not prior:  # off: the head's init, every allowed action alike
                assert x == 0.0
            elif sides == "any":  # sides independent: no quote with the prior, each offset (1 - prior) / L
                side = [(1 - prior) / L] * L + [prior]
                assert np.exp(x) == pytest.approx(side[bid] * side[ask] * f)
            else:
                assert np.exp(x) == pytest.approx((prior if bid == L else each_quote) * f)
        if prior:
            assert np.exp(lp).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("sides", ["both", "symmetric", "lean"])
def test_quote_sides_rule_out_quotes_through_training(tmp_path, sides):
    from trader.rl.ppo import make_policy, restore
    from trader.sim.spec import abstain_log_probs, decode_quote, quote_allowed

    L = 3
    # a high learning rate for 4 updates: whatever the gradients do, the ruled-out quotes keep probability 0
    args = ppo.Args(env_id="trader", actions="quote", quote_levels=L, horizon=50, num_envs=4, num_steps=16,
                    total_timesteps=256, learning_rate=0.05, quote_sides=sides, abstain_prior=0.5,
                    runs_dir=str(tmp_path), progress_bar=False, track=False)
    ckpt = load_checkpoint(ppo.train(args)["checkpoint"], state=False)
    env = make_env(args, 4, seed=5)
    obs, _ = env.reset(seed=5)
    agent, inputs = restore(ckpt.metadata["policy_spec"], ckpt.weights)
    allowed = np.array([quote_allowed(*decode_quote(a, quote_levels=L)[:2], L, sides)
                        for a in range(agent.actor[-1].out_features)])
    bias, start = agent.actor[-1].bias.detach().numpy(), np.array(abstain_log_probs(0.5, L, False, sides))
    assert (bias[~allowed] == -np.inf).all() and np.isfinite(bias[allowed]).all()
    assert np.abs(bias[allowed] - start[allowed]).max() > 0.01  # training moved the allowed ones
    with torch.no_grad():
        p = agent.distribution(inputs(obs)).probs.numpy()
    assert (p[:, ~allowed] == 0).all() and np.allclose(p.sum(1), 1)
    acts = make_policy(ckpt.metadata["policy_spec"], ckpt.weights)(obs)
    assert allowed[acts].all()
