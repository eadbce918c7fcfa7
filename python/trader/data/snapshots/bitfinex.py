"""The ``bitfinex`` snapshot format: the Bitfinex 25-level book view TSV of ctc-executioner (JSON bids and
asks in columns 7 and 8; the snapshot time is the newest level timestamp). See ../shared/data/README.md
section 4."""

from __future__ import annotations

from decimal import Decimal

import orjson

from trader.data.errors import FeedError
from trader.data.rawfile import iter_lines
from trader.data.snapshots.collect import Collector, SnapshotReport
from trader.data.snapshots.values import cached_units, decimal_text

DESCRIPTION = "Bitfinex 25-level book view TSV (ctc-executioner): JSON bids/asks in columns 7 and 8"
EXCHANGE, SYMBOL = "bitfinex", "BTCUSD"


def parse(path, fi, col: Collector) -> None:
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
                    out.append((cached_units(lv["price"]), cached_units(lv["amount"])))
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
                    ns = int(Decimal(decimal_text(s)) * 1_000_000_000)
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


def annotate(report: SnapshotReport) -> None:
    """The format's counts (always present) and notes in the conversion report."""
    report.extra.setdefault("repeated_rows", 0)
    report.extra.setdefault("unchanged_books", 0)
    report.notes.append(
        "repeated_rows: rows whose bids and asks columns equal the previous row's (level timestamps "
        "included); unchanged_books: same prices and amounts as the previous row. All rows are kept."
    )
    report.notes.append("exch_ts = max level 'timestamp'; column 9 (local time, UTC+1) is not used")
