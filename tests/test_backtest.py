"""Backtests: same execution model as the env, held-out rows only, baselines, metrics, report files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trader.backtest.baselines import buy_and_hold_policy, flat_policy, imbalance_policy, market_making_baselines
from trader.backtest.engine import compute_metrics, env_config_from_run, held_out_rows, period_utc, run_backtest
from trader.backtest.report import write_report
from trader.backtest.suite import BaselineOptions, run_baselines
from trader.data.dataset import load_dataset
from trader.sim import Market, load_market


def rising_market(rows=300):
    book = np.zeros((rows, 2, 4), dtype=np.int64)
    for r in range(rows):
        book[r, 0] = (1000 + r, 50, 1001 + r, 50)
        book[r, 1] = (999 + r, 50, 1002 + r, 50)
    return Market(book, np.zeros((rows, 3), np.float32), np.arange(rows, dtype=np.int64) * 10**8, 1.0, 1.0)


CFG = dict(trade_size=5.0, max_position=10.0, taker_fee_bps=10.0, initial_cash=100_000.0)


def test_buy_and_hold_beats_flat_on_a_rising_market_and_metrics_add_up():
    m = rising_market()
    start, end = held_out_rows(len(m.book), 0.5, 10)
    assert start == 160
    flat = run_backtest(m, flat_policy(False), "flat", start=start, end=end, **CFG)
    bh = run_backtest(m, buy_and_hold_policy(False), "buy_and_hold", start=start, end=end, **CFG)
    fm = compute_metrics(flat, 0.1)
    bm = compute_metrics(bh, 0.1)
    assert fm["pnl_quote"] == 0 and fm["trades"] == 0 and fm["fees_paid"] == 0 and fm["sharpe_period"] == 0
    assert bh.position[-1] == 10 and bm["trades"] == 2  # two market orders of 5 lots
    # fees: 10 bps of the two fills (at the ask of rows start and start + 1)
    assert bm["fees_paid"] == pytest.approx(((1001 + start) * 5 + (1002 + start) * 5) * 1e-3)
    assert bm["pnl_quote"] > 0 and bm["sharpe_period"] > 0 and bm["max_drawdown_quote"] <= 0
    # the limit of 10 lots at the period's mean mid is the capital the strategy may put at risk
    mean_mid = (m.book[start:end + 1, 0, 0] + m.book[start:end + 1, 0, 2]).mean() / 2
    assert bh.max_notional == pytest.approx(10 * mean_mid)
    assert bm["pnl_bps_of_max_notional"] == pytest.approx(bm["pnl_quote"] / (10 * mean_mid) * 1e4)
    steps = np.diff(bh.equity)
    assert bm["sharpe_period"] == pytest.approx(steps.mean() / steps.std() * np.sqrt(len(steps)))
    assert bm["period_s"] == pytest.approx(0.1 * (end - start - 1))
    assert bm["steps"] == end - start - 1 and len(bh.actions) == end - start - 1
    # the split: each fill bought 5 lots at the ask, half a tick below the mid the env marks at next (row r's mid
    # is 1000.5 + r), so the fills earned 2 x 2.5 before fees; the rest is the position riding the rise
    assert bm["pnl_fills_quote"] == pytest.approx(5.0 - bm["fees_paid"])
    assert bm["pnl_inventory_quote"] == pytest.approx(bm["pnl_quote"] - bm["pnl_fills_quote"])
    assert bm["pnl_inventory_quote"] == pytest.approx(5 + 10 * (end - start - 3))
    assert fm["pnl_fills_quote"] == 0 and fm["pnl_inventory_quote"] == 0
    # markouts: 10 s is 100 rows of 0.1 s on, where the mid is 100 ticks higher for both fills; 60 s is past the
    # end, so both fills are marked at the last row and the markout holds the whole PnL
    bps = 1e4 / bh.max_notional
    assert bm["fills_marked_10s_bps_of_max_notional"] == pytest.approx((5.0 - bm["fees_paid"] + 10 * 100) * bps)
    assert bm["fills_marked_60s_bps_of_max_notional"] == pytest.approx(bm["pnl_bps_of_max_notional"])


def test_policy_sees_only_rows_up_to_now():
    m = rising_market()
    seen = []

    def spy(obs, info):
        seen.append(int(info["t"][0]))
        return np.zeros(1, dtype=np.int64)

    start, end = held_out_rows(len(m.book), 0.7, 5)
    run_backtest(m, spy, "spy", start=start, end=end, **CFG)
    assert seen[0] == start and seen == list(range(start, start + len(seen)))
    assert max(seen) < end


def test_report_on_sample_with_baselines(tmp_path):
    m = load_market()
    start, end = held_out_rows(len(m.book), 0.7, 100)
    results = []
    for name, pol in [("flat", flat_policy(False)), ("buy_and_hold", buy_and_hold_policy(False)),
                      ("imbalance", imbalance_policy(m, False))]:
        r = run_backtest(m, pol, name, start=start, end=end, trade_size=0.01, max_position=0.05, taker_fee_bps=1.0)
        compute_metrics(r, 0.1)
        results.append(r)
    ctx = {"data": "sample", "start": start, "end": end, "steps": end - start - 1, "interval_s": 0.1,
           "taker_fee_bps": 1.0, "symbol": m.symbol, "period_utc": period_utc(m, start, end)}
    write_report(tmp_path, results, ctx)
    table = json.loads((tmp_path / "backtest.json").read_text())["results"]
    assert set(table) == {"flat", "buy_and_hold", "imbalance"}
    assert table["imbalance"]["trades"] > 0
    assert (tmp_path / "equity.png").stat().st_size > 10_000
    md = (tmp_path / "backtest.md").read_text()
    assert "| imbalance |" in md and "not annualized" in md and "annualized)" not in md
    assert f"{period_utc(m, start, end)[0]} to" in md and "taker 1.0 bps" in md


def test_held_out_needs_rows():
    with pytest.raises(ValueError, match="no held-out rows"):
        held_out_rows(100, 0.99, 10)


def test_quote_baselines_in_the_quote_env_on_the_sample(tmp_path):
    ds = load_dataset(None)
    m = load_market(ds)
    start, end = held_out_rows(len(m.book), 0.7, 0)
    cfg = dict(actions="quote", trade_size=0.001, max_position=0.005, maker_fee_bps=-0.5, taker_fee_bps=4.0)
    quoters, notes = market_making_baselines(m, cfg, end, 0, 0.01, m, ds.events, start)
    results = []
    for name, pol in quoters:
        r = run_backtest(m, pol, name, start=start, end=end, **cfg)
        metrics = compute_metrics(r, 0.1)
        results.append(r)
        lot = m.lot_size
        assert r.maker_lots > 0 and r.taker_lots == 0 and metrics["taker_fees"] == 0
        assert metrics["maker_volume_base"] == pytest.approx(r.maker_lots * lot)
        # a -0.5 bps maker fee is a rebate: fees are negative, about 0.5 bps of the maker notional
        assert metrics["maker_fees"] == pytest.approx(-0.5e-4 * metrics["maker_volume_quote"], rel=1e-3)
        assert metrics["pnl_quote"] == pytest.approx(r.equity[-1] - r.equity[0])
        bps = metrics["pnl_quote"] / metrics["maker_volume_quote"] * 1e4
        assert metrics["pnl_bps_of_notional"] == pytest.approx(bps)
        assert 0 < metrics["fill_ratio"] <= 1 and metrics["quoted_base"] >= metrics["maker_volume_base"]
        inv = np.abs(r.position)
        assert metrics["max_abs_inventory_base"] == pytest.approx(inv.max() * lot)
        assert r.max_position_lots == round(0.005 / lot) and inv.max() <= r.max_position_lots
        assert metrics["time_at_limit_pct"] == pytest.approx(100 * np.mean(inv == r.max_position_lots))
    # under a position cap of one trade size the quoters stop there, and the time at the limit is read at the cap
    capped = run_backtest(m, quoters[0][1], "capped", start=start, end=end, **cfg, position_cap_trades=1)
    inv = np.abs(capped.position)
    assert capped.max_position_lots == round(0.001 / m.lot_size) and 0 < inv.max() <= capped.max_position_lots
    at_limit = compute_metrics(capped, 0.1)["time_at_limit_pct"]
    assert at_limit > 0 and at_limit == pytest.approx(100 * np.mean(inv == capped.max_position_lots))
    write_report(tmp_path, results, {"data": "sample", "start": start, "end": end, "steps": end - start - 1,
                                     "interval_s": 0.1, "initial_cash": 100_000.0, "symbol": m.symbol,
                                     "actions": "quote", "maker_fee_bps": -0.5, "taker_fee_bps": 4.0,
                                     "baseline_notes": notes})
    md = (tmp_path / "backtest.md").read_text()
    assert "| fixed_spread |" in md and "| avellaneda_stoikov |" in md
    assert "PnL (USDT)" in md and "maker volume (BTC)" in md and "fill ratio (filled / quoted)" in md
    assert f"fitted on rows 0..{start - 1} only" in md


def test_baselines_of_a_run_that_quotes_positions_out_at_the_touch():
    """quote_exit_touch (issue 13, session 27) is a quote-action rule: the market-order baselines of such a run trade
    as without it, the market makers under it (a fixed spread 2 ticks out sheds its position at the touch)."""
    ds = load_dataset(None)
    m = load_market(ds)
    start, end = held_out_rows(len(m.book), 0.7, 0)
    cfg = dict(actions="quote", trade_size=0.001, max_position=0.005, position_cap_trades=1)
    options = BaselineOptions(quote_offset_ticks=2)
    plain, _ = run_baselines(m, ds.events, cfg, start, end, options)
    exits, _ = run_baselines(m, ds.events, dict(cfg, quote_exit_touch=True), start, end, options)
    assert [r.name for r in exits] == ["buy_and_hold", "flat", "order_imbalance", "fixed_spread", "avellaneda_stoikov"]
    for a, b in zip(plain[:3], exits[:3]):
        assert np.array_equal(a.equity, b.equity) and np.array_equal(a.position, b.position)
    assert exits[3].maker_lots > 0 and not np.array_equal(plain[3].position, exits[3].position)


def test_env_config_from_a_run_translates_old_names_and_takes_overrides():
    old = {"fee_bps": 2.0, "continuous": True, "latency_steps": 0, "trade_size": 0.01, "max_position": 0.1,
           "horizon": 500, "num_agents": 2, "total_timesteps": 4096, "data": None}
    cfg = env_config_from_run(old, maker_fee_bps=-1.0, taker_fee_bps=None)
    assert cfg == {"taker_fee_bps": 2.0, "actions": "continuous", "trade_size": 0.01, "max_position": 0.1,
                   "maker_fee_bps": -1.0}
    new = {"actions": "quote", "taker_fee_bps": 5.0, "maker_fee_bps": 2.0, "order_latency_ns": 10**6}
    assert env_config_from_run(new, order_latency_ns=0) == dict(new, order_latency_ns=0)
    with pytest.raises(ValueError, match="latency_steps"):
        env_config_from_run({"latency_steps": 3})
    # --order-latency-ms of a run before the spec flags set both entry and cancel latency
    assert env_config_from_run({"order_latency_ms": 1.5, "actions": None}) == {
        "order_latency_ns": 1_500_000, "cancel_latency_ns": 1_500_000}
