"""The live session's ledger in SQLite: orders, fills, positions, equity snapshots, kill records.

Rules that make a crash harmless:

* WAL mode with ``synchronous=FULL``: a committed transaction survives a crash of the process (and of
  the machine).
* Every state change is its own transaction, committed before the next network call: an order is
  stored as ``pending`` (with its client order id) before it is sent; each send attempt is counted
  and time-stamped before it goes out; the exchange's answer is stored before anything else is done.
* Funding payments of futures positions are keyed by the exchange's income id (``tranId``) the same
  way; each moves the position's quote amount in its own transaction (so they are in the PnL).
* Fills are keyed by the exchange's trade id (``INSERT OR IGNORE``): a fill seen twice (in the order
  response, in ``myTrades``, after a restart) is counted once. The position is updated in the same
  transaction as the fill that changes it, so the two never disagree.

Order states: ``pending`` (stored; maybe sent, no answer yet), ``unknown`` (a send failed in a way
that leaves the outcome unknown: resolved by asking the exchange for the client id), ``open``,
``filled``, ``cancelled`` (canceled or expired, possibly partly filled), ``rejected`` (the exchange
refused it, or it never reached the exchange).

Amounts are stored as decimal strings (exact); equity snapshots as floats (for display and plots).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

ORDER_STATES = ("pending", "unknown", "open", "filled", "cancelled", "rejected")
UNRESOLVED = ("pending", "unknown")  # the exchange may or may not have the order
LIVE = ("pending", "unknown", "open")  # not final
SCHEMA_VERSION = "1"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    client_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    type TEXT NOT NULL,
    amount TEXT NOT NULL,
    price TEXT,
    params TEXT NOT NULL DEFAULT '{{}}',
    status TEXT NOT NULL CHECK (status IN {ORDER_STATES!r}),
    exchange_id TEXT,
    exchange_status TEXT,
    filled TEXT NOT NULL DEFAULT '0',
    average TEXT,
    reason TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_ns INTEGER NOT NULL,
    last_sent_ns INTEGER,
    updated_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_status ON orders (status);
CREATE TABLE IF NOT EXISTS fills (
    trade_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES orders (client_id),
    exchange_order_id TEXT,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    price TEXT NOT NULL,
    amount TEXT NOT NULL,
    fee TEXT NOT NULL,
    fee_currency TEXT,
    ts_ms INTEGER,
    recorded_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS fills_order ON fills (client_id);
CREATE TABLE IF NOT EXISTS positions (
    symbol TEXT PRIMARY KEY,
    base TEXT NOT NULL,
    quote TEXT NOT NULL,
    cost TEXT NOT NULL,
    fees TEXT NOT NULL,
    fills INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS funding (
    income_id TEXT PRIMARY KEY,
    symbol TEXT NOT NULL,
    amount TEXT NOT NULL,
    asset TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    recorded_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS equity (
    ts_ns INTEGER NOT NULL,
    equity REAL NOT NULL,
    position REAL NOT NULL,
    mid REAL NOT NULL,
    day_pnl REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS kills (
    id INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    cleared_ns INTEGER
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
"""


def now_ns() -> int:
    return time.time_ns()


def S(x: Decimal) -> str:
    """A Decimal as plain text (no exponent): "0.01000000", "0"."""
    return format(x, "f")


def D(x) -> Decimal:
    """A Decimal from a string, int, Decimal or float (floats through their shortest repr)."""
    if x is None:
        return Decimal(0)
    if isinstance(x, Decimal):
        return x
    return Decimal(str(x))


@dataclass
class OrderRow:
    client_id: str
    seq: int
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    params: dict
    status: str
    exchange_id: str | None
    exchange_status: str | None
    filled: Decimal
    average: Decimal | None
    reason: str | None
    error: str | None
    attempts: int
    created_ns: int
    last_sent_ns: int | None
    updated_ns: int

    @property
    def signed_filled(self) -> Decimal:
        return self.filled if self.side == "buy" else -self.filled

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> OrderRow:
        return cls(r["client_id"], r["seq"], r["symbol"], r["side"], r["type"], D(r["amount"]),
                   None if r["price"] is None else D(r["price"]), json.loads(r["params"]), r["status"],
                   r["exchange_id"], r["exchange_status"], D(r["filled"]),
                   None if r["average"] is None else D(r["average"]), r["reason"], r["error"], r["attempts"],
                   r["created_ns"], r["last_sent_ns"], r["updated_ns"])


@dataclass
class Fill:
    trade_id: str
    client_id: str
    exchange_order_id: str | None
    symbol: str
    side: str
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_currency: str | None
    ts_ms: int | None = None


@dataclass
class Position:
    """Net result of the stored fills: base and quote amounts moved, average-cost basis, fees."""

    symbol: str
    base: Decimal = Decimal(0)  # position, base units (after fees charged in base)
    quote: Decimal = Decimal(0)  # quote received minus paid (after fees charged in quote)
    cost: Decimal = Decimal(0)  # quote cost of the open position (the env's average-cost rule)
    fees: dict = None  # currency -> total fee
    fills: int = 0

    def __post_init__(self):
        if self.fees is None:
            self.fees = {}

    def equity(self, mid: float) -> float:
        """Mark-to-market value of everything traded, in quote (0 before the first fill)."""
        return float(self.quote) + float(self.base) * mid

    def unrealized(self, mid: float) -> float:
        return float(self.base) * mid - float(self.cost)

    def apply(self, fill: Fill, base_asset: str, quote_asset: str) -> None:
        buy = fill.side == "buy"
        signed = fill.amount if buy else -fill.amount
        notional = signed * fill.price
        before, after = self.base, self.base + signed
        # average-cost basis, as the training env keeps it (cpp/env/trading_env.cpp, execute)
        if before == 0 or (before > 0) == buy:
            self.cost += notional
        elif after != 0 and (after > 0) == (before > 0):
            self.cost = self.cost * after / before
        else:
            self.cost = after * fill.price
        self.base = after
        self.quote -= notional
        if fill.fee:
            cur = fill.fee_currency or quote_asset
            self.fees[cur] = self.fees.get(cur, Decimal(0)) + fill.fee
            if cur == quote_asset:
                self.quote -= fill.fee
            elif cur == base_asset:
                self.base -= fill.fee
        self.fills += 1


class LedgerError(RuntimeError):
    """The ledger file cannot be used: SQLite refuses WAL mode, it belongs to another venue, symbol or
    broker, or it lacks an order asked for."""


class Ledger:
    """One SQLite file per trading account and symbol. Not thread-safe: one asyncio loop uses it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.db.row_factory = sqlite3.Row
        mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise LedgerError(f"{self.path}: cannot switch SQLite to WAL mode (got {mode})")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(_SCHEMA)  # CREATE ... IF NOT EXISTS: idempotent
        if self.get_meta("schema") is None:
            with self.tx():
                self._set_meta("schema", SCHEMA_VERSION)
                self._set_meta("tag", secrets.token_hex(5))
                self._set_meta("created_ns", str(now_ns()))

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def tx(self):
        """One transaction, committed on exit (BEGIN IMMEDIATE: the write lock is taken at once)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ---- meta ----------------------------------------------------------------------------------
    def get_meta(self, key: str, default=None):
        r = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if r is None else r[0]

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
                        "excluded.value", (key, str(value)))

    def set_meta(self, key: str, value) -> None:
        with self.tx():
            self._set_meta(key, value)

    def bind(self, **identity) -> None:
        """Tie the file to an exchange, symbol and broker kind on first use; refuse another later."""
        with self.tx():
            for key, value in identity.items():
                have = self.get_meta(key)
                if have is None:
                    self._set_meta(key, value)
                elif have != str(value):
                    raise LedgerError(f"{self.path} belongs to {key}={have!r}, not {value!r}: use another --db")

    @property
    def tag(self) -> str:
        return self.get_meta("tag")

    # ---- orders --------------------------------------------------------------------------------
    def new_order(self, symbol: str, side: str, type_: str, amount: Decimal, price: Decimal | None = None,
                  params: dict | None = None, reason: str = "") -> OrderRow:
        """Record a new order as pending, with a client order id that is unique across restarts and
        across ledgers (a random tag per file, then a sequence number): ``tr<tag>-<seq>``."""
        with self.tx():
            seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM orders").fetchone()[0]
            client_id = f"tr{self.tag}-{seq}"
            t = now_ns()
            self.db.execute(
                "INSERT INTO orders (client_id, seq, symbol, side, type, amount, price, params, status, reason, "
                "created_ns, updated_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                (client_id, seq, symbol, side, type_, S(amount), None if price is None else S(price),
                 json.dumps(params or {}), reason, t, t))
        return self.order(client_id)

    def order(self, client_id: str) -> OrderRow | None:
        r = self.db.execute("SELECT * FROM orders WHERE client_id = ?", (client_id,)).fetchone()
        return None if r is None else OrderRow.from_row(r)

    def orders(self, statuses=None) -> list[OrderRow]:
        if statuses is None:
            rows = self.db.execute("SELECT * FROM orders ORDER BY seq").fetchall()
        else:
            marks = ",".join("?" * len(statuses))
            rows = self.db.execute(f"SELECT * FROM orders WHERE status IN ({marks}) ORDER BY seq",
                                   tuple(statuses)).fetchall()
        return [OrderRow.from_row(r) for r in rows]

    def by_exchange_id(self, exchange_id: str) -> OrderRow | None:
        r = self.db.execute("SELECT * FROM orders WHERE exchange_id = ?", (str(exchange_id),)).fetchone()
        return None if r is None else OrderRow.from_row(r)

    def mark_attempt(self, client_id: str) -> None:
        """Count a send attempt and its time; committed before the request goes out."""
        t = now_ns()
        with self.tx():
            self.db.execute("UPDATE orders SET attempts = attempts + 1, last_sent_ns = ?, updated_ns = ? "
                            "WHERE client_id = ?", (t, t, client_id))

    def update_order(self, client_id: str, **fields) -> OrderRow:
        if "status" in fields and fields["status"] not in ORDER_STATES:
            raise ValueError(f"order status {fields['status']!r} is not one of {ORDER_STATES}")
        fields["updated_ns"] = now_ns()
        cols = ", ".join(f"{k} = ?" for k in fields)
        vals = [S(v) if isinstance(v, Decimal) else v for v in fields.values()]
        with self.tx():
            n = self.db.execute(f"UPDATE orders SET {cols} WHERE client_id = ?", (*vals, client_id)).rowcount
        if n != 1:
            raise LedgerError(f"order {client_id}: not in the ledger")
        return self.order(client_id)

    # ---- fills and positions -------------------------------------------------------------------
    def add_fill(self, fill: Fill, base_asset: str, quote_asset: str) -> bool:
        """Record a fill once (by trade id) and move the position in the same transaction; False if the
        trade id was already there."""
        with self.tx():
            n = self.db.execute(
                "INSERT OR IGNORE INTO fills (trade_id, client_id, exchange_order_id, symbol, side, price, amount, "
                "fee, fee_currency, ts_ms, recorded_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (str(fill.trade_id), fill.client_id, fill.exchange_order_id, fill.symbol, fill.side, S(fill.price),
                 S(fill.amount), S(fill.fee), fill.fee_currency, fill.ts_ms, now_ns())).rowcount
            if n == 0:
                return False
            if self._fills_after(fill):  # arrived after a later trade (a REST backfill behind the stream)
                pos = self._replayed(fill.symbol, base_asset, quote_asset)
            else:
                pos = self._position(fill.symbol)
                pos.apply(fill, base_asset, quote_asset)
            self.db.execute(
                "INSERT INTO positions (symbol, base, quote, cost, fees, fills, updated_ns) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (symbol) DO UPDATE SET base = excluded.base, quote = excluded.quote, "
                "cost = excluded.cost, fees = excluded.fees, fills = excluded.fills, updated_ns = excluded.updated_ns",
                (pos.symbol, S(pos.base), S(pos.quote), S(pos.cost),
                 json.dumps({k: S(v) for k, v in pos.fees.items()}), pos.fills, now_ns()))
        return True

    def _fills_after(self, fill: Fill) -> bool:
        """Whether a recorded fill of the symbol is a later exchange trade (a larger numeric trade id: the
        exchange's trade ids rise per symbol) than `fill`."""
        if not str(fill.trade_id).isdigit():
            return False
        later = self.db.execute("SELECT 1 FROM fills WHERE symbol = ? AND trade_id GLOB '[0-9]*' AND "
                                "CAST(trade_id AS INTEGER) > ? LIMIT 1", (fill.symbol, int(fill.trade_id))).fetchone()
        return later is not None

    def _replayed(self, symbol: str, base_asset: str, quote_asset: str) -> Position:
        """The position from every recorded fill of the symbol in exchange trade order, plus its funding: the
        average-cost basis, and so the realized PnL, depend on the order the fills are applied in, and the
        exchange's wallet follows its own trade order."""
        pos = Position(symbol)
        rows = self.db.execute("SELECT * FROM fills WHERE symbol = ? ORDER BY CASE WHEN trade_id GLOB '[0-9]*' THEN "
                               "CAST(trade_id AS INTEGER) END, recorded_ns", (symbol,)).fetchall()
        for r in rows:
            pos.apply(self._fill(r), base_asset, quote_asset)
        pos.quote += sum((a for _, a, _ in self.funding(symbol)), Decimal(0))
        return pos

    def add_funding(self, income_id: str, symbol: str, amount: Decimal, asset: str, ts_ms: int) -> bool:
        """Record a funding payment once (by income id; > 0 received, < 0 paid) and move the position's
        quote amount in the same transaction; False if it was already there."""
        with self.tx():
            n = self.db.execute("INSERT OR IGNORE INTO funding (income_id, symbol, amount, asset, ts_ms, recorded_ns) "
                                "VALUES (?, ?, ?, ?, ?, ?)", (str(income_id), symbol, S(amount), asset, int(ts_ms),
                                                              now_ns())).rowcount
            if n == 0:
                return False
            pos = self._position(symbol)
            self.db.execute(
                "INSERT INTO positions (symbol, base, quote, cost, fees, fills, updated_ns) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (symbol) DO UPDATE SET quote = excluded.quote, updated_ns = excluded.updated_ns",
                (symbol, S(pos.base), S(pos.quote + amount), S(pos.cost),
                 json.dumps({k: S(v) for k, v in pos.fees.items()}), pos.fills, now_ns()))
        return True

    def funding(self, symbol: str) -> list[tuple[str, Decimal, int]]:
        """(income id, amount, time ms) of the recorded funding payments, oldest first."""
        rows = self.db.execute("SELECT income_id, amount, ts_ms FROM funding WHERE symbol = ? ORDER BY ts_ms, income_id",
                               (symbol,)).fetchall()
        return [(r[0], D(r[1]), r[2]) for r in rows]

    def fills(self, client_id: str | None = None) -> list[Fill]:
        q = "SELECT * FROM fills" + (" WHERE client_id = ?" if client_id else "") + " ORDER BY recorded_ns, trade_id"
        rows = self.db.execute(q, (client_id,) if client_id else ()).fetchall()
        return [self._fill(r) for r in rows]

    @staticmethod
    def _fill(r: sqlite3.Row) -> Fill:
        return Fill(r["trade_id"], r["client_id"], r["exchange_order_id"], r["symbol"], r["side"], D(r["price"]),
                    D(r["amount"]), D(r["fee"]), r["fee_currency"], r["ts_ms"])

    def filled_of(self, client_id: str) -> Decimal:
        """Sum of the recorded fills of one order."""
        rows = self.db.execute("SELECT amount FROM fills WHERE client_id = ?", (client_id,)).fetchall()
        return sum((D(r[0]) for r in rows), Decimal(0))

    def _position(self, symbol: str) -> Position:
        r = self.db.execute("SELECT * FROM positions WHERE symbol = ?", (symbol,)).fetchone()
        if r is None:
            return Position(symbol)
        return Position(symbol, D(r["base"]), D(r["quote"]), D(r["cost"]),
                        {k: D(v) for k, v in json.loads(r["fees"]).items()}, r["fills"])

    def position(self, symbol: str) -> Position:
        return self._position(symbol)

    def max_trade_id(self) -> int | None:
        """The highest numeric trade id recorded (for myTrades?fromId=)."""
        r = self.db.execute("SELECT MAX(CAST(trade_id AS INTEGER)) FROM fills WHERE trade_id GLOB '[0-9]*'").fetchone()
        return None if r[0] is None else int(r[0])

    # ---- equity, kills, events -----------------------------------------------------------------
    def add_equity(self, equity: float, position: float, mid: float, day_pnl: float) -> None:
        with self.tx():
            self.db.execute("INSERT INTO equity (ts_ns, equity, position, mid, day_pnl) VALUES (?, ?, ?, ?, ?)",
                            (now_ns(), equity, position, mid, day_pnl))

    def day_start_equity(self, day: str, equity_now: float) -> float:
        """Equity at the start of UTC day ``day`` (YYYY-MM-DD): stored the first time it is asked for,
        so a restart within the day keeps the same reference for the daily loss limit."""
        key = f"day_start:{day}"
        have = self.get_meta(key)
        if have is None:
            self.set_meta(key, repr(float(equity_now)))
            return float(equity_now)
        return float(have)

    def record_kill(self, reason: str, detail: str = "") -> None:
        with self.tx():
            self.db.execute("INSERT INTO kills (ts_ns, reason, detail) VALUES (?, ?, ?)", (now_ns(), reason, detail))

    def active_kill(self) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM kills WHERE cleared_ns IS NULL ORDER BY id DESC LIMIT 1").fetchone()

    def clear_kills(self) -> int:
        with self.tx():
            return self.db.execute("UPDATE kills SET cleared_ns = ? WHERE cleared_ns IS NULL", (now_ns(),)).rowcount

    def log_event(self, kind: str, detail: str = "") -> None:
        with self.tx():
            self.db.execute("INSERT INTO events (ts_ns, kind, detail) VALUES (?, ?, ?)", (now_ns(), kind, detail))

    def events(self, kind: str | None = None) -> list[sqlite3.Row]:
        if kind is None:
            return self.db.execute("SELECT * FROM events ORDER BY id").fetchall()
        return self.db.execute("SELECT * FROM events WHERE kind = ? ORDER BY id", (kind,)).fetchall()
