"""The readable reference of the Binance raw-feed parser: the same rules as the C++ parser
(cpp/feed/binance_feed.cpp), in plain Python, line by line.

It is not used to convert data (the C++ parser is, through trader.data.binance). Tests and
benchmarks/bench_replay.py run both on every shared Binance file and on fuzzed input and require
identical event arrays and reports: ``binance.convert_sequence(files, parse=parse_sequence)`` runs
this one.

Rules (../shared/data/README.md section 1 for the format):

- A line is ``<local_receive_ts> <json>``. Blank lines are counted. A line identical to the
  previous non-blank line of the sequence is a duplicate: counted with its place, and skipped.
- The local timestamp has 19 (ns), 16 (us) or 13 (ms) digits, the same in a whole file. A timestamp
  below the previous line's is reported (count, largest step back, first places), not refused.
- The JSON is a REST snapshot (``lastUpdateId``) or a combined-stream message. Streams the user
  ignores and streams without book data (``NON_BOOK_STREAMS``, and all-market ``!...`` streams) are
  counted by name and skipped; depth diffs, bookTicker and trades are converted; any other stream is
  an error.
- Sequencing follows Binance's "How to manage a local order book correctly": diffs before the
  snapshot are buffered; after it, diffs with ``u <= lastUpdateId`` are stale; spot chains
  ``U == previous u + 1`` (the first one ``U <= lastUpdateId + 1``), futures ``pu == previous u``.
  A diff whose ``u`` is not above the book's update id once the chain runs is already in the book:
  the same diff again (same ``U`` and ``u``) is a duplicate, an older one is "behind"; both are
  skipped and reported (Binance: "ignore any event where u is <= lastUpdateId"). Anything else that
  breaks the chain is an update-id gap: an error, or (resync) a BOOK_CLEAR and a wait for the next
  snapshot.
- Prices and sizes are exact (1e-12 units); the tick and lot are the options or the gcd of all
  values parsed.
"""

from __future__ import annotations

from math import gcd

import numpy as np
import orjson

from trader.data.errors import FeedError, option_hint
from trader.data.events import EVENT_DTYPE, EventFlag, EventKind
from trader.data.fixed_point import SCALE, check_int64, parse_units, units_to_str
from trader.data.rawfile import iter_lines

_TS_MULT = {19: 1, 16: 1_000, 13: 1_000_000}
_DEPTH_KINDS = {"depth", "depth@0ms", "depth@100ms", "depth@250ms", "depth@500ms", "depth@1000ms"}
_MS = 1_000_000
_INT64_MAX = 2**63 - 1
_MAX_PLACES = 10  # places kept per kind of report entry; the counts are complete
_UNITS_LIMIT = 2**128  # prices and sizes are 128-bit counts of 1e-12 units (up to about 3.4e26)


def _units(text) -> int:
    v = parse_units(text)
    if v >= _UNITS_LIMIT:
        raise ValueError(f"number too large: {text!r}")
    return v

_BID, _ASK, _END = int(EventFlag.BID), int(EventFlag.ASK), int(EventFlag.END_OF_MESSAGE)
_CLEAR, _SNAP, _DELTA = int(EventKind.BOOK_CLEAR), int(EventKind.BOOK_SNAPSHOT), int(EventKind.BOOK_DELTA)
_TRADE, _TICKER = int(EventKind.TRADE), int(EventKind.BOOK_TICKER)


class _Stop(Exception):
    """A line received at or after until_ns: no further line or file is read."""


def _count(counts: list, key) -> None:
    for kv in counts:
        if kv[0] == key:
            kv[1] += 1
            return
    counts.append([key, 1])


def is_non_book(kind: str, non_book: tuple) -> bool:
    """kline_1m, ticker_1h, continuousKline_5m: the name before '@', then before its '_' suffix."""
    base = kind.split("@", 1)[0]
    if base in non_book:
        return True
    return "_" in base and base[: base.rfind("_")] in non_book


class _Parser:
    def __init__(self, paths, symbol: str, futures: bool, resync: bool, ignore_streams, non_book):
        self.paths = paths
        self.symbol = symbol
        self.futures = futures
        self.resync = resync
        self.ignore = set(ignore_streams)
        self.non_book = tuple(non_book)
        self.price_gcd = 0
        self.qty_gcd = 0
        self.r = {
            "lines": [], "diffs_applied": 0, "diffs_stale": 0, "diffs_unapplied": 0, "diffs_duplicate": 0,
            "diffs_behind": 0, "trades_excluded": [], "ignored_streams": [], "skipped_streams": [], "gaps": [],
            "resyncs": 0, "duplicate_lines": [], "duplicate_diffs": [], "behind_diffs": [], "clock_back": [],
            "clock_back_count": 0, "clock_back_max_ns": 0,
        }
        self.rows: list = []  # events with prices and sizes in units
        self.prev_line = None
        self.prev_local = None
        self.snapshot_seen = False
        self.state = "await"  # await (no snapshot) | sync (snapshot, first diff pending) | live
        self.last_u = 0
        self.last_U = 0
        self.buffer: list = []
        self.deferred: FeedError | None = None  # first sequencing error, raised once all is parsed

    # ---- fields

    def fail(self, fi, line, msg, hint=None):
        raise FeedError(self.paths[fi], line, msg, hint=hint)

    def uint(self, fi, line, obj, key, what, default=None):
        v = obj.get(key, default)
        if v is None:
            self.fail(fi, line, f"{what}: missing field {key!r}")
        if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v >= 2**64:
            self.fail(fi, line, f"{what}: field {key!r} must be a non-negative integer, got {v!r}")
        return v

    def ms(self, fi, line, obj, key, what, default=None):
        v = self.uint(fi, line, obj, key, what, default)
        if v * _MS > _INT64_MAX:
            self.fail(fi, line, f"{what}: field {key!r} = {v} ms is out of the int64 nanosecond range")
        return v * _MS

    def num(self, fi, line, obj, key, what):
        if key not in obj:
            self.fail(fi, line, f"{what}: missing field {key!r}")
        try:
            return _units(obj[key])
        except (TypeError, ValueError) as exc:
            self.fail(fi, line, f"{what}: field {key!r}: {exc}")

    def levels(self, fi, line, levels, name):
        if not isinstance(levels, list):
            self.fail(fi, line, f"field {name!r}: expected a list of [price, qty]")
        out = []
        for lv in levels:
            try:
                if not isinstance(lv, list):
                    raise TypeError("not a list")
                p_text, q_text = lv
                p, q = _units(p_text), _units(q_text)
            except (TypeError, ValueError) as exc:
                self.fail(fi, line, f"field {name!r}: expected [price, qty] decimal strings, got {lv!r} ({exc})")
            if p <= 0:
                self.fail(fi, line, f"field {name!r}: price must be > 0")
            self.price_gcd = gcd(self.price_gcd, p)
            if q:
                self.qty_gcd = gcd(self.qty_gcd, q)
            out.append((p, q))
        return out

    # ---- lines

    def parse_file(self, fi, until_ns):
        """Parse one file; _Stop at the first line received at or after until_ns."""
        mult = None
        unit_len = None
        for line, raw in iter_lines(self.paths[fi]):
            if not raw.strip():
                _count(self.r["lines"], "blank")
                continue
            if raw == self.prev_line:
                _count(self.r["lines"], "duplicate_line")
                if len(self.r["duplicate_lines"]) < _MAX_PLACES:
                    self.r["duplicate_lines"].append((fi, line))
                continue
            self.prev_line = raw
            sp = raw.find(b" ")
            if sp <= 0:
                self.fail(fi, line, "expected '<local_receive_ts> <json>' (no space found)")
            ts_text = raw[:sp]
            if not (ts_text.isdigit() and ts_text.isascii()):
                self.fail(fi, line, f"local timestamp must be an integer, got {ts_text[:40]!r}")
            try:
                msg = orjson.loads(raw[sp + 1:])
            except orjson.JSONDecodeError as exc:
                self.fail(fi, line, f"malformed JSON ({exc})")
            if not isinstance(msg, dict):
                self.fail(fi, line, "expected a JSON object")
            if unit_len is None:
                if len(ts_text) not in _TS_MULT:
                    self.fail(fi, line, f"local timestamp {ts_text.decode()!r} has {len(ts_text)} digits; expected "
                              "19 (ns), 16 (us) or 13 (ms)")
                unit_len, mult = len(ts_text), _TS_MULT[len(ts_text)]
            elif len(ts_text) != unit_len:
                self.fail(fi, line, f"local timestamp has {len(ts_text)} digits where earlier lines had {unit_len}: "
                          "mixed units")
            local = int(ts_text) * mult
            if local > _INT64_MAX:
                self.fail(fi, line, f"local timestamp {ts_text.decode()} is out of the int64 nanosecond range")
            if until_ns is not None and local >= until_ns:
                raise _Stop
            if self.prev_local is not None and local < self.prev_local:
                r = self.r
                r["clock_back_count"] += 1
                r["clock_back_max_ns"] = max(r["clock_back_max_ns"], self.prev_local - local)
                if len(r["clock_back"]) < _MAX_PLACES:
                    r["clock_back"].append((fi, line, self.prev_local, local))
            self.prev_local = local
            self.message(fi, line, local, msg)

    def message(self, fi, line, local, msg):
        r = self.r
        if "lastUpdateId" in msg:
            _count(r["lines"], "snapshot")
            last_id = self.uint(fi, line, msg, "lastUpdateId", "snapshot")
            sym = msg.get("symbol")
            if sym is not None and sym != self.symbol:
                self.fail(fi, line, f"snapshot symbol {sym!r}, expected {self.symbol!r}")
            exch = self.ms(fi, line, msg, "E", "snapshot", 0)
            bids = self.levels(fi, line, msg.get("bids"), "bids")
            asks = self.levels(fi, line, msg.get("asks"), "asks")
            self.on_snapshot(fi, line, local, exch, last_id, bids, asks)
            return
        stream, data = msg.get("stream"), msg.get("data")
        if not isinstance(stream, str) or not isinstance(data, dict):
            self.fail(fi, line, "expected a REST snapshot (lastUpdateId) or a combined-stream message with "
                      "'stream' and 'data'")
        if stream.startswith("!"):  # an all-market stream (!ticker@arr, !bookTicker, ...)
            _count(r["lines"], "non_book_stream")
            _count(r["skipped_streams"], stream)
            return
        at = stream.find("@")
        if at <= 0:
            self.fail(fi, line, f"stream name {stream!r} is not '<symbol>@<kind>'")
        kind = stream[at + 1:]
        if kind in self.ignore:
            _count(r["ignored_streams"], kind)
            _count(r["lines"], "ignored_stream")
            return
        if is_non_book(kind, self.non_book):
            _count(r["skipped_streams"], kind)
            _count(r["lines"], "non_book_stream")
            return
        s = data.get("s")
        if not isinstance(s, str) or s != self.symbol:
            self.fail(fi, line, f"message for symbol {s!r} in a {self.symbol!r} sequence")
        if kind in _DEPTH_KINDS:
            _count(r["lines"], "depth")
            what = "depth message"
            U = self.uint(fi, line, data, "U", what)
            u = self.uint(fi, line, data, "u", what)
            if u < U:
                self.fail(fi, line, f"depth message: u={u} < U={U}")
            pu = data.get("pu")
            if pu is not None:
                pu = self.uint(fi, line, data, "pu", what)
            exch = self.ms(fi, line, data, "E", what)
            bids = self.levels(fi, line, data.get("b"), "b")
            asks = self.levels(fi, line, data.get("a"), "a")
            if not bids and not asks:
                _count(r["lines"], "depth_without_levels")
            self.on_diff((fi, line, local, exch, U, u, pu, bids, asks))
        elif kind == "bookTicker":
            _count(r["lines"], "bookTicker")
            what = "bookTicker"
            u = self.uint(fi, line, data, "u", what)
            exch = self.ms(fi, line, data, "E", what, 0)
            bp, bq, ap, aq = (self.num(fi, line, data, k, what) for k in ("b", "B", "a", "A"))
            for q in (bq, aq):
                if q:
                    self.qty_gcd = gcd(self.qty_gcd, q)
            for p in (bp, ap):
                if p:
                    self.price_gcd = gcd(self.price_gcd, p)
            self.emit(_TICKER, _BID, fi, line, exch, local, bp, bq, u, 0, 0)
            self.emit(_TICKER, _ASK | _END, fi, line, exch, local, ap, aq, u, 0, 0)
        elif kind == "trade":
            what = "trade"
            x = data.get("X")
            if x is not None and x != "MARKET":  # futures X: INSURANCE_FUND, ADL, ... (data README)
                _count(r["lines"], "trade_excluded")
                _count(r["trades_excluded"], x if isinstance(x, str) else orjson.dumps(x).decode())
                return
            _count(r["lines"], "trade")
            t = self.uint(fi, line, data, "t", what)
            exch = self.ms(fi, line, data, "T", what)
            p = self.num(fi, line, data, "p", what)
            q = self.num(fi, line, data, "q", what)
            m = data.get("m")
            if not isinstance(m, bool):
                self.fail(fi, line, f"trade: field 'm' must be true or false, got {m!r}")
            if p <= 0 or q <= 0:
                self.fail(fi, line, "trade: price and qty must be > 0")
            self.price_gcd = gcd(self.price_gcd, p)
            self.qty_gcd = gcd(self.qty_gcd, q)
            # m: the buyer is the maker, so the seller was the aggressor.
            self.emit(_TRADE, (_ASK if m else _BID) | _END, fi, line, exch, local, p, q, t, 0, 0)
        else:
            self.fail(fi, line, f"unknown stream kind {kind!r} (expected depth, bookTicker, trade or a known stream "
                      "without book data)", hint=option_hint("ignore_streams", kind))

    # ---- sequencing

    def emit(self, *row):
        if self.deferred is None:
            self.rows.append(row)

    def emit_levels(self, d, kind, u, U, pu, bids, asks):
        fi, line, local, exch = d[0], d[1], d[2], d[3]
        n = len(bids) + len(asks)
        i = 0
        for flag, side in ((_BID, bids), (_ASK, asks)):
            for p, q in side:
                i += 1
                self.emit(kind, flag | (_END if i == n else 0), fi, line, exch, local, p, q, u, U, pu)

    def on_snapshot(self, fi, line, local, exch, last_id, bids, asks):
        self.snapshot_seen = True
        if self.deferred is not None:
            return
        n = len(bids) + len(asks)
        self.emit(_CLEAR, 0 if n else _END, fi, line, exch, local, 0, 0, last_id, 0, last_id)
        self.emit_levels((fi, line, local, exch), _SNAP, last_id, 0, last_id, bids, asks)
        self.state, self.last_u, self.last_U = "sync", last_id, 0
        pending, self.buffer = self.buffer, []
        for d in pending:
            if self.state == "await":  # a resync in this loop: wait for the next snapshot
                self.buffer.append(d)
            else:
                self.take(d)
            if self.deferred is not None:
                return

    def on_diff(self, d):
        if self.deferred is not None:
            return
        if self.futures and d[6] is None:
            self.deferred = FeedError(self.paths[d[0]], d[1], "futures depth message without field 'pu'")
            return
        if self.state == "await":
            self.buffer.append(d)
        else:
            self.take(d)

    def gap(self, d, expected):
        fi, line, local, exch, U, u, pu = d[:7]
        self.r["gaps"].append((fi, line, self.last_u, U, u, pu, expected))
        if not self.resync:
            msg = f"update-id gap: expected {expected} (previous u={self.last_u}), got U={U} u={u}"
            if pu is not None:
                msg += f" pu={pu}"
            self.deferred = FeedError(self.paths[fi], line, msg, hint=option_hint("on_gap", "resync"))
            return
        self.r["resyncs"] += 1
        self.emit(_CLEAR, _END, fi, line, exch, local, 0, 0, u, 0, 0)
        self.state = "await"
        self.buffer = [d]

    def take(self, d):
        fi, line, local, exch, U, u, pu, bids, asks = d
        if self.state == "sync":
            if u <= self.last_u:
                self.r["diffs_stale"] += 1
                return
            if not self.futures and U > self.last_u + 1:
                return self.gap(d, f"U <= lastUpdateId + 1 = {self.last_u + 1}")
        else:
            if u <= self.last_u:  # already in the book: the same diff again, or an older one
                dup = U == self.last_U and u == self.last_u
                self.r["diffs_duplicate" if dup else "diffs_behind"] += 1
                places = self.r["duplicate_diffs" if dup else "behind_diffs"]
                if len(places) < _MAX_PLACES:
                    places.append((fi, line))
                return
            if self.futures:
                if pu != self.last_u:
                    return self.gap(d, f"pu == {self.last_u}")
            elif U != self.last_u + 1:
                return self.gap(d, f"U == {self.last_u + 1}")
        self.emit_levels(d, _DELTA, u, U, pu or 0, bids, asks)
        self.r["diffs_applied"] += 1
        self.last_u, self.last_U, self.state = u, U, "live"

    # ---- events

    def finish(self, tick: int, lot: int):
        if not self.snapshot_seen:
            raise FeedError(self.paths[0], None, "no REST depth snapshot (lastUpdateId) in this sequence: the "
                            "book cannot be built")
        if self.deferred is not None:
            raise self.deferred
        self.r["diffs_unapplied"] += len(self.buffer)
        tick = tick or self.price_gcd or SCALE
        lot = lot or self.qty_gcd or SCALE
        out = []
        for row in self.rows:
            kind, flags, fi, line, exch, local, p, q, u, U, pu = row
            if kind != _CLEAR:
                if kind == _TICKER:
                    side = "bid" if flags & _BID else "ask"
                    what_p, what_q = side, f"{side} qty"
                else:
                    what_p, what_q = "price", "qty"
                p = self.step(fi, line, p, tick, what_p, "tick size")
                q = self.step(fi, line, q, lot, what_q, "lot size")
            out.append((kind, flags, fi, line, exch, local, p, q, u, U, pu))
        return np.array(out, dtype=EVENT_DTYPE), tick, lot

    def step(self, fi, line, v, step, what, name):
        q, rem = divmod(v, step)
        if rem:
            self.fail(fi, line, f"{what} {units_to_str(v)} is not a multiple of the {name} {units_to_str(step)}")
        try:
            return check_int64(q, what)
        except ValueError as exc:
            self.fail(fi, line, str(exc))


def parse_sequence(files, *, tick: int = 0, lot: int = 0, on_gap: str = "error", ignore_streams=(),
                   non_book_streams=(), until_ns: int | None = None):
    """Parse the files of one sequence: (events, raw report, tick units, lot units, files parsed).
    The same contract as trader.data.binance.parse_sequence (the C++ parser)."""
    inst = files[0].instrument
    parser = _Parser([f.path for f in files], inst.symbol, inst.market != "spot", on_gap == "resync",
                     ignore_streams, non_book_streams)
    used = len(files)
    for fi in range(len(files)):
        try:
            parser.parse_file(fi, until_ns)
        except _Stop:
            used = fi + 1
            break
    events, tick, lot = parser.finish(tick, lot)
    r = parser.r
    for key in ("lines", "trades_excluded", "ignored_streams", "skipped_streams"):
        r[key] = [tuple(kv) for kv in r[key]]
    return events, r, tick, lot, used
