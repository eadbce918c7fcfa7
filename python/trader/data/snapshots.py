"""L2 snapshot tables (periodic full snapshots of the top N levels) to event arrays.

Each snapshot becomes one BOOK_CLEAR event (flags 0; END_OF_MESSAGE if the snapshot has no level)
followed by one BOOK_SNAPSHOT event per level, bids best first then asks best first; the last level
carries END_OF_MESSAGE. ``update_id`` (and ``prev_update_id``) is a running snapshot number from 1.
Trades, where a source has them, become TRADE events with ``update_id`` = the trade id.

Formats (see ../shared/data/README.md sections 4 to 7 for the real files):

- ``jsonl``: ``{"ts": ..., "bids": [[price, size], ...], "asks": [...]}`` per line;
- ``csv``: a wide table, one row per snapshot, columns named by templates such as ``bid_price_{i}``;
- ``bitfinex``, ``coinbase``, ``bitstamp``, ``lobster``: the layouts of those datasets.

Prices and sizes are parsed exactly (decimal text to integers; JSON numbers through their shortest
``repr``). Nothing is dropped silently: every line is counted by kind in the report, and levels left
out (zero size, LOBSTER dummy prices, empty CSV cells) are counted too.
"""

from __future__ import annotations

import calendar
import csv
import datetime as _dt
import hashlib
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from math import gcd
from pathlib import Path

import numpy as np
import orjson

from trader.data.errors import FeedError
from trader.data.events import EVENT_DTYPE, EventFlag, EventKind
from trader.data.fixed_point import SCALE, parse_step, parse_units, units_to_str
from trader.data.rawfile import iter_lines

SNAPSHOT_FORMATS: dict[str, str] = {
    "jsonl": 'one JSON object a line: {"ts": s|ms|us|ns|ISO-8601, "bids": [[price, size], ...], "asks": [...]}',
    "csv": "wide CSV with a header: a timestamp column and per-level price/size columns (templates with {i})",
    "bitfinex": "Bitfinex 25-level book view TSV (ctc-executioner): JSON bids/asks in columns 7 and 8",
    "coinbase": "Coinbase 1-minute book CSV (Kaggle/TradeMaster): midpoint, per-level distance and USD notional",
    "bitstamp": "Bitstamp websocket log '<local_ms> <type> <json>': order_book snapshots and trades",
    "lobster": "LOBSTER orderbook_N CSV (ask px, ask size, bid px, bid size per level; times from the message file)",
}

# format -> (exchange, symbol); None: from the file name (LOBSTER)
_PRESETS = {
    "jsonl": ("unknown", "UNKNOWN"),
    "csv": ("unknown", "UNKNOWN"),
    "bitfinex": ("bitfinex", "BTCUSD"),
    "coinbase": ("coinbase", "BTC-USD"),
    "bitstamp": ("bitstamp", "BTCUSD"),
    "lobster": ("nasdaq", None),
}

_BID, _ASK, _END = int(EventFlag.BID), int(EventFlag.ASK), int(EventFlag.END_OF_MESSAGE)
_CLEAR, _SNAP, _TRADE = int(EventKind.BOOK_CLEAR), int(EventKind.BOOK_SNAPSHOT), int(EventKind.TRADE)
_INT64_MAX = 2**63 - 1

_TS_MULT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_NUMERIC = re.compile(r"[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?")
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)
_EPOCH = _dt.datetime(1970, 1, 1)
_CSV_TS_NAMES = ("ts", "timestamp", "time", "system_time", "datetime", "date")
_CSV_DEFAULT_TEMPLATES = ("bid_price_{i}", "bid_size_{i}", "ask_price_{i}", "ask_size_{i}")
_LOBSTER_NAME = re.compile(r"^(?P<symbol>[^_]+)_(?P<date>\d{4}-\d{2}-\d{2})_.*orderbook")
_LOBSTER_DUMMY = 9999999999
_LOBSTER_PRICE_UNITS = SCALE // 10_000  # LOBSTER prices are USD x 10000
_BITSTAMP_ORDER_TYPES = ("order_created", "order_changed", "order_deleted")
_BITSTAMP_TS = re.compile(rb"[0-9]{13}")


# ---- numbers and times -------------------------------------------------------------------------


def _decimal_text(v) -> str:
    """A JSON number or numeric string as plain decimal text ('1e-05' -> '0.00001'). Floats go
    through repr, the shortest text that reads back as the same float: no binary arithmetic."""
    if isinstance(v, bool):
        raise ValueError(f"expected a decimal number, got {v!r}")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        v = repr(v)
    if not isinstance(v, str):
        raise ValueError(f"expected a decimal number, got {v!r}")
    try:
        d = Decimal(v.strip())
    except InvalidOperation:
        raise ValueError(f"expected a decimal number, got {v!r}") from None
    if not d.is_finite():
        raise ValueError(f"expected a finite decimal number, got {v!r}")
    return format(d, "f")


def _units(v) -> int:
    """Decimal string or JSON number -> integer units of 1e-12; ValueError if not a number >= 0."""
    if v.__class__ is str:
        try:
            return parse_units(v)
        except ValueError:
            pass
    return parse_units(_decimal_text(v))


def _iso_ns(text: str) -> int:
    """ISO-8601 date-time ('2021-04-17 17:22:00.172344+00:00', '...T...Z', up to ns) to ns since
    epoch. Without an offset the time is taken as UTC."""
    m = _ISO.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"expected an ISO-8601 date-time or an epoch number, got {text!r}")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        t = _dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0))
    except ValueError as exc:
        raise ValueError(f"bad date-time {text!r} ({exc})") from None
    secs = (t - _EPOCH) // _dt.timedelta(seconds=1)
    if tz and tz.upper() != "Z":
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        secs -= sign * (int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60)
    return secs * 1_000_000_000 + int((frac or "").ljust(9, "0"))


def _auto_unit(int_part: int) -> str:
    """Epoch unit by magnitude: seconds up to 1e11 (year 5138), then ms, us, ns."""
    if int_part < 10**11:
        return "s"
    if int_part < 10**14:
        return "ms"
    if int_part < 10**17:
        return "us"
    return "ns"


class _Clock:
    """Timestamps of one file: epoch numbers in a fixed or detected unit, or ISO-8601 strings."""

    def __init__(self, path, unit: str):
        self.path = path
        self.unit = unit  # auto | s | ms | us | ns
        self.detected: str | None = None
        self.detected_line = 0

    def ns(self, line: int, value, what: str = "timestamp") -> int:
        try:
            if isinstance(value, bool):
                raise ValueError(f"expected a number or an ISO-8601 string, got {value!r}")
            if isinstance(value, str) and not _NUMERIC.fullmatch(value.strip()):
                unit = "iso"
                ns = _iso_ns(value)
            else:
                if isinstance(value, int):
                    d = Decimal(value)
                else:
                    d = Decimal(_decimal_text(value))
                if d <= 0:
                    raise ValueError(f"expected a positive epoch time, got {value!r}")
                unit = self.unit if self.unit != "auto" else _auto_unit(int(d))
                with localcontext() as ctx:
                    ctx.prec = 60
                    ns = int((d * _TS_MULT[unit]).to_integral_value(ROUND_HALF_EVEN))
        except ValueError as exc:
            raise FeedError(self.path, line, f"{what}: {exc}") from None
        if self.detected is None:
            self.detected, self.detected_line = unit, line
        elif unit != self.detected:
            raise FeedError(
                self.path, line,
                f"{what} {value!r} reads as {unit} but line {self.detected_line} read as {self.detected}: "
                "mixed units (pass csv_ts_unit / --csv-ts-unit to fix the unit)",
            )
        if ns > _INT64_MAX:
            raise FeedError(self.path, line, f"{what} {value!r} is out of range")
        return ns


# ---- collecting snapshots ----------------------------------------------------------------------


@dataclass
class SnapshotReport:
    """Counts of every kind of line and of what was left out, and the format's own checks."""

    lines: dict = field(default_factory=dict)  # line kind -> count
    snapshots: int = 0
    levels: int = 0  # levels converted (events), over all snapshots
    trades: int = 0
    empty_snapshots: int = 0
    crossed_snapshots: int = 0  # best bid >= best ask; kept, not an error
    zero_size_levels_skipped: int = 0
    backward_ts_steps: int = 0  # snapshot time (exchange, else local) below the previous one
    extra: dict = field(default_factory=dict)  # format-specific counts
    notes: list = field(default_factory=list)

    def count(self, kind: str, n: int = 1) -> None:
        self.lines[kind] = self.lines.get(kind, 0) + n

    def add(self, key: str, n: int = 1) -> None:
        self.extra[key] = self.extra.get(key, 0) + n

    def as_dict(self) -> dict:
        out = {
            "lines": dict(self.lines),
            "snapshots": self.snapshots,
            "levels": self.levels,
            "trades": self.trades,
            "empty_snapshots": self.empty_snapshots,
            "crossed_snapshots": self.crossed_snapshots,
            "zero_size_levels_skipped": self.zero_size_levels_skipped,
            "backward_ts_steps": self.backward_ts_steps,
        }
        out.update(self.extra)
        out["notes"] = list(self.notes)
        return out


class _Collector:
    """Validated snapshots and trades with prices and sizes in 1e-12 units, and their gcd / max."""

    def __init__(self, report: SnapshotReport):
        self.report = report
        self.records: list = []
        self.price_gcd = 0
        self.qty_gcd = 0
        self.price_max = 0
        self.qty_max = 0
        self._last_ts = None

    def _time_step(self, exch: int, local: int) -> None:
        t = exch or local
        if self._last_ts is not None and t < self._last_ts:
            self.report.backward_ts_steps += 1
        self._last_ts = t

    def snapshot(self, path, fi: int, line: int, exch: int, local: int, bids: list, asks: list) -> None:
        """bids / asks: [(price units, size units)], best first. Checks the order, counts crossed
        books and leaves out zero-size levels (counted)."""
        rep = self.report
        for name, side, sign in (("bids", bids, 1), ("asks", asks, -1)):
            prev = None
            for k, (p, _) in enumerate(side):
                if p <= 0:
                    raise FeedError(path, line, f"{name} level {k + 1}: price must be > 0, got {units_to_str(p)}")
                if prev is not None and (prev - p) * sign <= 0:
                    order = "descending (best bid first)" if sign > 0 else "ascending (best ask first)"
                    raise FeedError(
                        path, line,
                        f"{name}: level {k + 1} price {units_to_str(p)} after level {k} price "
                        f"{units_to_str(prev)}: levels must be strictly {order}",
                    )
                prev = p
        n_in = len(bids) + len(asks)
        bids = [lv for lv in bids if lv[1]]
        asks = [lv for lv in asks if lv[1]]
        n = len(bids) + len(asks)
        rep.zero_size_levels_skipped += n_in - n
        if n:
            prices = [p for p, _ in bids] + [p for p, _ in asks]
            sizes = [q for _, q in bids] + [q for _, q in asks]
            self.price_gcd = gcd(self.price_gcd, *prices)
            self.qty_gcd = gcd(self.qty_gcd, *sizes)
            self.price_max = max(self.price_max, max(prices))
            self.qty_max = max(self.qty_max, max(sizes))
        else:
            rep.empty_snapshots += 1
        if bids and asks and bids[0][0] >= asks[0][0]:
            rep.crossed_snapshots += 1
        rep.snapshots += 1
        rep.levels += n
        self._time_step(exch, local)
        self.records.append((True, fi, line, exch, local, rep.snapshots, bids, asks))

    def trade(self, path, fi: int, line: int, exch: int, local: int, trade_id: int, p: int, q: int, flags: int):
        if p <= 0 or q <= 0:
            raise FeedError(path, line, "trade: price and amount must be > 0")
        self.price_gcd = gcd(self.price_gcd, p)
        self.qty_gcd = gcd(self.qty_gcd, q)
        self.price_max = max(self.price_max, p)
        self.qty_max = max(self.qty_max, q)
        self.report.trades += 1
        self.records.append((False, fi, line, exch, local, trade_id, p, q, flags))


_UNITS_CACHE: dict = {}  # decimal text -> units; the same prices and sizes recur from snapshot to snapshot


def _cached_units(v) -> int:
    u = _UNITS_CACHE.get(v) if v.__class__ is str else None
    if u is None:
        u = _units(v)
        if v.__class__ is str:
            if len(_UNITS_CACHE) > 1_000_000:
                _UNITS_CACHE.clear()
            _UNITS_CACHE[v] = u
    return u


def _levels_pairs(path, line: int, levels, name: str) -> list:
    """JSON [[price, size], ...] -> [(units, units)]."""
    if not isinstance(levels, list):
        raise FeedError(path, line, f"field {name!r}: expected a list of [price, size]")
    out = []
    get = _UNITS_CACHE.get
    for k, lv in enumerate(levels):
        try:
            p, q = lv
            pu = get(p)
            if pu is None:
                pu = _cached_units(p)
            qu = get(q)
            if qu is None:
                qu = _cached_units(q)
            out.append((pu, qu))
        except (TypeError, ValueError) as exc:
            raise FeedError(
                path, line, f"field {name!r} level {k + 1}: expected [price, size] decimal numbers, got {lv!r} ({exc})"
            ) from None
    return out


# ---- formats -----------------------------------------------------------------------------------


def _parse_jsonl(path, fi, col: _Collector, clock: _Clock) -> None:
    rep = col.report
    for line, raw in iter_lines(path):
        if not raw.strip():
            rep.count("blank")
            continue
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise FeedError(path, line, f"malformed JSON ({exc})") from None
        if not isinstance(msg, dict):
            raise FeedError(path, line, 'expected a JSON object {"ts": ..., "bids": [...], "asks": [...]}')
        for key in ("ts", "bids", "asks"):
            if key not in msg:
                raise FeedError(path, line, f"missing field {key!r} (expected ts, bids, asks)")
        rep.count("snapshot")
        exch = clock.ns(line, msg["ts"], "field 'ts'")
        local = clock.ns(line, msg["local_ts"], "field 'local_ts'") if "local_ts" in msg else exch
        bids = _levels_pairs(path, line, msg["bids"], "bids")
        asks = _levels_pairs(path, line, msg["asks"], "asks")
        col.snapshot(path, fi, line, exch, local, bids, asks)


def _text_lines(path):
    """Decoded lines for csv.reader (one string per physical line, so reader.line_num = line)."""
    for line, raw in iter_lines(path):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FeedError(path, line, f"not UTF-8 text ({exc})") from None
        yield text.lstrip("\ufeff") if line == 1 else text


def _read_header(path, reader, rep: SnapshotReport) -> tuple[list, int]:
    for row in reader:
        if not row or not any(c.strip() for c in row):
            rep.count("blank")
            continue
        rep.count("header")
        return [c.strip() for c in row], reader.line_num
    raise FeedError(path, None, "empty file: expected a CSV header line")


def _missing_column(path, line, header, name, what) -> FeedError:
    shown = ",".join(header)
    if len(shown) > 300:
        shown = shown[:300] + "..."
    return FeedError(path, line, f"missing column {name!r} ({what}); header line {line} is: {shown}")


def _level_columns(path, hline, header, templates, levels, what) -> list:
    """Column indices [(i0, i1, ...)] per level from `{i}` templates, levels from 0 or from 1."""
    index = {name: k for k, name in enumerate(header)}
    first = templates[0]
    if first.format(i=0) in index:
        start = 0
    elif first.format(i=1) in index:
        start = 1
    else:
        raise _missing_column(path, hline, header, first.format(i=0), f"{what}, from template {first!r} with i = 0 or 1")
    out = []
    i = start
    while levels is None or i < start + levels:
        names = [t.format(i=i) for t in templates]
        present = [nm in index for nm in names]
        if levels is None and not any(present):
            break
        for nm, ok, t in zip(names, present, templates):
            if not ok:
                raise _missing_column(path, hline, header, nm, f"{what}, level {i} of template {t!r}")
        out.append(tuple(index[nm] for nm in names))
        i += 1
    return out


def _is_empty_cell(text: str) -> bool:
    return not text.strip() or text.strip().lower() in ("nan", "null", "none")


def _parse_csv(path, fi, col: _Collector, clock: _Clock, opts: dict) -> None:
    rep = col.report
    reader = csv.reader(_text_lines(path))
    header, hline = _read_header(path, reader, rep)
    index = {name: k for k, name in enumerate(header)}
    ts_name = opts["ts_column"]
    if ts_name is None:
        ts_name = next((n for n in _CSV_TS_NAMES if n in index), None)
        if ts_name is None:
            raise _missing_column(path, hline, header, _CSV_TS_NAMES[0],
                                  f"timestamp; none of {', '.join(_CSV_TS_NAMES)} found, pass csv_ts_column")
    elif ts_name not in index:
        raise _missing_column(path, hline, header, ts_name, "timestamp, csv_ts_column")
    ts_col = index[ts_name]
    bid_cols = _level_columns(path, hline, header, (opts["bid_price"], opts["bid_size"]), opts["levels"], "bid levels")
    ask_cols = _level_columns(path, hline, header, (opts["ask_price"], opts["ask_size"]), opts["levels"], "ask levels")
    ncols = len(header)

    def side(row, line, cols, name):
        out = []
        for k, (ip, iq) in enumerate(cols):
            p_text, q_text = row[ip], row[iq]
            if _is_empty_cell(p_text) and _is_empty_cell(q_text):
                rep.add("empty_levels_skipped")
                continue
            try:
                out.append((_units(p_text), _units(q_text)))
            except ValueError as exc:
                raise FeedError(
                    path, line,
                    f"{name} level {k + 1} (columns {header[ip]!r}, {header[iq]!r}): expected decimal "
                    f"price and size, got {p_text!r}, {q_text!r} ({exc})",
                ) from None
        return out

    for row in reader:
        line = reader.line_num
        if not row or not any(c.strip() for c in row):
            rep.count("blank")
            continue
        if len(row) != ncols:
            raise FeedError(path, line, f"expected {ncols} columns as in the header (line {hline}), got {len(row)}")
        rep.count("snapshot")
        ts = clock.ns(line, row[ts_col].strip(), f"column {ts_name!r}")
        col.snapshot(path, fi, line, ts, ts, side(row, line, bid_cols, "bid"), side(row, line, ask_cols, "ask"))


def _parse_bitfinex(path, fi, col: _Collector) -> None:
    rep = col.report
    prev = None
    prev_levels = None
    ts_cache: dict = {}
    for line, raw in iter_lines(path):
        if not raw.strip():
            rep.count("blank")
            continue
        cols = raw.split(b"\t")
        if len(cols) != 9:
            raise FeedError(path, line, f"expected 9 tab-separated columns (Bitfinex book view), got {len(cols)}")
        rep.count("snapshot")
        sides = []
        stamps = set()
        for name, text in (("bids", cols[6]), ("asks", cols[7])):
            try:
                levels = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise FeedError(path, line, f"column {7 if name == 'bids' else 8} ({name}): malformed JSON ({exc})") from None
            if not isinstance(levels, list):
                raise FeedError(path, line, f"{name}: expected a JSON list of {{price, amount, timestamp}}")
            out = []
            for k, lv in enumerate(levels):
                try:
                    out.append((_cached_units(lv["price"]), _cached_units(lv["amount"])))
                    stamps.add(lv["timestamp"])
                except (TypeError, KeyError, ValueError) as exc:
                    raise FeedError(
                        path, line,
                        f"{name} level {k + 1}: expected {{\"price\", \"amount\", \"timestamp\"}} with decimal "
                        f"values, got {str(lv)[:120]} ({type(exc).__name__}: {exc})",
                    ) from None
            sides.append(out)
        if not stamps:
            raise FeedError(path, line, "no level timestamp: the snapshot time is unknown")
        exch = 0
        for s in stamps:
            ns = ts_cache.get(s)
            if ns is None:
                try:
                    ns = int(Decimal(_decimal_text(s)) * 1_000_000_000)
                except ValueError as exc:
                    raise FeedError(path, line, f"level timestamp: {exc}") from None
                ts_cache[s] = ns
            exch = max(exch, ns)
        if prev is not None and cols[6] == prev[0] and cols[7] == prev[1]:
            rep.add("repeated_rows")
        if prev_levels is not None and sides == prev_levels:
            rep.add("unchanged_books")
        prev, prev_levels = (cols[6], cols[7]), sides
        col.snapshot(path, fi, line, exch, exch, sides[0], sides[1])


def _parse_coinbase(path, fi, col: _Collector, tick: int, lot: int) -> None:
    rep = col.report
    reader = csv.reader(_text_lines(path))
    header, hline = _read_header(path, reader, rep)
    index = {name: k for k, name in enumerate(header)}
    for name in ("system_time", "midpoint"):
        if name not in index:
            raise _missing_column(path, hline, header, name, "Coinbase book table")
    i_time, i_mid = index["system_time"], index["midpoint"]
    cols = {
        s: _level_columns(path, hline, header, (f"{s}_distance_{{i}}", f"{s}_notional_{{i}}"), None, f"{s} levels")
        for s in ("bids", "asks")
    }
    tick_d = Decimal(tick).scaleb(-12)
    lot_d = Decimal(lot).scaleb(-12)
    ncols = len(header)
    clock = _Clock(path, "auto")
    max_err = Decimal(0)
    limit = Decimal("0.01")
    with localcontext() as ctx:
        ctx.prec = 60
        for row in reader:
            line = reader.line_num
            if not row or not any(c.strip() for c in row):
                rep.count("blank")
                continue
            if len(row) != ncols:
                raise FeedError(path, line, f"expected {ncols} columns as in the header (line {hline}), got {len(row)}")
            rep.count("snapshot")
            ts = clock.ns(line, row[i_time], "column 'system_time'")
            try:
                mid = Decimal(_decimal_text(row[i_mid]))
            except ValueError as exc:
                raise FeedError(path, line, f"column 'midpoint': {exc}") from None
            sides = []
            for s in ("bids", "asks"):
                out = []
                for k, (i_d, i_n) in enumerate(cols[s]):
                    try:
                        dist = Decimal(row[i_d].strip())
                        notional = Decimal(_decimal_text(row[i_n]))
                        if not dist.is_finite():
                            raise ValueError(f"distance {row[i_d]!r} is not a number")
                    except (InvalidOperation, ValueError) as exc:
                        raise FeedError(
                            path, line,
                            f"{s} level {k}: expected numeric {header[i_d]!r} and {header[i_n]!r}, got "
                            f"{row[i_d]!r}, {row[i_n]!r} ({exc})",
                        ) from None
                    exact = mid * (1 + dist) / tick_d
                    ticks = exact.to_integral_value(ROUND_HALF_EVEN)
                    err = abs(exact - ticks)
                    if err > max_err:
                        max_err = err
                    if err > limit:
                        raise FeedError(
                            path, line,
                            f"{s} level {k}: price midpoint*(1+distance) = {exact * tick_d} is {err:.4f} ticks off "
                            f"the {units_to_str(tick)} grid (more than 0.01 tick)",
                        )
                    if ticks <= 0 or notional < 0:
                        raise FeedError(path, line, f"{s} level {k}: price must be > 0 and notional >= 0")
                    lots = (notional / (ticks * tick_d) / lot_d).to_integral_value(ROUND_HALF_EVEN)
                    out.append((int(ticks) * tick, int(lots) * lot))
                sides.append(out)
            col.snapshot(path, fi, line, ts, ts, sides[0], sides[1])
    rep.extra["max_price_rounding_error_ticks"] = max(
        rep.extra.get("max_price_rounding_error_ticks", 0.0), float(max_err)
    )


def _parse_bitstamp(path, fi, col: _Collector) -> None:
    rep = col.report
    counts: dict = {}
    for line, raw in iter_lines(path):
        if not raw.strip():
            counts["blank"] = counts.get("blank", 0) + 1
            continue
        parts = raw.split(b" ", 2)
        if len(parts) != 3 or not _BITSTAMP_TS.fullmatch(parts[0]):
            raise FeedError(path, line, "expected '<local_ts_ms (13 digits)> <type> <json>'")
        kind = parts[1].decode("ascii", "replace")
        if kind in _BITSTAMP_ORDER_TYPES:
            counts[kind] = counts.get(kind, 0) + 1
            continue
        if kind not in ("order_book", "trade"):
            raise FeedError(
                path, line,
                f"unknown message type {kind!r} (expected order_book, trade, order_created, order_changed, order_deleted)",
            )
        try:
            msg = orjson.loads(parts[2])
        except orjson.JSONDecodeError as exc:
            raise FeedError(path, line, f"{kind}: malformed JSON ({exc})") from None
        if not isinstance(msg, dict):
            raise FeedError(path, line, f"{kind}: expected a JSON object")
        local = int(parts[0]) * 1_000_000
        if kind == "order_book":
            counts["order_book"] = counts.get("order_book", 0) + 1
            bids = _levels_pairs(path, line, msg.get("bids"), "bids")
            asks = _levels_pairs(path, line, msg.get("asks"), "asks")
            col.snapshot(path, fi, line, 0, local, bids, asks)
        else:
            counts["trade"] = counts.get("trade", 0) + 1
            tid = msg.get("id")
            if not isinstance(tid, int) or isinstance(tid, bool) or tid < 0:
                raise FeedError(path, line, f"trade: field 'id' must be a non-negative integer, got {tid!r}")
            try:
                p = _units(msg["price"])
                q = _units(msg["amount"])
            except KeyError as exc:
                raise FeedError(path, line, f"trade: missing field {exc.args[0]!r}") from None
            except (TypeError, ValueError) as exc:
                raise FeedError(path, line, f"trade: price and amount must be decimal numbers ({exc})") from None
            col.trade(path, fi, line, 0, local, tid, p, q, _END)
    for kind, n in counts.items():
        rep.count(kind, n)


def _lobster_day_start_ns(path, date: str) -> int:
    """UTC ns of midnight America/New_York on `date` (LOBSTER times are seconds after that)."""
    try:
        from zoneinfo import ZoneInfo

        tz = ZoneInfo("America/New_York")
    except Exception as exc:  # no tz database on this machine
        raise FeedError(path, None, f"cannot load time zone America/New_York for LOBSTER times ({exc})") from None
    y, m, d = (int(x) for x in date.split("-"))
    noon = _dt.datetime(y, m, d, 12, tzinfo=tz)  # offset at noon: trading hours never cross a DST switch
    offset = int(noon.utcoffset().total_seconds())
    return (calendar.timegm((y, m, d, 0, 0, 0)) - offset) * 1_000_000_000


def lobster_message_path(path) -> Path:
    """The `_message_` file beside a LOBSTER `_orderbook_` file."""
    path = Path(path)
    name = path.name
    k = name.rfind("orderbook")
    return path.with_name(name[:k] + "message" + name[k + len("orderbook"):])


def _lobster_info(path) -> tuple[str, str]:
    m = _LOBSTER_NAME.match(Path(path).name)
    if m is None:
        raise FeedError(
            path, None,
            "LOBSTER: cannot tell the symbol and date from the file name; expected "
            "TICKER_YYYY-MM-DD_<start>_<end>_orderbook_<levels>.csv",
        )
    return m["symbol"], m["date"]


def _parse_lobster(path, fi, col: _Collector) -> None:
    rep = col.report
    _, date = _lobster_info(path)
    msg_path = lobster_message_path(path)
    if not msg_path.is_file():
        raise FeedError(
            path, None,
            f"LOBSTER orderbook files have no time column; expected the message file {msg_path} beside it",
        )
    day0 = _lobster_day_start_ns(path, date)
    rep.add("dummy_levels_skipped", 0)  # always reported, even when none
    messages = iter_lines(msg_path)
    for line, raw in iter_lines(path):
        msg = next(messages, None)
        if msg is None:
            raise FeedError(msg_path, line, f"message file ends before orderbook line {line} of {Path(path).name}")
        if not raw.strip():
            rep.count("blank")
            continue
        rep.count("snapshot")
        t_text = msg[1].split(b",", 1)[0].decode("ascii", "replace").strip()
        try:
            secs = Decimal(_decimal_text(t_text))
        except ValueError as exc:
            raise FeedError(msg_path, line, f"time (column 1, seconds after midnight): {exc}") from None
        ts = day0 + int(secs * 1_000_000_000)
        cells = raw.split(b",")
        if len(cells) % 4 or not cells:
            raise FeedError(path, line, f"expected 4 columns per level (ask px, ask size, bid px, bid size), got {len(cells)}")
        try:
            vals = [int(c) for c in cells]
        except ValueError:
            bad = next(c for c in cells if not c.strip().lstrip(b"-").isdigit())
            raise FeedError(path, line, f"expected integer prices (USD x 10000) and sizes, got {bad[:40]!r}") from None
        bids, asks = [], []
        for k in range(0, len(vals), 4):
            ap, aq, bp, bq = vals[k : k + 4]
            for px, q, out, dummy in ((ap, aq, asks, _LOBSTER_DUMMY), (bp, bq, bids, -_LOBSTER_DUMMY)):
                if px == dummy:
                    rep.add("dummy_levels_skipped")
                    continue
                if px <= 0 or q < 0:
                    raise FeedError(path, line, f"level {k // 4 + 1}: expected price > 0 and size >= 0, got {px}, {q}")
                out.append((px * _LOBSTER_PRICE_UNITS, q * SCALE))
        col.snapshot(path, fi, line, ts, ts, bids, asks)
    if next(messages, None) is not None:
        raise FeedError(msg_path, None, f"message file has more lines than {Path(path).name}: not its pair")


# ---- events ------------------------------------------------------------------------------------


def _check_grid(col: _Collector, paths, step: int, what: str, option: str) -> None:
    """With a user-given step, find the first value off the grid (fast when the gcd is on it)."""
    g = col.price_gcd if what == "price" else col.qty_gcd
    if g % step == 0:
        return
    for r in col.records:
        fi, line = r[1], r[2]
        if r[0]:
            vals = [lv[0 if what == "price" else 1] for lv in r[6] + r[7]]
        else:
            vals = [r[6] if what == "price" else r[7]]
        for v in vals:
            if v % step:
                raise FeedError(
                    paths[fi], line,
                    f"{what} {units_to_str(v)} is not a multiple of the {option} {units_to_str(step)}",
                )


def _to_events(records: list, tick: int, lot: int) -> np.ndarray:
    rows: list = []
    append, extend = rows.append, rows.extend
    for r in records:
        if r[0]:
            _, fi, ln, exch, local, sid, bids, asks = r
            n = len(bids) + len(asks)
            append((_CLEAR, 0 if n else _END, fi, ln, exch, local, 0, 0, sid, 0, sid))
            if not n:
                continue
            extend([(_SNAP, _BID, fi, ln, exch, local, p // tick, q // lot, sid, 0, sid) for p, q in bids])
            extend([(_SNAP, _ASK, fi, ln, exch, local, p // tick, q // lot, sid, 0, sid) for p, q in asks])
            last = rows[-1]
            rows[-1] = (last[0], last[1] | _END) + last[2:]
        else:
            _, fi, ln, exch, local, tid, p, q, flags = r
            append((_TRADE, flags, fi, ln, exch, local, p // tick, q // lot, tid, 0, 0))
    return np.array(rows, dtype=EVENT_DTYPE)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- public API --------------------------------------------------------------------------------


def sniff_format(path) -> str | None:
    """Guess the snapshot format of a file from its first non-blank line(s); None if it does not
    look like one of SNAPSHOT_FORMATS (e.g. a Binance raw feed). A csv table is recognised by
    column names containing 'bid' and 'ask'. Raises FeedError if the file cannot be read."""
    first = None
    for lineno, raw in iter_lines(path):
        if raw.strip():
            first = raw.lstrip(b"\xef\xbb\xbf")
            break
        if lineno > 100:
            break
    if first is None:
        return None
    if re.match(rb"[0-9]{10,19} (order_book|trade|order_created|order_changed|order_deleted) \{", first):
        return "bitstamp"
    if first.startswith(b"{"):
        try:
            msg = orjson.loads(first)
        except orjson.JSONDecodeError:
            return None
        if isinstance(msg, dict) and {"ts", "bids", "asks"} <= msg.keys():
            return "jsonl"
        return None
    cols = first.split(b"\t")
    if len(cols) == 9 and cols[6].lstrip().startswith(b"[") and b'"price"' in cols[6][:40]:
        return "bitfinex"
    try:
        header = next(csv.reader([first.decode("utf-8")]))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None
    names = {h.strip() for h in header}
    if {"system_time", "midpoint", "bids_distance_0", "bids_notional_0"} <= names:
        return "coinbase"
    if len(header) >= 4 and len(header) % 4 == 0 and all(re.fullmatch(r"-?[0-9]+", h.strip()) for h in header):
        return "lobster" if "orderbook" in Path(path).name else None
    lower = [h.lower() for h in names]
    if len(header) >= 3 and any("bid" in h for h in lower) and any("ask" in h for h in lower):
        return "csv"
    return None


def convert_snapshot_files(
    paths,
    fmt: str,
    *,
    symbol: str | None = None,
    exchange: str | None = None,
    tick_size: str | None = None,
    lot_size: str | None = None,
    csv_ts_column: str | None = None,
    csv_ts_unit: str = "auto",
    csv_bid_price: str | None = None,
    csv_bid_size: str | None = None,
    csv_ask_price: str | None = None,
    csv_ask_size: str | None = None,
    csv_levels: int | None = None,
    market: str | None = None,
) -> tuple[np.ndarray, dict]:
    """Convert snapshot-table files of one format, in the order given, to (events, meta).

    ``csv_ts_unit`` (auto, s, ms, us, ns) applies to jsonl and csv timestamps; ISO-8601 strings are
    always recognised. The other ``csv_*`` options name the csv columns: templates with ``{i}``
    (defaults ``bid_price_{i}``, ``bid_size_{i}``, ``ask_price_{i}``, ``ask_size_{i}``) and the level
    count (default: as many as the header has, from 0 or from 1).
    """
    if fmt not in SNAPSHOT_FORMATS:
        raise ValueError(f"format: expected one of {', '.join(SNAPSHOT_FORMATS)}, got {fmt!r}")
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no input files")
    if len(paths) > 65535:
        raise ValueError("a dataset holds at most 65535 source files")
    if csv_ts_unit not in ("auto", *_TS_MULT):
        raise ValueError(f"csv_ts_unit: expected auto, s, ms, us or ns, got {csv_ts_unit!r}")
    templates = {"csv_bid_price": csv_bid_price, "csv_bid_size": csv_bid_size,
                 "csv_ask_price": csv_ask_price, "csv_ask_size": csv_ask_size}
    if fmt != "csv":
        given = [k for k, v in templates.items() if v is not None]
        given += ["csv_ts_column"] if csv_ts_column is not None else []
        given += ["csv_levels"] if csv_levels is not None else []
        if given:
            raise ValueError(f"{', '.join(given)}: only for format 'csv', not {fmt!r}")
    for name, value in templates.items():
        if value is not None and "{i}" not in value:
            raise ValueError(f"{name}: expected a column name template with '{{i}}' for the level, got {value!r}")
    if csv_levels is not None and csv_levels < 1:
        raise ValueError(f"csv_levels: expected >= 1, got {csv_levels}")
    tick = parse_step(tick_size, "tick_size") if tick_size else None
    lot = parse_step(lot_size, "lot_size") if lot_size else None

    default_exchange, default_symbol = _PRESETS[fmt]
    if fmt == "lobster" and symbol is None:
        symbols = {_lobster_info(p)[0] for p in paths}
        if len(symbols) > 1:
            raise ValueError(f"LOBSTER files of several symbols ({', '.join(sorted(symbols))}): convert them apart")
        default_symbol = symbols.pop()

    report = SnapshotReport()
    col = _Collector(report)
    sources = []
    for fi, path in enumerate(paths):
        source = {"name": path.name, "sha256": None, "format": fmt}
        if fmt == "jsonl":
            _parse_jsonl(path, fi, col, _Clock(path, csv_ts_unit))
        elif fmt == "csv":
            opts = {
                "ts_column": csv_ts_column,
                "bid_price": csv_bid_price or _CSV_DEFAULT_TEMPLATES[0],
                "bid_size": csv_bid_size or _CSV_DEFAULT_TEMPLATES[1],
                "ask_price": csv_ask_price or _CSV_DEFAULT_TEMPLATES[2],
                "ask_size": csv_ask_size or _CSV_DEFAULT_TEMPLATES[3],
                "levels": csv_levels,
            }
            _parse_csv(path, fi, col, _Clock(path, csv_ts_unit), opts)
        elif fmt == "bitfinex":
            _parse_bitfinex(path, fi, col)
        elif fmt == "coinbase":
            _parse_coinbase(path, fi, col, tick or SCALE // 100, lot or SCALE // 10**8)
        elif fmt == "bitstamp":
            _parse_bitstamp(path, fi, col)
        else:
            _parse_lobster(path, fi, col)
            msg_path = lobster_message_path(path)
            source["message_file"] = {"name": msg_path.name, "sha256": _sha256(msg_path)}
        source["sha256"] = _sha256(path)
        sources.append(source)

    # Tick and lot: the option (values checked against it), else the gcd of what the data holds.
    # Coinbase levels are computed, not read: they are rounded to the tick / lot grid above.
    if fmt == "coinbase":
        tick_source = "option" if tick_size else "coinbase preset: midpoint*(1+distance) rounded to 0.01 USD"
        lot_source = "option" if lot_size else "coinbase preset: notional/price rounded to 1e-8 BTC"
        tick, lot = tick or SCALE // 100, lot or SCALE // 10**8
    else:
        tick_source = "option" if tick else "gcd of all prices in the data"
        lot_source = "option" if lot else "gcd of all non-zero sizes in the data"
        if tick:
            _check_grid(col, paths, tick, "price", "tick size")
        else:
            tick = col.price_gcd or SCALE
        if lot:
            _check_grid(col, paths, lot, "qty", "lot size")
        else:
            lot = col.qty_gcd or SCALE
    for what, vmax, step in (("price", col.price_max, tick), ("qty", col.qty_max, lot)):
        if vmax // step > _INT64_MAX:
            raise ValueError(f"{what} {units_to_str(vmax)} / {units_to_str(step)} does not fit in 64 bits")

    if fmt == "bitfinex":
        report.extra.setdefault("repeated_rows", 0)
        report.extra.setdefault("unchanged_books", 0)
        report.notes.append(
            "repeated_rows: rows whose bids and asks columns equal the previous row's (level timestamps "
            "included); unchanged_books: same prices and amounts as the previous row. All rows are kept."
        )
        report.notes.append("exch_ts = max level 'timestamp'; column 9 (local time, UTC+1) is not used")
    elif fmt == "coinbase":
        report.notes.append("cancel/limit/market notional flows and buys/sells are not converted")
    elif fmt == "bitstamp":
        report.extra["l3_order_events"] = "counted, not converted"
        report.extra["trade_side"] = "not in the data: TRADE events have no BID/ASK aggressor flag"
        report.notes.append("order_book has no exchange time: exch_ts = 0, local_ts = the line's receive time")
    elif fmt == "lobster":
        report.extra["time_zone"] = "America/New_York (LOBSTER times are seconds after local midnight)"
    report.notes.append("backward_ts_steps: snapshots kept in file order")

    events = _to_events(col.records, tick, lot)
    meta = {
        "format": "trader.events/1",
        "exchange": exchange or default_exchange,
        "market": market or "spot",
        "symbol": symbol or default_symbol,
        "tick_size": units_to_str(tick),
        "lot_size": units_to_str(lot),
        "tick_size_source": tick_source,
        "lot_size_source": lot_source,
        "qty_unit": "shares" if fmt == "lobster" else "base asset",
        "sources": sources,
        "report": report.as_dict(),
    }
    return events, meta
