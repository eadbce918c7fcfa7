"""The reference env's own replay of an event array: rows sampled like the C++ sampler and the market
stream between them, in plain Python (a dict per book side), so that the reference does not depend
on the C++ stream builder it is checked against.

`market_stream(events, interval_ns, clock)` returns (records, starts): records are tuples
(exch_ts ns, price ticks, qty lots, kind, previous size lots), kind 0 bid level, 1 ask level, 2 buy
trade (the aggressor bought: it took asks), 3 sell trade; records[starts[c]:starts[c + 1]] are the
changes applied after row c was sampled and before row c + 1 (the sampler's rule: with interval_ns
= 0 a row follows every book message; otherwise row k is the book after every message stamped
<= start + k * interval, a message being applied whole, trades and tickers never moving the grid).
A book clear becomes a change to size 0 of every level it held (bids best first, then asks).
"""

from __future__ import annotations

import numpy as np

BOOK_CLEAR, BOOK_SNAPSHOT, BOOK_DELTA, TRADE = 1, 2, 3, 4
FLAG_BID, FLAG_ASK, FLAG_END = 1, 2, 4
LEVEL_BID, LEVEL_ASK, TRADE_BUY, TRADE_SELL = 0, 1, 2, 3


def _is_book(kind: int) -> bool:
    return kind in (BOOK_CLEAR, BOOK_SNAPSHOT, BOOK_DELTA)


def market_stream(events: np.ndarray, interval_ns: int, clock: str = "exchange") -> tuple[list, list]:
    kinds = events["kind"].tolist()
    flags = events["flags"].tolist()
    exch = events["exch_ts"].tolist()
    stamp = (events["exch_ts"] if clock == "exchange" else events["local_ts"]).tolist()
    price = events["price"].tolist()
    qty = events["qty"].tolist()
    n = len(kinds)
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    records: list = []
    starts: list[int] = []

    def apply(i: int) -> bool:
        """Record what event i changes, apply it; True when it ended a book message."""
        k = kinds[i]
        if k == BOOK_CLEAR:
            for p in sorted(bids, reverse=True):
                records.append((exch[i], p, 0, LEVEL_BID, bids[p]))
            for p in sorted(asks):
                records.append((exch[i], p, 0, LEVEL_ASK, asks[p]))
            bids.clear()
            asks.clear()
        elif k in (BOOK_SNAPSHOT, BOOK_DELTA):
            is_bid = bool(flags[i] & FLAG_BID)
            side = bids if is_bid else asks
            records.append((exch[i], price[i], qty[i], LEVEL_BID if is_bid else LEVEL_ASK, side.get(price[i], 0)))
            if qty[i] == 0:
                side.pop(price[i], None)
            else:
                side[price[i]] = qty[i]
        elif k == TRADE:
            if flags[i] & (FLAG_BID | FLAG_ASK):
                records.append((exch[i], price[i], qty[i], TRADE_BUY if flags[i] & FLAG_BID else TRADE_SELL, 0))
            return False
        else:
            return False
        return bool(flags[i] & FLAG_END)

    if interval_ns == 0:
        rows = sum(1 for i in range(n) if _is_book(kinds[i]) and flags[i] & FLAG_END)
        for i in range(n):
            if len(starts) == rows:
                break
            if apply(i):
                starts.append(len(records))
        starts.append(len(records))
        return records, starts

    timed = [stamp[i] for i in range(n) if _is_book(kinds[i]) and stamp[i] > 0]
    if not timed:
        return records, [0]
    first, last = timed[0], max(timed)
    start = (first + interval_ns - 1) // interval_ns * interval_ns
    rows = (last - start) // interval_ns + 1 if start <= last else 0
    clock_now = 0
    i = 0
    while i < n and len(starts) < rows:
        if not _is_book(kinds[i]):
            apply(i)
            i += 1
            continue
        j, msg_ts, ended = i, 0, False
        while j < n and _is_book(kinds[j]):
            msg_ts = max(msg_ts, stamp[j])
            if flags[j] & FLAG_END:
                ended = True
                break
            j += 1
        clock_now = max(clock_now, msg_ts)
        while len(starts) < rows and clock_now > start + len(starts) * interval_ns:
            starts.append(len(records))
        end = j if ended else j - 1
        for k in range(i, end + 1):
            apply(k)
        i = end + 1
    while len(starts) < rows:
        starts.append(len(records))
    starts.append(len(records))
    return records, starts
