"""Hand-made cases for each limit-order rule (issue 11): partial fill, trade-through, queue models on
cancels ahead vs behind, re-quote keeps priority, post-only rejection, touch cross, two agents at one
price, latency, cancel latency, position limit, rewards. Each case runs the C++ env and the Python
reference side by side (they must agree) and checks the numbers worked out by hand.

Books: tick 1, lot 1 (notional = ticks * lots); rows 100 ns apart; the events of segment c are
stamped c * 100 + dt and applied between rows c and c + 1."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trader.sim import Market, TradingVectorEnv, decode_quote, encode_quote, spec
from trader.sim.reference import ReferenceTradingEnv

KIND = {"bid": 0, "ask": 1, "buy": 2, "sell": 3}
NONE = 3  # with quote_levels=3: the "no quote" index
BIDS = {100: 5, 99: 5, 98: 5, 97: 5, 96: 5}
ASKS = {101: 5, 102: 5, 103: 5, 104: 5, 105: 5}


def make_market(segments: dict, rows: int = 8, bids=BIDS, asks=ASKS, depth: int = 5) -> Market:
    """Rows whose books follow from the events: segments[c] = [(dt ns, kind, price, qty), ...] with
    kind bid/ask (the level's new size) or buy/sell (a trade by that aggressor)."""
    b, a = dict(bids), dict(asks)
    book = np.zeros((rows, depth, 4), dtype=np.int64)
    records, starts = [], []
    for c in range(rows):
        for i, p in enumerate(sorted((p for p in b if b[p] > 0), reverse=True)[:depth]):
            book[c, i, 0:2] = p, b[p]
        for i, p in enumerate(sorted(p for p in a if a[p] > 0)[:depth]):
            book[c, i, 2:4] = p, a[p]
        starts.append(len(records))
        for dt, kind, price, qty in segments.get(c, []):
            prev = 0
            if kind in ("bid", "ask"):
                side = b if kind == "bid" else a
                prev = side.get(price, 0)
                side[price] = qty
            records.append((c * 100 + dt, price, qty, (KIND[kind] << 56) | prev))
    starts.append(len(records))
    feats = np.zeros((rows, 2), dtype=np.float32)
    return Market(book, feats, np.arange(rows, dtype=np.int64) * 100, tick_size=1.0, lot_size=1.0,
                  records=np.array(records, dtype=np.int64).reshape(-1, 4), starts=np.array(starts, dtype=np.int64))


def run(market: Market, steps: list, **options) -> list[dict]:
    """Step the C++ env and the reference through `steps` (one action per step);
    returns the C++ info of every step after checking that the reference agrees."""
    cfg = dict(actions="quote", quote_levels=3, trade_size=3.0, max_position=10.0, taker_fee_bps=0.0,
               horizon=len(steps), start_min=0, start_max=0)
    cfg.update(options)
    env = TradingVectorEnv(market, num_envs=1, seed=0, **cfg)
    r = market.records
    records = list(zip(*(c.tolist() for c in (r[:, 0], r[:, 1], r[:, 2], r[:, 3] >> 56, r[:, 3] & ((1 << 56) - 1)))))
    ref = ReferenceTradingEnv(market.book, market.features, seed=0, ts=market.ts, records=records,
                              starts=market.starts, **env.env_config)
    env.reset(seed=0)
    ref.reset(seed=0)
    K = env.num_agents
    out = []
    for step, a in enumerate(steps):
        act = np.asarray([a], dtype=np.float32 if cfg["actions"] == "quote_continuous" else np.int64)
        obs, reward, _, _, info = env.step(act)
        r_obs, r_reward, _, _, r_info = ref.step(act[0])
        np.testing.assert_array_equal(obs[0], r_obs, err_msg=f"step {step}")
        np.testing.assert_allclose(np.reshape(reward[0], K), np.reshape(r_reward, K), rtol=1e-6)
        got = {k: (v[0].copy() if isinstance(v, np.ndarray) else v) for k, v in info.items() if k != "episode"}
        for f in spec.OUTPUTS:
            if f.per_agent and f.name not in ("obs", "reward"):
                np.testing.assert_allclose(np.reshape(got[f.name], K), np.reshape(r_info[f.name], K), rtol=1e-12,
                                           err_msg=f"step {step}: {f.name}")
        got["reward"] = reward[0].copy()
        out.append(got)
    return out


def q(bid: int = NONE, ask: int = NONE, flatten: bool = False) -> int:
    return encode_quote(bid, ask, flatten, quote_levels=3)


def test_encode_decode_quote():
    for bid in range(4):
        for ask in range(4):
            for flat in (False, True):
                assert decode_quote(encode_quote(bid, ask, flat, quote_levels=3), quote_levels=3) == (bid, ask, flat)
    assert encode_quote(1, 2, quote_levels=3) == 1 * 4 + 2
    with pytest.raises(ValueError, match="bid_idx: expected 0 to 3"):
        encode_quote(4, 0, quote_levels=3)


def test_partial_fills_from_trades_at_the_price():
    # Bid 3 lots at 100 behind 5: a sell of 6 leaves front -1 (fill 1); then a sell of 2 fills 2.
    m = make_market({0: [(10, "sell", 100, 6), (20, "bid", 100, 1)], 1: [(10, "sell", 100, 2)]})
    s0, s1, s2 = run(m, [q(0), q(0), q(0)])
    assert (s0["maker_filled"], s0["position"], s0["quoted"], s0["bid_price"]) == (1, 1, 3, 100)
    assert s0["bid_queue"] == -1.0  # front -1 after the fill (hftbacktest keeps it: the next trade caps)
    assert (s1["maker_filled"], s1["position"], s1["quoted"]) == (2, 3, 0)  # same price: kept, not re-sent
    assert s1["bid_price"] == 0 and s2["quoted"] == 3  # filled: step 2 sends a new one
    assert s0["taker_filled"] == 0 and s0["fees"] == 0.0


def test_trade_through_fills_in_full_at_the_order_price():
    m = make_market({0: [(10, "sell", 99, 2)]})
    (s0,) = run(m, [q(0)], maker_fee_bps=-2.0)
    assert s0["maker_filled"] == 3 and s0["position"] == 3
    assert s0["maker_fees"] == pytest.approx(-3 * 100 * 2e-4) and s0["fees"] == s0["maker_fees"]
    mid_next = 0.5 * (100 + 101)
    assert s0["equity"] == pytest.approx(100_000 - 300 + 3 * 100 * 2e-4 + 3 * mid_next)


def expected_front(model: str, front: float, prev: float, new: float, n: float = 2.0) -> float:
    """hftbacktest ProbQueueModel::depth / RiskAdverseQueueModel::depth for one level decrease."""
    if model == "risk_averse":
        return min(front, new)
    chg, back = prev - new, prev - front
    f = (lambda x: x ** n) if model == "power" else (lambda x: math.log(1 + x))
    p = f(back) / (f(back) + f(front))
    return min(front - (1 - p) * chg + min(back - p * chg, 0.0), new)


@pytest.mark.parametrize("model", ["power", "log", "risk_averse"])
@pytest.mark.parametrize("new", [6, 1], ids=["cancel_mostly_behind", "cancel_beyond_the_back"])
def test_cancels_ahead_vs_behind_per_queue_model(model, new):
    # Bid joins behind 2 lots; 8 more join behind it (front stays 2, back 8); then the level shrinks
    # to `new` with no trade: the models split the decrease between ahead and behind.
    m = make_market({0: [(10, "bid", 100, 2), (20, "bid", 100, 10)], 1: [(10, "bid", 100, new)]},
                    bids={100: 2, 99: 5, 98: 5, 97: 5, 96: 5})
    s0, s1 = run(m, [q(0), q(0)], queue_model=model)
    assert s0["bid_queue"] == 2.0
    assert s1["bid_queue"] == pytest.approx(expected_front(model, 2.0, 10.0, float(new)))
    if model == "risk_averse":
        assert s1["bid_queue"] == min(2, new)  # only trades move it forward


def test_requote_at_the_same_price_keeps_priority_a_new_price_goes_to_the_back():
    seg = {0: [(10, "bid", 100, 9)], 1: [(10, "sell", 100, 3)], 3: [(10, "bid", 100, 7)]}
    m = make_market(seg)
    kept = run(m, [q(0), q(0), q(0), q(0)])
    assert [s["bid_queue"] for s in kept[:2]] == [5.0, 2.0]  # joined behind 5; a sell of 3 moved it up
    assert kept[2]["quoted"] == 0 and kept[2]["bid_queue"] == 2.0
    moved = run(m, [q(0), q(0), q(1), q(0)])  # away to 99 and back to 100: a new order at the back
    assert moved[2]["bid_price"] == 99 and moved[2]["quoted"] == 3
    assert moved[3]["bid_price"] == 100 and moved[3]["quoted"] == 3
    assert moved[3]["bid_queue"] == 7.0  # the level's size when it arrived (after the change to 7)


def test_post_only_order_that_would_cross_is_rejected():
    # quote_min_ticks -1: one tick inside. Spread 1: the bid lands on the best ask and is rejected.
    m = make_market({0: [(10, "bid", 98, 6)]})
    (s0,) = run(m, [q(0)], quote_min_ticks=-1)
    assert s0["rejected"] == 1 and s0["quoted"] == 3 and s0["maker_filled"] == 0 and s0["bid_price"] == 0


def test_opposite_touch_reaching_the_order_fills_it():
    # Spread 2 (100 / 102): a bid one tick inside at 101 rests; an ask level at 101 appears: filled.
    m = make_market({0: [(10, "bid", 98, 6), (20, "ask", 101, 4)]}, asks={102: 5, 103: 5, 104: 5, 105: 5, 106: 5})
    (s0,) = run(m, [q(0)], quote_min_ticks=-1)
    assert s0["rejected"] == 0 and s0["maker_filled"] == 3 and s0["position"] == 3


def test_two_agents_at_one_price_share_the_trade_in_arrival_order():
    winners = set()
    for seed in range(12):
        m = make_market({0: [(10, "sell", 100, 7)]}, bids={100: 2, 99: 5, 98: 5, 97: 5, 96: 5})
        env_seed_runs = run_two(m, seed)
        filled = env_seed_runs["maker_filled"]
        # both behind 2 lots: the first in the queue gets min(7 - 2, 3) = 3, the second 7 - 2 - 3 = 2
        assert sorted(filled.tolist()) == [2, 3]
        winners.add(int(np.argmax(filled)))
    assert winners == {0, 1}  # ties between agents go by the seeded random priority


def run_two(m: Market, seed: int) -> dict:
    env = TradingVectorEnv(m, num_envs=1, seed=seed, actions="quote", quote_levels=3, num_agents=2, trade_size=3.0,
                           max_position=10.0, horizon=1, start_min=0, start_max=0)
    env.reset(seed=seed)
    _, _, _, _, info = env.step(np.array([[q(0), q(0)]]))
    return {k: v[0] for k, v in info.items() if k != "episode"}


def test_order_latency_sets_the_queue_at_arrival():
    # The level grows from 5 to 8 at t=10; a sell of 9 at t=60. Latency 50: the order arrives after
    # the growth (front 8, fills 1); latency 0: it arrives before (front 5, fills 3... capped by 3).
    m = make_market({0: [(10, "bid", 100, 8), (60, "sell", 100, 9)]})
    (late,) = run(m, [q(0)], order_latency_ns=50)
    (now,) = run(m, [q(0)])
    assert late["maker_filled"] == 1 and now["maker_filled"] == 3


def test_a_cancel_in_flight_can_still_fill():
    m = make_market({1: [(20, "sell", 99, 1)]})
    slow = run(m, [q(0), q(NONE)], cancel_latency_ns=50)
    fast = run(m, [q(0), q(NONE)])
    assert slow[1]["maker_filled"] == 3 and slow[1]["bid_price"] == 0  # not the current quote any more
    assert fast[1]["maker_filled"] == 0


def test_quote_size_is_clipped_by_the_position_limit():
    m = make_market({0: [(10, "sell", 99, 1)]})
    s0, s1 = run(m, [q(0), q(1)], max_position=4.0)
    assert s0["position"] == 3 and s1["quoted"] == 1  # room: 4 - 3


def test_flatten_sends_a_market_order():
    m = make_market({0: [(10, "sell", 99, 1)]})
    s0, s1 = run(m, [q(0), q(flatten=True)], quote_flatten=True, taker_fee_bps=10.0)
    assert s0["position"] == 3 and s1["taker_filled"] == 3 and s1["position"] == 0
    assert s1["taker_fees"] == pytest.approx(3 * 100 * 1e-3)


def test_quote_exit_touch_quotes_a_position_out_at_the_touch():
    """quote_exit_touch (issue 13, session 27): while the agent holds a position, the side that reduces it rests at
    the grid's first price (quote_min_ticks from the touch) whatever the action asks for it; the other side is the
    action's; flat, the action alone decides. Without the option the action decides both sides."""
    m = make_market({0: [(10, "sell", 99, 1)], 1: [(10, "buy", 102, 1)]})  # the bid at 100 fills, then an ask at 101
    s0, s1, s2 = run(m, [q(0), q(), q()], quote_exit_touch=True)
    assert s0["position"] == 3
    assert (s1["bid_price"], s1["quoted"], s1["maker_filled"], s1["position"]) == (0, 3, 3, 0)  # sold at 101
    assert (s2["bid_price"], s2["ask_price"], s2["quoted"]) == (0, 0, 0)  # flat: no quote asked, none sent
    long_ = run(make_market({0: [(10, "sell", 99, 1)]}), [q(0), q(bid=2, ask=2)], quote_exit_touch=True)[1]
    assert (long_["bid_price"], long_["ask_price"]) == (98, 101)  # the ask asked 2 ticks out, sent at the touch
    short = run(make_market({0: [(10, "buy", 102, 1)]}), [q(ask=0), q(bid=NONE, ask=1)], quote_exit_touch=True)[1]
    assert (short["position"], short["bid_price"], short["ask_price"]) == (-3, 100, 102)
    plain = run(make_market({0: [(10, "sell", 99, 1)]}), [q(0), q(bid=2, ask=2)])[1]
    assert (plain["bid_price"], plain["ask_price"]) == (98, 103)
    with pytest.raises(ValueError, match="quote_exit_touch"):
        TradingVectorEnv(m, num_envs=1, actions="discrete", trade_size=3.0, max_position=10.0, quote_exit_touch=True)


def test_inventory_penalty_and_dampened_rewards():
    # Long 3 lots from step 0 (mid 100.5). Step 1: the best bid 100 empties (mid 100: a loss) or the
    # best ask 101 empties (mid 101: a gain).
    for change, mid2 in (("bid", 100.0), ("ask", 101.0)):
        m = make_market({0: [(10, "sell", 99, 1)], 1: [(10, change, 100 if change == "bid" else 101, 0)]})
        pnl = run(m, [q(0), q()])
        pen = run(m, [q(0), q()], reward="inventory_penalty", inventory_penalty_bps=50.0)
        damp = run(m, [q(0), q()], reward="dampened", dampen_eta=0.5)
        dpnl = 3 * (mid2 - 100.5)
        assert pnl[1]["reward"] == pytest.approx(dpnl)
        # phi in bps of the max-position notional (10 lots at mid) times (q / q_max)^2
        assert pen[1]["reward"] == pytest.approx(dpnl - 50e-4 * 10 * mid2 * (3 / 10) ** 2)
        # Spooner et al. 2018: r = dPnL - max(0, eta * q * dmid): gains from inventory are dampened
        assert damp[1]["reward"] == pytest.approx(dpnl - max(0.0, 0.5 * 3 * (mid2 - 100.5)))


def test_markout_reward_values_each_fill_at_the_later_mid():
    # Step 0 buys 3 lots at 100 (a sell trades through 99; mid 100.5 at row 1); the best ask 101 empties
    # in segment 1 (mid 101 at row 2), the best bid 100 in segment 2 (mid 100.5 from row 3 on). Rows are
    # 100 ns apart.
    m = make_market({0: [(10, "sell", 99, 1)], 1: [(10, "ask", 101, 0)], 2: [(10, "bid", 100, 0)]})
    steps = [q(0), q(), q(), q()]
    pnl = [s["reward"] for s in run(m, steps)]
    assert pnl == pytest.approx([1.5, 1.5, -1.5, 0.0])  # the inventory's moves
    # 100 ns after row 1: the fill at row 2's mid 101, net of the maker fee (10 bps of 300); no fill later
    later = run(m, steps, reward="markout", markout_ns=100, maker_fee_bps=10.0)
    assert [s["reward"] for s in later] == pytest.approx([3 * (101 - 100) - 0.3, 0.0, 0.0, 0.0])
    assert later[0]["position"] == 3 and later[0]["maker_fees"] == pytest.approx(0.3)
    # Longer than the episode (4 rows): its last row's mid (row 4: 100.5), never a row after it
    clipped = run(m, steps, reward="markout", markout_ns=10_000)
    assert [s["reward"] for s in clipped] == pytest.approx([1.5, 0.0, 0.0, 0.0])
    # markout_penalty: the same, minus inventory_penalty's charge on the 3 lots held after each step, at
    # the step's mark (rows 1-4: 100.5, 101, 100.5, 100.5), 50 bps of 10 lots' notional times (3 / 10)^2
    pen = run(m, steps, reward="markout_penalty", markout_ns=100, maker_fee_bps=10.0, inventory_penalty_bps=50.0)
    charge = [50e-4 * 10 * mid * (3 / 10) ** 2 for mid in (100.5, 101.0, 100.5, 100.5)]
    assert [s["reward"] for s in pen] == pytest.approx([2.7 - charge[0], -charge[1], -charge[2], -charge[3]])


def test_markout_detrend_takes_the_datasets_drift_out_of_each_fill():
    # The case above with the best ask 102 emptied in segment 3: the mid goes from 100.5 (row 0, start_min) to
    # 101 (row 4, the last row the episode reaches), 0.5 ticks in 400 ns: a drift of 0.00125 ticks per ns.
    m = make_market({0: [(10, "sell", 99, 1)], 1: [(10, "ask", 101, 0)], 2: [(10, "bid", 100, 0)],
                     3: [(10, "ask", 102, 0)]})
    steps = [q(0), q(), q(), q()]
    plain = run(m, steps, reward="markout", markout_ns=100, maker_fee_bps=10.0)
    assert [s["reward"] for s in plain] == pytest.approx([3 * (101 - 100) - 0.3, 0.0, 0.0, 0.0])
    # the 3 lots bought at 100, valued at row 2's mid (100 ns after row 1) less 100 ns of the drift, net of the fee
    detrended = run(m, steps, reward="markout", markout_ns=100, maker_fee_bps=10.0, markout_detrend=True)
    assert [s["reward"] for s in detrended] == pytest.approx([3 * (101 - 0.00125 * 100 - 100) - 0.3, 0.0, 0.0, 0.0])


def test_quote_continuous_maps_to_the_same_grid():
    m = make_market({0: [(10, "sell", 99, 1)]})
    (s0,) = run(m, [[-1.0, 1.0]], actions="quote_continuous")  # bid index 0, ask: the top bucket = none
    assert s0["bid_price"] == 0 and s0["maker_filled"] == 3 and s0["ask_price"] == 0
    (s1,) = run(m, [[-0.6, -0.4]], actions="quote_continuous")  # floor(0.2 * 4) = 0: 100; floor(0.3 * 4) = 1
    assert s1["maker_filled"] == 3 and s1["ask_price"] == 102
    (s2,) = run(m, [[0.0, 0.0]], actions="quote_continuous")  # floor(0.5 * 4) = 2: 98, below the trade at 99
    assert s2["maker_filled"] == 0 and (s2["bid_price"], s2["ask_price"]) == (98, 103)


def test_snapshot_only_data_says_so():
    m = make_market({0: [(10, "bid", 100, 4)]})
    env = TradingVectorEnv(m, num_envs=1, actions="quote", quote_levels=3, trade_size=1.0, max_position=2.0,
                           horizon=2)
    _, info = env.reset(seed=0)
    assert not info["market_has_trades"].any()
    with_trades = make_market({0: [(10, "sell", 100, 4)]})
    env = TradingVectorEnv(with_trades, num_envs=1, actions="quote", quote_levels=3, trade_size=1.0,
                           max_position=2.0, horizon=2)
    _, info = env.reset(seed=0)
    assert info["market_has_trades"].all()


def test_bad_quote_actions():
    m = make_market({})
    env = TradingVectorEnv(m, num_envs=1, actions="quote", quote_levels=3, trade_size=1.0, max_position=2.0, horizon=2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action: value 16 at index 0 is not a quote action in \[0, 16\)"):
        env.step(np.array([16]))
    env = TradingVectorEnv(m, num_envs=1, actions="quote_continuous", quote_levels=3, trade_size=1.0,
                           max_position=2.0, horizon=2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action: expected shape \(1, 2\)"):
        env.step(np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"not in \[-1, 1\]"):
        env.step(np.array([[0.0, 1.5]], dtype=np.float32))


@pytest.mark.parametrize("queue_model", ["power", "risk_averse"])
def test_the_fill_model_treats_both_sides_alike_on_real_data(queue_model):
    """The bundled Binance recording and its mirror image, quoted with mirrored actions (bid offset <-> ask
    offset): every step's fills, position and quotes are the same with the sides swapped (fees follow the
    reflected prices). A rule that favoured one side (a tie, a rounding, a crossing test) would show here;
    Bitstamp's agents' short side (benchmarks/README.md, session 13) is the data's, not the simulator's."""
    from trader.sim.env import load_market

    original, mirror = load_market(), load_market(mirror=True)
    L, steps = 3, len(original.book) - 3  # every row of the 3-minute recording
    cfg = dict(actions="quote", quote_levels=L, trade_size=0.002, max_position=0.01, maker_fee_bps=-0.5,
               taker_fee_bps=1.0, order_latency_ns=20_000_000, cancel_latency_ns=10_000_000, queue_model=queue_model,
               horizon=steps, start_min=0, start_max=0)
    rng = np.random.default_rng(0)
    # mostly the touch, where fills happen, with the other offsets and no quote mixed in
    grid = rng.choice(L + 1, size=(steps, 2), p=[0.7, 0.1, 0.1, 0.1])
    runs = []
    for market, sides in ((original, grid), (mirror, grid[:, ::-1])):
        env = TradingVectorEnv(market, num_envs=1, seed=0, **cfg)
        env.reset(seed=0)
        rows = []
        for b, a in sides:
            *_, info = env.step(np.array([encode_quote(int(b), int(a), quote_levels=L)]))
            rows.append([info[k][0] for k in ("position", "maker_filled", "taker_filled", "quoted", "rejected")])
        runs.append(np.array(rows, dtype=np.float64))
    a, b = runs
    bought = np.diff(a[:, 0], prepend=0.0)
    assert (bought > 0).sum() > 20 and (bought < 0).sum() > 20  # both sides filled, many times
    np.testing.assert_array_equal(b[:, 0], -a[:, 0])  # position
    np.testing.assert_array_equal(b[:, 1:5], a[:, 1:5])  # lots filled as maker and as taker (none), quoted, rejected
