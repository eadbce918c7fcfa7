"""The ``coinbase`` snapshot format: the Coinbase 1-minute book CSV (Kaggle / TradeMaster) whose levels are
a midpoint, a relative distance and a USD notional per level; prices and sizes are computed from them and
rounded to the tick / lot grid (an error when a price is more than 0.01 tick off it). See
../shared/data/README.md section 7."""

from __future__ import annotations

import csv
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext

from trader.data.errors import FeedError
from trader.data.fixed_point import SCALE, units_to_str
from trader.data.snapshots.collect import Collector, SnapshotReport
from trader.data.snapshots.columns import level_columns, missing_column, read_header, text_lines
from trader.data.snapshots.values import Clock, decimal_text

DESCRIPTION = "Coinbase 1-minute book CSV (Kaggle/TradeMaster): midpoint, per-level distance and USD notional"
EXCHANGE, SYMBOL = "coinbase", "BTC-USD"
TICK, LOT = SCALE // 100, SCALE // 10**8  # 0.01 USD, 1e-8 BTC (units of 1e-12), unless given
TICK_SOURCE = "coinbase preset: midpoint*(1+distance) rounded to 0.01 USD"
LOT_SOURCE = "coinbase preset: notional/price rounded to 1e-8 BTC"


def parse(path, fi, col: Collector, tick: int, lot: int) -> None:
    rep = col.report
    reader = csv.reader(text_lines(path))
    header, hline = read_header(path, reader, rep)
    index = {name: k for k, name in enumerate(header)}
    for name in ("system_time", "midpoint"):
        if name not in index:
            raise missing_column(path, hline, header, name, "Coinbase book table")
    i_time, i_mid = index["system_time"], index["midpoint"]
    cols = {
        s: level_columns(path, hline, header, (f"{s}_distance_{{i}}", f"{s}_notional_{{i}}"), None, f"{s} levels")
        for s in ("bids", "asks")
    }
    tick_d = Decimal(tick).scaleb(-12)
    lot_d = Decimal(lot).scaleb(-12)
    ncols = len(header)
    clock = Clock(path, "auto")
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
                mid = Decimal(decimal_text(row[i_mid]))
            except ValueError as exc:
                raise FeedError(path, line, f"column 'midpoint': {exc}") from None
            sides = []
            for s in ("bids", "asks"):
                out = []
                for k, (i_d, i_n) in enumerate(cols[s]):
                    try:
                        dist = Decimal(row[i_d].strip())
                        notional = Decimal(decimal_text(row[i_n]))
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


def annotate(report: SnapshotReport) -> None:
    """The format's notes in the conversion report."""
    report.notes.append("cancel/limit/market notional flows and buys/sells are not converted")
