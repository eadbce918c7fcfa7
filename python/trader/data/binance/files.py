"""Binance raw files before parsing: a line is ``<local_receive_ts> <json>`` (the timestamp in ns, us or ms
by its digit count); a stream message names ``<symbol>@<kind>``. A file's instrument comes from its first
depth message (``pu`` marks USD-M, ``ps`` COIN-M); files are grouped into sequences by instrument and time,
a new sequence at each file holding a REST snapshot."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import orjson

from trader.data.errors import FeedError
from trader.data.rawfile import iter_lines

_TS_UNITS = {19: ("ns", 1), 16: ("us", 1_000), 13: ("ms", 1_000_000)}
DEPTH_KINDS = {"depth", "depth@0ms", "depth@100ms", "depth@250ms", "depth@500ms", "depth@1000ms"}


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


def split_line(path, lineno: int, raw: bytes):
    sp = raw.find(b" ")
    if sp <= 0:
        raise FeedError(path, lineno, "expected '<local_receive_ts> <json>' (no space found)")
    ts_text = raw[:sp]
    if not ts_text.isdigit():
        raise FeedError(path, lineno, f"local timestamp must be an integer, got {ts_text[:40]!r}")
    try:
        msg = orjson.loads(raw[sp + 1 :])
    except orjson.JSONDecodeError as exc:
        raise FeedError(path, lineno, f"malformed JSON ({exc})") from None
    if not isinstance(msg, dict):
        raise FeedError(path, lineno, "expected a JSON object")
    return ts_text, msg


def ts_unit(path, lineno: int, ts_text: bytes):
    unit = _TS_UNITS.get(len(ts_text))
    if unit is None:
        raise FeedError(
            path,
            lineno,
            f"local timestamp {ts_text.decode()!r} has {len(ts_text)} digits; expected 19 (ns), "
            "16 (us) or 13 (ms)",
        )
    return unit


def stream_kind(path, lineno: int, msg: dict) -> tuple[str, str, dict]:
    stream = msg.get("stream")
    data = msg.get("data")
    if not isinstance(stream, str) or not isinstance(data, dict):
        raise FeedError(
            path, lineno, "expected a REST snapshot (lastUpdateId) or a combined-stream message "
            "with 'stream' and 'data'"
        )
    at = stream.find("@")
    if at <= 0:
        raise FeedError(path, lineno, f"stream name {stream!r} is not '<symbol>@<kind>'")
    return stream[:at], stream[at + 1 :], data


def scan_file(path: str | Path) -> FileInfo:
    """Read a file once without decoding every message: its instrument (from the first depth
    message), its first local timestamp and unit, and whether it holds a REST snapshot."""
    path = Path(path)
    first_ns = None
    unit_name = None
    instrument = None
    has_snapshot = False
    for lineno, raw in iter_lines(path):
        if not raw.strip():
            continue
        if instrument is not None:
            if not has_snapshot and b'"lastUpdateId"' in raw[:64]:
                has_snapshot = True
            continue
        ts_text, msg = split_line(path, lineno, raw)
        if first_ns is None:
            unit_name, mult = ts_unit(path, lineno, ts_text)
            first_ns = int(ts_text) * mult
        if "lastUpdateId" in msg:
            has_snapshot = True
            continue
        _, kind, data = stream_kind(path, lineno, msg)
        if kind in DEPTH_KINDS:
            symbol = data.get("s")
            if not isinstance(symbol, str):
                raise FeedError(path, lineno, "depth message: missing field 's' (symbol)")
            if "ps" in data:
                market = "coinm"
            elif "pu" in data:
                market = "usdm"
            else:
                market = "spot"
            instrument = Instrument("binance", market, symbol)
    if instrument is None:
        raise FeedError(path, None, "no depth-diff message found: cannot tell the instrument")
    return FileInfo(path, instrument, first_ns, unit_name, has_snapshot)


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
