"""Binance raw websocket feeds (the hftbacktest collector format) to event arrays.

Each line is ``<local_receive_ts> <json>``; the JSON is a REST depth snapshot
(``{"lastUpdateId": ..., "bids": ..., "asks": ...}``) or a combined-stream message
(``{"stream": "<sym>@<kind>", "data": {...}}``) of kind depth diff, bookTicker or trade.
See ../shared/data/README.md section 1 for the format and its quirks.

Book reconstruction follows Binance's documented procedure ("How to manage a local order book
correctly", spot and futures API docs):

1. buffer the diffs that arrive before the snapshot;
2. drop buffered diffs with ``u <= lastUpdateId``;
3. apply the rest in order; spot chains ``U == previous u + 1``, futures chain ``pu == previous u``.
   The first spot diff must have ``U <= lastUpdateId + 1``; on futures, update ids skip values, so the
   first diff with ``u > lastUpdateId`` starts the chain (data README, USD-M ETH quirk).

Nothing is dropped silently: every line is counted by kind in the conversion report.
"""

from __future__ import annotations

import hashlib
from math import gcd
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from trader.data.errors import FeedError
from trader.data.events import EVENT_DTYPE, EventFlag, EventKind
from trader.data.fixed_point import (
    SCALE,
    check_int64,
    parse_step,
    parse_units,
    units_to_str,
)
from trader.data.rawfile import iter_lines

_TS_UNITS = {19: ("ns", 1), 16: ("us", 1_000), 13: ("ms", 1_000_000)}
_DEPTH_KINDS = {"depth", "depth@0ms", "depth@100ms", "depth@250ms", "depth@500ms", "depth@1000ms"}
_MS = 1_000_000
_INT64_MAX = 2**63 - 1  # event timestamps, prices and sizes are int64

_BID, _ASK, _END = int(EventFlag.BID), int(EventFlag.ASK), int(EventFlag.END_OF_MESSAGE)
_CLEAR, _SNAP, _DELTA = int(EventKind.BOOK_CLEAR), int(EventKind.BOOK_SNAPSHOT), int(EventKind.BOOK_DELTA)
_TRADE, _TICKER = int(EventKind.TRADE), int(EventKind.BOOK_TICKER)


@dataclass
class Instrument:
    exchange: str
    market: str  # spot | usdm | coinm
    symbol: str  # upper case, as in the data's "s" field

    @property
    def key(self) -> str:
        return f"{self.exchange}_{self.market}_{self.symbol.lower()}"


@dataclass
class FileInfo:
    path: Path
    instrument: Instrument
    first_local_ns: int
    ts_unit: str
    has_snapshot: bool  # a REST snapshot line anywhere in the file: it starts a new sequence


@dataclass
class ConversionReport:
    """Counts of every kind of line and what happened to it; gaps and resyncs with their places."""

    lines: dict = field(default_factory=dict)  # line kind -> count
    diffs_applied: int = 0
    diffs_stale: int = 0  # buffered diffs with u <= lastUpdateId, dropped by the procedure
    diffs_unapplied: int = 0  # diffs waiting for a snapshot that never came (resync mode)
    trades_excluded: dict = field(default_factory=dict)  # futures X != MARKET, by X
    ignored_streams: dict = field(default_factory=dict)
    gaps: list = field(default_factory=list)
    resyncs: int = 0
    crossed: list = field(default_factory=list)  # crossed books after a message (resync mode)
    tickers: dict = field(default_factory=dict)  # bookTicker comparison at equal update ids

    def count(self, kind: str) -> None:
        self.lines[kind] = self.lines.get(kind, 0) + 1

    def as_dict(self) -> dict:
        return {
            "lines": dict(self.lines),
            "diffs_applied": self.diffs_applied,
            "diffs_stale": self.diffs_stale,
            "diffs_unapplied": self.diffs_unapplied,
            "trades_excluded": dict(self.trades_excluded),
            "ignored_streams": dict(self.ignored_streams),
            "gaps": list(self.gaps),
            "resyncs": self.resyncs,
            "crossed": list(self.crossed),
            "tickers": dict(self.tickers),
        }


# ---- reading lines -----------------------------------------------------------------------------


def _split_line(path, lineno: int, raw: bytes):
    sp = raw.find(b" ")
    if sp <= 0:
        raise FeedError(path, lineno, "expected '<local_receive_ts> <json>' (no space found)")
    ts_text = raw[:sp]
    if not ts_text.isdigit():
        raise FeedError(path, lineno, f"local timestamp must be an integer, got {ts_text[:40]!r}")
    try:
        msg = orjson.loads(raw[sp + 1 :])
    except orjson.JSONDecodeError as exc:
        raise FeedError(path, lineno, f"malformed JSON ({exc})") from None
    if not isinstance(msg, dict):
        raise FeedError(path, lineno, "expected a JSON object")
    return ts_text, msg


def _ts_unit(path, lineno: int, ts_text: bytes):
    unit = _TS_UNITS.get(len(ts_text))
    if unit is None:
        raise FeedError(
            path,
            lineno,
            f"local timestamp {ts_text.decode()!r} has {len(ts_text)} digits; expected 19 (ns), "
            "16 (us) or 13 (ms)",
        )
    return unit


def _stream_kind(path, lineno: int, msg: dict) -> tuple[str, str, dict]:
    stream = msg.get("stream")
    data = msg.get("data")
    if not isinstance(stream, str) or not isinstance(data, dict):
        raise FeedError(
            path, lineno, "expected a REST snapshot (lastUpdateId) or a combined-stream message "
            "with 'stream' and 'data'"
        )
    at = stream.find("@")
    if at <= 0:
        raise FeedError(path, lineno, f"stream name {stream!r} is not '<symbol>@<kind>'")
    return stream[:at], stream[at + 1 :], data


def scan_file(path: str | Path) -> FileInfo:
    """Read a file once without decoding every message: its instrument (from the first depth
    message), its first local timestamp and unit, and whether it holds a REST snapshot."""
    path = Path(path)
    first_ns = None
    unit_name = None
    instrument = None
    has_snapshot = False
    for lineno, raw in iter_lines(path):
        if not raw.strip():
            continue
        if instrument is not None:
            if not has_snapshot and b'"lastUpdateId"' in raw[:64]:
                has_snapshot = True
            continue
        ts_text, msg = _split_line(path, lineno, raw)
        if first_ns is None:
            unit_name, mult = _ts_unit(path, lineno, ts_text)
            first_ns = int(ts_text) * mult
        if "lastUpdateId" in msg:
            has_snapshot = True
            continue
        _, kind, data = _stream_kind(path, lineno, msg)
        if kind in _DEPTH_KINDS:
            symbol = data.get("s")
            if not isinstance(symbol, str):
                raise FeedError(path, lineno, "depth message: missing field 's' (symbol)")
            if "ps" in data:
                market = "coinm"
            elif "pu" in data:
                market = "usdm"
            else:
                market = "spot"
            instrument = Instrument("binance", market, symbol)
    if instrument is None:
        raise FeedError(path, None, "no depth-diff message found: cannot tell the instrument")
    return FileInfo(path, instrument, first_ns, unit_name, has_snapshot)


def group_sequences(paths) -> list[list[FileInfo]]:
    """Split files into sequences: by instrument, ordered by first local timestamp, a new sequence
    at each file holding a REST snapshot (the recorder writes one when it (re)starts a book)."""
    by_instrument: dict[str, list[FileInfo]] = {}
    for p in paths:
        info = scan_file(p)
        by_instrument.setdefault(info.instrument.key, []).append(info)
    sequences = []
    for _, files in sorted(by_instrument.items()):
        files.sort(key=lambda f: f.first_local_ns)
        for f in files:
            if f.has_snapshot or not sequences or sequences[-1][0].instrument != f.instrument:
                sequences.append([f])
            else:
                sequences[-1].append(f)
    return sequences


def sequence_name(files: list[FileInfo]) -> str:
    """A folder name for a sequence: market_symbol_YYYYmmddTHHMMSS of its first local timestamp."""
    import datetime as _dt

    start = _dt.datetime.fromtimestamp(files[0].first_local_ns / 1e9, tz=_dt.timezone.utc)
    return f"{files[0].instrument.key}_{start:%Y%m%dT%H%M%S}"


# ---- parsing messages --------------------------------------------------------------------------


class _Parser:
    """Turns lines into message tuples with prices and sizes in 1e-12 units, tracking their gcd."""

    def __init__(self, report: ConversionReport, ignore_streams: set[str]):
        self.report = report
        self.ignore_streams = ignore_streams
        self.price_gcd = 0
        self.qty_gcd = 0

    def _levels(self, path, lineno, levels, name):
        if not isinstance(levels, list):
            raise FeedError(path, lineno, f"field {name!r}: expected a list of [price, qty]")
        out = []
        pg, qg = self.price_gcd, self.qty_gcd
        for lv in levels:
            try:
                if not isinstance(lv, list):  # a 2-char string or 2-key object would unpack too
                    raise TypeError("not a list")
                p_text, q_text = lv
                p = parse_units(p_text)
                q = parse_units(q_text)
            except (TypeError, ValueError) as exc:
                raise FeedError(
                    path, lineno, f"field {name!r}: expected [price, qty] decimal strings, got {lv!r} ({exc})"
                ) from None
            if p <= 0:
                raise FeedError(path, lineno, f"field {name!r}: price must be > 0, got {p_text!r}")
            pg = gcd(pg, p)
            if q:
                qg = gcd(qg, q)
            out.append((p, q))
        self.price_gcd, self.qty_gcd = pg, qg
        return out

    def _num(self, path, lineno, data, key, what):
        try:
            v = parse_units(data[key])
        except KeyError:
            raise FeedError(path, lineno, f"{what}: missing field {key!r}") from None
        except (TypeError, ValueError) as exc:
            raise FeedError(path, lineno, f"{what}: field {key!r}: {exc}") from None
        return v

    @classmethod
    def _ms(cls, path, lineno, data, key, what, default=None):
        """An exchange time in ms, returned in ns; it must fit the int64 event field."""
        v = cls._int(path, lineno, data, key, what, default)
        if v * _MS > _INT64_MAX:
            raise FeedError(path, lineno, f"{what}: field {key!r} = {v} ms is out of the int64 nanosecond range")
        return v * _MS

    @staticmethod
    def _int(path, lineno, data, key, what, default=None):
        v = data.get(key, default)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            if v is None:
                raise FeedError(path, lineno, f"{what}: missing field {key!r}")
            raise FeedError(path, lineno, f"{what}: field {key!r} must be a non-negative integer, got {v!r}")
        return v

    def parse_file(self, fi: int, info: FileInfo, out: list, until_ns: int | None = None) -> bool:
        """Append the file's messages to `out`; stop (returning False) at the first line received
        at or after `until_ns`."""
        path = info.path
        symbol = info.instrument.symbol
        rep = self.report
        unit_len = None
        mult = 1
        for lineno, raw in iter_lines(path):
            if not raw.strip():
                rep.count("blank")
                continue
            ts_text, msg = _split_line(path, lineno, raw)
            if unit_len is None:
                unit_len = len(ts_text)
                _, mult = _ts_unit(path, lineno, ts_text)
            elif len(ts_text) != unit_len:
                raise FeedError(
                    path, lineno,
                    f"local timestamp has {len(ts_text)} digits where earlier lines had {unit_len}: mixed units",
                )
            local = int(ts_text) * mult
            if local > _INT64_MAX:
                raise FeedError(path, lineno, f"local timestamp {ts_text.decode()} is out of the int64 nanosecond range")
            if until_ns is not None and local >= until_ns:
                return False
            if "lastUpdateId" in msg:
                rep.count("snapshot")
                L = self._int(path, lineno, msg, "lastUpdateId", "snapshot")
                sym = msg.get("symbol")
                if sym is not None and sym != symbol:
                    raise FeedError(path, lineno, f"snapshot symbol {sym!r}, expected {symbol!r}")
                exch = self._ms(path, lineno, msg, "E", "snapshot", 0)
                bids = self._levels(path, lineno, msg.get("bids"), "bids")
                asks = self._levels(path, lineno, msg.get("asks"), "asks")
                out.append(("S", fi, lineno, local, exch, L, bids, asks))
                continue
            prefix, kind, data = _stream_kind(path, lineno, msg)
            if kind in self.ignore_streams:
                rep.ignored_streams[kind] = rep.ignored_streams.get(kind, 0) + 1
                rep.count("ignored_stream")
                continue
            s = data.get("s")
            if s != symbol:
                raise FeedError(path, lineno, f"message for symbol {s!r} in a {symbol!r} sequence")
            if kind in _DEPTH_KINDS:
                rep.count("depth")
                what = "depth message"
                U = self._int(path, lineno, data, "U", what)
                u = self._int(path, lineno, data, "u", what)
                if u < U:
                    raise FeedError(path, lineno, f"depth message: u={u} < U={U}")
                pu = data.get("pu")
                if pu is not None:
                    pu = self._int(path, lineno, data, "pu", what)
                exch = self._ms(path, lineno, data, "E", what)
                bids = self._levels(path, lineno, data.get("b"), "b")
                asks = self._levels(path, lineno, data.get("a"), "a")
                if not bids and not asks:
                    rep.count("depth_without_levels")
                out.append(("D", fi, lineno, local, exch, U, u, pu, bids, asks))
            elif kind == "bookTicker":
                rep.count("bookTicker")
                what = "bookTicker"
                u = self._int(path, lineno, data, "u", what)
                exch = self._ms(path, lineno, data, "E", what, 0)
                vals = [self._num(path, lineno, data, k, what) for k in ("b", "B", "a", "A")]
                for v in (vals[1], vals[3]):
                    if v:
                        self.qty_gcd = gcd(self.qty_gcd, v)
                for v in (vals[0], vals[2]):
                    if v:
                        self.price_gcd = gcd(self.price_gcd, v)
                out.append(("K", fi, lineno, local, exch, u, *vals))
            elif kind == "trade":
                what = "trade"
                x = data.get("X")
                if x is not None and x != "MARKET":
                    rep.count("trade_excluded")
                    rep.trades_excluded[x] = rep.trades_excluded.get(x, 0) + 1
                    continue
                rep.count("trade")
                t = self._int(path, lineno, data, "t", what)
                exch = self._ms(path, lineno, data, "T", what)
                p = self._num(path, lineno, data, "p", what)
                q = self._num(path, lineno, data, "q", what)
                m = data.get("m")
                if not isinstance(m, bool):
                    raise FeedError(path, lineno, f"trade: field 'm' must be true or false, got {m!r}")
                if p <= 0 or q <= 0:
                    raise FeedError(path, lineno, "trade: price and qty must be > 0")
                self.price_gcd = gcd(self.price_gcd, p)
                self.qty_gcd = gcd(self.qty_gcd, q)
                out.append(("T", fi, lineno, local, exch, t, p, q, m))
            else:
                raise FeedError(
                    path, lineno,
                    f"unknown stream kind {kind!r} (expected depth, bookTicker or trade; "
                    "pass ignore_streams / --ignore-stream to skip it)",
                )
        return True


# ---- sequencing --------------------------------------------------------------------------------


def _sequence(messages: list, files: list[FileInfo], futures: bool, on_gap: str, report: ConversionReport):
    """Order the messages as they must be applied: yields message tuples and ("C", ...) clears."""
    out = []
    buffer: list = []
    state = "await"  # await (no snapshot yet) | sync (snapshot applied, first diff pending) | live
    last_u = 0

    def gap(d, expected: str):
        path = files[d[1]].path
        entry = {
            "file": path.name,
            "line": d[2],
            "prev_u": last_u,
            "U": d[5],
            "u": d[6],
            "pu": d[7],
            "expected": expected,
        }
        report.gaps.append(entry)
        if on_gap == "error":
            raise FeedError(
                path, d[2],
                f"update-id gap: expected {expected} (previous u={last_u}), got U={d[5]} u={d[6]}"
                + (f" pu={d[7]}" if d[7] is not None else "")
                + "; pass on_gap='resync' / --on-gap resync to resync from the next snapshot",
            )

    def take(d):
        nonlocal state, last_u, buffer
        u, U, pu = d[6], d[5], d[7]
        if state == "sync":
            if u <= last_u:
                report.diffs_stale += 1
                return
            if not futures and U > last_u + 1:
                gap(d, f"U <= lastUpdateId + 1 = {last_u + 1}")
                return resync(d)
        elif futures:
            if pu != last_u:
                gap(d, f"pu == {last_u}")
                return resync(d)
        elif U != last_u + 1:
            gap(d, f"U == {last_u + 1}")
            return resync(d)
        out.append(d)
        report.diffs_applied += 1
        last_u = u
        state = "live"

    def resync(d):
        nonlocal state, buffer
        report.resyncs += 1
        out.append(("C", d[1], d[2], d[3], d[4], d[6]))
        state = "await"
        buffer = [d]

    for m in messages:
        tag = m[0]
        if tag == "D":
            if futures and m[7] is None:
                raise FeedError(files[m[1]].path, m[2], "futures depth message without field 'pu'")
            if state == "await":
                buffer.append(m)
            else:
                take(m)
        elif tag == "S":
            out.append(m)
            state = "sync"
            last_u = m[5]
            pending, buffer = buffer, []
            for d in pending:
                take(d)
        else:
            out.append(m)
    report.diffs_unapplied += len(buffer)
    return out


# ---- events ------------------------------------------------------------------------------------


def _to_events(ordered: list, tick: int, lot: int, files: list[FileInfo]) -> np.ndarray:
    rows = []
    append = rows.append

    def _fits(q, d, what):
        try:
            return check_int64(q, what)
        except ValueError as exc:  # name the file and line, like every other bad value
            raise FeedError(files[d[1]].path, d[2], str(exc)) from None

    def ticks(v, d, what):
        q, r = divmod(v, tick)
        if r:
            raise FeedError(files[d[1]].path, d[2], f"{what} {units_to_str(v)} is not a multiple of the tick size {units_to_str(tick)}")
        return _fits(q, d, what)

    def lots(v, d, what):
        q, r = divmod(v, lot)
        if r:
            raise FeedError(files[d[1]].path, d[2], f"{what} {units_to_str(v)} is not a multiple of the lot size {units_to_str(lot)}")
        return _fits(q, d, what)

    def levels(d, bids, asks, kind, U, u, pu):
        fi, ln, local, exch = d[1], d[2], d[3], d[4]
        n = len(bids) + len(asks)
        i = 0
        for flag, side in ((_BID, bids), (_ASK, asks)):
            for p, q in side:
                i += 1
                f = flag | (_END if i == n else 0)
                append((kind, f, fi, ln, exch, local, ticks(p, d, "price"), lots(q, d, "qty"), u, U, pu))
        return n

    for m in ordered:
        tag = m[0]
        if tag == "D":
            _, fi, ln, local, exch, U, u, pu, bids, asks = m
            # A diff with no levels moves only the update id (checked above); it has no event.
            levels(m, bids, asks, _DELTA, U, u, pu or 0)
        elif tag == "S":
            _, fi, ln, local, exch, L, bids, asks = m
            n = len(bids) + len(asks)
            append((_CLEAR, 0 if n else _END, fi, ln, exch, local, 0, 0, L, 0, L))
            levels(m, bids, asks, _SNAP, 0, L, L)
        elif tag == "C":
            _, fi, ln, local, exch, u = m
            append((_CLEAR, _END, fi, ln, exch, local, 0, 0, u, 0, 0))
        elif tag == "K":
            _, fi, ln, local, exch, u, bp, bq, ap, aq = m
            append((_TICKER, _BID, fi, ln, exch, local, ticks(bp, m, "bid"), lots(bq, m, "bid qty"), u, 0, 0))
            append((_TICKER, _ASK | _END, fi, ln, exch, local, ticks(ap, m, "ask"), lots(aq, m, "ask qty"), u, 0, 0))
        else:  # trade
            _, fi, ln, local, exch, t, p, q, m_flag = m
            side = _ASK if m_flag else _BID  # m: buyer is maker, so the seller was the aggressor
            append((_TRADE, side | _END, fi, ln, exch, local, ticks(p, m, "price"), lots(q, m, "qty"), t, 0, 0))
    return np.array(rows, dtype=EVENT_DTYPE)


def _check_book(events: np.ndarray, files: list[FileInfo], on_gap: str, report: ConversionReport) -> None:
    """Replay the events through the C++ book: a crossed book after a whole message is bad data
    (an error, or recorded in the report in resync mode); the bookTicker check goes in the report."""
    from trader import _core

    check = _core.check_tickers(events)
    crossed = check["crossed"]
    if crossed and on_gap == "error":
        c = crossed[0]
        raise FeedError(
            files[c["file"]].path, c["line"],
            f"crossed book after the message with update id u={c['update_id']}: best bid {c['bid']} >= "
            f"best ask {c['ask']} (ticks); {check['replay']['crossed']} crossed message(s) in all",
        )
    report.crossed = [dict(c, file=files[c["file"]].path.name) for c in crossed]
    report.tickers = {k: check[k] for k in ("tickers", "compared", "matched", "mismatched")}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert_sequence(
    files: list[FileInfo],
    *,
    tick_size: str | None = None,
    lot_size: str | None = None,
    on_gap: str = "error",
    ignore_streams=(),
    duration_s: float | None = None,
):
    """Convert the files of one sequence (ordered, joined) to (events, meta). `duration_s` keeps
    only the lines received within that many seconds of the sequence's first line."""
    if on_gap not in ("error", "resync"):
        raise ValueError(f"on_gap: expected 'error' or 'resync', got {on_gap!r}")
    if len(files) > 65535:
        raise ValueError("a dataset holds at most 65535 source files")
    inst = files[0].instrument
    for f in files[1:]:
        if f.instrument != inst:
            raise FeedError(f.path, None, f"instrument {f.instrument.key} does not match {inst.key}")
    report = ConversionReport()
    parser = _Parser(report, set(ignore_streams))
    messages: list = []
    until_ns = None if duration_s is None else files[0].first_local_ns + int(duration_s * 1e9)
    for fi, info in enumerate(files):
        if not parser.parse_file(fi, info, messages, until_ns):
            files = files[: fi + 1]
            break
    if not any(m[0] == "S" for m in messages):
        raise FeedError(files[0].path, None, "no REST depth snapshot (lastUpdateId) in this sequence: the book cannot be built")
    ordered = _sequence(messages, files, inst.market != "spot", on_gap, report)
    tick = parse_step(tick_size, "tick_size") if tick_size else (parser.price_gcd or SCALE)
    lot = parse_step(lot_size, "lot_size") if lot_size else (parser.qty_gcd or SCALE)
    events = _to_events(ordered, tick, lot, files)
    _check_book(events, files, on_gap, report)
    meta = {
        "format": "trader.events/1",
        "exchange": inst.exchange,
        "market": inst.market,
        "symbol": inst.symbol,
        "tick_size": units_to_str(tick),
        "lot_size": units_to_str(lot),
        "tick_size_source": "option" if tick_size else "gcd of all prices in the data",
        "lot_size_source": "option" if lot_size else "gcd of all non-zero sizes in the data",
        "qty_unit": "contracts" if inst.market == "coinm" else "base asset",
        "sources": [
            {"name": f.path.name, "sha256": _sha256(f.path), "local_ts_unit": f.ts_unit} for f in files
        ],
        "report": report.as_dict(),
    }
    if duration_s is not None:
        meta["duration_s"] = duration_s
    return events, meta


def convert_files(paths, **kwargs) -> list[tuple[np.ndarray, dict]]:
    """Group raw files by instrument and convert each group: a list of (events, meta)."""
    return [convert_sequence(group, **kwargs) for group in group_sequences(paths)]
