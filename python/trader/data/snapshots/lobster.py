"""The ``lobster`` snapshot format: LOBSTER orderbook_N CSV files (ask price, ask size, bid price, bid size
per level; prices in USD x 10000) whose times come from the message file beside them (seconds after
midnight America/New_York). See ../shared/data/README.md section 5."""

from __future__ import annotations

import calendar
import datetime as _dt
import re
from decimal import Decimal
from pathlib import Path

from trader.data.errors import FeedError
from trader.data.fixed_point import SCALE
from trader.data.rawfile import iter_lines
from trader.data.snapshots.collect import Collector, SnapshotReport
from trader.data.snapshots.values import decimal_text

DESCRIPTION = "LOBSTER orderbook_N CSV (ask px, ask size, bid px, bid size per level; times from the message file)"
EXCHANGE, SYMBOL = "nasdaq", None  # the symbol comes from the file name
_NAME = re.compile(r"^(?P<symbol>[^_]+)_(?P<date>\d{4}-\d{2}-\d{2})_.*orderbook")
_DUMMY = 9999999999
_PRICE_UNITS = SCALE // 10_000  # LOBSTER prices are USD x 10000


def _day_start_ns(path, date: str) -> int:
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


def message_path(path) -> Path:
    """The `_message_` file beside a LOBSTER `_orderbook_` file."""
    path = Path(path)
    name = path.name
    k = name.rfind("orderbook")
    return path.with_name(name[:k] + "message" + name[k + len("orderbook"):])


def symbol_and_date(path) -> tuple[str, str]:
    m = _NAME.match(Path(path).name)
    if m is None:
        raise FeedError(
            path, None,
            "LOBSTER: cannot tell the symbol and date from the file name; expected "
            "TICKER_YYYY-MM-DD_<start>_<end>_orderbook_<levels>.csv",
        )
    return m["symbol"], m["date"]


def parse(path, fi, col: Collector) -> None:
    rep = col.report
    _, date = symbol_and_date(path)
    msg_path = message_path(path)
    if not msg_path.is_file():
        raise FeedError(
            path, None,
            f"LOBSTER orderbook files have no time column; expected the message file {msg_path} beside it",
        )
    day0 = _day_start_ns(path, date)
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
            secs = Decimal(decimal_text(t_text))
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
            for px, q, out, dummy in ((ap, aq, asks, _DUMMY), (bp, bq, bids, -_DUMMY)):
                if px == dummy:
                    rep.add("dummy_levels_skipped")
                    continue
                if px <= 0 or q < 0:
                    raise FeedError(path, line, f"level {k // 4 + 1}: expected price > 0 and size >= 0, got {px}, {q}")
                out.append((px * _PRICE_UNITS, q * SCALE))
        col.snapshot(path, fi, line, ts, ts, bids, asks)
    if next(messages, None) is not None:
        raise FeedError(msg_path, None, f"message file has more lines than {Path(path).name}: not its pair")


def annotate(report: SnapshotReport) -> None:
    """The format's notes in the conversion report."""
    report.extra["time_zone"] = "America/New_York (LOBSTER times are seconds after local midnight)"
