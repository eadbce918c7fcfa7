"""Binance raw websocket feeds (the hftbacktest collector format) to event arrays.

Each line is ``<local_receive_ts> <json>``; the JSON is a REST depth snapshot or a combined-stream
message (``{"stream": "<sym>@<kind>", "data": {...}}``). See ../shared/data/README.md section 1 for
the format and its quirks.

The parsing is done in C++ (cpp/feed/binance_feed.cpp): gzip through zlib, a JSON reader for one
line at a time, exact decimal-to-units conversion, Binance's sequencing procedure, streaming (only
the events are kept). trader.data.binance_reference holds the same rules in readable Python, with
the full list of what is checked and reported; tests require identical results from both.

Nothing is dropped silently: every line is counted by kind in the conversion report, streams
without book data are counted by name, and duplicates, diffs already in the book, update-id gaps
and local-clock steps backwards are reported with their places.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trader import _core
from trader.data.errors import FeedError, option_hint
from trader.data.fixed_point import parse_step, units_to_str
from trader.data.rawfile import open_text
from trader.store.files import sha256_file

# Streams that carry no book information: counted and skipped by default (Binance spot and
# futures "WebSocket Market Streams" docs). A kind matches by its name before '@' and before a
# '_<interval>' suffix (kline_1m, ticker_1h, markPrice@1s). The partial-depth streams depth5/10/20
# repeat the top of the book the diff stream already gives in full. All-market streams
# ("!ticker@arr", "!bookTicker", ...) are skipped too.
NON_BOOK_STREAMS = (
    "aggTrade", "markPrice", "kline", "continuousKline", "markPriceKline", "indexPriceKline", "miniTicker",
    "ticker", "forceOrder", "indexPrice", "compositeIndex", "contractInfo", "assetIndex", "avgPrice",
    "depth5", "depth10", "depth20",
)
_CHUNK = 1 << 20


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
    """Counts of every kind of line and what happened to it; gaps, resyncs, duplicates and local
    clock steps backwards with their places (file name, line)."""

    lines: dict = field(default_factory=dict)  # line kind -> count
    diffs_applied: int = 0
    diffs_stale: int = 0  # buffered diffs with u <= lastUpdateId, dropped by the procedure
    diffs_unapplied: int = 0  # diffs waiting for a snapshot that never came (resync mode)
    diffs_duplicate: int = 0  # the last applied diff again (same U and u): skipped
    diffs_behind: int = 0  # an older diff (u below the book's update id) after the chain started: skipped
    trades_excluded: dict = field(default_factory=dict)  # futures X != MARKET, by X
    ignored_streams: dict = field(default_factory=dict)  # skipped on request (ignore_streams)
    skipped_streams: dict = field(default_factory=dict)  # streams without book data, skipped by default
    gaps: list = field(default_factory=list)
    resyncs: int = 0
    duplicates: dict = field(default_factory=dict)  # lines / diffs / behind -> first places
    local_ts_backwards: dict = field(default_factory=dict)  # count, max_step_ns, first places
    crossed: list = field(default_factory=list)  # crossed books after a message (resync mode)
    tickers: dict = field(default_factory=dict)  # bookTicker comparison at equal update ids

    @classmethod
    def from_raw(cls, raw: dict, files: list[FileInfo]) -> ConversionReport:
        """From the parser's report (file indices) to names."""
        names = [f.path.name for f in files]

        def places(v):
            return [{"file": names[fi], "line": line} for fi, line in v]

        return cls(
            lines=dict(raw["lines"]),
            diffs_applied=raw["diffs_applied"],
            diffs_stale=raw["diffs_stale"],
            diffs_unapplied=raw["diffs_unapplied"],
            diffs_duplicate=raw["diffs_duplicate"],
            diffs_behind=raw["diffs_behind"],
            trades_excluded=dict(raw["trades_excluded"]),
            ignored_streams=dict(raw["ignored_streams"]),
            skipped_streams=dict(raw["skipped_streams"]),
            gaps=[{"file": names[g[0]], "line": g[1], "prev_u": g[2], "U": g[3], "u": g[4], "pu": g[5],
                   "expected": g[6]} for g in raw["gaps"]],
            resyncs=raw["resyncs"],
            duplicates={"lines": places(raw["duplicate_lines"]), "diffs": places(raw["duplicate_diffs"]),
                        "behind": places(raw["behind_diffs"])},
            local_ts_backwards={
                "count": raw["clock_back_count"],
                "max_step_ns": raw["clock_back_max_ns"],
                "first": [{"file": names[c[0]], "line": c[1], "from_ns": c[2], "to_ns": c[3]}
                          for c in raw["clock_back"]],
            },
        )

    def as_dict(self) -> dict:
        return {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
                for k, v in self.__dict__.items()}


def _feed_error(paths, exc) -> FeedError:
    """The C++ parser's error (file index, line or 0, message, hint 'option=value' or '')."""
    fi, line, msg, hint = exc.args
    return FeedError(paths[fi], line or None, msg, hint=option_hint(*hint.split("=", 1)) if hint else None)


def _is_fast_codec(path: Path) -> bool:
    """gzip and plain files are read by the C++ reader; bzip2 and xz through Python."""
    with open(path, "rb") as fh:
        head = fh.read(6)
    return not (head.startswith(b"BZh") or head.startswith(b"\xfd7zXZ\x00"))


def _feed_chunks(path: Path, target, lines_read) -> None:
    """Feed a bzip2/xz file's decompressed bytes to a C++ scanner or parser."""
    import lzma
    import zlib

    try:
        with open_text(path) as fh:
            while chunk := fh.read(_CHUNK):
                if not target(chunk):
                    return
    except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        n = lines_read()
        raise FeedError(path, n + 1, f"compressed data is truncated or corrupt after line {n} ({exc})") from None


# ---- files and sequences -----------------------------------------------------------------------


def scan_file(path: str | Path) -> FileInfo:
    """Read a file without decoding every message: its instrument (from the first depth message),
    its first local timestamp and unit, and whether it holds a REST snapshot."""
    path = Path(path)
    if not path.is_file():
        raise FeedError(path, None, "cannot open: not a file")
    try:
        if _is_fast_codec(path):
            r = _core.scan_binance_file(str(path))
        else:
            sc = _core.BinanceScanner()
            _feed_chunks(path, sc.feed, lambda: sc.lines_read)
            sc.end()
            r = sc.result()
    except _core.FeedParseError as exc:
        raise _feed_error([path], exc) from None
    if not r["non_blank_lines"]:
        raise FeedError(path, None, "the file is empty (no line with data)")
    if not r["market"]:
        raise FeedError(path, None, "no depth-diff message found: cannot tell the instrument")
    return FileInfo(path, Instrument("binance", r["market"], r["symbol"]), r["first_local_ns"], r["ts_unit"],
                    r["has_snapshot"])


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
    start = _dt.datetime.fromtimestamp(files[0].first_local_ns / 1e9, tz=_dt.timezone.utc)
    return f"{files[0].instrument.key}_{start:%Y%m%dT%H%M%S}"


# ---- parsing -----------------------------------------------------------------------------------


def parse_sequence(files, *, tick: int = 0, lot: int = 0, on_gap: str = "error", ignore_streams=(),
                   non_book_streams=NON_BOOK_STREAMS, until_ns: int | None = None, progress=None):
    """Parse the files of one sequence with the C++ parser: (events, raw report, tick units, lot
    units, number of files parsed). tick/lot 0: the gcd of the data. `progress(file index,
    compressed bytes read, total)` is called as files are read."""
    paths = [f.path for f in files]
    inst = files[0].instrument
    parser = _core.BinanceParser(inst.symbol, inst.market != "spot", on_gap == "resync", sorted(ignore_streams),
                                 list(non_book_streams))
    used = len(files)
    try:
        for fi, path in enumerate(paths):
            if progress is not None:
                progress(fi, 0, path.stat().st_size)
            if _is_fast_codec(path):
                report = None if progress is None else (lambda done, total, fi=fi: progress(fi, done, total))
                more = parser.parse_file(fi, str(path), until_ns, report)
            else:
                parser.begin_file(fi, until_ns)
                _feed_chunks(path, parser.feed, lambda: parser.lines_read)
                more = parser.end_file()
            if not more:
                used = fi + 1
                break
        events, raw, tick_s, lot_s = parser.finish(str(tick) if tick else "", str(lot) if lot else "")
    except _core.FeedParseError as exc:
        raise _feed_error(paths, exc) from None
    return events, raw, int(tick_s), int(lot_s), used


def _check_book(events: np.ndarray, files: list[FileInfo], on_gap: str, report: ConversionReport) -> None:
    """Replay the events through the C++ book: a crossed book after a whole message is bad data
    (an error, or recorded in the report in resync mode); the bookTicker check goes in the report."""
    check = _core.check_tickers(events)
    crossed = check["crossed"]
    if crossed and on_gap == "error":
        c = crossed[0]
        raise FeedError(
            files[c["file"]].path, c["line"],
            f"crossed book after the message with update id u={c['update_id']}: best bid {c['bid']} >= "
            f"best ask {c['ask']} (ticks); {check['replay']['crossed']} crossed message(s) in all",
            hint=option_hint("on_gap", "resync"),
        )
    report.crossed = [dict(c, file=files[c["file"]].path.name) for c in crossed]
    report.tickers = {k: check[k] for k in ("tickers", "compared", "matched", "mismatched")}


def convert_sequence(
    files: list[FileInfo],
    *,
    tick_size: str | None = None,
    lot_size: str | None = None,
    on_gap: str = "error",
    ignore_streams=(),
    duration_s: float | None = None,
    progress=None,
    parse=parse_sequence,
):
    """Convert the files of one sequence (ordered, joined) to (events, meta). `duration_s` keeps
    only the lines received within that many seconds of the sequence's first line. `progress`: see
    parse_sequence. `parse`: the parser (binance_reference.parse_sequence runs the Python reference)."""
    if on_gap not in ("error", "resync"):
        raise ValueError(f"on_gap: expected 'error' or 'resync', got {on_gap!r}")
    if len(files) > 65535:
        raise ValueError("a dataset holds at most 65535 source files")
    inst = files[0].instrument
    for f in files[1:]:
        if f.instrument != inst:
            raise FeedError(f.path, None, f"instrument {f.instrument.key} does not match {inst.key}")
    # clamped to int64: a (corrupt) first timestamp near its top must not overflow the C++ parser's argument
    until_ns = None if duration_s is None else min(files[0].first_local_ns + int(duration_s * 1e9), 2**63 - 1)
    kwargs = dict(tick=parse_step(tick_size, "tick_size") if tick_size else 0,
                  lot=parse_step(lot_size, "lot_size") if lot_size else 0,
                  on_gap=on_gap, ignore_streams=tuple(ignore_streams), non_book_streams=NON_BOOK_STREAMS,
                  until_ns=until_ns)
    if progress is not None:
        kwargs["progress"] = progress
    events, raw, tick, lot, used = parse(files, **kwargs)
    files = files[:used]
    report = ConversionReport.from_raw(raw, files)
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
            {"name": f.path.name, "sha256": sha256_file(f.path)[1], "local_ts_unit": f.ts_unit} for f in files
        ],
        "report": report.as_dict(),
    }
    if duration_s is not None:
        meta["duration_s"] = duration_s
    return events, meta


def convert_files(paths, **kwargs) -> list[tuple[np.ndarray, dict]]:
    """Group raw files by instrument and convert each group: a list of (events, meta)."""
    return [convert_sequence(group, **kwargs) for group in group_sequences(paths)]
