"""Numbers and times as snapshot tables write them: decimal text or JSON numbers to exact integer units of
1e-12 (through their shortest repr, never binary arithmetic), JSON [[price, size], ...] levels, and epoch
numbers (s, ms, us, ns, by magnitude or as told) or ISO-8601 strings to ns."""

from __future__ import annotations

import datetime as _dt
import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext

from trader.data.errors import FeedError
from trader.data.fixed_point import parse_units

INT64_MAX = 2**63 - 1
TS_MULT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_NUMERIC = re.compile(r"[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?")
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)
_EPOCH = _dt.datetime(1970, 1, 1)


def decimal_text(v) -> str:
    """A JSON number or numeric string as plain decimal text ('1e-05' -> '0.00001'). Floats go
    through repr, the shortest text that reads back as the same float: no binary arithmetic."""
    if isinstance(v, bool):
        raise ValueError(f"expected a decimal number, got {v!r}")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        v = repr(v)
    if not isinstance(v, str):
        raise ValueError(f"expected a decimal number, got {v!r}")
    try:
        d = Decimal(v.strip())
    except InvalidOperation:
        raise ValueError(f"expected a decimal number, got {v!r}") from None
    if not d.is_finite():
        raise ValueError(f"expected a finite decimal number, got {v!r}")
    return format(d, "f")


def units(v) -> int:
    """Decimal string or JSON number -> integer units of 1e-12; ValueError if not a number >= 0."""
    if v.__class__ is str:
        try:
            return parse_units(v)
        except ValueError:
            pass
    return parse_units(decimal_text(v))


def iso_ns(text: str) -> int:
    """ISO-8601 date-time ('2021-04-17 17:22:00.172344+00:00', '...T...Z', up to ns) to ns since
    epoch. Without an offset the time is taken as UTC."""
    m = _ISO.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"expected an ISO-8601 date-time or an epoch number, got {text!r}")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        t = _dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0))
    except ValueError as exc:
        raise ValueError(f"bad date-time {text!r} ({exc})") from None
    secs = (t - _EPOCH) // _dt.timedelta(seconds=1)
    if tz and tz.upper() != "Z":
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        secs -= sign * (int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60)
    return secs * 1_000_000_000 + int((frac or "").ljust(9, "0"))


def auto_unit(int_part: int) -> str:
    """Epoch unit by magnitude: seconds up to 1e11 (year 5138), then ms, us, ns."""
    if int_part < 10**11:
        return "s"
    if int_part < 10**14:
        return "ms"
    if int_part < 10**17:
        return "us"
    return "ns"


class Clock:
    """Timestamps of one file: epoch numbers in a fixed or detected unit, or ISO-8601 strings."""

    def __init__(self, path, unit: str):
        self.path = path
        self.unit = unit  # auto | s | ms | us | ns
        self.detected: str | None = None
        self.detected_line = 0

    def ns(self, line: int, value, what: str = "timestamp") -> int:
        try:
            if isinstance(value, bool):
                raise ValueError(f"expected a number or an ISO-8601 string, got {value!r}")
            if isinstance(value, str) and not _NUMERIC.fullmatch(value.strip()):
                unit = "iso"
                ns = iso_ns(value)
            else:
                if isinstance(value, int):
                    d = Decimal(value)
                else:
                    d = Decimal(decimal_text(value))
                if d <= 0:
                    raise ValueError(f"expected a positive epoch time, got {value!r}")
                unit = self.unit if self.unit != "auto" else auto_unit(int(d))
                with localcontext() as ctx:
                    ctx.prec = 60
                    ns = int((d * TS_MULT[unit]).to_integral_value(ROUND_HALF_EVEN))
        except ValueError as exc:
            raise FeedError(self.path, line, f"{what}: {exc}") from None
        if self.detected is None:
            self.detected, self.detected_line = unit, line
        elif unit != self.detected:
            raise FeedError(
                self.path, line,
                f"{what} {value!r} reads as {unit} but line {self.detected_line} read as {self.detected}: "
                "mixed units (pass csv_ts_unit / --csv-ts-unit to fix the unit)",
            )
        if ns > INT64_MAX:
            raise FeedError(self.path, line, f"{what} {value!r} is out of range")
        return ns


_UNITS_CACHE: dict = {}  # decimal text -> units; the same prices and sizes recur from snapshot to snapshot


def cached_units(v) -> int:
    u = _UNITS_CACHE.get(v) if v.__class__ is str else None
    if u is None:
        u = units(v)
        if v.__class__ is str:
            if len(_UNITS_CACHE) > 1_000_000:
                _UNITS_CACHE.clear()
            _UNITS_CACHE[v] = u
    return u


def levels_pairs(path, line: int, levels, name: str) -> list:
    """JSON [[price, size], ...] -> [(units, units)]."""
    if not isinstance(levels, list):
        raise FeedError(path, line, f"field {name!r}: expected a list of [price, size]")
    out = []
    get = _UNITS_CACHE.get
    for k, lv in enumerate(levels):
        try:
            p, q = lv
            pu = get(p)
            if pu is None:
                pu = cached_units(p)
            qu = get(q)
            if qu is None:
                qu = cached_units(q)
            out.append((pu, qu))
        except (TypeError, ValueError) as exc:
            raise FeedError(
                path, line, f"field {name!r} level {k + 1}: expected [price, size] decimal numbers, got {lv!r} ({exc})"
            ) from None
    return out
