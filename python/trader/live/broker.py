"""Brokers: the interface a session needs, and the real one (ccxt orders); the paper broker is
``trader.live.paper`` (the execution kernel's orders and fills).

Both record every order and fill in the :class:`~trader.live.ledger.Ledger` the same way, so a session,
its status line and its PnL do not depend on which one runs.

The real broker never places an order twice (``CcxtBroker.submit``):

1. the order gets its client order id and is stored as ``pending`` *before* anything is sent;
2. each attempt is counted and time-stamped in the ledger before it goes out; ccxt's own retries are
   off (they would resend blindly);
3. a network error, a timeout, a 5xx or a 429 leaves the outcome *unknown* (stored as such): the
   order is looked up by its client id (``GET /api/v3/order?origClientOrderId=``) before anything
   else. Found: its state is taken from the exchange. Not found (-2013): it is sent again *with the
   same client id* -- but only once no earlier attempt can still arrive: Binance rejects a request
   whose ``timestamp`` is older than ``recvWindow`` when it gets there, so a "not found" is final
   ``recvWindow`` (+ a margin) after the last attempt was signed (a 429/418 was refused for sure and
   needs no wait). While an attempt could still land, the broker waits and asks again;
4. a refusal by the exchange (invalid order, insufficient balance, bad symbol, auth) is ``rejected``;
   "Duplicate order sent" means the order exists: it is looked up;
5. fills are taken from the order response (``FULL``) and from ``myTrades?orderId=``, keyed by trade
   id, so partial fills seen several times are counted once;
6. rate limits: a 429/418 waits for its ``Retry-After``; other retries back off exponentially.

An order whose outcome stays unknown (the exchange unreachable for longer than ``resolve_timeout``)
stays ``unknown`` in the ledger; ``busy`` is then true and the session places nothing new until it is
resolved (``sync``), here or by ``trader live``'s reconciliation at the next start.

Test hook: ``TRADER_LIVE_TEST_HOOK=after_pending:SECONDS[:N]`` or ``after_send:SECONDS[:N]`` makes the
N-th order (default the first) sleep at that point (after storing it as pending; after the exchange
accepted it, before its answer is stored) and prints ``TEST-HOOK <point> <client id>`` to stderr, so a
test can kill the process there (N = 2 with quotes: in the middle of a replace, the old quote
cancelled, the new one not yet known).
"""

from __future__ import annotations

import abc

import asyncio
import logging
import os
import random
import sys
import time
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from trader.live.ledger import LIVE, UNRESOLVED, D, Fill, Ledger, OrderRow, Position

log = logging.getLogger("trader.live.broker")

_STATUS = {"open": "open", "closed": "filled", "canceled": "cancelled", "cancelled": "cancelled",
           "expired": "cancelled", "rejected": "rejected"}


class BrokerError(RuntimeError):
    """The broker cannot go on (authentication refused, exchange unreachable for too long)."""


@dataclass
class OrderRequest:
    side: str  # buy | sell
    amount: Decimal  # base units, a multiple of the lot step
    reason: str = "policy"
    price: Decimal | None = None  # None: market order; else LIMIT IOC at this price (a slippage cap)
    post_only: bool = False  # with a price: a resting post-only limit order (spot LIMIT_MAKER, USD-M GTX)
    reduce_only: bool = False  # USD-M: the order may only reduce the position (reduceOnly=true)


class _Hook:
    """The test hook of the module docstring (one shot)."""

    def __init__(self):
        spec = os.environ.get("TRADER_LIVE_TEST_HOOK", "")
        self.point, _, rest = spec.partition(":")
        secs, _, nth = rest.partition(":")
        self.seconds = float(secs or 0)
        self.left = int(nth or 1)
        self.done = not spec

    async def __call__(self, point: str, client_id: str) -> None:
        if self.done or point != self.point:
            return
        self.left -= 1
        if self.left > 0:
            return
        self.done = True
        print(f"TEST-HOOK {point} {client_id}", file=sys.stderr, flush=True)
        await asyncio.sleep(self.seconds)


class Broker(abc.ABC):
    """What the session needs from a broker. Amount steps and minimums come from the ccxt market."""

    kind = "base"
    futures = False  # USD-M: closes are reduce-only (trader.live.futures)

    def __init__(self, ledger: Ledger, market: dict):
        self.ledger = ledger
        self.market = market
        self.symbol = market["symbol"]
        self.base, self.quote = market["base"], market["quote"]
        self.amount_step = _step(market, "LOT_SIZE", "stepSize", market["precision"]["amount"])
        self.price_step = _step(market, "PRICE_FILTER", "tickSize", market["precision"]["price"])
        self.min_amount = D(market["limits"]["amount"].get("min") or 0)
        self.min_notional = D((market["limits"].get("cost") or {}).get("min") or 0)
        self.last_latency_ms: float | None = None
        self.last_order: OrderRow | None = None
        self._hook = _Hook()

    # ---- state ---------------------------------------------------------------------------------
    def position(self) -> Position:
        return self.ledger.position(self.symbol)

    @property
    def busy(self) -> bool:
        """An order is not final: nothing new may be placed until it is."""
        return bool(self.ledger.orders(LIVE))

    def round_amount(self, amount: Decimal) -> Decimal:
        return (amount / self.amount_step).to_integral_value(ROUND_DOWN) * self.amount_step

    def round_price(self, price: Decimal, up: bool) -> Decimal:
        from decimal import ROUND_UP

        return (price / self.price_step).to_integral_value(ROUND_UP if up else ROUND_DOWN) * self.price_step

    def too_small(self, amount: Decimal, price: float) -> str | None:
        if amount <= 0 or amount < self.min_amount:
            return f"amount {amount} below the minimum {self.min_amount}"
        if self.min_notional and amount * D(price) < self.min_notional:
            return f"notional {amount * D(price):.2f} below the minimum {self.min_notional}"
        return None

    # ---- interface -----------------------------------------------------------------------------
    async def start(self) -> None:
        pass

    @abc.abstractmethod
    async def submit(self, req: OrderRequest) -> OrderRow:
        """Place one order (paper or real) and return its stored row."""

    async def sync(self) -> list[OrderRow]:
        """Bring orders that are not final up to date; returns them."""
        return []

    async def guard(self, mid: float) -> str | None:
        """Why no new order may be placed now (None: it may); USD-M: the liquidation guard."""
        return None

    async def cancel_all(self, reason: str) -> int:
        return 0

    async def close(self) -> None:
        pass


def _step(market: dict, filter_type: str, key: str, fallback) -> Decimal:
    for f in market.get("info", {}).get("filters", []):
        if f.get("filterType") == filter_type and D(f.get(key, 0)) > 0:
            return D(f[key]).normalize()
    return D(fallback)


# ---------------------------------------------------------------------------------------------------
# Real (ccxt)
# ---------------------------------------------------------------------------------------------------


class CcxtBroker(Broker):
    kind = "real"

    def __init__(self, ledger: Ledger, client, symbol: str, *, recv_window_ms: int | None = None,
                 max_attempts: int = 10, resolve_timeout: float = 120.0, max_backoff: float = 10.0):
        super().__init__(ledger, client.market(symbol))
        self.client = client
        self.recv_window_s = (recv_window_ms or int(client.options.get("recvWindow", 10_000))) / 1000.0
        self.max_attempts = max_attempts
        self.resolve_timeout = resolve_timeout
        self.max_backoff = max_backoff
        self.requests = 0
        self.retries = 0
        self.stream_drops = 0  # user-data stream errors survived (trader.live.quoting.follow_fills)
        self.rate_limited = 0

    # ---- helpers -------------------------------------------------------------------------------
    def _retry_after(self, exc) -> float | None:
        import ccxt

        if not isinstance(exc, ccxt.DDoSProtection):
            return None
        for k, v in (getattr(self.client, "last_response_headers", None) or {}).items():
            if k.lower() == "retry-after":
                try:
                    return max(0.0, float(v))
                except ValueError:
                    return None
        return None

    async def _backoff(self, exc, n: int) -> None:
        wait = self._retry_after(exc)
        if wait is not None:
            self.rate_limited += 1
            log.warning("rate limited (%s): waiting %.1f s (Retry-After)", type(exc).__name__, wait)
        else:
            wait = min(self.max_backoff, 0.1 * 2 ** min(n, 10)) * (0.5 + random.random() / 2)
        self.retries += 1
        await asyncio.sleep(wait)

    async def _call(self, fn, *args, deadline: float | None = None, **kw):
        """An idempotent request, retried on network errors (rate limits honoured) until ``deadline``."""
        import ccxt

        deadline = deadline or time.monotonic() + self.resolve_timeout
        n = 0
        while True:
            try:
                self.requests += 1
                return await fn(*args, **kw)
            except ccxt.NetworkError as exc:
                if time.monotonic() >= deadline:
                    raise BrokerError(f"exchange unreachable: {type(exc).__name__}: {exc}") from None
                await self._backoff(exc, n)
                n += 1

    # ---- placing -------------------------------------------------------------------------------
    async def submit(self, req: OrderRequest) -> OrderRow:
        if req.post_only and req.price is None:
            raise ValueError("a post-only order needs a price")
        otype = "market" if req.price is None else "limit"
        params = {} if req.price is None else {"postOnly": True} if req.post_only else {"timeInForce": "IOC"}
        if req.reduce_only:
            params["reduceOnly"] = True
        row = self.ledger.new_order(self.symbol, req.side, otype, req.amount, req.price, params, req.reason)
        await self._hook("after_pending", row.client_id)
        t0 = time.perf_counter()
        row = await self._send(row)
        self.last_latency_ms = (time.perf_counter() - t0) * 1e3
        self.last_order = row
        return row

    async def _send(self, row: OrderRow) -> OrderRow:
        """Send until the exchange has the order (once) or refuses it; see the module docstring."""
        import ccxt

        cid = row.client_id
        n = 0
        while True:
            if row.attempts >= self.max_attempts:
                log.error("order %s: outcome still unknown after %d attempts; left unknown", cid, row.attempts)
                return self.ledger.update_order(cid, status="unknown", error=f"unresolved after {row.attempts} attempts")
            self.ledger.mark_attempt(cid)  # committed before the request goes out
            params = dict(row.params, clientOrderId=cid)
            try:
                self.requests += 1
                resp = await self.client.create_order(self.symbol, row.type, row.side, float(row.amount),
                                                      None if row.price is None else float(row.price), params)
            except ccxt.NetworkError as exc:  # timeout, connection lost, 5xx, 429/418: outcome unknown
                refused = isinstance(exc, ccxt.DDoSProtection)  # a 429/418 is never processed
                row = self.ledger.update_order(cid, status="unknown", error=_short(exc))
                self.ledger.log_event("unknown-outcome", f"{cid} attempt {row.attempts}: {type(exc).__name__}")
                log.warning("order %s: %s; outcome unknown, looking it up by client id", cid, type(exc).__name__)
                await self._backoff(exc, n)
                n += 1
                found = await self._resolve(cid, settled=refused)
                if found is not None:
                    return found
                row = self.ledger.order(cid)
                continue  # the exchange does not have it: send again, same client id
            except ccxt.InvalidOrder as exc:
                if "duplicate" in str(exc).lower():  # an earlier attempt is there (open)
                    found = await self._resolve(cid)
                    if found is not None:
                        return found
                return self.ledger.update_order(cid, status="rejected", error=_short(exc))
            except (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended) as exc:
                self.ledger.update_order(cid, status="rejected", error=_short(exc))
                raise BrokerError(f"the exchange refused our credentials: {type(exc).__name__}") from None
            except (ccxt.InsufficientFunds, ccxt.BadRequest, ccxt.BadSymbol, ccxt.OperationRejected,
                    ccxt.NotSupported, ccxt.ArgumentsRequired) as exc:
                return self.ledger.update_order(cid, status="rejected", error=_short(exc))
            except ccxt.BaseError as exc:  # anything else: do not guess; ask the exchange
                duplicate = "duplicate" in str(exc).lower()  # USD-M -4116 "ClientOrderId is duplicated."
                if _refusal_code(exc) is not None and not duplicate:  # a Binance code: this request was refused
                    return self.ledger.update_order(cid, status="rejected", error=_short(exc))
                row = self.ledger.update_order(cid, status="unknown", error=_short(exc))
                found = await self._resolve(cid)
                if found is not None:
                    return found
                return self.ledger.update_order(cid, status="rejected", error=_short(exc))
            await self._hook("after_send", cid)
            return await self.apply(cid, resp)

    async def _resolve(self, cid: str, settled: bool = False) -> OrderRow | None:
        """Look an order up by client id: its stored state once found, None when the exchange does not
        have it and no attempt can still reach it. Raises BrokerError if the exchange stays
        unreachable past ``resolve_timeout``."""
        import ccxt

        deadline = time.monotonic() + self.resolve_timeout
        n = 0
        while True:
            try:
                self.requests += 1
                o = await self.client.fetch_order(None, self.symbol, {"origClientOrderId": cid})
            except ccxt.OrderNotFound:
                row = self.ledger.order(cid)
                if settled or row.last_sent_ns is None:
                    return None
                # an attempt signed at last_sent can be accepted until last_sent + recvWindow
                wait = row.last_sent_ns / 1e9 + self.recv_window_s + 1.0 - time.time()
                if wait <= 0:
                    return None
                await asyncio.sleep(min(wait, 2.0))
                continue
            except ccxt.NetworkError as exc:
                if time.monotonic() >= deadline:
                    raise BrokerError(f"order {cid}: outcome unknown and the exchange unreachable "
                                      f"({type(exc).__name__})") from None
                await self._backoff(exc, n)
                n += 1
                continue
            return await self.apply(cid, o)

    # ---- applying the exchange's view ----------------------------------------------------------
    async def apply(self, cid: str, o: dict) -> OrderRow:
        """Record an order as the exchange reports it, then its fills (response trades, then myTrades
        when the response did not carry them all)."""
        info = o.get("info") or {}
        filled = D(info.get("executedQty", o.get("filled") or 0))
        status = _STATUS.get(o.get("status"), "open")
        quote = info.get("cummulativeQuoteQty", info.get("cumQuote"))  # spot / USD-M
        average = (D(quote) / filled) if quote is not None and filled else (D(o["average"]) if o.get("average") else None)
        for t in o.get("trades") or []:
            self._add_trade(cid, str(o["id"]), o.get("side") or self.ledger.order(cid).side, t)
        row = self.ledger.update_order(cid, status=status, exchange_id=str(o["id"]),
                                      exchange_status=info.get("status"), filled=filled, average=average, error=None)
        await self.fetch_fills(row)
        return self.ledger.order(cid)

    def _add_trade(self, cid: str, order_id: str, side: str, t: dict) -> bool:
        if t.get("id") is None:
            return False
        info = t.get("info") or {}
        fee = t.get("fee") or {}
        return self.ledger.add_fill(
            Fill(str(t["id"]), cid, order_id, self.symbol, t.get("side") or side, D(info.get("price", t.get("price"))),
                 D(info.get("qty", t.get("amount"))), D(info.get("commission", fee.get("cost") or 0)),
                 info.get("commissionAsset", fee.get("currency")), t.get("timestamp")),
            self.base, self.quote)

    async def fetch_fills(self, row: OrderRow) -> int:
        """myTrades of one order, when the ledger holds less than its executed quantity."""
        if row.exchange_id is None or row.filled <= self.ledger.filled_of(row.client_id):
            return 0
        trades = await self._call(self.client.fetch_my_trades, self.symbol, None, None,
                                  {"orderId": row.exchange_id})
        added = sum(self._add_trade(row.client_id, row.exchange_id, row.side, t) for t in trades
                    if str(t.get("order")) == row.exchange_id)
        have = self.ledger.filled_of(row.client_id)
        if have < row.filled:  # (more is fine: the order filled further between the two requests)
            log.warning("order %s: executed %s, fills found %s", row.client_id, row.filled, have)
        return added

    # ---- keeping up ----------------------------------------------------------------------------
    async def sync(self) -> list[OrderRow]:
        return await self.sync_orders()

    async def sync_orders(self) -> list[OrderRow]:
        """sync's orders and fills alone (USD-M's sync also reads the funding)."""
        import ccxt

        out = []
        for row in self.ledger.orders(LIVE):
            if row.status in UNRESOLVED:
                found = await self._resolve(row.client_id)
                if found is None:
                    found = self.ledger.update_order(row.client_id, status="rejected",
                                                    error="not on the exchange: never placed")
                out.append(found)
                continue
            try:
                o = await self._call(self.client.fetch_order, row.exchange_id, self.symbol)
            except ccxt.OrderNotFound:
                out.append(self.ledger.update_order(row.client_id, status="unknown",
                                                   error="open order not found by id"))
                continue
            out.append(await self.apply(row.client_id, o))
        for row in self.ledger.orders(("filled", "cancelled")):
            if row.filled > self.ledger.filled_of(row.client_id):
                await self.fetch_fills(row)
        return out

    async def cancel(self, row: OrderRow) -> OrderRow:
        """Cancel one open order and record its final state (a fill that beat the cancel included)."""
        await self._cancel(row.exchange_id, row.client_id)
        return self.ledger.order(row.client_id)

    async def _cancel(self, exchange_id: str, cid: str) -> bool:
        """Cancel by exchange id, then apply the order's final state; False when it was already final."""
        import ccxt

        try:
            await self._call(self.client.cancel_order, exchange_id, self.symbol)
            done = True
        except (ccxt.OrderNotFound, ccxt.OperationRejected):
            done = False  # filled or canceled meanwhile (or a dropped answer to an earlier cancel)
        final = await self._call(self.client.fetch_order, exchange_id, self.symbol)
        await self.apply(cid, final)
        return done

    async def cancel_all(self, reason: str) -> int:
        """Cancel every open order of the symbol on the exchange (ours; others are reported by the
        reconciliation), and bring each to its final state in the ledger."""
        n = 0
        opened = await self._call(self.client.fetch_open_orders, self.symbol)
        for o in opened:
            cid = o.get("clientOrderId")
            if self.ledger.order(cid) is None:
                log.warning("open order %s (client id %s) is not ours: left alone", o.get("id"), cid)
                continue
            n += await self._cancel(o["id"], cid)
        await self.sync()
        log.info("cancelled %d open order(s): %s", n, reason)
        return n

    async def close(self) -> None:
        await self.client.close()


def _refusal_code(exc) -> int | None:
    """The Binance error code in a ccxt error (``{"code":-2019,"msg":...}``): the exchange refused the
    request. ccxt maps some USD-M codes only for fapi.binance.com, else raises ExchangeError."""
    import re

    m = re.search(r'"code":\s*(-\d+)', str(exc))
    return int(m.group(1)) if m else None


def _short(exc) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"
