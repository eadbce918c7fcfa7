"""Binance REST depth snapshots saved as CSV, one price level a row, to event arrays.

The layout is that of the Binance Data Processor (../shared/data/README.md section 3): lines
starting with ``#`` (the tool's quality report) are comments, counted and skipped; then the header
``TimestampOfReceive,TimestampOfRequest,LastUpdateId,IsAsk,Price,Quantity``. Timestamps are ms
since the epoch; ``IsAsk`` is 0 for a bid and 1 for an ask. Consecutive rows with the same
``LastUpdateId`` make one snapshot: a BOOK_CLEAR, then one BOOK_SNAPSHOT event a level, bids best
first then asks best first; ``update_id`` and ``prev_update_id`` are the LastUpdateId, ``local_ts``
the receive time and ``exch_ts`` 0 (a spot REST snapshot carries no exchange time). There are no
diffs, so these books are not replayed between snapshots.
"""

from __future__ import annotations

import hashlib
from math import gcd
from pathlib import Path

import numpy as np

from trader.data.errors import FeedError
from trader.data.events import EVENT_DTYPE, EventFlag, EventKind
from trader.data.fixed_point import SCALE, parse_step, parse_units, units_to_str
from trader.data.rawfile import iter_lines

HEADER = ("TimestampOfReceive", "TimestampOfRequest", "LastUpdateId", "IsAsk", "Price", "Quantity")
_MS = 1_000_000
_INT64_MAX = 2**63 - 1
_BID, _ASK, _END = int(EventFlag.BID), int(EventFlag.ASK), int(EventFlag.END_OF_MESSAGE)
_CLEAR, _SNAP = int(EventKind.BOOK_CLEAR), int(EventKind.BOOK_SNAPSHOT)


def _first_data_line(path):
    for line, raw in iter_lines(path):
        if raw.strip() and not raw.startswith(b"#"):
            return line, raw
    return None, None


def sniff_depth_csv(path) -> bool:
    """True if the first line that is not a comment is this format's header."""
    _, raw = _first_data_line(path)
    return raw is not None and tuple(c.strip() for c in raw.decode("utf-8", "replace").split(",")) == HEADER


def _parse(path: Path, fi: int, snapshots: list, report: dict, grid: list) -> None:
    header_line, raw = _first_data_line(path)
    if raw is None:
        raise FeedError(path, None, "the file is empty (no line with data)")
    header = tuple(c.strip() for c in raw.decode("utf-8", "replace").split(","))
    if header != HEADER:
        missing = [c for c in HEADER if c not in header]
        raise FeedError(path, header_line, f"header: missing column {missing[0]!r}" if missing else
                        f"header: expected {','.join(HEADER)}")
    cur = None
    prev_local = None
    for line, raw in iter_lines(path):
        if line <= header_line:
            if raw.startswith(b"#"):
                report["lines"]["comment"] = report["lines"].get("comment", 0) + 1
            continue
        if not raw.strip():
            report["lines"]["blank"] = report["lines"].get("blank", 0) + 1
            continue
        cells = raw.decode("utf-8", "replace").split(",")
        if len(cells) != len(HEADER):
            raise FeedError(path, line, f"expected {len(HEADER)} columns ({','.join(HEADER)}), got {len(cells)}")
        recv, _, last_id, is_ask, price, qty = (c.strip() for c in cells)
        for name, text in (("TimestampOfReceive", recv), ("LastUpdateId", last_id)):
            if not text.isdigit():
                raise FeedError(path, line, f"field {name!r}: expected a non-negative integer, got {text[:40]!r}")
        if is_ask not in ("0", "1"):
            raise FeedError(path, line, f"field 'IsAsk': expected 0 (bid) or 1 (ask), got {is_ask[:40]!r}")
        try:
            p, q = parse_units(price), parse_units(qty)
        except ValueError as exc:
            raise FeedError(path, line, f"fields 'Price', 'Quantity': {exc}") from None
        if p <= 0:
            raise FeedError(path, line, f"field 'Price': must be > 0, got {price!r}")
        local = int(recv) * _MS
        if local > _INT64_MAX or int(last_id) >= 2**64:
            raise FeedError(path, line, "TimestampOfReceive or LastUpdateId out of range")
        report["lines"]["level"] = report["lines"].get("level", 0) + 1
        if cur is None or cur["id"] != int(last_id):
            if prev_local is not None and local < prev_local:
                report["backward_ts_steps"] += 1
            prev_local = local
            cur = {"id": int(last_id), "fi": fi, "line": line, "local": local, "bids": [], "asks": []}
            snapshots.append(cur)
        grid[0] = gcd(grid[0], p)
        if q:
            grid[1] = gcd(grid[1], q)
            cur["asks" if is_ask == "1" else "bids"].append((p, q, line))
        else:
            report["zero_size_levels_skipped"] += 1


def convert_depth_csv_files(paths, *, tick_size=None, lot_size=None, market=None):
    """Convert files of this format, in the order given, to (events, meta)."""
    paths = [Path(p) for p in paths]
    snapshots: list = []
    grid = [0, 0]
    report = {"lines": {}, "snapshots": 0, "zero_size_levels_skipped": 0, "backward_ts_steps": 0}
    for fi, path in enumerate(paths):
        _parse(path, fi, snapshots, report, grid)
    tick = parse_step(tick_size, "tick_size") if tick_size else (grid[0] or SCALE)
    lot = parse_step(lot_size, "lot_size") if lot_size else (grid[1] or SCALE)
    rows = []
    for s in snapshots:
        bids = sorted(s["bids"], key=lambda lv: -lv[0])
        asks = sorted(s["asks"], key=lambda lv: lv[0])
        n = len(bids) + len(asks)
        rows.append((_CLEAR, 0 if n else _END, s["fi"], s["line"], 0, s["local"], 0, 0, s["id"], 0, s["id"]))
        for k, (flag, (p, q, line)) in enumerate([(_BID, lv) for lv in bids] + [(_ASK, lv) for lv in asks]):
            for what, v, step, name in (("Price", p, tick, "tick size"), ("Quantity", q, lot, "lot size")):
                if v % step or v // step > _INT64_MAX:
                    raise FeedError(paths[s["fi"]], line, f"field {what!r}: {units_to_str(v)} is not a multiple of "
                                    f"the {name} {units_to_str(step)} or too large for it")
            rows.append((_SNAP, flag | (_END if k == n - 1 else 0), s["fi"], line, 0, s["local"], p // tick, q // lot,
                         s["id"], 0, s["id"]))
    report["snapshots"] = len(snapshots)
    meta = {
        "format": "trader.events/1",
        "exchange": "binance",
        "market": market or "spot",
        "symbol": _symbol(paths[0]),
        "tick_size": units_to_str(tick),
        "lot_size": units_to_str(lot),
        "tick_size_source": "option" if tick_size else "gcd of all prices in the data",
        "lot_size_source": "option" if lot_size else "gcd of all non-zero sizes in the data",
        "qty_unit": "base asset",
        "sources": [{"name": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                     "format": "binance-depth-csv"} for p in paths],
        "report": report,
    }
    return np.array(rows, dtype=EVENT_DTYPE), meta


def _symbol(path: Path) -> str:
    """The symbol from a Binance Data Processor file name (..._spot_btcusdt_14-04-2025.csv), else UNKNOWN."""
    parts = path.name.split("_")
    for i, part in enumerate(parts[:-1]):
        if part in ("spot", "usd", "coin") and parts[i + 1].isalnum():
            return parts[i + 1].upper()
    return "UNKNOWN"
