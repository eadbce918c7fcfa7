"""Tardis.dev downloadable CSV files to event arrays.

Tardis.dev sells recorded exchange feeds as CSV files, one gzip file per day, exchange, symbol and
data type (docs.tardis.dev, "Downloadable CSV files"); ../shared/data/tardis_csv_samples holds real
sample rows. The data type is told by the header:

- ``incremental_book_L2``: ``exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount``.
  One row per price level change; ``amount`` is the new absolute size, 0 deletes the level. Rows with
  ``is_snapshot=true`` that follow other rows (or open the file) start a new snapshot: the book is
  reset (BOOK_CLEAR, then one BOOK_SNAPSHOT event a level). Other rows are BOOK_DELTA events. Rows
  of one message share ``local_timestamp`` (and ``is_snapshot``): the last one carries END_OF_MESSAGE.
- ``book_snapshot_5`` / ``book_snapshot_25``: ``exchange,symbol,timestamp,local_timestamp`` then
  ``asks[i].price,asks[i].amount,bids[i].price,bids[i].amount`` for each level i from 0 (best); empty
  cells where the book has fewer levels. Each row is one snapshot (BOOK_CLEAR + BOOK_SNAPSHOT events).
- ``trades``: ``exchange,symbol,timestamp,local_timestamp,id,side,price,amount``; side buy (the
  buyer was the aggressor), sell, or unknown (no side flag; counted).

Timestamps are microseconds since the epoch (exchange time, and the receive time of Tardis's
recorder). Files are sorted by ``local_timestamp``: a row below the previous one is an error. Several
files (e.g. a day of incremental_book_L2 and the same day's trades, or many days) are merged by
``local_timestamp``; on equal times book rows come before trades. ``update_id`` of book events is a
running message number from 1; of trades, the trade id when it is a decimal integer (else 0, counted).
Prices and sizes are parsed exactly (decimal text, exponents allowed) to 1e-12 units; tick and lot
are the options or the gcd of all values.
"""

from __future__ import annotations

import heapq
from decimal import Decimal, InvalidOperation
from math import gcd
from pathlib import Path

import numpy as np

from trader.data.errors import FeedError
from trader.data.events import EVENT_DTYPE, EventFlag, EventKind
from trader.data.fixed_point import SCALE, parse_step, units_to_str
from trader.data.rawfile import iter_lines
from trader.store.files import sha256_file

_COMMON = ("exchange", "symbol", "timestamp", "local_timestamp")
_INCREMENTAL = _COMMON + ("is_snapshot", "side", "price", "amount")
_TRADES = _COMMON + ("id", "side", "price", "amount")
# Tardis exchange ids whose instruments are not spot (docs.tardis.dev exchange pages): USD-M
# (linear) and COIN-M (inverse) futures; others default to spot unless --market says otherwise.
_MARKETS = {"binance-futures": "usdm", "binance-delivery": "coinm", "deribit": "coinm", "bitmex": "coinm",
            "okex-futures": "coinm", "okex-swap": "coinm", "bybit": "coinm", "ftx": "usdm"}
_US = 1_000
_INT64_MAX = 2**63 - 1
_BID, _ASK, _END = int(EventFlag.BID), int(EventFlag.ASK), int(EventFlag.END_OF_MESSAGE)
_CLEAR, _SNAP, _DELTA, _TRADE = (int(EventKind.BOOK_CLEAR), int(EventKind.BOOK_SNAPSHOT), int(EventKind.BOOK_DELTA),
                                 int(EventKind.TRADE))


def _header(path) -> list[str] | None:
    for _, raw in iter_lines(path):
        if raw.strip():
            try:
                return raw.decode("utf-8").strip().split(",")
            except UnicodeDecodeError:
                return None
    return None


def kind_of(header: list[str]) -> str | None:
    """incremental_book_L2, book_snapshot_N, trades, or None for any other header."""
    if header[: len(_COMMON)] != list(_COMMON):
        return None
    if "is_snapshot" in header:  # the columns that tell the types apart; the others are checked after
        return "incremental_book_L2"
    if "id" in header:
        return "trades"
    if "asks[0].price" in header or "bids[0].price" in header:
        levels = sum(1 for h in header if h.startswith("asks[") and h.endswith("].price"))
        return f"book_snapshot_{levels}"
    return None


def sniff_tardis(path) -> bool:
    """True if the file's header is a Tardis CSV header (its first four columns)."""
    header = _header(path)
    return header is not None and header[: len(_COMMON)] == list(_COMMON)


class _File:
    """Rows of one file, checked, as (local_ns, order, record) for the merge."""

    def __init__(self, path: Path, fi: int, parser: _Parser):
        self.path, self.fi, self.p = path, fi, parser
        header = _header(path)
        if header is None:
            raise FeedError(path, None, "the file is empty (no line with data)")
        self.kind = kind_of(header)
        if self.kind is None:
            missing = [c for c in _COMMON if c not in header]
            raise FeedError(path, 1, f"header: missing column {missing[0]!r}" if missing else
                            "header: not a Tardis CSV type read here (incremental_book_L2, book_snapshot_N, trades)")
        need = {"incremental_book_L2": _INCREMENTAL, "trades": _TRADES}.get(self.kind, _COMMON)
        for c in need:
            if c not in header:
                raise FeedError(path, 1, f"header: missing column {c!r} ({self.kind}: {','.join(need)})")
        self.col = {name: i for i, name in enumerate(header)}
        self.ncols = len(header)

    def cell(self, cells, line, name):
        return cells[self.col[name]]

    def rows(self):
        """(local_ns, exch_ns, line, cells) of the data rows, checked for shape, identity and order."""
        prev = None
        first = True
        for line, raw in iter_lines(self.path):
            if first:
                first = not raw.strip()
                continue  # the header (and blank lines before it)
            if not raw.strip():
                self.p.count("blank")
                continue
            try:
                cells = raw.decode("utf-8").split(",")
            except UnicodeDecodeError:
                raise FeedError(self.path, line, "not UTF-8 text") from None
            if len(cells) != self.ncols:
                raise FeedError(self.path, line, f"expected {self.ncols} columns as in the header, got {len(cells)}")
            self.p.identity(self.path, line, cells[self.col["exchange"]], cells[self.col["symbol"]])
            local = self.p.micros(self.path, line, cells[self.col["local_timestamp"]], "local_timestamp")
            exch = self.p.micros(self.path, line, cells[self.col["timestamp"]], "timestamp")
            if prev is not None and local < prev:
                raise FeedError(self.path, line, f"field 'local_timestamp': {local // _US} is below the previous row's "
                                f"{prev // _US}: Tardis files are sorted by local_timestamp")
            prev = local
            yield local, exch, line, cells


class _Parser:
    def __init__(self):
        self.exchange = self.symbol = None
        self.price_gcd = self.qty_gcd = 0
        self.report = {"lines": {}, "snapshots": 0, "deltas": 0, "trades": 0, "trades_without_side": 0,
                       "trade_ids_not_numeric": 0, "empty_levels": 0}

    def count(self, kind, n=1):
        self.report["lines"][kind] = self.report["lines"].get(kind, 0) + n

    def identity(self, path, line, exchange, symbol):
        if self.exchange is None:
            self.exchange, self.symbol = exchange, symbol
        elif (exchange, symbol) != (self.exchange, self.symbol):
            raise FeedError(path, line, f"fields 'exchange', 'symbol': {exchange} {symbol} among rows of "
                            f"{self.exchange} {self.symbol}: convert one instrument at a time")

    @staticmethod
    def micros(path, line, text, field):
        if not text.isdigit():
            raise FeedError(path, line, f"field {field!r}: expected microseconds since the epoch, got {text[:40]!r}")
        ns = int(text) * _US
        if ns > _INT64_MAX:
            raise FeedError(path, line, f"field {field!r}: {text} is out of the int64 nanosecond range")
        return ns

    def units(self, path, line, text, field, positive):
        try:
            d = Decimal(text)
        except InvalidOperation:
            d = None
        if d is None or not d.is_finite() or d < 0 or (positive and d == 0):
            what = "a positive" if positive else "a non-negative"
            raise FeedError(path, line, f"field {field!r}: expected {what} decimal number, got {text[:40]!r}")
        v = d.scaleb(12)
        if v != v.to_integral_value():
            raise FeedError(path, line, f"field {field!r}: {text} has more than 12 decimals")
        v = int(v)
        if field == "price" or field.endswith(".price"):
            self.price_gcd = gcd(self.price_gcd, v)
        elif v:
            self.qty_gcd = gcd(self.qty_gcd, v)
        return v


def _incremental(f: _File):
    """Messages of an incremental_book_L2 file: (local, order, rows) with rows (kind, flags, exch, line, p, q)."""
    p, col = f.p, f.col
    msg, key, in_snapshot = [], None, False
    for local, exch, line, cells in f.rows():
        snap_text = cells[col["is_snapshot"]]
        if snap_text not in ("true", "false"):
            raise FeedError(f.path, line, f"field 'is_snapshot': expected true or false, got {snap_text[:40]!r}")
        snap = snap_text == "true"
        side = cells[col["side"]]
        if side not in ("bid", "ask"):
            raise FeedError(f.path, line, f"field 'side': expected bid or ask, got {side[:40]!r}")
        price = p.units(f.path, line, cells[col["price"]], "price", True)
        amount = p.units(f.path, line, cells[col["amount"]], "amount", False)
        if (local, snap) != key and msg:
            yield msg
            msg = []
        if snap and not in_snapshot:  # a snapshot starts: the book is reset
            msg.append((_CLEAR, 0, exch, local, line, 0, 0))
            p.report["snapshots"] += 1
        in_snapshot = snap
        key = (local, snap)
        p.count("snapshot_level" if snap else "delta")
        if not snap:
            p.report["deltas"] += 1
        msg.append((_SNAP if snap else _DELTA, _BID if side == "bid" else _ASK, exch, local, line, price, amount))
    if msg:
        yield msg


def _snapshots(f: _File, levels: int):
    p = f.p
    for local, exch, line, cells in f.rows():
        p.count("snapshot")
        p.report["snapshots"] += 1
        msg = [(_CLEAR, 0, exch, local, line, 0, 0)]
        for side, flag in (("bids", _BID), ("asks", _ASK)):
            for i in range(levels):
                pc, ac = f.col.get(f"{side}[{i}].price"), f.col.get(f"{side}[{i}].amount")
                if pc is None or ac is None:
                    raise FeedError(f.path, 1, f"header: missing column '{side}[{i}].{'price' if pc is None else 'amount'}'")
                if not cells[pc] and not cells[ac]:
                    p.report["empty_levels"] += 1
                    continue
                price = p.units(f.path, line, cells[pc], f"{side}[{i}].price", True)
                amount = p.units(f.path, line, cells[ac], f"{side}[{i}].amount", False)
                if amount:
                    msg.append((_SNAP, flag, exch, local, line, price, amount))
                else:
                    p.report["empty_levels"] += 1
        yield msg


def _trades(f: _File):
    p, col = f.p, f.col
    for local, exch, line, cells in f.rows():
        side = cells[col["side"]]
        if side not in ("buy", "sell", "unknown"):
            raise FeedError(f.path, line, f"field 'side': expected buy, sell or unknown, got {side[:40]!r}")
        flag = {"buy": _BID, "sell": _ASK, "unknown": 0}[side]
        if not flag:
            p.report["trades_without_side"] += 1
        tid = cells[col["id"]]
        if tid.isdigit() and int(tid) < 2**64:
            tid = int(tid)
        else:
            p.report["trade_ids_not_numeric"] += 1
            tid = 0
        price = p.units(f.path, line, cells[col["price"]], "price", True)
        amount = p.units(f.path, line, cells[col["amount"]], "amount", True)
        p.count("trade")
        p.report["trades"] += 1
        yield [(_TRADE, flag, exch, local, line, price, amount, tid)]


def convert_tardis_files(paths, *, tick_size=None, lot_size=None, symbol=None, exchange=None, market=None):
    """Convert Tardis CSV files (any mix of the types above, one instrument) to (events, meta)."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no input files")
    if len(paths) > 65535:
        raise ValueError("a dataset holds at most 65535 source files")
    parser = _Parser()
    files = [_File(p, fi, parser) for fi, p in enumerate(paths)]
    streams = []
    for order, f in enumerate(files):
        if f.kind == "incremental_book_L2":
            gen = _incremental(f)
        elif f.kind == "trades":
            gen = _trades(f)
        else:
            gen = _snapshots(f, int(f.kind.rsplit("_", 1)[1]))
        # book before trades at equal local time; then file order
        rank = 1 if f.kind == "trades" else 0
        streams.append(((msg[0][3], rank, order, k, msg, f.fi) for k, msg in enumerate(gen)))
    messages = list(heapq.merge(*streams, key=lambda m: m[:4]))
    tick = parse_step(tick_size, "tick_size") if tick_size else (parser.price_gcd or SCALE)
    lot = parse_step(lot_size, "lot_size") if lot_size else (parser.qty_gcd or SCALE)
    rows = []
    book_id = 0
    for *_, msg, fi in messages:
        if msg[0][0] != _TRADE:
            book_id += 1
        for k, r in enumerate(msg):
            kind, flag, exch, local, line, price, amount = r[:7]
            end = _END if k == len(msg) - 1 else 0
            for what, v, step, name in (("price", price, tick, "tick size"), ("amount", amount, lot, "lot size")):
                if v % step:
                    raise FeedError(paths[fi], line, f"field {what!r}: {units_to_str(v)} is not a multiple of the {name} "
                                    f"{units_to_str(step)}")
                if v // step > _INT64_MAX:
                    raise FeedError(paths[fi], line, f"field {what!r}: {units_to_str(v)} / {units_to_str(step)} does "
                                    "not fit in 64 bits")
            uid = r[7] if kind == _TRADE else book_id
            rows.append((kind, flag | end, fi, line, exch, local, price // tick, amount // lot, uid, 0,
                         book_id if kind in (_CLEAR, _SNAP) else 0))
    events = np.array(rows, dtype=EVENT_DTYPE)
    exch_name = exchange or parser.exchange or "unknown"
    meta = {
        "format": "trader.events/1",
        "exchange": exch_name,
        "market": market or _MARKETS.get(parser.exchange, "spot"),
        "symbol": symbol or parser.symbol or "UNKNOWN",
        "tick_size": units_to_str(tick),
        "lot_size": units_to_str(lot),
        "tick_size_source": "option" if tick_size else "gcd of all prices in the data",
        "lot_size_source": "option" if lot_size else "gcd of all non-zero sizes in the data",
        "qty_unit": "as in the data (Tardis 'amount': base asset, or contracts on inverse futures)",
        "sources": [{"name": f.path.name, "sha256": sha256_file(f.path)[1], "format": f"tardis {f.kind}"} for f in files],
        "report": parser.report,
    }
    return events, meta
