"""Exact decimal numbers in Binance's string format ("61837.63000000")."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_UP, Decimal, InvalidOperation

from trader.venue import errors

MIN_DECIMALS = 8  # Binance prints prices, sizes and balances with 8 decimals


def decimals(step: Decimal) -> int:
    return max(0, -step.normalize().as_tuple().exponent)


class Units:
    """Integer units of ``step`` (ticks or lots) to and from decimal strings."""

    def __init__(self, step: Decimal):
        self.step = Decimal(step)
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
        """``value`` as a whole number of steps; not a multiple of the step: the filter fails."""
        q, r = divmod(value, self.step)
        if r != 0:
            raise errors.filter_failure(filter_name)
        return int(q)


def fmt(value: Decimal, places: int = MIN_DECIMALS) -> str:
    """A balance, fee or quote amount: at least 8 decimals, more where the value needs them."""
    places = max(places, decimals(value))
    return f"{value:.{places}f}"


def parse(value, name: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise errors.bad_param(name, str(value)) from None
    if not d.is_finite():
        raise errors.bad_param(name, str(value))
    return d


def round_fee(value: Decimal, places: int = MIN_DECIMALS) -> Decimal:
    """Commissions are rounded up to 8 decimals (never under-charged)."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_UP)


def floor_to(value: Decimal, places: int = MIN_DECIMALS) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)
