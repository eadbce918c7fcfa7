"""Snapshot-table files of one format to (events, meta): which format a file is (``sniff_format``), the
format's parser for each file, the tick and lot (given and checked, or the gcd of the data), and the event
records (one BOOK_CLEAR then one BOOK_SNAPSHOT a level per snapshot; TRADE events)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import orjson

import trader.data.snapshots.bitfinex as bitfinex
import trader.data.snapshots.bitstamp as bitstamp
import trader.data.snapshots.coinbase as coinbase
import trader.data.snapshots.csv_table as csv_table
import trader.data.snapshots.jsonl as jsonl
import trader.data.snapshots.lobster as lobster
from trader.data.errors import FeedError
from trader.data.events import EVENT_DTYPE, EventFlag, EventKind
from trader.data.fixed_point import SCALE, parse_step, units_to_str
from trader.data.rawfile import iter_lines
from trader.data.snapshots.collect import Collector, SnapshotReport
from trader.data.snapshots.values import INT64_MAX, TS_MULT, Clock
from trader.store.files import sha256_file

# format name -> its module (DESCRIPTION, EXCHANGE, SYMBOL, parse; annotate where the format adds to the report)
_FORMATS = {"jsonl": jsonl, "csv": csv_table, "bitfinex": bitfinex, "coinbase": coinbase, "bitstamp": bitstamp,
            "lobster": lobster}
SNAPSHOT_FORMATS: dict[str, str] = {name: module.DESCRIPTION for name, module in _FORMATS.items()}

_BID, _ASK, _END = int(EventFlag.BID), int(EventFlag.ASK), int(EventFlag.END_OF_MESSAGE)
_CLEAR, _SNAP, _TRADE = int(EventKind.BOOK_CLEAR), int(EventKind.BOOK_SNAPSHOT), int(EventKind.TRADE)


def _check_grid(col: Collector, paths, step: int, what: str, option: str) -> None:
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
    if csv_ts_unit not in ("auto", *TS_MULT):
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

    module = _FORMATS[fmt]
    default_exchange, default_symbol = module.EXCHANGE, module.SYMBOL
    if fmt == "lobster" and symbol is None:
        symbols = {lobster.symbol_and_date(p)[0] for p in paths}
        if len(symbols) > 1:
            raise ValueError(f"LOBSTER files of several symbols ({', '.join(sorted(symbols))}): convert them apart")
        default_symbol = symbols.pop()

    report = SnapshotReport()
    col = Collector(report)
    sources = []
    for fi, path in enumerate(paths):
        source = {"name": path.name, "sha256": None, "format": fmt}
        if fmt == "jsonl":
            jsonl.parse(path, fi, col, Clock(path, csv_ts_unit))
        elif fmt == "csv":
            opts = {
                "ts_column": csv_ts_column,
                "bid_price": csv_bid_price or csv_table.DEFAULT_TEMPLATES[0],
                "bid_size": csv_bid_size or csv_table.DEFAULT_TEMPLATES[1],
                "ask_price": csv_ask_price or csv_table.DEFAULT_TEMPLATES[2],
                "ask_size": csv_ask_size or csv_table.DEFAULT_TEMPLATES[3],
                "levels": csv_levels,
            }
            csv_table.parse(path, fi, col, Clock(path, csv_ts_unit), opts)
        elif fmt == "bitfinex":
            bitfinex.parse(path, fi, col)
        elif fmt == "coinbase":
            coinbase.parse(path, fi, col, tick or coinbase.TICK, lot or coinbase.LOT)
        elif fmt == "bitstamp":
            bitstamp.parse(path, fi, col)
        else:
            lobster.parse(path, fi, col)
            msg_path = lobster.message_path(path)
            source["message_file"] = {"name": msg_path.name, "sha256": sha256_file(msg_path)[1]}
        source["sha256"] = sha256_file(path)[1]
        sources.append(source)

    # Tick and lot: the option (values checked against it), else the gcd of what the data holds.
    # Coinbase levels are computed, not read: they are rounded to the tick / lot grid above.
    if fmt == "coinbase":
        tick_source = "option" if tick_size else coinbase.TICK_SOURCE
        lot_source = "option" if lot_size else coinbase.LOT_SOURCE
        tick, lot = tick or coinbase.TICK, lot or coinbase.LOT
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
        if vmax // step > INT64_MAX:
            raise ValueError(f"{what} {units_to_str(vmax)} / {units_to_str(step)} does not fit in 64 bits")

    if hasattr(module, "annotate"):
        module.annotate(report)
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
