"""Rules of the C++ trading env and its pool: execution through the book, fees, limits, latency,
liquidity competition, autoreset, determinism across threads and sync/async, stress, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from trader.sim import Market, TradingEnv, TradingParallelEnv, TradingVectorEnv, load_market, make


def flat_market(rows=40, asks=((101, 2), (102, 3), (103, 5)), bids=((100, 2), (99, 3), (98, 5)), step_px=0):
    """A hand-made book (tick 1, lot 1: notional = ticks * lots) whose prices rise by step_px a row."""
    L = max(len(asks), len(bids))
    book = np.zeros((rows, L, 4), dtype=np.int64)
    for r in range(rows):
        for i, (p, q) in enumerate(bids):
            book[r, i, 0:2] = p + r * step_px, q
        for i, (p, q) in enumerate(asks):
            book[r, i, 2:4] = p + r * step_px, q
    feats = np.arange(rows, dtype=np.float32)[:, None].repeat(2, 1)
    return Market(book, feats, np.arange(rows, dtype=np.int64), tick_size=1.0, lot_size=1.0)


def vec(market, **kw):
    kw.setdefault("horizon", 10)
    kw.setdefault("taker_fee_bps", 0.0)
    kw.setdefault("start_min", 0)
    kw.setdefault("start_max", 0)
    kw.setdefault("trade_size", 1.0)
    kw.setdefault("max_position", 100.0)
    return TradingVectorEnv(market, **kw)


def test_market_buy_walks_levels_and_pays_fee():
    env = vec(flat_market(), trade_size=6.0, taker_fee_bps=10.0, initial_cash=10_000.0)
    env.reset(seed=0)
    obs, reward, term, trunc, info = env.step(np.array([1]))
    notional = 2 * 101 + 3 * 102 + 1 * 103
    fee = notional * 10 / 1e4
    assert info["filled"][0] == 6 and info["position"][0] == 6
    assert info["fees"][0] == pytest.approx(fee)
    mid = 100.5
    equity = 10_000.0 - notional - fee + 6 * mid
    assert info["equity"][0] == pytest.approx(equity)
    assert reward[0] == pytest.approx(equity - 10_000.0, rel=1e-6)
    assert obs[0, 2] == pytest.approx(6 / 100)  # position / max position


def test_order_larger_than_shown_depth_is_partly_filled():
    env = vec(flat_market(), trade_size=15.0)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([1]))
    assert info["filled"][0] == 10 and info["unfilled"][0] == 5


def test_sell_walks_bids_and_short_limit():
    env = vec(flat_market(), trade_size=4.0, max_position=5.0)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([2]))
    assert info["position"][0] == -4
    assert info["equity"][0] == pytest.approx(100_000 + 2 * 100 + 2 * 99 - 4 * 100.5)
    _, _, _, _, info = env.step(np.array([2]))  # only 1 more lot allowed
    assert info["position"][0] == -5 and info["filled"][0] == -1


def test_no_shorting():
    env = vec(flat_market(), allow_short=False)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([2]))
    assert info["position"][0] == 0 and info["filled"][0] == 0


def test_position_cap_limits_orders_but_not_the_observations_scale():
    """position_cap_trades (issue 13): orders stop at the cap in trade sizes; the observation and the continuous
    target still scale by max_position, so a trained agent sees what it saw in training."""
    env = vec(flat_market(), trade_size=2.0, max_position=10.0, position_cap_trades=2)
    env.reset(seed=0)
    for expected in (2, 4, 4):
        obs, _, _, _, info = env.step(np.array([1]))
        assert info["position"][0] == expected
    assert obs[0, 2] == pytest.approx(4 / 10)  # position / max_position, not / the cap
    for expected in (2, 0, -2, -4, -4):
        _, _, _, _, info = env.step(np.array([2]))
        assert info["position"][0] == expected
    env = vec(flat_market(), actions="continuous", trade_size=2.0, max_position=10.0, position_cap_trades=1)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([0.1], dtype=np.float32))
    assert info["position"][0] == 1  # 0.1 of max_position, inside the cap
    _, _, _, _, info = env.step(np.array([-1.0], dtype=np.float32))
    assert info["position"][0] == -2  # clipped at the cap of one trade size
    with pytest.raises(ValueError, match="position_cap_trades"):
        vec(flat_market(), position_cap_trades=-1)


def test_max_hold_closes_a_position_held_that_long():
    """max_hold_ns (issue 13, session 26): a position opened at row t (the row after its fill) is closed by a market
    order at the first row at or after t + max_hold_ns (taker fee), whatever the action asks; once flat, the next
    position starts its own clock; 0 (the default) never closes. The market's rows are 1 ns apart."""
    def positions(actions, **kw):
        env = vec(flat_market(), trade_size=2.0, max_position=4.0, taker_fee_bps=10.0, **kw)
        env.reset(seed=0)
        out = []
        for a in actions:
            _, _, _, _, info = env.step(np.array([a]))
            out.append((int(info["position"][0]), int(info["taker_filled"][0])))
        return out

    held = positions([1, 0, 0, 0, 0, 0], max_hold_ns=3)
    assert [p for p, _ in held] == [2, 2, 2, 2, 0, 0]  # bought at row 0, opened at row 1, closed at row 4
    assert [f for _, f in held] == [2, 0, 0, 0, 2, 0]  # the close: a market order of the whole position
    assert [p for p, _ in positions([1, 1, 1, 1, 1, 1, 1], max_hold_ns=3)] == [2, 4, 4, 4, 0, 2, 4]
    assert [p for p, _ in positions([2, 0, 0, 0, 0], max_hold_ns=3)] == [-2, -2, -2, -2, 0]  # shorts too
    assert [p for p, _ in positions([1, 0, 0, 0, 0, 0])] == [2] * 6
    with pytest.raises(ValueError, match="max_hold_ns"):
        vec(flat_market(), max_hold_ns=-1)


def test_markout_hurdle_charges_each_fill_in_the_reward_only():
    """markout_hurdle_bps (issue 13): a fill's markout reward less that many bps of its notional at the mid;
    markout_hurdle_spreads: less that fraction of the bid-ask spread per lot. The account (equity, fees) is the same
    with and without them."""
    out, wide = {}, flat_market(asks=((103, 2), (104, 3), (105, 5)))  # a 3-tick spread, the mid at 101.5
    hurdles = {"none": {}, "bps": {"markout_hurdle_bps": 10.0}, "spreads": {"markout_hurdle_spreads": 0.25},
               "both": {"markout_hurdle_bps": 10.0, "markout_hurdle_spreads": 0.25}}
    for name, hurdle in hurdles.items():
        env = vec(wide, trade_size=3.0, reward="markout", markout_ns=5, **hurdle)
        env.reset(seed=0)
        _, reward, _, _, info = env.step(np.array([1]))
        out[name] = (float(reward[0]), float(info["equity"][0]), float(info["fees"][0]))
    assert {v[1:] for v in out.values()} == {out["none"][1:]}
    assert out["none"][0] - out["bps"][0] == pytest.approx(10e-4 * 3 * 101.5)  # 3 lots at the mid, 10 bps
    assert out["none"][0] - out["spreads"][0] == pytest.approx(0.25 * 3 * 3.0)  # 3 lots, a quarter of 3 ticks
    assert out["none"][0] - out["both"][0] == pytest.approx(10e-4 * 3 * 101.5 + 0.25 * 3 * 3.0)
    for option in ("markout_hurdle_bps", "markout_hurdle_spreads"):
        with pytest.raises(ValueError, match=option):
            vec(flat_market(), **{option: 1.0})  # the pnl reward has no fills' markouts to charge
        with pytest.raises(ValueError, match=option):
            vec(flat_market(), reward="markout", **{option: -0.5})


def test_markout_loss_weight_counts_losing_fills_more_in_the_reward_only():
    """markout_loss_weight (issue 13, session 23): a step whose fills lose against the later mid counts the loss that
    many times; a gain counts once; a hurdle is charged after it, unweighted; the account is the same."""
    wide = flat_market(asks=((103, 2), (104, 3), (105, 5)))  # buying 3 lots (2 at 103, 1 at 104) loses 5.5 to the mid
    rising = flat_market(step_px=1)  # buying at 101 gains 5 ticks of mid 5 rows later less the half spread
    out = {}
    for market_name, market in (("wide", wide), ("rising", rising)):
        for w in (1.0, 2.25):
            for bps in (0.0, 10.0):
                env = vec(market, trade_size=3.0, reward="markout", markout_ns=5, markout_loss_weight=w,
                          markout_hurdle_bps=bps)
                env.reset(seed=0)
                _, reward, _, _, info = env.step(np.array([1]))
                out[market_name, w, bps] = (float(reward[0]), float(info["equity"][0]), float(info["fees"][0]))
    assert out["wide", 1.0, 0.0][0] == pytest.approx(-5.5)
    assert out["wide", 2.25, 0.0][0] == pytest.approx(-2.25 * 5.5)
    assert out["wide", 2.25, 10.0][0] == pytest.approx(-2.25 * 5.5 - 10e-4 * 3 * 101.5)
    assert out["rising", 1.0, 0.0][0] > 0 and out["rising", 2.25, 0.0][0] == out["rising", 1.0, 0.0][0]
    for market_name in ("wide", "rising"):
        assert {v[1:] for k, v in out.items() if k[0] == market_name} == {out[market_name, 1.0, 0.0][1:]}
    with pytest.raises(ValueError, match="markout_loss_weight"):
        vec(flat_market(), markout_loss_weight=2.0)  # the pnl reward has no fills' markouts to weigh
    with pytest.raises(ValueError, match="markout_loss_weight"):
        vec(flat_market(), reward="markout", markout_loss_weight=0.5)


def test_continuous_target_position():
    env = vec(flat_market(), actions="continuous", max_position=10.0)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([0.5], dtype=np.float32))
    assert info["position"][0] == 5
    _, _, _, _, info = env.step(np.array([-0.2], dtype=np.float32))
    assert info["position"][0] == -2 and info["filled"][0] == -7


def test_latency_executes_at_a_later_row():
    m = flat_market(step_px=10)  # prices move 10 ticks a row
    env = vec(m, order_latency_ns=2)  # rows 1 ns apart
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([1]))  # sent at row 0, executes at row 2 (the first at >= 0 + 2 ns)
    assert info["filled"][0] == 0
    _, _, _, _, info = env.step(np.array([0]))
    assert info["filled"][0] == 0
    _, _, _, _, info = env.step(np.array([0]))
    assert info["filled"][0] == 1
    expected_cash = 100_000 - (101 + 2 * 10)
    assert info["equity"][0] == pytest.approx(expected_cash + (100.5 + 3 * 10))


def test_agents_compete_for_the_same_levels():
    first_gets_best = 0
    for seed in range(100):
        # both flat, both buy 3 lots: 2 at 101 and 3 at 102 are shown, so one agent pays more
        env = vec(flat_market(), num_agents=2, trade_size=3.0, seed=seed)
        env.reset()
        _, _, _, _, info = env.step(np.array([[1, 1]]))
        assert info["filled"][0].tolist() == [3, 3]
        eq = info["equity"][0]
        costs = sorted(100_000 + 3 * 100.5 - eq)
        assert costs == pytest.approx([2 * 101 + 102, 2 * 102 + 103])
        first_gets_best += eq[0] > eq[1]
    assert 20 < first_gets_best < 80  # seeded random priority, not a fixed order


def test_liquidity_is_shared_not_duplicated():
    env = vec(flat_market(), num_agents=3, trade_size=5.0)
    env.reset(seed=1)
    _, _, _, _, info = env.step(np.array([[1, 1, 1]]))
    assert info["filled"][0].sum() == 10  # all shown ask depth, not 15
    assert info["unfilled"][0].sum() == 5


def test_truncation_then_next_step_autoreset():
    env = vec(flat_market(), horizon=3)
    obs0, _ = env.reset(seed=0)
    for i in range(3):
        obs, r, term, trunc, info = env.step(np.array([1]))
    assert trunc[0] and not term[0] and info["episode"]["l"][0] == 3
    assert info["_episode"][0]
    obs, r, term, trunc, info = env.step(np.array([1]))  # ignored: the env resets
    assert info["episode"]["l"][0] == 0 and info["position"][0] == 0 and r[0] == 0
    np.testing.assert_array_equal(obs, obs0)


def test_ruin_terminates():
    falling = flat_market(rows=40, asks=((1001, 100),), bids=((1000, 100),), step_px=-20)
    env = vec(falling, initial_cash=20_000.0, trade_size=10.0, ruin_fraction=0.5, horizon=30)
    env.reset(seed=0)
    terminated = False
    for _ in range(30):
        _, _, term, trunc, info = env.step(np.array([1]))
        if term[0]:
            terminated = True
            break
    assert terminated and info["equity"][0] < 10_000 and not trunc[0]


MARKET_ORDERS = dict(trade_size=0.5, max_position=2.0, order_latency_ns=100_000_000, taker_fee_bps=2.0)
QUOTES = dict(actions="quote", quote_flatten=True, quote_min_ticks=-1, quote_levels=4, trade_size=0.01,
              max_position=0.05, order_latency_ns=20_000_000, cancel_latency_ns=5_000_000, maker_fee_bps=-0.5)


def run_trajectories(num_envs, batch_size, threads, steps=120, seed=3, horizon=40, options=MARKET_ORDERS):
    """Per-env trajectories under a fixed per-env action plan, through the async API."""
    env = make(num_envs=num_envs, batch_size=batch_size, num_threads=threads, seed=seed, horizon=horizon, **options)
    plan = np.random.default_rng(0).integers(0, env.single_action_space.n, size=(num_envs, 4 * steps))
    traj = {i: [] for i in range(num_envs)}
    env.async_reset()
    while min(len(t) for t in traj.values()) < steps:
        obs, rew, term, trunc, info = env.recv()
        ids = info["env_id"].copy()
        assert len(set(ids.tolist())) == len(ids) == batch_size
        for j, e in enumerate(ids):
            traj[e].append((obs[j].copy(), float(rew[j]), bool(term[j]), bool(trunc[j]), int(info["position"][j])))
        env.send(plan[ids, [len(traj[e]) for e in ids]], ids)
    return {e: t[:steps] for e, t in traj.items()}


def assert_same(a, b):
    for e in a:
        assert len(a[e]) == len(b[e])
        for x, y in zip(a[e], b[e]):
            np.testing.assert_array_equal(x[0], y[0])
            assert x[1:] == y[1:]


@pytest.mark.parametrize("options", [MARKET_ORDERS, QUOTES], ids=["market_orders", "quotes"])
def test_deterministic_across_threads_and_sync_async(options):
    ref = run_trajectories(16, 16, 1, options=options)
    assert_same(ref, run_trajectories(16, 16, 2, options=options))
    assert_same(ref, run_trajectories(16, 4, 1, options=options))
    assert_same(ref, run_trajectories(16, 4, 2, options=options))
    assert_same(ref, run_trajectories(16, 1, 2, options=options))


def test_sync_step_rows_are_in_env_order_and_seeded_per_env():
    env = make(num_envs=8, num_threads=2, seed=11)
    obs, info = env.reset(seed=11)
    assert info["env_id"].tolist() == list(range(8))
    single = make(num_envs=1, seed=11 + 5)
    o1, _ = single.reset(seed=11 + 5)
    np.testing.assert_array_equal(obs[5], o1[0])  # env i is seeded with seed + i


def async_blocks(threads, num_envs=64, batch=16, rounds=200, shuffle=False, options=None):
    """The blocks recv returns (env ids, obs, rewards) under a fixed action plan; with shuffle the
    envs of each block are sent back in a seeded random order."""
    env = make(num_envs=num_envs, batch_size=batch, num_threads=threads, seed=7, horizon=30, **(options or {}))
    rng = np.random.default_rng(2)
    env.async_reset()
    blocks = []
    for r in range(rounds):
        obs, rew, _, _, info = env.recv()
        ids = info["env_id"].copy()
        blocks.append((ids, obs.copy(), rew.copy()))
        if shuffle:
            ids = ids[rng.permutation(batch)]
        env.send(rng.integers(0, 3, batch), ids)
    env.close()
    return blocks


@pytest.mark.parametrize("shuffle", [False, True], ids=["same_order", "shuffled"])
def test_async_rows_come_in_send_order_whatever_the_thread_count(shuffle):
    # Rows are reserved at send (issue 18): a block is batch_size consecutive tasks in send order, so
    # the whole stream of blocks, not only each env's trajectory, is the same with 1 or 3 threads.
    ref = async_blocks(1, shuffle=shuffle)
    assert [b[0].tolist() for b in ref[:4]] == [list(range(i * 16, i * 16 + 16)) for i in range(4)]
    for got in (async_blocks(2, shuffle=shuffle), async_blocks(3, shuffle=shuffle)):
        for (ids_a, obs_a, rew_a), (ids_b, obs_b, rew_b) in zip(ref, got):
            np.testing.assert_array_equal(ids_a, ids_b)
            np.testing.assert_array_equal(obs_a, obs_b)
            np.testing.assert_array_equal(rew_a, rew_b)


@pytest.mark.parametrize("options", [MARKET_ORDERS, QUOTES], ids=["market_orders", "quotes"])
def test_async_with_one_thread_gives_the_rows_of_more_threads_and_of_sync(options):
    # Async with num_threads=1 steps every env on one background worker, never on the caller (issue 18,
    # envpool's semantics): its blocks are those of 2 and 3 threads, its per-env rows those of sync.
    ref = async_blocks(1, rounds=120, options=options)
    for threads in (2, 3):
        got = async_blocks(threads, rounds=120, options=options)
        for (ids_a, obs_a, rew_a), (ids_b, obs_b, rew_b) in zip(ref, got):
            np.testing.assert_array_equal(ids_a, ids_b)
            np.testing.assert_array_equal(obs_a, obs_b)
            np.testing.assert_array_equal(rew_a, rew_b)
    sync = run_trajectories(16, 16, 1, options=options)
    for threads in (1, 2, 3):
        assert_same(sync, run_trajectories(16, 4, threads, options=options))


def test_pool_stress_async_two_threads():
    num_envs, batch = 256, 32
    env = make(num_envs=num_envs, batch_size=batch, num_threads=2, seed=5, horizon=25)
    env.async_reset()
    seen = np.zeros(num_envs, dtype=int)
    rng = np.random.default_rng(1)
    for _ in range(3000):
        obs, rew, term, trunc, info = env.recv()
        ids = info["env_id"].copy()
        assert len(np.unique(ids)) == batch and np.isfinite(obs).all() and np.isfinite(rew).all()
        seen[ids] += 1
        env.send(rng.integers(0, 3, batch), ids)
    assert seen.min() > 0 and seen.sum() == 3000 * batch


def test_second_action_for_an_env_in_flight_is_refused():
    env = make(num_envs=4, batch_size=2, num_threads=1)  # envs stay in flight until recv, stepped or not
    env.async_reset()
    _, _, _, _, info = env.recv()
    ids = info["env_id"].copy()
    env.send(np.zeros(2, dtype=np.int64), ids)
    with pytest.raises(ValueError, match="already has an action in flight"):
        env.send(np.zeros(1, dtype=np.int64), ids[:1])
    with pytest.raises(ValueError, match="env_id: 9 is not in"):
        env.send(np.zeros(1, dtype=np.int64), np.array([9]))


def test_an_id_given_twice_is_refused_and_nothing_is_queued():
    env = make(num_envs=4, batch_size=2, num_threads=1)
    env.async_reset()
    _, _, _, _, info = env.recv()
    a, b = info["env_id"].tolist()
    with pytest.raises(ValueError, match=f"ids must be unique \\(env {b} is given twice\\)"):
        env.send(np.zeros(3, dtype=np.int64), np.array([b, a, b]))
    env.send(np.zeros(2, dtype=np.int64), np.array([a, b]))  # the refused send left both envs free
    assert sorted(env.recv()[-1]["env_id"].tolist() + env.recv()[-1]["env_id"].tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "kwargs,action,match",
    [
        ({}, np.zeros((2, 2), dtype=np.int64), r"action: expected shape \(4,\) or \(4, 1\), got \(2, 2\)"),
        ({}, np.zeros(4, dtype=np.float32), "action: expected an integer array"),
        ({}, np.array([0, 1, 3, 0]), "action: value 3 at index 2"),
        ({"actions": "continuous"}, np.array([0.0, 2.0, 0.0, 0.0], dtype=np.float32), r"not in \[-1, 1\]"),
        ({"actions": "continuous"}, np.zeros(4, dtype=np.int64), "action: expected a float array"),
    ],
)
def test_bad_actions(kwargs, action, match):
    env = make(num_envs=4, **kwargs)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_bad_options():
    with pytest.raises(ValueError, match="unknown option 'horizn'"):
        make(horizn=10)
    with pytest.raises(ValueError, match="book: .* rows are fewer than a horizon"):
        make(horizon=10**7)
    with pytest.raises(ValueError, match="taker_fee_bps: expected a finite value >= 0"):
        make(taker_fee_bps=-1)
    with pytest.raises(ValueError, match="maker_fee_bps: expected a finite"):
        make(maker_fee_bps=float("nan"))
    with pytest.raises(ValueError, match="order_latency_ns: expected >= 0"):
        make(order_latency_ns=-5)
    with pytest.raises(ValueError, match="cancel_latency_ns: expected >= 0"):
        make(cancel_latency_ns=-1)
    with pytest.raises(ValueError, match="queue_model: expected one of 'power', 'log', 'risk_averse', got 'fifo'"):
        make(queue_model="fifo")
    with pytest.raises(ValueError, match="actions: expected one of 'discrete', 'continuous', 'quote'"):
        make(actions="limit")
    with pytest.raises(ValueError, match=r"quote_min_ticks / quote_levels: expected a quote grid inside the book "
                                         r"depth.*\(10 levels\), got quote_min_ticks 2, quote_levels 9"):
        make(actions="quote", quote_min_ticks=2, quote_levels=9)
    with pytest.raises(ValueError, match="horizon: expected an integer"):
        make(horizon=10.5)
    with pytest.raises(ValueError, match="actions: 'quote' needs the market stream"):
        vec(flat_market(), actions="quote", quote_levels=2)
    with pytest.raises(ValueError, match="trade_size"):
        make(trade_size=1e-9)
    with pytest.raises(ValueError, match="batch_size"):
        make(num_envs=4, batch_size=8)
    m = flat_market()
    m.features[3, 1] = np.nan
    with pytest.raises(ValueError, match="features: non-finite value at row 3, column 1"):
        vec(m)


@pytest.mark.parametrize("options", [{}, {"actions": "continuous"}, {"actions": "quote"},
                                     {"actions": "quote_continuous", "quote_flatten": True}])
def test_gymnasium_env_checker_passes(options):
    from gymnasium.utils.env_checker import check_env

    check_env(TradingEnv(horizon=50, **options), skip_render_check=True)


@pytest.mark.parametrize("options", [{}, {"actions": "quote", "trade_size": 0.001, "max_position": 0.005},
                                     {"actions": "quote_continuous", "quote_flatten": True, "trade_size": 0.001,
                                      "max_position": 0.005}], ids=["discrete", "quote", "quote_continuous"])
def test_pettingzoo_parallel_api(options):
    from pettingzoo.test import parallel_api_test

    env = TradingParallelEnv(num_agents=3, horizon=40, **options)
    parallel_api_test(env, num_cycles=100)
    # The same env after the API test: one episode with sampled actions, every dict keyed by all
    # agents, observations of each agent's space, the market time moving forward, and the episode
    # ending at the horizon (or earlier by termination) for every agent at once.
    agents = env.possible_agents
    assert agents == ["trader_0", "trader_1", "trader_2"]
    obs, infos = env.reset(seed=1)
    assert env.agents == agents and set(obs) == set(infos) == set(agents)
    t = infos[agents[0]]["t"]
    env.action_space(agents[0]).seed(1)
    for step in range(1, 41):
        obs, rewards, terms, truncs, infos = env.step({a: env.action_space(a).sample() for a in env.agents})
        assert set(obs) == set(rewards) == set(terms) == set(truncs) == set(infos) == set(agents)
        for a in agents:
            space = env.observation_space(a)
            assert obs[a].shape == space.shape and space.contains(obs[a])
            assert np.isfinite(rewards[a]) and infos[a]["t"] == infos[agents[0]]["t"] > t
        t = infos[agents[0]]["t"]
        assert len(set(terms.values())) == 1 and len(set(truncs.values())) == 1
        if terms[agents[0]] or truncs[agents[0]]:
            break
        assert env.agents == agents
    assert env.agents == [] and (terms[agents[0]] or (step == 40 and truncs[agents[0]]))


def test_options_accept_numpy_scalars_and_name_the_option_otherwise():
    env = make(num_envs=1, horizon=np.int64(20), trade_size=np.float32(0.01), allow_short=np.bool_(False),
               start_max=np.int32(30))
    assert env.env_config["horizon"] == 20 and env.env_config["allow_short"] is False
    with pytest.raises(ValueError, match="allow_short: expected True or False, got 1"):
        make(allow_short=1)
    with pytest.raises(ValueError, match="taker_fee_bps: expected a number, got '1'"):
        make(taker_fee_bps="1")
    with pytest.raises(ValueError, match="horizon: expected an integer, got True"):
        make(horizon=True)


def test_spec_is_the_one_declaration():
    from trader import _core
    from trader.sim import spec

    names = [o.name for o in spec.options()]
    assert names == [d["name"] for d in _core.env_spec()] and len(set(names)) == len(names)
    assert spec.defaults()["horizon"] == 500
    assert {o.name: o.choices for o in spec.options() if o.choices} == {
        "actions": ("discrete", "continuous", "quote", "quote_continuous"),
        "queue_model": ("power", "log", "risk_averse"), "reward": ("pnl", "inventory_penalty", "dampened", "markout",
                                                                        "markout_penalty"),
        "guard_sides": ("both", "against_move")}
    fields = spec.dataclass_fields()
    assert all(f[2].metadata["help"] for f in fields) and "tick_size" not in [f[0] for f in fields]
    env = make(num_envs=2)
    assert env.env_config == spec.check_config(**dict(env.env_config))
    obs, reward, term, trunc, info = env.step(np.zeros(2, dtype=np.int64))
    outputs = [f.name for f in spec.OUTPUTS]
    assert set(outputs) - {"obs", "reward", "terminated", "truncated"} <= set(info)
    assert outputs[:4] == ["obs", "reward", "terminated", "truncated"]


def test_observation_is_feature_row_plus_account():
    market = load_market()
    env = TradingVectorEnv(market, num_envs=2, seed=0, horizon=50)
    obs, info = env.reset(seed=0)
    D = market.features.shape[1]
    assert obs.shape == (2, D + 3)
    for j in range(2):
        np.testing.assert_array_equal(obs[j, :D], market.features[info["t"][j]])
        assert obs[j, D + 2] == 1.0  # whole episode left


def test_episode_mask_is_terminated_or_truncated_of_each_block():
    env = make(num_envs=8, batch_size=4, num_threads=2, seed=1, horizon=5, initial_cash=30.0)
    env.async_reset()
    rng, ends = np.random.default_rng(0), 0
    for _ in range(60):
        _, _, term, trunc, info = env.recv()
        assert info["_episode"].dtype == bool
        np.testing.assert_array_equal(info["_episode"], term | trunc)
        ends += int(info["_episode"].sum())
        env.send(rng.integers(0, 3, 4), info["env_id"].copy())
    assert ends > 0


def test_actions_as_lists_or_with_a_unit_axis_and_a_fresh_info_dict_per_recv():
    """send hands actions straight to the pool: lists, and (n, 1) for a Box(-1, 1, (1,)) action, step
    like the flat array; each recv's info dict (and its episode dict) is the caller's to change."""
    outs = []
    for action in ([0.5, -0.5], np.array([[0.5], [-0.5]], dtype=np.float32)):
        env = make(num_envs=2, seed=3, horizon=5, actions="continuous")
        env.reset()
        obs, reward, _, _, info = env.step(action)
        outs.append((obs.copy(), reward.copy(), info["position"].copy()))
        info["position"] = None
        info["episode"]["r"] = None
        _, _, _, _, info = env.step(action)
        assert info["position"] is not None and info["episode"]["r"] is not None
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    assert outs[0][2].tolist() != [0.0, 0.0]  # the actions moved the positions


def test_output_buffers_start_on_cache_lines_and_close_frees_the_pool():
    """Each output buffer starts a 64-byte line, so a chunk of 64 rows shares no line with another
    thread's rows (issue 18: false sharing cost the 2-core async pool 10 %). send is the pool's own
    method; close drops it with the pool, whose worker threads exit once no view of its buffers is
    left (the views keep its memory)."""
    import gc
    import os

    def threads() -> int:
        return len(os.listdir("/proc/self/task"))

    gc.collect()  # earlier tests' pools end here, not inside the count below
    before = threads()
    env = make(num_envs=128, batch_size=64, num_threads=4, seed=2)
    assert threads() == before + 3  # the caller is one of the 4
    env.async_reset()
    obs, reward, term, trunc, info = env.recv()  # block 0: each view starts its buffer
    views = {"obs": obs, "reward": reward, "terminated": term, "truncated": trunc}
    views.update((k, v) for k, v in info.items() if isinstance(v, np.ndarray) and k != "market_has_trades")
    assert len(views) > 20
    for name, view in views.items():
        assert view.ctypes.data % 64 == 0, name
    assert env.send.__self__ is env._pool

    class Logged(TradingVectorEnv):  # a subclass's send is its own, and reaches the pool through super()
        def send(self, actions, env_id=None):
            self.sent = len(actions)
            super().send(actions, env_id)

    logged = Logged(load_market(), num_envs=4, batch_size=2)
    logged.async_reset()
    logged.send(np.zeros(2, dtype=np.int64), logged.recv()[-1]["env_id"])
    assert logged.sent == 2 and logged.recv()[0].shape[0] == 2
    logged.close()
    env.send(np.zeros(64, dtype=np.int64), info["env_id"])
    env.close()
    del obs, reward, term, trunc, info, views, view
    gc.collect()
    assert threads() == before and "send" not in vars(env)
