"""The live SQLite ledger: WAL and durable commits, client ids, fill de-duplication, positions that
follow the training env's average-cost rule, kill records; risk limits and the policy's actions."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from decimal import Decimal

import numpy as np
import pytest
from trader.live.ledger import Fill, Ledger, LedgerError
from trader.live.policy import load_policy
from trader.live.risk import RiskLimits, RiskManager

D = Decimal


def fill(tid, cid, side, price, amount, fee="0", cur="USDT"):
    return Fill(str(tid), cid, "1", "BTC/USDT", side, D(price), D(amount), D(fee), cur)


def test_wal_client_ids_and_durable_pending(tmp_path):
    path = tmp_path / "s.sqlite"
    st = Ledger(path)
    assert st.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    a = st.new_order("BTC/USDT", "buy", "market", D("0.01"), reason="test")
    b = st.new_order("BTC/USDT", "sell", "market", D("0.01"))
    assert a.status == "pending" and a.client_id != b.client_id and len(a.client_id) <= 36
    assert a.client_id.replace("-", "").isalnum()
    st.mark_attempt(a.client_id)
    # another process sees the pending order and its attempt at once: committed before any send
    code = (f"import sqlite3; db = sqlite3.connect({str(path)!r}); "
            "print(db.execute('SELECT client_id, status, attempts FROM orders ORDER BY seq').fetchall())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f"('{a.client_id}', 'pending', 1)" in out
    st.close()
    st2 = Ledger(path)  # same tag: ids stay unique across restarts
    c = st2.new_order("BTC/USDT", "buy", "market", D("0.01"))
    assert c.seq == 3 and c.client_id.startswith(a.client_id.split("-")[0])
    other = Ledger(tmp_path / "other.sqlite")
    assert other.tag != st2.tag  # two ledgers never share client ids
    with pytest.raises(ValueError):
        st2.update_order(c.client_id, status="sent")
    with pytest.raises(sqlite3.IntegrityError):
        st2.db.execute("UPDATE orders SET status = 'bogus'")


def test_bind_refuses_another_venue(tmp_path):
    st = Ledger(tmp_path / "s.sqlite")
    st.bind(venue="binance", symbol="BTC/USDT", broker="real")
    st.bind(venue="binance", symbol="BTC/USDT", broker="real")
    with pytest.raises(LedgerError, match="belongs to broker='real'"):
        st.bind(venue="binance", symbol="BTC/USDT", broker="paper")


def test_fills_deduplicated_and_position_follows_env_average_cost(tmp_path):
    st = Ledger(tmp_path / "s.sqlite")
    o = st.new_order("BTC/USDT", "buy", "market", D("0.03"))
    assert st.add_fill(fill(1, o.client_id, "buy", "100", "0.01", "0.001"), "BTC", "USDT")
    assert st.add_fill(fill(2, o.client_id, "buy", "110", "0.02", "0.0022"), "BTC", "USDT")
    assert not st.add_fill(fill(2, o.client_id, "buy", "110", "0.02", "0.0022"), "BTC", "USDT")  # seen twice
    assert st.filled_of(o.client_id) == D("0.03")
    p = st.position("BTC/USDT")
    assert p.base == D("0.03") and p.cost == D("3.2") and p.quote == D("-3.2032") and p.fills == 2
    s = st.new_order("BTC/USDT", "sell", "market", D("0.05"))
    st.add_fill(fill(3, s.client_id, "sell", "120", "0.01"), "BTC", "USDT")  # reduce: cost scales
    p = st.position("BTC/USDT")
    assert p.base == D("0.02") and p.cost == D("3.2") * 2 / 3
    st.add_fill(fill(4, s.client_id, "sell", "90", "0.04"), "BTC", "USDT")  # flip: cost restarts at the fill
    p = st.position("BTC/USDT")
    assert p.base == D("-0.02") and p.cost == D("-1.8")
    assert p.unrealized(80.0) == pytest.approx(-0.02 * 80 + 1.8)
    assert p.equity(80.0) == pytest.approx(float(p.quote) - 0.02 * 80)
    assert st.max_trade_id() == 4
    # fees in base reduce the position
    b = st.new_order("BTC/USDT", "buy", "market", D("0.02"))
    st.add_fill(fill(5, b.client_id, "buy", "100", "0.02", "0.00002", "BTC"), "BTC", "USDT")
    assert st.position("BTC/USDT").base == D("-0.00002")


def test_a_fill_recorded_after_a_later_trade_is_applied_in_the_exchanges_trade_order(tmp_path):
    """The average-cost basis, and so the realized PnL that the futures wallet check reads (quote + cost), depend on
    the order fills are applied in; a REST backfill can record a trade after a later one from the stream. The
    position must be the one of the exchange's trade order whatever the arrival order, funding kept."""
    trades = [(1, "buy", "100", "0.02"), (2, "sell", "110", "0.01"), (3, "buy", "120", "0.01"), (4, "sell", "90", "0.03")]
    positions = []
    for order in ([0, 1, 2, 3], [0, 2, 1, 3], [2, 0, 3, 1], [3, 2, 1, 0]):
        st = Ledger(tmp_path / f"{order}.sqlite")
        o = st.new_order("BTC/USDT", "buy", "limit", D("0.07"))
        st.add_funding("f1", "BTC/USDT", D("-0.05"), "USDT", 1)
        for i in order:
            tid, side, price, amount = trades[i]
            assert st.add_fill(fill(tid, o.client_id, side, price, amount, "0.01"), "BTC", "USDT")
        p = st.position("BTC/USDT")
        positions.append((p.base, p.quote, p.cost, p.fees, p.fills))
    assert all(x == positions[0] for x in positions), positions
    # in trade order: 0.02 @ 100 (cost 2), sell 0.01 (cost 1), buy 0.01 @ 120 (cost 2.2), sell 0.03 @ 90 (flip: -0.9)
    base, quote, cost, _, fills = positions[0]
    assert (base, cost, fills) == (D("-0.01"), D("-0.90"), 4)
    assert quote == D("-2") + D("1.1") - D("1.2") + D("2.7") - 4 * D("0.01") - D("0.05")


def test_kill_records_and_day_start(tmp_path):
    st = Ledger(tmp_path / "s.sqlite")
    assert st.active_kill() is None
    st.record_kill("daily loss limit")
    assert st.active_kill()["reason"] == "daily loss limit"
    assert st.day_start_equity("2024-01-01", 5.0) == 5.0
    assert st.day_start_equity("2024-01-01", -3.0) == 5.0  # kept across restarts within the day
    assert st.clear_kills() == 1 and st.active_kill() is None


def test_risk_limits_refuse_orders():
    r = RiskManager(RiskLimits(max_position=0.05, max_notional=2000, max_order=0.02, daily_loss_limit=10))
    assert r.refuses(D("0.02"), D("0.02"), 50_000) is None  # 0.04 = the notional cap 2000 / 50000 (< 0.05)
    assert "max position / notional" in r.refuses(D("0.01"), D("0.035"), 50_000)
    assert r.refuses(D("-0.01"), D("0.045"), 50_000) is None  # back toward the limit: allowed
    assert "max order" in r.refuses(D("-0.03"), D("0.03"), 50_000)
    assert r.loss_breach(-9.99) is None and "daily loss" in r.loss_breach(-10)


def test_policy_actions_and_env_settings():
    p = load_policy("scripted:cycle", trade_size=0.01, max_position=0.02)
    obs = np.zeros(49, np.float32)
    acts = [p.action(obs) for _ in range(5)]
    assert acts == [1, 0, 2, 0, 1]
    assert p.env["actions"] == "discrete" and p.trade_size == 0.01 and p.max_position == 0.02
    c = load_policy(lambda o: np.full((len(o), 1), 0.5, np.float32), continuous=True, max_position=0.1)
    assert c.env["actions"] == "continuous" and c.action(obs).tolist() == [0.5]
    with pytest.raises(ValueError, match="max_position"):
        load_policy("scripted:hold", max_position=-1.0)
    with pytest.raises(ValueError, match="scripted policy"):
        load_policy("scripted:nope")
