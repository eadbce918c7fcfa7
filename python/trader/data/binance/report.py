"""ConversionReport: what a Binance conversion did with every line (counts by kind, stale and unapplied
diffs, excluded trades, ignored streams), its gaps and resyncs with their places, crossed books and the
bookTicker comparison; stored as meta.json's ``report``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ConversionReport:
    """Counts of every kind of line and what happened to it; gaps and resyncs with their places."""

    lines: dict = field(default_factory=dict)  # line kind -> count
    diffs_applied: int = 0
    diffs_stale: int = 0  # buffered diffs with u <= lastUpdateId, dropped by the procedure
    diffs_unapplied: int = 0  # diffs waiting for a snapshot that never came (resync mode)
    trades_excluded: dict = field(default_factory=dict)  # futures X != MARKET, by X
    ignored_streams: dict = field(default_factory=dict)
    gaps: list = field(default_factory=list)
    resyncs: int = 0
    crossed: list = field(default_factory=list)  # crossed books after a message (resync mode)
    tickers: dict = field(default_factory=dict)  # bookTicker comparison at equal update ids

    def count(self, kind: str) -> None:
        self.lines[kind] = self.lines.get(kind, 0) + 1

    def as_dict(self) -> dict:
        return {
            "lines": dict(self.lines),
            "diffs_applied": self.diffs_applied,
            "diffs_stale": self.diffs_stale,
            "diffs_unapplied": self.diffs_unapplied,
            "trades_excluded": dict(self.trades_excluded),
            "ignored_streams": dict(self.ignored_streams),
            "gaps": list(self.gaps),
            "resyncs": self.resyncs,
            "crossed": list(self.crossed),
            "tickers": dict(self.tickers),
        }
