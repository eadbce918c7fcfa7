"""convert_sequence: the files of one Binance sequence to (events, meta). Messages are parsed, put in the
order the book applies them, written as 64-byte event records in ticks and lots (the tick and lot given,
or the gcd of the data), and replayed through the C++ book (crossed books, the bookTicker check)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from trader.data.binance.files import FileInfo
from trader.data.binance.messages import MessageParser
from trader.data.binance.report import ConversionReport
from trader.data.binance.sequence import apply_order
from trader.data.errors import FeedError
from trader.data.events import EVENT_DTYPE, EventFlag, EventKind
from trader.data.fixed_point import SCALE, check_int64, parse_step, units_to_str

_BID, _ASK, _END = int(EventFlag.BID), int(EventFlag.ASK), int(EventFlag.END_OF_MESSAGE)
_CLEAR, _SNAP, _DELTA = int(EventKind.BOOK_CLEAR), int(EventKind.BOOK_SNAPSHOT), int(EventKind.BOOK_DELTA)
_TRADE, _TICKER = int(EventKind.TRADE), int(EventKind.BOOK_TICKER)


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
    parser = MessageParser(report, set(ignore_streams))
    messages: list = []
    until_ns = None if duration_s is None else files[0].first_local_ns + int(duration_s * 1e9)
    for fi, info in enumerate(files):
        if not parser.parse_file(fi, info, messages, until_ns):
            files = files[: fi + 1]
            break
    if not any(m[0] == "S" for m in messages):
        raise FeedError(files[0].path, None, "no REST depth snapshot (lastUpdateId) in this sequence: the book cannot be built")
    ordered = apply_order(messages, files, inst.market != "spot", on_gap, report)
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
