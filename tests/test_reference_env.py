"""The pure-Python ReferenceTradingEnv and the C++ EnvPool agree step for step, on real recordings
(a spot and a USD-M BTCUSDT raw feed from ../shared/data, converted into a dataset), for every action
type, one and two agents, zero and non-zero latency and each queue model. The reference replays the
events with its own Python code (trader.sim.reference_stream); its stream also equals the C++ one."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from conftest import shared  # noqa: E402
from trader import _core  # noqa: E402
from trader.data import load_dataset  # noqa: E402
from trader.data.binance import convert_sequence, group_sequences  # noqa: E402
from trader.data.dataset import write_dataset  # noqa: E402
from trader.sim import spec  # noqa: E402
from trader.sim.env import TradingVectorEnv, load_market  # noqa: E402
from trader.sim.reference import ReferenceTradingEnv, below, llround, splitmix64  # noqa: E402
from trader.sim.reference_guard import NO_LONG, NO_SHORT  # noqa: E402
from trader.sim.reference_stream import market_stream  # noqa: E402

SEED = 1234
NUM_ENVS = 2
STEPS = 300
INTERVAL_MS = 100.0
RECORDINGS = {"spot": "spot/btcusdt_20240808.gz", "usdm": "usdm/btcusdt_20240718.gz"}


@pytest.fixture(scope="module", params=list(RECORDINGS))
def recording(request, tmp_path_factory):
    """(market, python records, python starts) of ~2 minutes of a real BTCUSDT feed."""
    path = shared("binance_hftbacktest_raw_feed", RECORDINGS[request.param])
    events, meta = convert_sequence(group_sequences([path])[0], duration_s=150)
    folder = write_dataset(tmp_path_factory.mktemp(request.param), events, meta)
    ds = load_dataset(folder)
    market = load_market(ds, interval_ms=INTERVAL_MS)
    records, starts = market_stream(ds.events, int(INTERVAL_MS * 1e6))
    first = len(starts) - 1 - len(market.book)
    return request.param, market, records, starts[first:]


def test_python_stream_equals_cpp_stream(recording):
    _, market, records, starts = recording
    packed = np.array([(t, p, q, (k << 56) | prev) for t, p, q, k, prev in records], dtype=np.int64)
    np.testing.assert_array_equal(packed, market.records)
    np.testing.assert_array_equal(np.asarray(starts), market.starts)
    kinds = market.records[:, 3] >> 56
    assert (kinds == 2).any() and (kinds == 3).any() and (kinds <= 1).sum() > 10 * len(market.book)


def test_stream_rebuilds_every_row(recording):
    """Every record's previous size is the book's, and the rows equal row c + the records of segment
    c: applying all records from the first event rebuilds each sampled row's top levels."""
    _, market, _, _ = recording
    rec, starts, book = market.records, market.starts, market.book
    kinds, prevs = rec[:, 3] >> 56, rec[:, 3] & ((1 << 56) - 1)
    sides = ({}, {})
    L = book.shape[1]
    i = 0
    for c in range(len(book)):
        for i in range(i, starts[c]):
            if kinds[i] <= 1:
                side = sides[kinds[i]]
                assert side.get(int(rec[i, 1]), 0) == prevs[i], f"record {i}: previous size"
                if rec[i, 2]:
                    side[int(rec[i, 1])] = int(rec[i, 2])
                else:
                    side.pop(int(rec[i, 1]), None)
        i = starts[c]
        bids = sorted(sides[0].items(), reverse=True)[:L]
        asks = sorted(sides[1].items())[:L]
        assert [tuple(x) for x in book[c, :len(bids), 0:2].tolist()] == bids, f"row {c} bids"
        assert [tuple(x) for x in book[c, :len(asks), 2:4].tolist()] == asks, f"row {c} asks"


CONFIGS = {
    "discrete": dict(),
    "discrete_latency_fees": dict(order_latency_ns=150_000_000, taker_fee_bps=5.0, trade_size=0.5, max_position=2.0),
    "continuous_long_only": dict(actions="continuous", allow_short=False, max_position=0.3, taker_fee_bps=2.0),
    "discrete_3_agents": dict(num_agents=3, trade_size=0.4, max_position=1.0, order_latency_ns=50_000_000),
    "quote_power": dict(actions="quote", quote_levels=3, trade_size=0.002, max_position=0.01),
    "quote_log_latency": dict(actions="quote", queue_model="log", quote_flatten=True, quote_min_ticks=-1,
                              quote_levels=4, order_latency_ns=30_000_000, cancel_latency_ns=10_000_000,
                              maker_fee_bps=-0.2, trade_size=0.003, max_position=0.01),
    "quote_risk_averse_2_agents": dict(actions="quote", queue_model="risk_averse", num_agents=2, quote_levels=2,
                                       reward="inventory_penalty", trade_size=0.002, max_position=0.006),
    "quote_continuous_power3": dict(actions="quote_continuous", queue_power=3.0, quote_flatten=True, quote_levels=3,
                                    reward="dampened", dampen_eta=0.3, trade_size=0.002, max_position=0.01),
    "quote_markout_2_agents": dict(actions="quote", num_agents=2, quote_levels=3, reward="markout",
                                   markout_ns=2_000_000_000, maker_fee_bps=0.5, trade_size=0.002, max_position=0.01),
    "quote_markout_penalty": dict(actions="quote", quote_levels=3, reward="markout_penalty", markout_ns=3_000_000_000,
                                  inventory_penalty_bps=0.7, trade_size=0.002, max_position=0.008),
    "quote_markout_hurdle": dict(actions="quote", quote_levels=3, reward="markout", markout_hurdle_bps=2.0,
                                 markout_ns=3_000_000_000, trade_size=0.002, max_position=0.01),
    "quote_markout_hurdle_spreads": dict(actions="quote", quote_levels=3, reward="markout_penalty", markout_hurdle_bps=0.5,
                                         markout_hurdle_spreads=0.25, markout_ns=2_000_000_000, trade_size=0.002,
                                         max_position=0.01),
    "quote_markout_loss_weight": dict(actions="quote", quote_levels=3, reward="markout", markout_loss_weight=2.25,
                                      markout_ns=2_000_000_000, trade_size=0.002, max_position=0.01),
    "quote_markout_detrend": dict(actions="quote", quote_levels=3, reward="markout", markout_detrend=True,
                                  markout_ns=5_000_000_000, trade_size=0.002, max_position=0.008),
    # the inventory's later moves in the markout reward (session 32), beside the loss weight, and beside the penalty
    # with the fills' later mid detrended (the inventory's is not)
    "quote_markout_inventory_2_agents": dict(actions="quote", num_agents=2, quote_levels=3, reward="markout",
                                             markout_inventory_weight=0.6, markout_loss_weight=2.25,
                                             markout_ns=2_000_000_000, trade_size=0.002, max_position=0.01),
    "quote_markout_inventory_detrend": dict(actions="quote", quote_levels=3, reward="markout_penalty",
                                            markout_inventory_weight=1.0, markout_detrend=True,
                                            markout_ns=5_000_000_000, trade_size=0.002, max_position=0.008),
    "discrete_markout_latency": dict(reward="markout", markout_ns=700_000_000, order_latency_ns=150_000_000,
                                     taker_fee_bps=2.0, trade_size=0.5, max_position=2.0),
    # the move guard over 5 s windows, tripping at 2 sigmas, so that ~2 minutes of data trip it often
    "quote_guard_2_agents": dict(actions="quote", num_agents=2, quote_levels=3, guard_window_ns=5_000_000_000,
                                 guard_sigmas=2.0, guard_halflife_ns=20_000_000_000, guard_hold_ns=3_000_000_000,
                                 order_latency_ns=20_000_000, trade_size=0.002, max_position=0.006),
    "continuous_guard": dict(actions="continuous", guard_window_ns=5_000_000_000, guard_sigmas=2.0,
                             guard_halflife_ns=20_000_000_000, guard_hold_ns=3_000_000_000, max_position=0.3),
    # the guard barring only the position against the move (session 31)
    "quote_guard_against_move": dict(actions="quote", quote_levels=3, guard_window_ns=5_000_000_000, guard_sigmas=2.0,
                                     guard_halflife_ns=20_000_000_000, guard_hold_ns=3_000_000_000,
                                     guard_sides="against_move", order_latency_ns=20_000_000, trade_size=0.002,
                                     max_position=0.006),
    "discrete_guard_against_move": dict(guard_window_ns=5_000_000_000, guard_sigmas=2.0, guard_halflife_ns=20_000_000_000,
                                        guard_hold_ns=3_000_000_000, guard_sides="against_move", trade_size=0.1,
                                        max_position=0.3),
    # a position cap of 2 trade sizes under a limit of 5 (observations still scale by the limit)
    "quote_cap_2": dict(actions="quote", quote_levels=3, position_cap_trades=2, trade_size=0.002, max_position=0.01),
    "discrete_cap_1_continuous": dict(actions="continuous", position_cap_trades=1, trade_size=0.1, max_position=0.3),
    # positions closed 0.1 s (one row) and 1.5 s after they open (issue 13, session 26), beside the quotes or instead
    # of the market orders
    "quote_max_hold_latency": dict(actions="quote", quote_levels=3, quote_min_ticks=-1, max_hold_ns=100_000_000,
                                   order_latency_ns=20_000_000,
                                   position_cap_trades=1, trade_size=0.002, max_position=0.01),
    "discrete_max_hold_2_agents": dict(num_agents=2, max_hold_ns=1_500_000_000, trade_size=0.4, max_position=1.0),
    # positions quoted out at the touch under a cap of one trade size (issue 13, session 27)
    "quote_exit_touch_cap_1_latency": dict(actions="quote", quote_levels=3, quote_exit_touch=True, position_cap_trades=1,
                                           order_latency_ns=20_000_000, cancel_latency_ns=40_000_000,
                                           trade_size=0.002, max_position=0.01),
    "quote_continuous_exit_touch_2_agents": dict(actions="quote_continuous", num_agents=2, quote_levels=3,
                                                 quote_exit_touch=True, trade_size=0.002, max_position=0.006),
    "quote_continuous_log_2_agents": dict(actions="quote_continuous", queue_model="log", num_agents=2,
                                          quote_levels=3, order_latency_ns=20_000_000, cancel_latency_ns=40_000_000,
                                          trade_size=0.001, max_position=0.004),
}


def _actions(space, rng, n):
    if hasattr(space, "n"):
        return rng.integers(0, space.n, size=n)
    if hasattr(space, "nvec"):
        return rng.integers(0, space.nvec, size=(n,) + space.shape)
    return rng.uniform(-1, 1, size=(n,) + space.shape).astype(np.float32)


def _check(where, got, j, obs, reward, terminated, truncated, info, K):
    np.testing.assert_array_equal(got["obs"][j], np.asarray(obs).reshape(got["obs"][j].shape), err_msg=where)
    np.testing.assert_allclose(np.reshape(got["reward"][j], K), np.reshape(reward, K), rtol=1e-5, atol=1e-6,
                               err_msg=where)
    assert bool(got["terminated"][j]) == terminated and bool(got["truncated"][j]) == truncated, where
    assert got["t"][j] == info["t"] and got["episode_length"][j] == info["episode_length"], where
    assert bool(got["guarded"][j]) == info["guarded"], where
    for f in spec.OUTPUTS:
        if not f.per_agent or f.name in ("obs", "reward"):
            continue
        a, b = np.reshape(got[f.name][j], K), np.reshape(info[f.name], K)
        if f.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-6, err_msg=f"{where}: {f.name}")
        else:
            np.testing.assert_array_equal(a, b, err_msg=f"{where}: {f.name}")


@pytest.mark.parametrize("name", list(CONFIGS))
def test_reference_matches_cpp(recording, name):
    which, market, records, starts = recording
    cfg = dict(CONFIGS[name], horizon=120)
    env = TradingVectorEnv(market, num_envs=NUM_ENVS, num_threads=1, seed=SEED, **cfg)
    full = dict(env.env_config)
    refs = [ReferenceTradingEnv(market.book, market.features, seed=SEED, env_id=i, ts=market.ts, records=records,
                                starts=starts, **full) for i in range(NUM_ENVS)]
    K = full["num_agents"]
    assert refs[0].action_space == env.single_action_space
    assert refs[0].observation_space == env.single_observation_space
    names = [f.name for f in spec.OUTPUTS]
    env._pool.seed(SEED)
    env._pool.send_reset()
    got = {n: np.array(v, copy=True) for n, v in zip(names, env._pool.recv())}
    outs = [r.reset(seed=SEED) for r in refs]
    for j, (obs, info) in enumerate(outs):
        _check(f"{which}/{name}: reset env {j}", got, j, obs, np.zeros(K), False, False, info, K)
    rng = np.random.default_rng(7)
    fills = guarded = tripped = losses = closed = held = one_sided = 0
    for step in range(STEPS):
        acts = _actions(env.single_action_space, rng, NUM_ENVS)
        env._pool.send(acts)
        got = {n: np.array(v, copy=True) for n, v in zip(names, env._pool.recv())}
        for j, ref in enumerate(refs):
            if ref.needs_reset:  # the C++ env autoresets and ignores the action
                obs, info = ref.reset()
                _check(f"{which}/{name}: step {step} env {j} (autoreset)", got, j, obs, np.zeros(K), False, False,
                       info, K)
                continue
            closed += sum(ref._hold_expired(a) for a in ref.agents)
            held += sum(a.position != 0 for a in ref.agents)
            one_sided += ref._guard_bars() in (NO_LONG, NO_SHORT)
            obs, reward, terminated, truncated, info = ref.step(acts[j])
            _check(f"{which}/{name}: step {step} env {j}", got, j, obs, reward, terminated, truncated, info, K)
            fills += int(np.sum(np.abs(info["maker_filled"])) + np.sum(np.abs(info["taker_filled"])))
            # up after it is armed (six windows in): a trip, not the start-up
            tripped += info["guarded"] and market.ts[info["t"]] >= market.ts[0] + 6 * full["guard_window_ns"]
            guarded += info["guarded"]
            losses += int(np.sum(np.asarray(reward) < 0))
    assert fills > 0, "the trajectories never traded: the test would not see the fill rules"
    if full["markout_loss_weight"] != 1:  # some fills lost (no hurdle or penalty there), so the weight was applied
        assert losses > 0
    if full["max_hold_ns"]:  # some positions were held that long and closed
        assert closed > 0
    if full["quote_exit_touch"] or full["markout_inventory_weight"]:  # positions were held: the rule acted
        assert held > 0
    if full["guard_window_ns"]:  # the guard was both up and down along the trajectories
        assert 0 < tripped <= guarded < STEPS * NUM_ENVS, (tripped, guarded)
    # against_move: some steps barred one side only (else the test would not see that rule); both: none did
    assert (one_sided > 0) == (full["guard_sides"] == "against_move"), one_sided


def test_markout_inventory_weight_moves_the_markout_reward_to_the_pnl(recording):
    """markout_inventory_weight (session 32): the same trajectories (the reward does not move the market) with weight
    0, 0.4 and 1; at 1 every (truncated) episode's rewards sum to its PnL (fees included), and in between the return
    is that fraction of the way from the markout reward's to the PnL. Real data, random quotes, two agents."""
    which, market, _, _ = recording
    cfg = dict(actions="quote", num_agents=2, quote_levels=3, reward="markout", markout_ns=2_000_000_000,
               maker_fee_bps=0.3, trade_size=0.002, max_position=0.01, horizon=150)
    returns = {}
    for w in (0.0, 0.4, 1.0):
        env = TradingVectorEnv(market, num_envs=NUM_ENVS, num_threads=1, seed=SEED, markout_inventory_weight=w, **cfg)
        env.reset(seed=SEED)
        rng = np.random.default_rng(3)
        ends = []
        for _ in range(3 * cfg["horizon"]):
            _, _, terminated, truncated, info = env.step(_actions(env.single_action_space, rng, NUM_ENVS))
            assert not terminated.any()
            for j in np.flatnonzero(truncated):
                ends.append((info["episode_return"][j].copy(), info["equity"][j] - env.env_config["initial_cash"]))
        returns[w] = np.array(ends)
    markout, pnl = returns[0.0][:, 0], returns[1.0][:, 1]
    assert len(pnl) >= 2 * NUM_ENVS and np.abs(pnl).max() > 0, f"{which}: no episode traded"
    np.testing.assert_array_equal(returns[0.0][:, 1], pnl)  # the same trajectories
    np.testing.assert_allclose(returns[1.0][:, 0], pnl, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(returns[0.4][:, 0], 0.6 * markout + 0.4 * pnl, rtol=1e-4, atol=1e-4)
    assert np.abs(pnl - markout).max() > 1e-3  # the inventory moved after the fills' markouts: the test sees it
    with pytest.raises(ValueError, match="markout_inventory_weight"):
        TradingVectorEnv(market, num_envs=1, markout_inventory_weight=0.5)  # the pnl reward has no markouts
    with pytest.raises(ValueError, match="markout_inventory_weight"):
        TradingVectorEnv(market, num_envs=1, reward="markout", markout_inventory_weight=1.5)


def test_unknown_and_invalid_options_raise(recording):
    _, market, records, starts = recording
    with pytest.raises(ValueError, match="unknown option 'horizonn'"):
        ReferenceTradingEnv(market.book, market.features, horizonn=10)
    with pytest.raises(ValueError, match="ruin_fraction"):
        ReferenceTradingEnv(market.book, market.features, ruin_fraction=1.0)
    with pytest.raises(ValueError, match="needs the market stream"):
        ReferenceTradingEnv(market.book, market.features, actions="quote")
    with pytest.raises(ValueError, match="reward: markout needs the row times"):
        ReferenceTradingEnv(market.book, market.features, reward="markout")
    with pytest.raises(ValueError, match="reward: markout needs the row times"):
        _core.EnvPool(market.book, market.features, 1, 1, 1, 0, reward="markout")
    with pytest.raises(ValueError, match="reward: markout_penalty needs the row times"):
        _core.EnvPool(market.book, market.features, 1, 1, 1, 0, reward="markout_penalty")
    with pytest.raises(ValueError, match="reward: markout_penalty needs the row times"):
        ReferenceTradingEnv(market.book, market.features, reward="markout_penalty")
    with pytest.raises(ValueError, match="markout_detrend: expected reward markout or markout_penalty"):
        _core.EnvPool(market.book, market.features, 1, 1, 1, 0, ts=market.ts, markout_detrend=True)
    with pytest.raises(ValueError, match="markout_ns"):
        _core.EnvPool(market.book, market.features, 1, 1, 1, 0, ts=market.ts, reward="markout", markout_ns=-1)
    env = ReferenceTradingEnv(market.book, market.features, horizon=10, actions="quote", quote_levels=2,
                              records=records, starts=starts)
    with pytest.raises(RuntimeError):
        env.step(0)  # not reset yet
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"value 9 at index 0 is not in \[0, 9\)"):
        env.step(9)


def test_rng_helpers():
    # splitmix64 reference values (seed 0), Lemire's multiply-shift and C llround.
    s, r = splitmix64(0)
    assert r == 0xE220A8397B1DCDAF
    s, r = splitmix64(s)
    assert r == 0x6E789E6AA1B965F4
    assert below(2**64 - 1, 10) == 9 and below(0, 10) == 0
    assert [llround(x) for x in (2.5, -2.5, 0.49999999999999994, -0.5, 1.4999, -1.5)] == [3, -3, 0, -1, 1, -2]
