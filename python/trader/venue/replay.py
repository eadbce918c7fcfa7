"""Market replay: a clock over the dataset's time axis and the exact book rebuilt from its events.

The dataset's events are grouped into the exchange messages they came from (the END_OF_MESSAGE flag
closes each one): a REST snapshot (BOOK_CLEAR + BOOK_SNAPSHOT), a depth diff (BOOK_DELTA events with
one ``U``/``u``), a trade, a bookTicker. Messages are applied in the dataset's order when the replay
clock passes their receive time (``local_ts``, made non-decreasing: diffs buffered before the first
snapshot were applied after it). Each applied message is handed to a sink (the matching engine and the
websocket streams) as the Binance payload it was recorded from, with the dataset's own update ids, so
that the diff stream chains exactly onto ``GET /api/v3/depth``'s ``lastUpdateId``.

With ``loop=True`` the replay starts again at the first snapshot when the data ends; update ids, trade
ids and times are shifted past the previous pass, so ids keep increasing and a client sees a gap in
the diff stream (``U`` jumps) and resyncs from a new REST snapshot, as it would on Binance.
"""

from __future__ import annotations


import time
from collections import deque
from decimal import Decimal

import numpy as np
from trader.data.events import EventFlag, EventKind
from trader.venue.amounts import MAX_PRICE_TICKS, MAX_QTY_LOTS, Units

_BID, _ASK, _END = int(EventFlag.BID), int(EventFlag.ASK), int(EventFlag.END_OF_MESSAGE)
_CLEAR, _SNAP, _DELTA = int(EventKind.BOOK_CLEAR), int(EventKind.BOOK_SNAPSHOT), int(EventKind.BOOK_DELTA)
_TRADE, _TICKER = int(EventKind.TRADE), int(EventKind.BOOK_TICKER)
_MS = 1_000_000


class ReplayClock:
    """Replay time in ns on the dataset's receive-time axis.

    ``speed > 0``: replay time runs at ``speed`` x wall time (10 = ten times faster than recorded).
    ``speed == 0``: manual; time moves only by :meth:`advance` / :meth:`advance_to` (deterministic
    tests). :meth:`pause` / :meth:`resume` switch between the two; advancing while running jumps ahead.
    """

    def __init__(self, start_ns: int, speed: float = 1.0):
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self.speed = float(speed)
        self._anchor_data = int(start_ns)
        self._anchor_wall = time.monotonic_ns()
        self._paused = self.speed == 0

    @property
    def paused(self) -> bool:
        return self._paused

    def now(self) -> int:
        if self._paused:
            return self._anchor_data
        return self._anchor_data + int((time.monotonic_ns() - self._anchor_wall) * self.speed)

    def pause(self) -> None:
        self._anchor_data = self.now()
        self._paused = True

    def resume(self, speed: float | None = None) -> None:
        self._anchor_data = self.now()
        if speed is not None:
            self.speed = float(speed)
        self._anchor_wall = time.monotonic_ns()
        self._paused = self.speed == 0

    def advance(self, ns: int) -> int:
        if ns < 0:
            raise ValueError("the replay clock cannot go back")
        self._anchor_data += int(ns)
        return self.now()

    def advance_to(self, ts_ns: int) -> int:
        return self.advance(max(0, int(ts_ns) - self.now()))

    def wall_seconds_until(self, ts_ns: int) -> float | None:
        """Wall seconds until replay time reaches ``ts_ns``; None while paused."""
        if self._paused or self.speed <= 0:
            return None
        return max(0.0, (ts_ns - self.now()) / self.speed / 1e9)


class ReplaySink:
    """What the replay tells about each applied message (all no-ops here)."""

    def on_snapshot(self) -> None: ...

    def on_depth(self, msg: dict, changed: list[tuple[bool, int, int]]) -> None:
        """``changed``: (is_bid, price ticks, size before in lots) of each level the diff set."""

    def on_trade(self, msg: dict, price: int, qty: int) -> None: ...

    def on_book_ticker(self, msg: dict) -> None: ...



class MarketReplay:
    def __init__(self, dataset, loop: bool = False):
        from trader import _core

        meta = dataset.meta
        self.symbol: str = meta["symbol"].upper()
        self.market: str = meta.get("market", "spot")  # spot | usdm | coinm (trader.data.binance)
        self.tick = Decimal(meta["tick_size"])
        self.lot = Decimal(meta["lot_size"])
        self.price = Units(self.tick, MAX_PRICE_TICKS)
        self.qty = Units(self.lot, MAX_QTY_LOTS)
        self.loop = loop
        ev = dataset.events
        if len(ev) == 0:
            raise ValueError("dataset has no events")
        flags = np.asarray(ev["flags"])
        kinds = np.asarray(ev["kind"])
        end = np.flatnonzero(flags & _END)
        if len(end) == 0 or end[-1] != len(ev) - 1:
            end = np.append(end, len(ev) - 1)
        start = np.r_[0, end[:-1] + 1]
        self._ev = ev
        self._start = start.tolist()
        self._end = (end + 1).tolist()
        self._kind = kinds[end].tolist()
        self._time = np.maximum.accumulate(np.asarray(ev["local_ts"]))[end]
        exch = np.asarray(ev["exch_ts"])[end]
        has_exch = exch > 0
        # exchange time minus receive time: added to the replay clock when the server says "now", so
        # that order times line up with the event times ("E", "T") of the market data it streams
        self.skew_ns = int(np.median(exch[has_exch] - self._time[has_exch])) if has_exch.any() else 0
        snaps = np.flatnonzero(kinds[end] == _SNAP)
        if len(snaps) == 0:
            raise ValueError("dataset has no book snapshot: the local exchange needs one to start the book")
        self._first_snap = int(snaps[0])
        book_ids = np.asarray(ev["update_id"])[np.isin(kinds, (_SNAP, _DELTA))]
        self._uid_span = int(book_ids.max() - book_ids.min()) + 1000 if len(book_ids) else 1000
        trade_ids = np.asarray(ev["update_id"])[kinds == _TRADE]
        self._tid_span = int(trade_ids.max() - trade_ids.min()) + 1 if len(trade_ids) else 1
        self._time_span = int(self._time[-1] - self._time[self._first_snap]) + 1_000_000_000
        self.book = _core.OrderBook()
        self.last_update_id = 0
        self.uid_off = self.tid_off = self.time_off = 0
        self.passes = 1
        self.pos = 0
        self.messages_applied = 0
        self.recent_trades: deque[dict] = deque(maxlen=1000)
        self.sink: ReplaySink = ReplaySink()
        while self.pos <= self._first_snap:  # the server starts with the first snapshot's book
            self._apply(self.pos)
            self.pos += 1
        self.start_ns = int(self._time[self._first_snap])

    # ---- time ----------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.pos >= len(self._start) and not self.loop

    def next_time(self) -> int | None:
        if self.pos >= len(self._start):
            if not self.loop:
                return None
            return int(self._time[self._first_snap]) + self.time_off + self._time_span
        return int(self._time[self.pos]) + self.time_off

    @property
    def end_ns(self) -> int:
        return int(self._time[-1])

    def exchange_ms(self, replay_ns: int) -> int:
        """Exchange time (ms) of a replay clock reading."""
        return (replay_ns + self.skew_ns) // _MS

    # ---- stepping ------------------------------------------------------------------------------
    def step_until(self, t_ns: int) -> int:
        """Apply every message due at replay time ``t_ns``; returns how many."""
        n = 0
        while True:
            if self.pos >= len(self._start):
                if not self.loop:
                    break
                self._wrap()
            if int(self._time[self.pos]) + self.time_off > t_ns:
                break
            self._apply(self.pos)
            self.pos += 1
            n += 1
        return n

    def _wrap(self) -> None:
        self.uid_off += self._uid_span
        self.tid_off += self._tid_span
        self.time_off += self._time_span
        self.passes += 1
        self.pos = self._first_snap

    # ---- messages ------------------------------------------------------------------------------
    def _event_ms(self, exch_ts: int, local_ts: int) -> int:
        if exch_ts > 0:
            return (exch_ts + self.time_off) // _MS
        return (local_ts + self.skew_ns + self.time_off) // _MS

    def _apply(self, i: int) -> None:
        ev = self._ev[self._start[i]:self._end[i]]
        kind = self._kind[i]
        self.messages_applied += 1
        if kind == _SNAP:
            self.book.clear()
            snap = ev[ev["kind"] == _SNAP]
            for is_bid, price, qty in zip(((snap["flags"] & _BID) != 0).tolist(), snap["price"].tolist(),
                                          snap["qty"].tolist()):
                self.book.set(is_bid, price, qty)
            self.last_update_id = int(snap["prev_update_id"][-1] or snap["update_id"][-1]) + self.uid_off
            self.sink.on_snapshot()
        elif kind == _DELTA:
            P, Q = self.price.str, self.qty.str
            bids, asks, changed = [], [], []
            for is_bid, price, qty in zip(((ev["flags"] & _BID) != 0).tolist(), ev["price"].tolist(),
                                          ev["qty"].tolist()):
                changed.append((is_bid, price, self.book.qty_at(is_bid, price)))
                self.book.set(is_bid, price, qty)
                (bids if is_bid else asks).append([P(price), Q(qty)])
            first = ev[0]
            u = int(first["update_id"]) + self.uid_off
            msg = {"e": "depthUpdate", "E": self._event_ms(int(first["exch_ts"]), int(first["local_ts"])),
                   "s": self.symbol, "U": int(first["first_update_id"]) + self.uid_off, "u": u,
                   "b": bids, "a": asks}
            if self.market != "spot":  # futures diffs: "T" and "pu" (the previous diff's "u") as recorded
                msg["T"] = msg["E"]
                msg["pu"] = int(first["prev_update_id"]) + self.uid_off
            self.last_update_id = u
            self.sink.on_depth(msg, changed)
        elif kind == _TRADE:
            e = ev[-1]
            price, qty = int(e["price"]), int(e["qty"])
            ms = self._event_ms(int(e["exch_ts"]), int(e["local_ts"]))
            # flags: BID = buyer was the aggressor; Binance's "m": the buyer is the maker
            msg = {"e": "trade", "E": ms, "s": self.symbol, "t": int(e["update_id"]) + self.tid_off,
                   "p": self.price.str(price), "q": self.qty.str(qty), "T": ms,
                   "m": bool(int(e["flags"]) & _ASK), "M": True}
            self.recent_trades.append(msg)
            self.sink.on_trade(msg, price, qty)
        elif kind == _TICKER:
            msg = {"u": int(ev[-1]["update_id"]) + self.uid_off, "s": self.symbol}
            for e in ev:
                if int(e["flags"]) & _BID:
                    msg["b"], msg["B"] = self.price.str(int(e["price"])), self.qty.str(int(e["qty"]))
                else:
                    msg["a"], msg["A"] = self.price.str(int(e["price"])), self.qty.str(int(e["qty"]))
            self.sink.on_book_ticker(msg)
        elif kind == _CLEAR:
            self.book.clear()
            self.sink.on_snapshot()

    # ---- queries -------------------------------------------------------------------------------
    def depth(self, limit: int) -> dict:
        """``GET /api/v3/depth``'s body for the current book."""
        top = self.book.top(limit)
        P, Q = self.price.str, self.qty.str
        bids = [[P(p), Q(q)] for p, q in top[:, 0:2].tolist() if q > 0]
        asks = [[P(p), Q(q)] for p, q in top[:, 2:4].tolist() if q > 0]
        return {"lastUpdateId": self.last_update_id, "bids": bids, "asks": asks}
