"""Exact decimal strings to integers, and the tick / lot grid.

Exchange prices and sizes are decimal strings; floats would lose them. We parse each to an integer
count of 10**-SCALE_DIGITS units, then divide by the tick (or lot) expressed in the same units.
"""

from __future__ import annotations

import re
from decimal import Decimal

SCALE_DIGITS = 12
SCALE = 10**SCALE_DIGITS
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_INT64_MAX = 2**63 - 1


def parse_units(text: str) -> int:
    """'61837.63000000' -> 61837630000000000 (units of 1e-12). Raises ValueError on anything else."""
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"expected a non-negative decimal number, got {text!r}")
    dot = text.find(".")
    if dot < 0:
        return int(text) * SCALE
    frac = text[dot + 1 :]
    if len(frac) > SCALE_DIGITS:
        if frac[SCALE_DIGITS:].strip("0"):
            raise ValueError(f"{text!r} has more than {SCALE_DIGITS} decimals")
        frac = frac[:SCALE_DIGITS]
    return int(text[:dot] + frac + "0" * (SCALE_DIGITS - len(frac)))


def units_to_str(units: int) -> str:
    """Inverse of parse_units, without trailing zeros: 10000000000 -> '0.01'."""
    d = Decimal(units).scaleb(-SCALE_DIGITS).normalize()
    return format(d, "f")


def parse_step(text: str, what: str) -> int:
    """A tick or lot size given by the user ('0.01') in units; must be > 0."""
    try:
        units = parse_units(text)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if units <= 0:
        raise ValueError(f"{what}: expected a positive size, got {text!r}")
    return units


def check_int64(value: int, what: str) -> int:
    if value > _INT64_MAX:
        raise ValueError(f"{what} {value} does not fit in 64 bits")
    return value
