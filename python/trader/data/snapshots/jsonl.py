"""The ``jsonl`` snapshot format: one JSON object a line, ``{"ts": ..., "bids": [[price, size], ...],
"asks": [...]}``, with an optional ``local_ts``."""

from __future__ import annotations

import orjson

from trader.data.errors import FeedError
from trader.data.rawfile import iter_lines
from trader.data.snapshots.collect import Collector
from trader.data.snapshots.values import Clock, levels_pairs

DESCRIPTION = 'one JSON object a line: {"ts": s|ms|us|ns|ISO-8601, "bids": [[price, size], ...], "asks": [...]}'
EXCHANGE, SYMBOL = "unknown", "UNKNOWN"


def parse(path, fi, col: Collector, clock: Clock) -> None:
    rep = col.report
    for line, raw in iter_lines(path):
        if not raw.strip():
            rep.count("blank")
            continue
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise FeedError(path, line, f"malformed JSON ({exc})") from None
        if not isinstance(msg, dict):
            raise FeedError(path, line, 'expected a JSON object {"ts": ..., "bids": [...], "asks": [...]}')
        for key in ("ts", "bids", "asks"):
            if key not in msg:
                raise FeedError(path, line, f"missing field {key!r} (expected ts, bids, asks)")
        rep.count("snapshot")
        exch = clock.ns(line, msg["ts"], "field 'ts'")
        local = clock.ns(line, msg["local_ts"], "field 'local_ts'") if "local_ts" in msg else exch
        bids = levels_pairs(path, line, msg["bids"], "bids")
        asks = levels_pairs(path, line, msg["asks"], "asks")
        col.snapshot(path, fi, line, exch, local, bids, asks)
