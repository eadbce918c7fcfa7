"""What every snapshot format feeds: the SnapshotReport (every line counted by kind, what was left out, the
format's own checks) and the Collector of validated snapshots and trades in 1e-12 units with their gcd and
maximum (from which the tick and lot are chosen)."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import gcd

from trader.data.errors import FeedError
from trader.data.fixed_point import units_to_str


@dataclass
class SnapshotReport:
    """Counts of every kind of line and of what was left out, and the format's own checks."""

    lines: dict = field(default_factory=dict)  # line kind -> count
    snapshots: int = 0
    levels: int = 0  # levels converted (events), over all snapshots
    trades: int = 0
    empty_snapshots: int = 0
    crossed_snapshots: int = 0  # best bid >= best ask; kept, not an error
    zero_size_levels_skipped: int = 0
    backward_ts_steps: int = 0  # snapshot time (exchange, else local) below the previous one
    extra: dict = field(default_factory=dict)  # format-specific counts
    notes: list = field(default_factory=list)

    def count(self, kind: str, n: int = 1) -> None:
        self.lines[kind] = self.lines.get(kind, 0) + n

    def add(self, key: str, n: int = 1) -> None:
        self.extra[key] = self.extra.get(key, 0) + n

    def as_dict(self) -> dict:
        out = {
            "lines": dict(self.lines),
            "snapshots": self.snapshots,
            "levels": self.levels,
            "trades": self.trades,
            "empty_snapshots": self.empty_snapshots,
            "crossed_snapshots": self.crossed_snapshots,
            "zero_size_levels_skipped": self.zero_size_levels_skipped,
            "backward_ts_steps": self.backward_ts_steps,
        }
        out.update(self.extra)
        out["notes"] = list(self.notes)
        return out


class Collector:
    """Validated snapshots and trades with prices and sizes in 1e-12 units, and their gcd / max."""

    def __init__(self, report: SnapshotReport):
        self.report = report
        self.records: list = []
        self.price_gcd = 0
        self.qty_gcd = 0
        self.price_max = 0
        self.qty_max = 0
        self._last_ts = None

    def _time_step(self, exch: int, local: int) -> None:
        t = exch or local
        if self._last_ts is not None and t < self._last_ts:
            self.report.backward_ts_steps += 1
        self._last_ts = t

    def snapshot(self, path, fi: int, line: int, exch: int, local: int, bids: list, asks: list) -> None:
        """bids / asks: [(price units, size units)], best first. Checks the order, counts crossed
        books and leaves out zero-size levels (counted)."""
        rep = self.report
        for name, side, sign in (("bids", bids, 1), ("asks", asks, -1)):
            prev = None
            for k, (p, _) in enumerate(side):
                if p <= 0:
                    raise FeedError(path, line, f"{name} level {k + 1}: price must be > 0, got {units_to_str(p)}")
                if prev is not None and (prev - p) * sign <= 0:
                    order = "descending (best bid first)" if sign > 0 else "ascending (best ask first)"
                    raise FeedError(
                        path, line,
                        f"{name}: level {k + 1} price {units_to_str(p)} after level {k} price "
                        f"{units_to_str(prev)}: levels must be strictly {order}",
                    )
                prev = p
        n_in = len(bids) + len(asks)
        bids = [lv for lv in bids if lv[1]]
        asks = [lv for lv in asks if lv[1]]
        n = len(bids) + len(asks)
        rep.zero_size_levels_skipped += n_in - n
        if n:
            prices = [p for p, _ in bids] + [p for p, _ in asks]
            sizes = [q for _, q in bids] + [q for _, q in asks]
            self.price_gcd = gcd(self.price_gcd, *prices)
            self.qty_gcd = gcd(self.qty_gcd, *sizes)
            self.price_max = max(self.price_max, max(prices))
            self.qty_max = max(self.qty_max, max(sizes))
        else:
            rep.empty_snapshots += 1
        if bids and asks and bids[0][0] >= asks[0][0]:
            rep.crossed_snapshots += 1
        rep.snapshots += 1
        rep.levels += n
        self._time_step(exch, local)
        self.records.append((True, fi, line, exch, local, rep.snapshots, bids, asks))

    def trade(self, path, fi: int, line: int, exch: int, local: int, trade_id: int, p: int, q: int, flags: int):
        if p <= 0 or q <= 0:
            raise FeedError(path, line, "trade: price and amount must be > 0")
        self.price_gcd = gcd(self.price_gcd, p)
        self.qty_gcd = gcd(self.qty_gcd, q)
        self.price_max = max(self.price_max, p)
        self.qty_max = max(self.qty_max, q)
        self.report.trades += 1
        self.records.append((False, fi, line, exch, local, trade_id, p, q, flags))
