"""The 64-byte event record, mirrored from cpp/events/event.h.

``EVENT_DTYPE`` is written here by hand (so that it can be read without the compiled core) and
``tests/test_events.py`` checks it against the dtype the C++ core registers, field by field.
"""

from __future__ import annotations

import enum

import numpy as np

EVENT_DTYPE = np.dtype(
    [
        ("kind", "u1"),  # EventKind
        ("flags", "u1"),  # EventFlag bits
        ("file", "<u2"),  # index of the source file in the dataset metadata
        ("line", "<u4"),  # 1-based line in that file
        ("exch_ts", "<i8"),  # exchange time, ns since epoch; 0 = not sent by the exchange
        ("local_ts", "<i8"),  # receive time, ns since epoch
        ("price", "<i8"),  # ticks
        ("qty", "<i8"),  # lots
        ("update_id", "<u8"),  # book: last update id u; trade: trade id
        ("first_update_id", "<u8"),  # book delta: first update id U
        ("prev_update_id", "<u8"),  # futures delta: pu; snapshot: lastUpdateId
    ]
)
assert EVENT_DTYPE.itemsize == 64


class EventKind(enum.IntEnum):
    BOOK_CLEAR = 1
    BOOK_SNAPSHOT = 2
    BOOK_DELTA = 3
    TRADE = 4
    BOOK_TICKER = 5


class EventFlag(enum.IntFlag):
    BID = 1  # bid side; for trades: buyer was the aggressor
    ASK = 2  # ask side; for trades: seller was the aggressor
    END_OF_MESSAGE = 4  # last event of one exchange message


BOOK_KINDS = (EventKind.BOOK_CLEAR, EventKind.BOOK_SNAPSHOT, EventKind.BOOK_DELTA)


def mirrored(events: np.ndarray) -> np.ndarray:
    """A copy of `events` reflected in price about its median trade price c (of every price if it has no
    trades): p becomes 2c - p, bid events become ask events and a buyer-aggressor trade a seller-aggressor one
    (and back); times, sizes and ids stay. Prices at or beyond 2c (resting orders far from any depth the env
    reads: Binance's snapshots reach 3x the price) fold onto 1 tick. The book near the touch is the original's
    upside down at the same price level, so a rule that treats the two sides alike gives the same fills with
    the sides swapped (tests/test_quotes.py; benchmarks/side_markouts.py --mirror; trader train --mirror)."""
    out = events.copy()
    priced = out["price"] > 0
    trades = priced & (out["kind"] == EventKind.TRADE)
    centre = int(np.median(out["price"][trades if trades.any() else priced]))
    out["price"][priced] = np.maximum(2 * centre - out["price"][priced], 1)
    side = np.uint8(EventFlag.BID | EventFlag.ASK)
    flags = out["flags"]
    out["flags"] = (flags & ~side) | ((flags & EventFlag.BID) << 1) | ((flags & EventFlag.ASK) >> 1)
    return out
