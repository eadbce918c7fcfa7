"""The ``bitstamp`` snapshot format: a Bitstamp websocket log, ``<local_ms> <type> <json>`` a line:
order_book snapshots and trades are converted, L3 order events counted. The log has no exchange time and
trades no aggressor side. See ../shared/data/README.md section 6."""

from __future__ import annotations

import re

import orjson

from trader.data.errors import FeedError
from trader.data.events import EventFlag
from trader.data.rawfile import iter_lines
from trader.data.snapshots.collect import Collector, SnapshotReport
from trader.data.snapshots.values import levels_pairs, units

DESCRIPTION = "Bitstamp websocket log '<local_ms> <type> <json>': order_book snapshots and trades"
EXCHANGE, SYMBOL = "bitstamp", "BTCUSD"
_ORDER_TYPES = ("order_created", "order_changed", "order_deleted")
_TS = re.compile(rb"[0-9]{13}")
_END = int(EventFlag.END_OF_MESSAGE)


def parse(path, fi, col: Collector) -> None:
    rep = col.report
    counts: dict = {}
    for line, raw in iter_lines(path):
        if not raw.strip():
            counts["blank"] = counts.get("blank", 0) + 1
            continue
        parts = raw.split(b" ", 2)
        if len(parts) != 3 or not _TS.fullmatch(parts[0]):
            raise FeedError(path, line, "expected '<local_ts_ms (13 digits)> <type> <json>'")
        kind = parts[1].decode("ascii", "replace")
        if kind in _ORDER_TYPES:
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
            bids = levels_pairs(path, line, msg.get("bids"), "bids")
            asks = levels_pairs(path, line, msg.get("asks"), "asks")
            col.snapshot(path, fi, line, 0, local, bids, asks)
        else:
            counts["trade"] = counts.get("trade", 0) + 1
            tid = msg.get("id")
            if not isinstance(tid, int) or isinstance(tid, bool) or tid < 0:
                raise FeedError(path, line, f"trade: field 'id' must be a non-negative integer, got {tid!r}")
            try:
                p = units(msg["price"])
                q = units(msg["amount"])
            except KeyError as exc:
                raise FeedError(path, line, f"trade: missing field {exc.args[0]!r}") from None
            except (TypeError, ValueError) as exc:
                raise FeedError(path, line, f"trade: price and amount must be decimal numbers ({exc})") from None
            col.trade(path, fi, line, 0, local, tid, p, q, _END)
    for kind, n in counts.items():
        rep.count(kind, n)


def annotate(report: SnapshotReport) -> None:
    """The format's counts and notes in the conversion report."""
    report.extra["l3_order_events"] = "counted, not converted"
    report.extra["trade_side"] = "not in the data: TRADE events have no BID/ASK aggressor flag"
    report.notes.append("order_book has no exchange time: exch_ts = 0, local_ts = the line's receive time")
