"""The ``csv`` snapshot format: a wide table with a header, one row per snapshot, a timestamp column and
per-level price / size columns named by templates such as ``bid_price_{i}`` (levels from 0 or from 1)."""

from __future__ import annotations

import csv

from trader.data.errors import FeedError
from trader.data.snapshots.collect import Collector
from trader.data.snapshots.columns import level_columns, missing_column, read_header, text_lines
from trader.data.snapshots.values import Clock, units

DESCRIPTION = "wide CSV with a header: a timestamp column and per-level price/size columns (templates with {i})"
EXCHANGE, SYMBOL = "unknown", "UNKNOWN"
DEFAULT_TEMPLATES = ("bid_price_{i}", "bid_size_{i}", "ask_price_{i}", "ask_size_{i}")
_TS_NAMES = ("ts", "timestamp", "time", "system_time", "datetime", "date")


def _is_empty_cell(text: str) -> bool:
    return not text.strip() or text.strip().lower() in ("nan", "null", "none")


def parse(path, fi, col: Collector, clock: Clock, opts: dict) -> None:
    rep = col.report
    reader = csv.reader(text_lines(path))
    header, hline = read_header(path, reader, rep)
    index = {name: k for k, name in enumerate(header)}
    ts_name = opts["ts_column"]
    if ts_name is None:
        ts_name = next((n for n in _TS_NAMES if n in index), None)
        if ts_name is None:
            raise missing_column(path, hline, header, _TS_NAMES[0],
                                  f"timestamp; none of {', '.join(_TS_NAMES)} found, pass --csv-ts-column NAME")
    elif ts_name not in index:
        raise missing_column(path, hline, header, ts_name, "timestamp, --csv-ts-column")
    ts_col = index[ts_name]
    bid_cols = level_columns(path, hline, header, (opts["bid_price"], opts["bid_size"]), opts["levels"], "bid levels")
    ask_cols = level_columns(path, hline, header, (opts["ask_price"], opts["ask_size"]), opts["levels"], "ask levels")
    ncols = len(header)

    def side(row, line, cols, name):
        out = []
        for k, (ip, iq) in enumerate(cols):
            p_text, q_text = row[ip], row[iq]
            if _is_empty_cell(p_text) and _is_empty_cell(q_text):
                rep.add("empty_levels_skipped")
                continue
            try:
                out.append((units(p_text), units(q_text)))
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
