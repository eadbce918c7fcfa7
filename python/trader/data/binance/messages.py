"""Binance raw lines to message tuples: REST snapshots ("S"), depth diffs ("D"), bookTickers ("K") and
trades ("T"), with prices and sizes in exact 1e-12 units and their running gcd (the default tick and lot).
Futures trades other than ``X == MARKET`` are counted and left out."""

from __future__ import annotations

from math import gcd

from trader.data.binance.files import DEPTH_KINDS, FileInfo, split_line, stream_kind, ts_unit
from trader.data.binance.report import ConversionReport
from trader.data.errors import FeedError
from trader.data.fixed_point import parse_units
from trader.data.rawfile import iter_lines

_MS = 1_000_000
_INT64_MAX = 2**63 - 1  # event timestamps, prices and sizes are int64


class MessageParser:
    """Turns lines into message tuples with prices and sizes in 1e-12 units, tracking their gcd."""

    def __init__(self, report: ConversionReport, ignore_streams: set[str]):
        self.report = report
        self.ignore_streams = ignore_streams
        self.price_gcd = 0
        self.qty_gcd = 0

    def _levels(self, path, lineno, levels, name):
        if not isinstance(levels, list):
            raise FeedError(path, lineno, f"field {name!r}: expected a list of [price, qty]")
        out = []
        pg, qg = self.price_gcd, self.qty_gcd
        for lv in levels:
            try:
                if not isinstance(lv, list):  # a 2-char string or 2-key object would unpack too
                    raise TypeError("not a list")
                p_text, q_text = lv
                p = parse_units(p_text)
                q = parse_units(q_text)
            except (TypeError, ValueError) as exc:
                raise FeedError(
                    path, lineno, f"field {name!r}: expected [price, qty] decimal strings, got {lv!r} ({exc})"
                ) from None
            if p <= 0:
                raise FeedError(path, lineno, f"field {name!r}: price must be > 0, got {p_text!r}")
            pg = gcd(pg, p)
            if q:
                qg = gcd(qg, q)
            out.append((p, q))
        self.price_gcd, self.qty_gcd = pg, qg
        return out

    def _num(self, path, lineno, data, key, what):
        try:
            v = parse_units(data[key])
        except KeyError:
            raise FeedError(path, lineno, f"{what}: missing field {key!r}") from None
        except (TypeError, ValueError) as exc:
            raise FeedError(path, lineno, f"{what}: field {key!r}: {exc}") from None
        return v

    @classmethod
    def _ms(cls, path, lineno, data, key, what, default=None):
        """An exchange time in ms, returned in ns; it must fit the int64 event field."""
        v = cls._int(path, lineno, data, key, what, default)
        if v * _MS > _INT64_MAX:
            raise FeedError(path, lineno, f"{what}: field {key!r} = {v} ms is out of the int64 nanosecond range")
        return v * _MS

    @staticmethod
    def _int(path, lineno, data, key, what, default=None):
        v = data.get(key, default)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            if v is None:
                raise FeedError(path, lineno, f"{what}: missing field {key!r}")
            raise FeedError(path, lineno, f"{what}: field {key!r} must be a non-negative integer, got {v!r}")
        return v

    def parse_file(self, fi: int, info: FileInfo, out: list, until_ns: int | None = None) -> bool:
        """Append the file's messages to `out`; stop (returning False) at the first line received
        at or after `until_ns`."""
        path = info.path
        symbol = info.instrument.symbol
        rep = self.report
        unit_len = None
        mult = 1
        for lineno, raw in iter_lines(path):
            if not raw.strip():
                rep.count("blank")
                continue
            ts_text, msg = split_line(path, lineno, raw)
            if unit_len is None:
                unit_len = len(ts_text)
                _, mult = ts_unit(path, lineno, ts_text)
            elif len(ts_text) != unit_len:
                raise FeedError(
                    path, lineno,
                    f"local timestamp has {len(ts_text)} digits where earlier lines had {unit_len}: mixed units",
                )
            local = int(ts_text) * mult
            if local > _INT64_MAX:
                raise FeedError(path, lineno, f"local timestamp {ts_text.decode()} is out of the int64 nanosecond range")
            if until_ns is not None and local >= until_ns:
                return False
            if "lastUpdateId" in msg:
                rep.count("snapshot")
                L = self._int(path, lineno, msg, "lastUpdateId", "snapshot")
                sym = msg.get("symbol")
                if sym is not None and sym != symbol:
                    raise FeedError(path, lineno, f"snapshot symbol {sym!r}, expected {symbol!r}")
                exch = self._ms(path, lineno, msg, "E", "snapshot", 0)
                bids = self._levels(path, lineno, msg.get("bids"), "bids")
                asks = self._levels(path, lineno, msg.get("asks"), "asks")
                out.append(("S", fi, lineno, local, exch, L, bids, asks))
                continue
            prefix, kind, data = stream_kind(path, lineno, msg)
            if kind in self.ignore_streams:
                rep.ignored_streams[kind] = rep.ignored_streams.get(kind, 0) + 1
                rep.count("ignored_stream")
                continue
            s = data.get("s")
            if s != symbol:
                raise FeedError(path, lineno, f"message for symbol {s!r} in a {symbol!r} sequence")
            if kind in DEPTH_KINDS:
                rep.count("depth")
                what = "depth message"
                U = self._int(path, lineno, data, "U", what)
                u = self._int(path, lineno, data, "u", what)
                if u < U:
                    raise FeedError(path, lineno, f"depth message: u={u} < U={U}")
                pu = data.get("pu")
                if pu is not None:
                    pu = self._int(path, lineno, data, "pu", what)
                exch = self._ms(path, lineno, data, "E", what)
                bids = self._levels(path, lineno, data.get("b"), "b")
                asks = self._levels(path, lineno, data.get("a"), "a")
                if not bids and not asks:
                    rep.count("depth_without_levels")
                out.append(("D", fi, lineno, local, exch, U, u, pu, bids, asks))
            elif kind == "bookTicker":
                rep.count("bookTicker")
                what = "bookTicker"
                u = self._int(path, lineno, data, "u", what)
                exch = self._ms(path, lineno, data, "E", what, 0)
                vals = [self._num(path, lineno, data, k, what) for k in ("b", "B", "a", "A")]
                for v in (vals[1], vals[3]):
                    if v:
                        self.qty_gcd = gcd(self.qty_gcd, v)
                for v in (vals[0], vals[2]):
                    if v:
                        self.price_gcd = gcd(self.price_gcd, v)
                out.append(("K", fi, lineno, local, exch, u, *vals))
            elif kind == "trade":
                what = "trade"
                x = data.get("X")
                if x is not None and x != "MARKET":
                    rep.count("trade_excluded")
                    rep.trades_excluded[x] = rep.trades_excluded.get(x, 0) + 1
                    continue
                rep.count("trade")
                t = self._int(path, lineno, data, "t", what)
                exch = self._ms(path, lineno, data, "T", what)
                p = self._num(path, lineno, data, "p", what)
                q = self._num(path, lineno, data, "q", what)
                m = data.get("m")
                if not isinstance(m, bool):
                    raise FeedError(path, lineno, f"trade: field 'm' must be true or false, got {m!r}")
                if p <= 0 or q <= 0:
                    raise FeedError(path, lineno, "trade: price and qty must be > 0")
                self.price_gcd = gcd(self.price_gcd, p)
                self.qty_gcd = gcd(self.qty_gcd, q)
                out.append(("T", fi, lineno, local, exch, t, p, q, m))
            else:
                raise FeedError(
                    path, lineno,
                    f"unknown stream kind {kind!r} (expected depth, bookTicker or trade; "
                    "pass ignore_streams / --ignore-stream to skip it)",
                )
        return True
