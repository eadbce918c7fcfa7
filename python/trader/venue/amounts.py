"""Exact decimal numbers in Binance's string format ("61837.63000000")."""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, ROUND_UP, Context, Decimal

from trader.venue import errors

MIN_DECIMALS = 8  # Binance prints prices, sizes and balances with 8 decimals
# The form Binance accepts for a decimal parameter (price, quantity, quoteOrderQty): anything else, an
# exponent ("1e30"), a sign or over 20 digits either side of the point, is refused with -1100 quoting this
# range (issue 16: "1e30" / "1e400" used to reach the arithmetic and answer HTTP 500).
LEGAL_DECIMAL = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
_LEGAL_DECIMAL = re.compile(LEGAL_DECIMAL)
MAX_PRICE_TICKS = 10**9  # PRICE_FILTER maxPrice = tickSize * this
MAX_QTY_LOTS = 10**12  # LOT_SIZE maxQty = stepSize * this
# 20 + 20 digits divided by a step of up to 1e-20 need 60 significant digits to divide exactly
_EXACT = Context(prec=64)


def decimals(step: Decimal) -> int:
    return max(0, -step.normalize().as_tuple().exponent)


class Units:
    """Integer units of ``step`` (ticks or lots) to and from decimal strings."""

    def __init__(self, step: Decimal, max_units: int):
        self.step = Decimal(step)
        self.max_units = max_units
        self.places = max(MIN_DECIMALS, decimals(self.step))
        self._mult = int(self.step.scaleb(self.places))  # step in units of 10**-places, exact

    def str(self, n: int) -> str:
        v = int(n) * self._mult
        sign = "-" if v < 0 else ""
        s = str(abs(v)).rjust(self.places + 1, "0")
        return f"{sign}{s[:-self.places]}.{s[-self.places:]}"

    def dec(self, n: int) -> Decimal:
        return self.step * int(n)

    def units(self, value: Decimal, name: str, filter_name: str) -> int:
        """``value`` as a whole number of steps; not a multiple of the step, or over ``max_units`` steps:
        the filter fails."""
        q, r = _EXACT.divmod(value, self.step)
        if r != 0 or q > self.max_units:
            raise errors.filter_failure(filter_name)
        return int(q)


def fmt(value: Decimal, places: int = MIN_DECIMALS) -> str:
    """A balance, fee or quote amount: at least 8 decimals, more where the value needs them."""
    places = max(places, decimals(value))
    return f"{value:.{places}f}"


def parse(value, name: str) -> Decimal:
    """A decimal request parameter in Binance's legal form (see ``LEGAL_DECIMAL``), else -1100."""
    text = str(value)
    if not _LEGAL_DECIMAL.match(text):
        raise errors.illegal_chars(name, LEGAL_DECIMAL)
    return Decimal(text)


_INTEGER = re.compile(r"^-?[0-9]{1,19}$")  # a signed 64-bit field of Binance (ids, times in ms, limits)


def integer(params: dict, name: str, default: int | None = None, least: int | None = None) -> int:
    """The integer parameter ``name`` (``default`` when absent or empty); not an integer, or under
    ``least``: -1100 naming the parameter."""
    text = params.get(name)
    if not text:
        return default
    if not _INTEGER.match(text) or (least is not None and int(text) < least):
        raise errors.bad_param(name, text)
    return int(text)


def round_fee(value: Decimal, places: int = MIN_DECIMALS) -> Decimal:
    """Commissions are rounded up to 8 decimals (never under-charged)."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_UP)


def floor_to(value: Decimal, places: int = MIN_DECIMALS) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)
