"""The live feed: the same C++ ``OrderBook`` as the replay, fed by the websocket stream, sampled on a
fixed interval into the rows the features are computed from.

The book is built from the raw depth diffs (``trader.live.stream``), with the same integer ticks and
lots and the same snapshot-plus-diffs procedure as ``trader-sim convert`` and the replay, so a live
row is what the replay of a recording of the same stream gives. Also kept here:

* the aggressor trade flow between two samples (lots bought, lots sold), as ``sample_top`` computes
  it for training;
* a live ``bookTicker`` check (as ``trader-sim verify``): at equal update ids the book's best bid and
  ask must equal the ticker's; a mismatch or a crossed book marks the feed unhealthy;
* the stale-data guard: the feed is *stale* when the stream is out of sync (resyncing after a gap or
  a reconnect), the book is crossed or one-sided, or no depth diff arrived for ``stale_after``
  seconds. A stale feed places no order (``trader.live.session`` also cancels resting orders).
"""

from __future__ import annotations

import logging
import time
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


@dataclass
class Sample:
    ts_ns: int  # local wall time of the sample
    top: np.ndarray  # int64 [depth, 4]: bid px, bid qty, ask px, ask qty (ticks, lots)
    flow: np.ndarray  # int64 [2]: lots bought, lots sold by aggressors since the previous sample
    best_bid: float
    best_ask: float
    update_id: int

    @property
    def mid(self) -> float:
        return 0.5 * (self.best_bid + self.best_ask)


class LiveBook(BookHandler):
    """The C++ book plus trade flow and the bookTicker check, driven by a MarketStream."""

    def __init__(self, tick: Decimal, lot: Decimal):
        self.tick, self.lot = tick, lot
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
        self.book.clear()
        self._tickers.clear()
        self.resets += 1

    def on_snapshot(self, last_update_id: int, bids, asks, ts_ns: int) -> None:
        b = self.book
        b.clear()
        P, Q = self.price, self.qty
        for p, q in bids:
            b.set(True, P(p), Q(q))
        for p, q in asks:
            b.set(False, P(p), Q(q))
        self.last_update_id = last_update_id
        self.synced = True

    def on_diff(self, msg: dict, ts_ns: int) -> None:
        b = self.book
        P, Q = self.price, self.qty
        for p, q in msg.get("b", ()):
            b.set(True, P(p), Q(q))
        for p, q in msg.get("a", ()):
            b.set(False, P(p), Q(q))
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
        if msg.get("m"):  # the buyer was the maker: the aggressor sold
            self.sold += q
        else:
            self.bought += q
        self.trades += 1

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

    def take_flow(self) -> np.ndarray:
        flow = np.array([self.bought, self.sold], dtype=np.int64)
        self.bought = self.sold = 0
        return flow


class LiveFeed:
    """A MarketStream into a LiveBook, optionally recording the raw stream at the same time."""

    def __init__(self, client, symbol: str, *, depth: int = 10, depth_stream: str = "depth@100ms",
                 snapshot_limit: int = 1000, stale_after: float = 5.0, record_dir=None,
                 idle_timeout: float | None = 60.0):
        market = client.market(symbol)
        self.symbol = symbol
        self.depth = depth
        self.tick, self.lot = market_steps(market)
        self.book = LiveBook(self.tick, self.lot)
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

    def stale_reason(self) -> str | None:
        """Why the book must not be traded on now, or None."""
        if not (self.stream.in_sync and self.book.synced):
            return "book not in sync (waiting for a snapshot)"
        age = self.age()
        if age > self.stale_after:
            return f"no depth update for {age:.1f} s"
        if self.book.book.crossed():
            return "crossed book"
        if self.book.book.num_levels(True) == 0 or self.book.book.num_levels(False) == 0:
            return "one side of the book is empty"
        return None

    def sample(self) -> Sample:
        """The book's top levels now and the trade flow since the previous sample."""
        top = np.array(self.book.book.top(self.depth), dtype=np.int64)
        flow = self.book.take_flow()
        self.samples += 1
        bid = float(Decimal(int(top[0, 0])) * self.tick) if top[0, 1] > 0 else float("nan")
        ask = float(Decimal(int(top[0, 2])) * self.tick) if top[0, 3] > 0 else float("nan")
        return Sample(time.time_ns(), top, flow, bid, ask, self.book.last_update_id)

    def walk(self, buy: bool, lots: int, depth: int = 1000) -> list[tuple[int, int]]:
        """(price ticks, lots) taken by a market order of ``lots`` against the book now (for the paper
        broker): the opposite side, best first, as the training env's execute() walks it."""
        n = min(depth, self.book.book.num_levels(not buy))
        if n == 0 or lots <= 0:
            return []
        top = self.book.book.top(n)
        cols = top[:, 2:4] if buy else top[:, 0:2]
        fills = []
        for price, qty in cols.tolist():
            if qty <= 0 or lots <= 0:
                break
            take = min(qty, lots)
            fills.append((int(price), int(take)))
            lots -= take
        return fills
