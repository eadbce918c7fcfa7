"""Trader-v0 in envpool's registry: envpool.make_gymnasium builds our env, with envpool's send/recv."""

from __future__ import annotations

import numpy as np
import pytest

envpool = pytest.importorskip("envpool")

from trader.sim import TradingVectorEnv, make  # noqa: E402
from trader.sim.envpool_compat import TASK_ID, register_envpool  # noqa: E402

N, B, SEED, STEPS = 8, 4, 3, 40


@pytest.fixture(scope="module", autouse=True)
def registered():
    assert register_envpool()
    assert register_envpool()  # idempotent
    assert TASK_ID in envpool.list_all_envs()


def _run_async(env, actions: np.ndarray) -> dict[int, list[tuple]]:
    """Drive an async env so that env e takes actions[e, k] at its k-th step, whatever the completion
    order; returns each env's results in its own step order."""
    per_env: dict[int, list[tuple]] = {e: [] for e in range(N)}
    count = np.zeros(N, dtype=np.int64)
    env.async_reset()
    while count.min() < STEPS:
        obs, reward, terminated, truncated, info = env.recv()
        ids = np.asarray(info["env_id"])
        assert len(ids) == B and obs.shape[0] == B
        for row, e in enumerate(ids.tolist()):
            per_env[e].append((obs[row].copy(), float(reward[row]), bool(terminated[row]), bool(truncated[row]),
                               int(info["position"][row]), float(info["equity"][row])))
        send_ids = ids[count[ids] < STEPS]
        if len(send_ids):
            env.send(actions[send_ids, count[send_ids]], send_ids)
            count[send_ids] += 1
        elif (count >= STEPS).all():
            break
    return per_env


def test_make_gymnasium_gives_our_env_with_async_api():
    env = envpool.make_gymnasium(TASK_ID, num_envs=N, batch_size=B, seed=SEED)
    assert isinstance(env, TradingVectorEnv)
    assert env.num_envs == N and env.batch_size == B and env.is_async
    assert env.config["num_envs"] == N and env.config["seed"] == SEED and env.config["max_episode_steps"] == 500
    env.async_reset()
    seen = set()
    for _ in range(N // B):
        obs, reward, terminated, truncated, info = env.recv()
        assert obs.shape == (B,) + env.single_observation_space.shape
        assert reward.shape == terminated.shape == truncated.shape == (B,)
        assert len(info["env_id"]) == B
        assert (info["elapsed_step"] == 0).all()
        seen.update(info["env_id"].tolist())
    assert seen == set(range(N))
    env.send(np.ones(B, dtype=np.int64), np.arange(B, dtype=np.int32))
    obs, reward, terminated, truncated, info = env.recv()
    assert sorted(info["env_id"].tolist()) == list(range(B))
    assert (info["elapsed_step"] == 1).all()
    env.close()


@pytest.mark.parametrize("options", [{}, {"actions": "quote", "quote_levels": 3, "maker_fee_bps": -0.5,
                                          "order_latency_ns": 10_000_000, "trade_size": 0.001}],
                         ids=["discrete", "quote"])
def test_same_trajectories_as_trader_sim_make(options):
    ours = make(num_envs=N, batch_size=B, seed=SEED, **options)
    actions = np.random.default_rng(0).integers(0, ours.single_action_space.n, size=(N, STEPS))
    via_envpool = envpool.make_gymnasium(TASK_ID, num_envs=N, batch_size=B, num_threads=2, seed=SEED, **options)
    a, b = _run_async(ours, actions), _run_async(via_envpool, actions)
    for e in range(N):
        assert len(a[e]) >= STEPS and len(b[e]) >= STEPS
        for k, (x, y) in enumerate(zip(a[e][:STEPS], b[e][:STEPS])):
            np.testing.assert_array_equal(x[0], y[0], err_msg=f"env {e} step {k}")
            assert x[1:] == y[1:], f"env {e} step {k}"


def test_sync_step_and_reset():
    env = envpool.make_gymnasium(TASK_ID, num_envs=4, seed=1, max_episode_steps=5)
    ref = make(num_envs=4, seed=1, horizon=5)
    assert not env.is_async and env.batch_size == 4
    obs, info = env.reset()
    ref_obs, _ = ref.reset()
    assert info["env_id"].tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(obs, ref_obs)
    for k in range(5):
        act = np.full(4, k % 3, dtype=np.int64)
        obs, reward, terminated, truncated, info = env.step(act)
        ref_obs, ref_reward, *_ = ref.step(act)
        np.testing.assert_array_equal(obs, ref_obs)
        np.testing.assert_array_equal(reward, ref_reward)
    assert truncated.all() and (info["elapsed_step"] == 5).all()
    obs, info = env.reset()
    assert (info["elapsed_step"] == 0).all()


@pytest.mark.parametrize("bad, name", [
    (dict(no_such_option=1), "no_such_option"),
    (dict(max_num_players=2), "max_num_players"),
    (dict(thread_affinity_offset=0), "thread_affinity_offset"),
    (dict(env_seed=[1, 2]), "env_seed"),
    (dict(horizon=10, max_episode_steps=20), "max_episode_steps"),
    (dict(render_mode="rgb_array"), "render_mode"),
])
def test_refused_options(bad, name):
    with pytest.raises(ValueError, match=name):
        envpool.make_gymnasium(TASK_ID, num_envs=2, **bad)


def test_make_dm_is_refused():
    with pytest.raises(TypeError, match="no dm_env interface"):
        envpool.make_dm(TASK_ID, num_envs=2)
