"""The pure-Python ReferenceTradingEnv and the C++ EnvPool agree step for step."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from trader import _core  # noqa: E402
from trader.data import load_dataset  # noqa: E402
from trader.sim.reference import ReferenceTradingEnv, below, llround, splitmix64  # noqa: E402

SEED = 1234
NUM_ENVS = 3
STEPS = 600
MARKET = dict(tick_size=0.01, lot_size=1e-6)  # the bundled BTCUSDT sample


@pytest.fixture(scope="module")
def market():
    ds = load_dataset()
    _, book, _ = ds.sample_top(10, 100_000_000)
    book = np.ascontiguousarray(book, dtype=np.int64)
    # Deterministic features from the book: mid log return (bp), spread (ticks), log sizes at the top.
    mid = 0.5 * (book[:, 0, 0] + book[:, 0, 2]).astype(np.float64)
    ret = np.zeros_like(mid)
    ret[1:] = np.log(mid[1:] / mid[:-1]) * 1e4
    spread = (book[:, 0, 2] - book[:, 0, 0]).astype(np.float64)
    log_bid = np.log1p(book[:, :3, 1].astype(np.float64))
    log_ask = np.log1p(book[:, :3, 3].astype(np.float64))
    feats = np.column_stack([ret, spread, log_bid, log_ask])
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-9)
    return book, np.ascontiguousarray(feats, dtype=np.float32)


CONFIGS = {
    "discrete_default": dict(horizon=50),
    "discrete_latency_fees_walk": dict(horizon=50, latency_steps=3, fee_bps=5.0, trade_lots=2_000_000,
                                       max_position_lots=6_000_000, **MARKET),
    "continuous_long_only": dict(horizon=50, continuous=True, allow_short=False, max_position_lots=3_000_000,
                                 fee_bps=2.0, **MARKET),
    "multi_agent_compete": dict(horizon=50, num_agents=3, trade_lots=2_500_000, max_position_lots=5_000_000,
                                latency_steps=1, **MARKET),
    "ruin": dict(horizon=50, initial_cash=1000.0, ruin_fraction=0.9, fee_bps=10.0, trade_lots=200_000,
                 max_position_lots=1_000_000, **MARKET),
}


def _copy(out):
    names = ("obs", "reward", "terminated", "truncated", "env_id", "t", "episode_length", "episode_return",
             "position", "equity", "fees", "filled", "unfilled")
    return {n: np.array(v, copy=True) for n, v in zip(names, out)}


def _check(name, step, i, got, obs, reward, terminated, truncated, info, K):
    where = f"{name}: step {step}, env {i}"
    np.testing.assert_allclose(got["obs"][i], np.asarray(obs).reshape(K, -1), rtol=1e-5, atol=1e-5, err_msg=where)
    np.testing.assert_allclose(got["reward"][i], np.asarray(reward, dtype=np.float32).reshape(K),
                               rtol=1e-4, atol=1e-4, err_msg=where)
    assert bool(got["terminated"][i]) == terminated, where
    assert bool(got["truncated"][i]) == truncated, where
    assert got["env_id"][i] == i, where
    assert got["t"][i] == info["t"], where
    assert got["episode_length"][i] == info["episode_length"], where
    np.testing.assert_array_equal(got["position"][i], np.reshape(info["position"], K), err_msg=where)
    np.testing.assert_array_equal(got["filled"][i], np.reshape(info["filled"], K), err_msg=where)
    np.testing.assert_array_equal(got["unfilled"][i], np.reshape(info["unfilled"], K), err_msg=where)
    np.testing.assert_allclose(got["fees"][i], np.reshape(info["fees"], K), rtol=1e-12, atol=1e-9, err_msg=where)
    np.testing.assert_allclose(got["equity"][i], np.reshape(info["equity"], K), rtol=1e-12, atol=1e-6, err_msg=where)
    np.testing.assert_allclose(got["episode_return"][i], np.reshape(info["episode_return"], K),
                               rtol=1e-4, atol=1e-3, err_msg=where)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_reference_matches_cpp(market, name):
    book, feats = market
    cfg = CONFIGS[name]
    K = cfg.get("num_agents", 1)
    continuous = cfg.get("continuous", False)
    pool = _core.EnvPool(book, feats, NUM_ENVS, NUM_ENVS, 1, SEED, **cfg)
    refs = [ReferenceTradingEnv(book, feats, seed=SEED, env_id=i, **cfg) for i in range(NUM_ENVS)]
    assert refs[0].observation_space.shape == ((feats.shape[1] + 3,) if K == 1 else (K, feats.shape[1] + 3))

    pool.send_reset()
    got = _copy(pool.recv())
    for i, ref in enumerate(refs):
        obs, info = ref.reset()
        assert ref.observation_space.contains(obs)
        _check(name, -1, i, got, obs, np.zeros(K, np.float32), False, False, info, K)

    rng = np.random.default_rng(7)
    done = np.zeros(NUM_ENVS, dtype=bool)
    stats = dict(terminated=0, truncated=0, filled=0, unfilled=0, resets=0)
    for step in range(STEPS):
        if continuous:
            actions = rng.uniform(-1.0, 1.0, size=(NUM_ENVS, K)).astype(np.float32)
            actions[rng.random((NUM_ENVS, K)) < 0.1] = 1.0  # exact bounds too
        else:
            actions = rng.choice(3, size=(NUM_ENVS, K), p=[0.4, 0.3, 0.3]).astype(np.int64)
        pool.send(actions[:, 0] if K == 1 else actions)
        got = _copy(pool.recv())
        for i, ref in enumerate(refs):
            if done[i]:  # the C++ env ignores the action and resets (next-step autoreset)
                obs, info = ref.reset()
                reward, terminated, truncated = np.zeros(K, np.float32), False, False
                stats["resets"] += 1
            else:
                action = actions[i] if K > 1 else (actions[i] if continuous else int(actions[i, 0]))
                obs, reward, terminated, truncated, info = ref.step(action)
                if K == 1:
                    assert np.isscalar(reward)
            _check(name, step, i, got, obs, reward, terminated, truncated, info, K)
            done[i] = terminated or truncated
            stats["terminated"] += terminated
            stats["truncated"] += truncated
            stats["filled"] += int(np.any(got["filled"][i] != 0))
            stats["unfilled"] += int(np.any(got["unfilled"][i] != 0))

    assert stats["resets"] >= 3 * NUM_ENVS, stats
    assert stats["filled"] > 0, stats
    if name == "ruin":
        assert stats["terminated"] > 0, stats
    else:
        assert stats["truncated"] >= 3 * NUM_ENVS, stats
    if name in ("discrete_latency_fees_walk", "multi_agent_compete"):
        assert stats["unfilled"] > 0, stats  # large orders run out of shown depth


def test_reset_with_seed_matches_pool_seed(market):
    book, feats = market
    cfg = dict(horizon=50, num_agents=2, trade_lots=1_000_000, max_position_lots=3_000_000, **MARKET)
    pool = _core.EnvPool(book, feats, NUM_ENVS, NUM_ENVS, 1, SEED, **cfg)
    refs = [ReferenceTradingEnv(book, feats, seed=SEED, env_id=i, **cfg) for i in range(NUM_ENVS)]
    rng = np.random.default_rng(3)
    for new_seed in (99, 2**64 - 2):
        pool.seed(new_seed)
        pool.send_reset()
        got = _copy(pool.recv())
        for i, ref in enumerate(refs):
            obs, info = ref.reset(seed=new_seed)
            _check("reseed", -1, i, got, obs, np.zeros(2, np.float32), False, False, info, 2)
        for step in range(20):
            actions = rng.integers(0, 3, size=(NUM_ENVS, 2))
            pool.send(actions)
            got = _copy(pool.recv())
            for i, ref in enumerate(refs):
                obs, reward, terminated, truncated, info = ref.step(actions[i])
                _check("reseed", step, i, got, obs, reward, terminated, truncated, info, 2)


def test_unknown_config_key_raises(market):
    book, feats = market
    with pytest.raises(ValueError, match="horizonn"):
        ReferenceTradingEnv(book, feats, horizonn=10)
    with pytest.raises(ValueError, match="horizonn"):
        _core.EnvPool(book, feats, 1, 1, 1, 0, horizonn=10)


def test_invalid_config_and_actions(market):
    book, feats = market
    with pytest.raises(ValueError, match="ruin_fraction"):
        ReferenceTradingEnv(book, feats, ruin_fraction=1.0)
    env = ReferenceTradingEnv(book, feats, horizon=10)
    with pytest.raises(RuntimeError):
        env.step(0)  # not reset yet
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(3)


def test_rng_helpers():
    # splitmix64 reference values (seed 0), Lemire's multiply-shift and C llround.
    s, r = splitmix64(0)
    assert r == 0xE220A8397B1DCDAF
    s, r = splitmix64(s)
    assert r == 0x6E789E6AA1B965F4
    assert below(2**64 - 1, 10) == 9 and below(0, 10) == 0
    assert [llround(x) for x in (2.5, -2.5, 0.49999999999999994, -0.5, 1.4999, -1.5)] == [3, -3, 0, -1, 1, -2]
