"""Backtest baselines: the Avellaneda-Stoikov fits (on real sample rows and hand-made cases), that the
fits never read held-out rows, and the quoters' actions on hand-made books."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from trader.backtest.baselines import (
    AvellanedaStoikovFit,
    IntensityFit,
    QuoteGrid,
    arrival_depths,
    avellaneda_stoikov_policy,
    avellaneda_stoikov_quotes,
    fit_avellaneda_stoikov,
    fit_intensity,
    fixed_spread_policy,
    mid_volatility,
)
from trader.data.dataset import load_dataset
from trader.data.events import EVENT_DTYPE, EventFlag, EventKind
from trader.sim import Market, decode_quote, load_market


@pytest.fixture(scope="module")
def sample():
    ds = load_dataset(None)
    return load_market(ds), ds.events


def test_sigma_is_the_std_of_mid_changes_per_step_on_real_rows(sample):
    m, _ = sample
    n = 1000
    mids = [(int(m.book[r, 0, 0]) + int(m.book[r, 0, 2])) / 2 for r in range(n)]
    changes = [b - a for a, b in zip(mids, mids[1:])]
    mean = sum(changes) / len(changes)
    direct = math.sqrt(sum((c - mean) ** 2 for c in changes) / len(changes))
    assert direct > 0
    assert mid_volatility(m, n) == pytest.approx(direct, rel=1e-12)


def test_kappa_and_a_recover_a_known_exponential_from_hand_made_depths():
    a, kappa, steps = 0.3, 0.4, 200_000
    deltas = np.arange(0.5, 12.5, 1.0)
    beyond = np.round(steps * a * np.exp(-kappa * deltas)).astype(int)  # steps reaching beyond each delta
    depths = np.full(steps, -np.inf)
    at = 0
    for j in range(len(deltas)):
        n_here = beyond[j] - (beyond[j + 1] if j + 1 < len(beyond) else 0)
        depths[at : at + n_here] = deltas[j] + 0.5  # between delta_j and delta_j+1
        at += n_here
    fit = fit_intensity(depths, min_steps=10)
    assert fit.kappa == pytest.approx(kappa, rel=2e-3)
    assert fit.a == pytest.approx(a, rel=2e-3)
    assert fit.deltas[0] == 0.5 and np.all(np.diff(fit.rates) < 0)


def test_fit_intensity_refuses_flat_or_empty_tails():
    with pytest.raises(ValueError, match="need at least 10"):
        fit_intensity(np.array([1.0, 2.0, -np.inf]))
    with pytest.raises(ValueError, match="beyond 1.5 ticks"):
        fit_intensity(np.full(100, 0.6))


def _events(rows):
    ev = np.zeros(len(rows), EVENT_DTYPE)
    for i, (kind, flags, ts, price, qty) in enumerate(rows):
        ev[i]["kind"], ev[i]["flags"], ev[i]["exch_ts"], ev[i]["local_ts"] = kind, flags, ts, ts
        ev[i]["price"], ev[i]["qty"] = price, qty
    return ev


def test_arrival_depths_on_hand_made_trades():
    book = np.zeros((4, 1, 4), np.int64)
    book[:, 0] = [(100, 5, 102, 5), (101, 5, 103, 5), (100, 5, 101, 5), (99, 5, 100, 5)]  # mids 101, 102, 100.5, 99.5
    m = Market(book, np.zeros((4, 1), np.float32), np.array([0, 100, 200, 300], np.int64), 0.1, 0.001)
    buy, sell = int(EventFlag.BID), int(EventFlag.ASK)
    ev = _events([
        (EventKind.TRADE, buy, 0, 150, 1),  # at row 0's time: before step 0, left out
        (EventKind.TRADE, buy, 50, 104, 1),  # step 0: 104 - 101 = 3
        (EventKind.TRADE, sell, 100, 99, 1),  # step 0 (ts == ts[1]): 101 - 99 = 2
        (EventKind.TRADE, sell, 150, 100, 1),  # step 1: 102 - 100 = 2
        (EventKind.TRADE, buy, 250, 200, 1),  # step 2: after the rows given (train_rows = 3), never read
    ])
    depths = arrival_depths(m, ev, train_rows=3)
    assert depths.tolist() == [3.0, 2.0]
    assert arrival_depths(m, ev, train_rows=4).tolist() == [3.0, 2.0, 200 - 100.5]
    # A recording without exchange time: its rows and trades are on the local clock
    local = ev.copy()
    local["local_ts"], local["exch_ts"] = ev["exch_ts"], 0
    assert arrival_depths(dataclasses.replace(m, clock="local"), local, train_rows=4).tolist() == [3.0, 2.0, 99.5]


def test_the_fit_never_reads_held_out_rows(sample):
    m, ev = sample
    train = int(0.7 * len(m.book))
    fit = fit_avellaneda_stoikov(m, ev, train)
    # Rewrite everything after the last training row: later book rows and trades stamped after it.
    book = m.book.copy()
    book[train:, :, [0, 2]] += 10_000
    ev2 = ev.copy()
    later = ev2["exch_ts"] > m.ts[train - 1]
    ev2["price"][later & (ev2["kind"] == EventKind.TRADE)] += 5_000
    m2 = Market(book, m.features, m.ts, m.tick_size, m.lot_size, m.symbol)
    fit2 = fit_avellaneda_stoikov(m2, ev2, train)
    assert (fit2.sigma, fit2.intensity.kappa, fit2.intensity.a) == (fit.sigma, fit.intensity.kappa, fit.intensity.a)
    # ... while making the trades of the last ten training steps buys far above the mid moves it.
    ev3 = ev.copy()
    last_steps = (ev3["exch_ts"] > m.ts[train - 11]) & (ev3["exch_ts"] <= m.ts[train - 1])
    last_trades = last_steps & (ev3["kind"] == EventKind.TRADE)
    assert last_trades.any()
    ev3["price"][last_trades] += 5_000
    ev3["flags"][last_trades] = int(EventFlag.BID)
    assert fit_avellaneda_stoikov(m, ev3, train).intensity.kappa != fit.intensity.kappa
    assert fit.sigma > 0 and fit.intensity.kappa > 0 and fit.steps_with_trades > 0


def test_avellaneda_stoikov_quotes_follow_the_paper():
    gamma, sigma, kappa, left = 0.1, 2.0, 0.5, 10
    bid, ask = avellaneda_stoikov_quotes(1000.0, 0.0, left, sigma, kappa, gamma)
    spread = gamma * sigma**2 * left + (2 / gamma) * math.log(1 + gamma / kappa)
    assert ask - bid == pytest.approx(spread) and (bid + ask) / 2 == pytest.approx(1000.0)
    bid_long, ask_long = avellaneda_stoikov_quotes(1000.0, 2.0, left, sigma, kappa, gamma)
    assert (bid_long + ask_long) / 2 == pytest.approx(1000.0 - 2 * gamma * sigma**2 * left)  # r = s - q g s^2 (T-t)
    assert ask_long - bid_long == pytest.approx(spread)
    end_bid, end_ask = avellaneda_stoikov_quotes(1000.0, 2.0, 0, sigma, kappa, gamma)
    assert (end_bid + end_ask) / 2 == 1000.0  # no inventory skew at the terminal time
    with pytest.raises(ValueError, match="gamma"):
        avellaneda_stoikov_quotes(1000.0, 0.0, left, sigma, kappa, 0.0)


def _book(bid: int, ask: int) -> Market:
    book = np.zeros((3, 1, 4), np.int64)
    book[:, 0] = (bid, 10, ask, 10)
    return Market(book, np.zeros((3, 1), np.float32), np.arange(3, dtype=np.int64) * 10**8, 0.1, 0.001)


def _decide(policy, position: int) -> tuple[int, int]:
    action = policy(None, {"t": np.array([0]), "position": np.array([position])})
    bid_idx, ask_idx, flatten = decode_quote(int(action[0]), quote_levels=3)
    assert not flatten and action.dtype == np.int64 and action.shape == (1,)
    return bid_idx, ask_idx


def test_fixed_spread_quoter_on_hand_made_books():
    grid = QuoteGrid(min_ticks=-1, levels=3)  # offsets -1, 0, 1; index 3: no quote
    at_touch = fixed_spread_policy(_book(1000, 1001), grid, offset_ticks=0, trade_lots=2, max_lots=4)
    assert _decide(at_touch, 0) == (1, 1)
    assert _decide(at_touch, 2) == (1, 1)  # a fill would reach +4, the limit: still quoted
    assert _decide(at_touch, 3) == (3, 1)  # a bid fill would pass +4: no bid
    assert _decide(at_touch, -3) == (1, 3)
    inside_narrow = fixed_spread_policy(_book(1000, 1001), grid, offset_ticks=-1, trade_lots=2, max_lots=4)
    assert _decide(inside_narrow, 0) == (1, 1)  # one tick inside a one-tick spread would cross: at the touch
    inside_wide = fixed_spread_policy(_book(1000, 1003), grid, offset_ticks=-1, trade_lots=2, max_lots=4)
    assert _decide(inside_wide, 0) == (0, 0)  # 1001 and 1002
    deep = fixed_spread_policy(_book(1000, 1001), grid, offset_ticks=5, trade_lots=2, max_lots=4)
    assert _decide(deep, 0) == (2, 2)  # deeper than the grid: its deepest level


def test_avellaneda_stoikov_quoter_on_a_hand_made_book():
    fit = AvellanedaStoikovFit(1.0, IntensityFit(1.0, 0.5, np.array([0.5, 1.5]), np.array([0.8, 0.5])), 10, 5)
    m = _book(1000, 1002)  # mid 1001, spread 2 ticks
    grid = QuoteGrid(min_ticks=-1, levels=3)
    # gamma 0.1, T - t = 10 steps: risk term 0.1 * 1 * 10 = 1; spread 1 + 20 ln 1.2 = 4.646 ticks
    policy = avellaneda_stoikov_policy(m, grid, fit, gamma=0.1, trade_lots=1, max_lots=3, end_row=10)
    assert _decide(policy, 0) == (2, 2)  # 998.68 / 1003.32: 1.32 ticks behind each touch -> offset 1
    # long 2 quote sizes: r = 1001 - 2 * 1 = 999; bid 996.68 (offset 3.3: the grid's deepest, 1),
    # ask 1001.32 (0.68 inside the ask: offset -1, index 0)
    assert _decide(policy, 2) == (2, 0)
    assert _decide(policy, 3) == (3, 0)  # at the limit: no bid
    tight = QuoteGrid(min_ticks=0, levels=3)
    policy = avellaneda_stoikov_policy(m, tight, fit, gamma=0.1, trade_lots=1, max_lots=3, end_row=10)
    assert _decide(policy, 2) == (2, 0)  # a grid without inside offsets: the ask at the touch
    assert _decide(policy, -2) == (0, 2)
