"""The live feed: the same C++ ``OrderBook`` as the replay, fed by the websocket stream, sampled on the
exchange clock into the rows the env steps on.

The book is built from the raw depth diffs (``trader.live.stream``), with the same integer ticks and
lots and the same snapshot-plus-diffs procedure as ``trader-sim convert`` and the replay, so a live
row is what the replay of a recording of the same stream gives. Rows (:class:`LiveRow`) follow the
interval rule of ``sample_top`` (cpp/book/replay.cpp) on the exchange times the messages carry (depth
``E``, trade ``T``): row k is the book after every depth message stamped <= its grid time (a multiple
of the interval), taken when the first message stamped later arrives; trades never move the grid.
After every (re)sync the grid starts again at the first diff. With each row come:

* the aggressor trade flow since the previous row (lots bought, lots sold), as ``sample_top`` counts it;
* the market events since the previous row (level changes with the size before, trades), as
  ``_core.sample_market`` records them for the env's queue model: a resync is every level going to
  0, then the snapshot's levels;
* a live ``bookTicker`` check (as ``trader-sim verify``): at equal update ids the book's best bid and
  ask must equal the ticker's; a mismatch or a crossed book marks the feed unhealthy;
* the stale-data guard: the feed is *stale* when the stream is out of sync (resyncing after a gap or
  a reconnect), the book is crossed or one-sided, or no depth diff arrived for ``stale_after``
  seconds. A stale feed places no order (``trader.live.session`` also cancels resting orders).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np

from trader import _core
from trader.live.recorder import RawFileWriter
from trader.live.stream import BookHandler, MarketStream

log = logging.getLogger("trader.live.feed")

RAW_UNIT = Decimal("0.00000001")  # Binance prints prices and sizes with 8 decimals


def market_steps(market: dict) -> tuple[Decimal, Decimal]:
    """(tick, lot) for the integer book of a ccxt market: the PRICE_FILTER tick size, and the finer
    of the LOT_SIZE step and 1e-8 (book sizes are not always multiples of the order step)."""
    tick = lot = None
    for f in market.get("info", {}).get("filters", []):
        if f.get("filterType") == "PRICE_FILTER" and Decimal(f["tickSize"]) > 0:
            tick = Decimal(f["tickSize"]).normalize()
        elif f.get("filterType") == "LOT_SIZE" and Decimal(f["stepSize"]) > 0:
            lot = Decimal(f["stepSize"]).normalize()
    if tick is None:
        tick = Decimal(str(market["precision"]["price"]))
    if lot is None or lot >= RAW_UNIT or RAW_UNIT % lot != 0:
        lot = RAW_UNIT
    return tick, lot


class _Units:
    def __init__(self, step: Decimal):
        self.step = step
        self.off_grid = 0

    def __call__(self, text) -> int:
        try:
            q, r = divmod(Decimal(text), self.step)
        except InvalidOperation:
            raise ValueError(f"not a number: {text!r}") from None
        if r:
            self.off_grid += 1
            return int((Decimal(text) / self.step).to_integral_value())
        return int(q)


# Kinds of the market events (cpp/book/replay.h, MarketEventKind), packed as kind << 56 | previous size.
_LEVEL_BID, _LEVEL_ASK, _TRADE_BUY, _TRADE_SELL = 0, 1, 2, 3
_MS = 1_000_000


@dataclass
class LiveRow:
    ts_ns: int  # grid time, exchange clock
    top: np.ndarray  # int64 [depth, 4]: bid px, bid qty, ask px, ask qty (ticks, lots)
    flow: np.ndarray  # int64 [2]: lots bought, lots sold by aggressors since the previous row
    records: np.ndarray  # int64 [E, 4]: the market events since the previous row (exch_ts, price, qty, kind << 56 | prev)
    received_ns: int  # local wall time the row was closed

    @property
    def mid_ticks(self) -> float:
        return 0.5 * float(self.top[0, 0] + self.top[0, 2])


class LiveBook(BookHandler):
    """The C++ book plus trade flow and the bookTicker check, driven by a MarketStream."""

    def __init__(self, tick: Decimal, lot: Decimal, *, depth: int = 10, interval_ns: int = 100_000_000):
        if interval_ns <= 0:
            raise ValueError(f"interval_ns: expected > 0 ns, got {interval_ns}")
        self.tick, self.lot = tick, lot
        self.depth = depth
        self.interval_ns = int(interval_ns)
        self.rows: deque[LiveRow] = deque()
        self.row_ready = asyncio.Event()  # set while rows are waiting
        self._records: list[tuple[int, int, int, int]] = []
        self._clock = 0  # ns, the latest depth message time seen
        self._next: int | None = None  # grid time of the next row (None: waiting for the first diff)
        self.price = _Units(tick)
        self.qty = _Units(lot)
        self.book = _core.OrderBook()
        self.synced = False
        self.last_update_id = 0
        self.bought = 0
        self.sold = 0
        self.trades = 0
        self.crossed = 0
        self.tickers_compared = 0
        self.tickers_mismatched = 0
        self.resets = 0
        self.last_lag_ms: float | None = None
        self._tickers: dict[int, tuple] = {}

    def on_reset(self, reason: str) -> None:
        self.synced = False
        self._record_clear()
        self.book.clear()
        self._next = None
        self._tickers.clear()
        self.resets += 1

    def on_snapshot(self, last_update_id: int, bids, asks, ts_ns: int) -> None:
        b = self.book
        self._record_clear()
        b.clear()
        P, Q = self.price, self.qty
        for p, q in bids:
            self._set(True, P(p), Q(q))
        for p, q in asks:
            self._set(False, P(p), Q(q))
        self._next = None
        self.last_update_id = last_update_id
        self.synced = True

    def on_diff(self, msg: dict, ts_ns: int) -> None:
        b = self.book
        P, Q = self.price, self.qty
        E = msg.get("E")
        self._clock = max(self._clock, int(E) * _MS if E else ts_ns)
        if self._next is None:  # the first diff of a sequence: the grid starts at or after it
            self._next = -(-self._clock // self.interval_ns) * self.interval_ns
        while self._clock > self._next:  # rows before this message (sample_top's interval rule)
            self._emit(self._next)
            self._next += self.interval_ns
        for p, q in msg.get("b", ()):
            self._set(True, P(p), Q(q))
        for p, q in msg.get("a", ()):
            self._set(False, P(p), Q(q))
        u = int(msg["u"])
        self.last_update_id = u
        if b.crossed():
            self.crossed += 1
        E = msg.get("E")
        if E:
            lag = ts_ns / 1e6 - float(E)
            self.last_lag_ms = lag if -5_000 < lag < 60_000 else None  # a replay's data times are not "now"
        t = self._tickers.pop(u, None)
        if t is not None:
            self._compare(t)
        if len(self._tickers) > 256:
            self._tickers = {k: v for k, v in self._tickers.items() if k > u}

    def on_trade(self, msg: dict, ts_ns: int) -> None:
        q = self.qty(msg["q"])
        T = msg.get("T")
        kind = _TRADE_SELL if msg.get("m") else _TRADE_BUY  # "m": the buyer was the maker, the aggressor sold
        if kind == _TRADE_SELL:
            self.sold += q
        else:
            self.bought += q
        self._records.append((int(T) * _MS if T else ts_ns, self.price(msg["p"]), q, kind << 56))
        self.trades += 1

    # ---- rows on the exchange clock ------------------------------------------------------------
    def _set(self, is_bid: bool, price: int, qty: int) -> None:
        prev = self.book.qty_at(is_bid, price)
        self._records.append((self._clock, price, qty, ((_LEVEL_BID if is_bid else _LEVEL_ASK) << 56) | prev))
        self.book.set(is_bid, price, qty)

    def _record_clear(self) -> None:
        """Every level of the book going to 0 (a resync; sample_market records a book clear so)."""
        for is_bid in (True, False):
            n = self.book.num_levels(is_bid)
            if n == 0:
                continue
            top = self.book.top(n)
            cols = top[:, 0:2] if is_bid else top[:, 2:4]
            kind = (_LEVEL_BID if is_bid else _LEVEL_ASK) << 56
            self._records.extend((self._clock, int(p), 0, kind | int(q)) for p, q in cols.tolist() if q > 0)

    def _emit(self, grid_ns: int) -> None:
        records = np.array(self._records, dtype=np.int64).reshape(-1, 4)
        self._records = []
        flow = np.array([self.bought, self.sold], dtype=np.int64)
        self.bought = self.sold = 0
        self.rows.append(LiveRow(grid_ns, np.array(self.book.top(self.depth), dtype=np.int64), flow, records,
                                 time.time_ns()))
        self.row_ready.set()

    def on_ticker(self, msg: dict, ts_ns: int) -> None:
        u = int(msg.get("u", 0))
        t = (self.price(msg["b"]), self.qty(msg["B"]), self.price(msg["a"]), self.qty(msg["A"]))
        if u == self.last_update_id:
            self._compare(t)
        elif u > self.last_update_id:
            self._tickers[u] = t

    def _compare(self, t: tuple) -> None:
        top = self.book.top(1)[0]
        self.tickers_compared += 1
        if tuple(int(x) for x in top) != t:
            self.tickers_mismatched += 1
            log.warning("book differs from bookTicker at update id %d: book %s, ticker %s",
                        self.last_update_id, top.tolist(), list(t))


class LiveFeed:
    """A MarketStream into a LiveBook, optionally recording the raw stream at the same time."""

    def __init__(self, client, symbol: str, *, depth: int = 10, interval_ms: float = 100.0,
                 depth_stream: str = "depth@100ms", snapshot_limit: int = 1000, stale_after: float = 5.0,
                 record_dir=None, idle_timeout: float | None = 60.0):
        market = client.market(symbol)
        self.symbol = symbol
        self.depth = depth
        self.tick, self.lot = market_steps(market)
        self.book = LiveBook(self.tick, self.lot, depth=depth, interval_ns=round(interval_ms * 1e6))
        self.stale_after = stale_after
        self.writer = None
        on_raw = on_sequence = None
        if record_dir is not None:
            self.writer = RawFileWriter(record_dir, market["id"].lower())
            self.writer.recover_parts()
            on_raw, on_sequence = self.writer.write, self.writer.new_sequence
        self.stream = MarketStream(client, symbol, book=self.book, on_raw=on_raw, on_sequence=on_sequence,
                                   depth_stream=depth_stream, snapshot_limit=snapshot_limit,
                                   idle_timeout=idle_timeout)
        self.samples = 0

    async def run(self, duration: float | None = None) -> None:
        try:
            await self.stream.run(duration)
        finally:
            if self.writer is not None:
                self.writer.close_file()

    def stop(self) -> None:
        self.stream.stop()

    @property
    def lot_size(self) -> float:
        return float(self.lot)

    @property
    def tick_size(self) -> float:
        return float(self.tick)

    def age(self) -> float:
        """Seconds since the last depth diff (inf before the first)."""
        last = self.stream.stats.last_depth_monotonic
        return float("inf") if not last else time.monotonic() - last

    def stale_reason(self, row: LiveRow | None = None) -> str | None:
        """Why the book must not be traded on now, or None. With a row: the stream's state now and
        that row's book (not the book now, which may be crossed for a moment between two rows)."""
        if not (self.stream.in_sync and self.book.synced):
            return "book not in sync (waiting for a snapshot)"
        age = self.age()
        if age > self.stale_after:
            return f"no depth update for {age:.1f} s"
        if row is not None:
            bid, ask = row.top[0, 0], row.top[0, 2]
            if row.top[0, 1] <= 0 or row.top[0, 3] <= 0:
                return "one side of the book is empty"
            return "crossed book" if bid >= ask else None
        if self.book.book.crossed():
            return "crossed book"
        if self.book.book.num_levels(True) == 0 or self.book.book.num_levels(False) == 0:
            return "one side of the book is empty"
        return None

    async def next_row(self, timeout: float) -> LiveRow | None:
        """The oldest row not handed out yet, waiting up to ``timeout`` seconds for one (None: none came)."""
        rows = self.book.rows
        if not rows:
            try:
                await asyncio.wait_for(self.book.row_ready.wait(), timeout)
            except asyncio.TimeoutError:
                return None
        row = rows.popleft()
        if not rows:
            self.book.row_ready.clear()
        return row
