"""The move guard (issue 13, cpp/env/move_guard.h): which rows it is up on, and that while it is up the
env (hence the live kernel, which is the env) accepts only orders that reduce a position. The C++ env
and the Python reference agree on every trajectory of tests/test_reference_env.py, the guard's configs
included; here are the rule's known cases and its effect on real recordings."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared
from test_quotes import make_market, q, run
from trader.sim import TradingVectorEnv, load_market
from trader.sim.reference import ReferenceTradingEnv
from trader.sim.reference_guard import NO_LONG, NO_SHORT, REDUCE_ONLY, move_guard

S = 1_000_000_000  # ns


def test_known_cases_of_the_rule():
    # rows 1 s apart; a 10 s window, armed 60 s in; mid 10,000 ticks with one tick of noise, then +10 ticks
    ts = [i * S for i in range(200)]
    mid = [10_000.0 + (i % 2) for i in range(100)] + [10_010.0 + (i % 2) for i in range(100, 200)]
    up = move_guard(ts, mid, 10 * S, 5.0, 3600 * S, 20 * S)
    assert all(up[:60])  # no window yet (row 0), then not armed: nothing adds risk
    assert not any(up[60:100])  # one-tick noise is within 5 sigmas (the one-tick floor)
    assert up[100]  # a 10-tick move in a window: ~10 times the floor
    assert all(up[100:121]) and not any(up[130:])  # held 20 s after the last trip, a row inside the window
    # the floor: a flat mid (variance 0) trips on a two-tick move, not on a one-tick move, at 1.5 sigmas
    flat = [10_000.0] * 80
    assert not any(move_guard(ts[:81], flat + [10_001.0], 10 * S, 1.5, 3600 * S, 0)[60:])
    assert move_guard(ts[:81], flat + [10_002.0], 10 * S, 1.5, 3600 * S, 0)[80]
    # the hold: up exactly while t - trip <= hold
    up = move_guard(ts[:100], flat + [10_002.0] * 20, 10 * S, 1.5, 3600 * S, 3 * S)
    assert [r for r in range(60, 100) if up[r]] == list(range(80, 93))  # trips at rows 80..89 (in the window)
    # an exponentially weighted variance: after an hour of large moves the same move no longer trips
    noisy = [10_000.0 + 8 * (i % 3) for i in range(4000)]  # moves of 8 and 16 ticks over every 10 s
    up = move_guard([i * S for i in range(4001)], noisy + [10_010.0], 10 * S, 5.0, 600 * S, 0)
    assert not up[4000] and not any(up[60:4000])


def test_gaps_and_the_window_row():
    """The window's start row is the last row at least a window back, across gaps in the rows."""
    ts = [0, 1 * S, 2 * S, 30 * S, 31 * S, 90 * S, 91 * S]
    mid = [1000.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0, 1003.0]
    # window 10 s, armed at 60 s: row 6 (91 s) compares with row 4 (31 s), the last one <= 81 s
    up = move_guard(ts, mid, 10 * S, 1.5, 3600 * S, 0)
    assert up == [REDUCE_ONLY] * 5 + [0, REDUCE_ONLY]


def test_against_move_bars_only_the_position_the_move_hurts():
    """guard_sides "against_move": a fall bars longs, a rise shorts, moves both ways within the hold both; before
    it is armed both, as "both" would. Rows 1 s apart, a 10 s window, armed 60 s in, one tick of noise."""
    ts = [i * S for i in range(200)]
    noise = [10_000.0 + (i % 2) for i in range(80)]
    fall = noise + [9_990.0] * 120  # -10 ticks at row 80
    up = move_guard(ts, fall, 10 * S, 5.0, 3600 * S, 20 * S, "against_move")
    assert set(up[:60]) == {REDUCE_ONLY} and not any(up[60:80])
    assert set(up[80:104]) == {NO_LONG} and not any(up[104:])  # trips at rows 80-83 (then the variance has grown)
    both = move_guard(ts, fall, 10 * S, 5.0, 3600 * S, 20 * S)  # the same trips, reduce only
    assert [bool(b) for b in both] == [bool(u) for u in up] and set(both[80:104]) == {REDUCE_ONLY}
    rise = noise + [10_010.0] * 120
    up = move_guard(ts, rise, 10 * S, 5.0, 3600 * S, 20 * S, "against_move")
    both = move_guard(ts, rise, 10 * S, 5.0, 3600 * S, 20 * S)
    assert up[80] == NO_SHORT and up[60:] == [NO_SHORT if b else 0 for b in both[60:]]
    whipsaw = noise + [9_990.0] * 20 + [10_010.0] * 100  # down at row 80, up at row 100: both within the hold
    up = move_guard(ts, whipsaw, 10 * S, 5.0, 3600 * S, 20 * S, "against_move")
    assert set(up[80:100]) == {NO_LONG} and set(up[100:104]) == {REDUCE_ONLY} and set(up[104:121]) == {NO_SHORT}


def test_a_trip_leaves_only_the_side_that_reduces():
    """Hand-made book (tests/test_quotes.py's rows, 100 ns apart): a 100 ns window (one row), armed at row 6,
    held 200 ns; at 0.5 sigmas a one-tick move of the mid trips it (the one-tick floor)."""
    segments = {6: [(10, "sell", 100, 8)],  # fills our 3-lot bid at 100 behind the 5 ahead
                7: [(10, "ask", 101, 0), (20, "bid", 101, 5)]}  # row 8: bid 101, ask 102: the mid +1 tick
    m = make_market(segments, rows=14)
    both = q(0, 0)
    steps = [both] * 6 + [q(0), q(), both, both, both, both]
    infos = run(m, steps, guard_window_ns=100, guard_sigmas=0.5, guard_halflife_ns=1000, guard_hold_ns=200)
    # rows 0-5: not armed, nothing quoted though both sides were asked for
    assert [s["quoted"] for s in infos[:6]] == [0] * 6 and infos[5]["bid_price"] == infos[5]["ask_price"] == 0
    assert (infos[6]["quoted"], infos[6]["maker_filled"], infos[6]["position"]) == (3, 3, 3)  # row 6: down
    assert [bool(s["guarded"]) for s in infos] == [True] * 5 + [False, False, True, True, True, False, False]
    s8 = infos[8]  # row 8, up, long 3: the bid would add (not quoted), the ask reduces (3 lots at the touch)
    assert (s8["bid_price"], s8["ask_price"], s8["quoted"]) == (0, 102, 3)
    s11 = infos[11]  # row 11: down again, the bid comes back (the ask at 102 is kept)
    assert (s11["bid_price"], s11["ask_price"], s11["quoted"]) == (101, 102, 3)


def test_against_move_keeps_the_side_with_the_move():
    """The same book and actions as above with guard_sides "against_move": the trip is a rise (the mid +1 tick at
    row 8), so only shorts are barred. Long 3 at row 8, the bid that adds to the long (with the move) is quoted
    beside the ask that reduces it; the reduce-only guard quotes the ask alone."""
    segments = {6: [(10, "sell", 100, 8)], 7: [(10, "ask", 101, 0), (20, "bid", 101, 5)]}
    m = make_market(segments, rows=14)
    both = q(0, 0)
    steps = [both] * 6 + [q(0), q(), both, both, both, both]
    guard = dict(guard_window_ns=100, guard_sigmas=0.5, guard_halflife_ns=1000, guard_hold_ns=200)
    infos = run(m, steps, guard_sides="against_move", **guard)
    assert [s["quoted"] for s in infos[:6]] == [0] * 6  # not armed: both sides barred, as "both" bars them
    assert [bool(s["guarded"]) for s in infos] == [True] * 5 + [False, False, True, True, True, False, False]
    s8 = infos[8]  # long 3 after a rise: the bid adds to the long (with the move) and is quoted
    assert (s8["position"], s8["bid_price"], s8["ask_price"]) == (3, 101, 102)
    reduce_only = run(m, steps, **guard)[8]
    assert (reduce_only["bid_price"], reduce_only["ask_price"]) == (0, 102)


def test_without_ts_or_with_bad_values_it_says_which_option():
    m = make_market({}, rows=8)
    with pytest.raises(ValueError, match="guard_sigmas: expected a finite value > 0"):
        TradingVectorEnv(m, num_envs=1, actions="quote", quote_levels=3, trade_size=1.0, max_position=3.0,
                         horizon=4, guard_window_ns=100, guard_sigmas=0.0)
    with pytest.raises(ValueError, match="guard_halflife_ns: expected > 0 ns"):
        TradingVectorEnv(m, num_envs=1, horizon=4, trade_size=1.0, max_position=3.0, guard_window_ns=100,
                         guard_halflife_ns=0)
    # data shorter than the six windows the guard needs to arm (8 rows 100 ns apart: 700 ns): both envs refuse it
    span = r"guard_window_ns: the move guard arms after six windows of rows \(1.2e-06 s\), but the data spans 7e-07 s"
    with pytest.raises(ValueError, match=span):
        TradingVectorEnv(m, num_envs=1, horizon=4, trade_size=1.0, max_position=3.0, guard_window_ns=200)
    with pytest.raises(ValueError, match=span):
        ReferenceTradingEnv(m.book, m.features, ts=m.ts, horizon=4, trade_size=1.0, max_position=3.0,
                            tick_size=1.0, lot_size=1.0, guard_window_ns=200)
    with pytest.raises(ValueError, match="guard_sides / guard_window_ns: expected a window > 0 for 'against_move'"):
        TradingVectorEnv(m, num_envs=1, horizon=4, trade_size=1.0, max_position=3.0, guard_sides="against_move")
    with pytest.raises(ValueError, match=r"guard_sides: expected one of 'both', 'against_move', got 'against'"):
        TradingVectorEnv(m, num_envs=1, horizon=4, trade_size=1.0, max_position=3.0, guard_window_ns=100,
                         guard_sides="against")
    bare = load_market(None, interval_ms=100.0)
    bare = type(bare)(bare.book, bare.features, None, tick_size=bare.tick_size, lot_size=bare.lot_size)
    with pytest.raises(ValueError, match=r"guard_window_ns: > 0 needs the row times \(ts\)"):
        TradingVectorEnv(bare, num_envs=1, horizon=10, guard_window_ns=S)


@pytest.mark.parametrize("actions", ["quote", "discrete", "continuous"])
def test_on_a_real_recording_guarded_steps_never_add_to_a_position(actions, usdm_dataset):
    """Random actions on two minutes of a real BTCUSDT feed, the guard tripping often (5 s windows, 2 sigmas):
    on every step taken while it was up, |position| does not grow and does not flip; the same actions
    without the guard do add to positions on such steps (so the check can fail). The C++ flags equal the
    reference rule's on every row."""
    market = load_market(usdm_dataset, interval_ms=100.0)
    guard = dict(guard_window_ns=5 * S, guard_sigmas=2.0, guard_halflife_ns=20 * S, guard_hold_ns=3 * S)
    sizes = dict(trade_size=0.002, max_position=0.006) if actions == "quote" else dict(trade_size=0.01,
                                                                                       max_position=0.03)
    mid = (0.5 * (market.book[:, 0, 0] + market.book[:, 0, 2])).tolist()
    flags = [bool(f) for f in move_guard(market.ts.tolist(), mid, guard["guard_window_ns"], 2.0, 20 * S, 3 * S)]
    added = {}
    for on in (True, False):
        env = TradingVectorEnv(market, num_envs=4, seed=5, actions=actions, horizon=200, quote_levels=3,
                               order_latency_ns=0, **sizes, **(guard if on else {}))
        rng = np.random.default_rng(11)
        _, info = env.reset(seed=5)
        pos, row = info["position"].copy(), info["t"].copy()
        adds = steps_up = 0
        for _ in range(600):
            acts = (rng.integers(0, env.single_action_space.n, 4) if hasattr(env.single_action_space, "n")
                    else rng.uniform(-1, 1, (4, 1)).astype(np.float32))
            _, _, term, trunc, info = env.step(acts)
            for j in range(4):
                if flags[row[j]] and info["episode_length"][j] > 0:  # a step taken on a guarded row
                    steps_up += 1
                    p0, p1 = int(pos[j]), int(info["position"][j])
                    adds += abs(p1) > abs(p0) or p0 * p1 < 0
                if on and info["episode_length"][j] > 0:
                    assert bool(info["guarded"][j]) == flags[info["t"][j]]
            pos, row = info["position"].copy(), info["t"].copy()
        added[on] = adds
        assert steps_up > 100, steps_up
    assert added[True] == 0 and added[False] > 0, added


@pytest.fixture(scope="module")
def usdm_dataset(tmp_path_factory):
    """Two and a half minutes of the USD-M BTCUSDT raw feed as a dataset folder."""
    from trader.data.binance import convert_sequence, group_sequences
    from trader.data.dataset import write_dataset

    path = shared("binance_hftbacktest_raw_feed", "usdm", "btcusdt_20240718.gz")
    events, meta = convert_sequence(group_sequences([path])[0], duration_s=150)
    return write_dataset(tmp_path_factory.mktemp("usdm"), events, meta)
