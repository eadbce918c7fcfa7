"""The matching of orders against the replayed book, per account (records in trader.venue.accounts).

Rules (documented in the package docstring too):

* The replayed public book is never changed by our orders (no market impact on the data). To keep one
  order from taking the same liquidity twice, what our orders take is kept in an overlay per price
  level and subtracted from the replayed quantity until the data next updates that level (a diff that
  sets the level, or a snapshot) -- the usual backtester approximation.
* MARKET orders walk the opposite side at its prices (taker fee). ``quantity`` buys or sells that much
  base; ``quoteOrderQty`` spends (buy: price plus fee) or receives (sell) at most that much quote. A
  market order the book cannot fill completely ends EXPIRED with what it got.
* LIMIT orders first take what crosses at placement (taker, at the book's prices), then rest (GTC;
  IOC expires the rest; FOK fills completely or expires untouched). LIMIT_MAKER is rejected if it
  would take. A resting order fills **at its limit price** (maker fee) when the replayed opposite best
  price reaches it (buy: best ask <= limit; sell: best bid >= limit), for as much as the crossing
  levels hold, and when a replayed trade prints strictly through it, for up to the trade's size.
* A resting order also keeps a place in its level's queue by the training env's queue model
  (``trader.venue.queue``, power 2 by default): trades at its price fill it once the queue ahead is gone.
* Fees: ``taker_bps`` / ``maker_bps`` (default 10 = 0.1 %) of the notional, always charged in the quote
  asset (commissionAsset = quote), rounded up to the quote precision. A buy pays price * qty + fee; a
  sell receives price * qty - fee. LIMIT buys lock price * qty * (1 + max fee) of quote; sells lock qty.
* ``newClientOrderId`` must be unique among the account's *open* orders (-2010 "Duplicate order
  sent."), as on Binance: the id of a filled or canceled order may be used again, and a query by
  ``origClientOrderId`` then finds the newest order with that id.
"""

from __future__ import annotations

import re
import uuid
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from trader.venue import errors
from trader.venue.accounts import Account, Order
from trader.venue.amounts import decimals, fmt, integer, parse
from trader.venue.queue import QueueSpot, check_queue_model, queue_on_depth, queue_on_snapshot, queue_on_trade
from trader.venue.replay import MarketReplay, ReplaySink

_CLIENT_ID = re.compile(r"^[a-zA-Z0-9\-_]{1,36}$")
_TYPES = ("MARKET", "LIMIT", "LIMIT_MAKER")
_TIFS = ("GTC", "IOC", "FOK")


class MatchingEngine(ReplaySink):
    def __init__(self, replay: MarketReplay, base: str, quote: str, now_ms, *, taker_bps: float = 10,
                 maker_bps: float = 10, min_notional: str = "5", queue_model: str = "power",
                 queue_power: float = 2.0):
        check_queue_model(queue_model, queue_power)
        self.queue_model, self.queue_power = queue_model, float(queue_power)
        self.queue: dict[int, QueueSpot] = {}  # order id -> place of each resting order
        self.replay = replay
        self.book = replay.book
        self.symbol = replay.symbol
        self.base, self.quote = base, quote
        self.now_ms = now_ms
        self.taker = Decimal(str(taker_bps)) / 10000
        self.maker = Decimal(str(maker_bps)) / 10000
        self.lock_rate = 1 + max(self.taker, self.maker)
        self.min_notional = Decimal(min_notional)
        self.qunit = replay.tick * replay.lot  # quote value of 1 tick x 1 lot
        self.quote_places = max(8, decimals(self.qunit))
        self._qexp = Decimal(1).scaleb(-self.quote_places)
        self.accounts: dict[str, Account] = {}
        self.open: dict[int, Order] = {}  # open orders of all accounts
        self.overlay = {True: {}, False: {}}  # is_bid -> {price: lots our orders took}
        self.next_order_id = 1
        self.next_trade_id = 1
        # Execution reports not yet sent on the user-data stream (trader.venue.userdata drains them):
        # (order, execution type, trade or None, executed lots and cumulative quote at that moment)
        self.reports: list[tuple[Order, str, dict | None, int, Decimal]] = []

    # ---- accounts ------------------------------------------------------------------------------
    def add_account(self, api_key: str, secret: str, balances: dict) -> Account:
        acct = Account(api_key, secret)
        for asset in (self.base, self.quote):
            acct.free[asset] += 0
        for asset, amount in balances.items():
            acct.free[asset.upper()] += Decimal(str(amount))
        self.accounts[api_key] = acct
        return acct

    # ---- the public book seen by our orders ----------------------------------------------------
    def _levels(self, is_bid: bool, depth: int | None = None):
        """(price, lots still available to us) of one side, best first."""
        n = self.book.num_levels(is_bid) if depth is None else min(depth, self.book.num_levels(is_bid))
        if n == 0:
            return
        top = self.book.top(n)
        cols = top[:, 0:2] if is_bid else top[:, 2:4]
        taken = self.overlay[is_bid]
        for price, qty in cols.tolist():
            if qty <= 0:
                break
            avail = qty - taken.get(price, 0)
            if avail > 0:
                yield price, avail

    def _best(self, is_bid: bool) -> int | None:
        for price, _ in self._levels(is_bid, 64):
            return price
        for price, _ in self._levels(is_bid):
            return price
        return None

    def _walk(self, buy: bool, lots: int | None = None, quote_units: int | None = None,
              limit: int | None = None) -> tuple[list[tuple[int, int]], bool]:
        """Take from the opposite side: up to ``lots``, or up to ``quote_units`` (tick*lot units).

        Returns the fills (price, lots) and whether the book ran out (rather than the order's size or
        budget, or its limit price).
        """
        fills = []
        for price, avail in self._levels(not buy):
            if limit is not None and (price > limit if buy else price < limit):
                return fills, False
            take = avail
            if lots is not None:
                take = min(take, lots)
            if quote_units is not None:
                take = min(take, quote_units // price)
            if take <= 0:
                return fills, False
            fills.append((price, take))
            if lots is not None:
                lots -= take
                if lots == 0:
                    return fills, False
            if quote_units is not None:
                quote_units -= take * price
                if take < avail:
                    return fills, False  # the budget is spent: the next lot is not affordable
        return fills, True

    def _consume(self, is_bid: bool, price: int, lots: int) -> None:
        taken = self.overlay[is_bid]
        taken[price] = taken.get(price, 0) + lots

    # ---- money ---------------------------------------------------------------------------------
    def _cost(self, price: int, lots: int) -> Decimal:
        return Decimal(price * lots) * self.qunit

    def _fee(self, cost: Decimal, maker: bool) -> Decimal:
        return (cost * (self.maker if maker else self.taker)).quantize(self._qexp, rounding=ROUND_UP)

    def _buy_lock(self, price: int, lots: int) -> Decimal:
        return (self._cost(price, lots) * self.lock_rate).quantize(self._qexp, rounding=ROUND_UP)

    def _fill(self, order: Order, price: int, lots: int, maker: bool) -> None:
        acct = order.account
        cost = self._cost(price, lots)
        fee = self._fee(cost, maker)
        qty = self.replay.lot * lots
        if order.side == "BUY":
            if order.type == "MARKET":
                acct.free[self.quote] -= cost + fee
            else:
                release = order.lock if lots == order.remaining else min(order.lock, self._buy_lock(order.price, lots))
                order.lock -= release
                acct.locked[self.quote] -= release
                acct.free[self.quote] += release - cost - fee
            acct.free[self.base] += qty
        else:
            if order.type == "MARKET":
                acct.free[self.base] -= qty
            else:
                order.lock -= qty
                acct.locked[self.base] -= qty
            acct.free[self.quote] += cost - fee
        order.executed += lots
        order.cum_quote += cost
        now = self.now_ms()
        order.update_ms = acct.update_ms = now
        trade_id = self.next_trade_id
        self.next_trade_id += 1
        P = self.replay.price.str
        order.fills.append({"price": P(price), "qty": self.replay.qty.str(lots), "commission": fmt(fee),
                            "commissionAsset": self.quote, "tradeId": trade_id})
        acct.trades.append({"symbol": self.symbol, "id": trade_id, "orderId": order.order_id, "orderListId": -1,
                            "price": P(price), "qty": self.replay.qty.str(lots), "quoteQty": fmt(cost),
                            "commission": fmt(fee), "commissionAsset": self.quote, "time": now,
                            "isBuyer": order.side == "BUY", "isMaker": maker, "isBestMatch": True})
        if order.remaining == 0 and order.type != "MARKET":
            order.status = "FILLED"
        elif order.type != "MARKET":
            order.status = "PARTIALLY_FILLED"
        self.reports.append((order, "TRADE", acct.trades[-1], order.executed, order.cum_quote))

    def _close(self, order: Order, status: str) -> None:
        """End an order: release what it still locks."""
        acct = order.account
        if order.lock:
            asset = self.quote if order.side == "BUY" else self.base
            acct.locked[asset] -= order.lock
            acct.free[asset] += order.lock
            order.lock = Decimal(0)
        order.status = status
        order.update_ms = acct.update_ms = self.now_ms()
        self._unrest(order)
        if status != "FILLED":  # a fill was reported by its trade
            self.reports.append((order, status, None, order.executed, order.cum_quote))

    def _rest(self, order: Order) -> None:  # on the book, at the back of its level's queue (the env's model)
        self.open[order.order_id] = order
        self.queue[order.order_id] = QueueSpot(float(self.book.qty_at(order.side == "BUY", order.price)))

    def _unrest(self, order: Order) -> None:
        self.open.pop(order.order_id, None)
        self.queue.pop(order.order_id, None)

    # ---- requests ------------------------------------------------------------------------------
    def _check_symbol(self, params: dict) -> None:
        symbol = params.get("symbol")
        if not symbol:
            raise errors.mandatory("symbol")
        if symbol.upper() != self.symbol:
            raise errors.invalid_symbol()

    def place(self, acct: Account, params: dict, test: bool = False) -> dict:
        self._check_symbol(params)
        side = errors.order_side(params)
        otype = (params.get("type") or "").upper()
        if not otype:
            raise errors.mandatory("type")
        if otype not in _TYPES:
            raise errors.invalid_order_type()
        client_id = params.get("newClientOrderId") or ("local_" + uuid.uuid4().hex[:22])
        if not _CLIENT_ID.match(client_id):
            raise errors.illegal_chars("newClientOrderId", "^[a-zA-Z0-9-_]{1,36}$")
        resp_type = (params.get("newOrderRespType") or "FULL").upper()
        if resp_type not in ("ACK", "RESULT", "FULL"):
            raise errors.bad_param("newOrderRespType", resp_type)
        buy = side == "BUY"
        qty_s, quote_s = params.get("quantity"), params.get("quoteOrderQty")
        lots, quote_qty, price, tif = 0, Decimal(0), 0, "GTC"
        if otype == "MARKET":
            if bool(qty_s) == bool(quote_s):
                raise errors.BinanceError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were "
                                          "empty/null!" if not qty_s else "Param 'quantity' and 'quoteOrderQty' "
                                          "cannot be sent together.")
            if quote_s:
                quote_qty = parse(quote_s, "quoteOrderQty")
                if quote_qty <= 0:
                    raise errors.bad_param("quoteOrderQty", quote_s)
                if quote_qty < self.min_notional:
                    raise errors.filter_failure("NOTIONAL")
        else:
            if not params.get("price"):
                raise errors.mandatory("price")
            price = self.replay.price.units(parse(params["price"], "price"), "price", "PRICE_FILTER")
            if price <= 0:
                raise errors.filter_failure("PRICE_FILTER")
            if otype == "LIMIT":
                tif = (params.get("timeInForce") or "").upper()
                if not tif:
                    raise errors.mandatory("timeInForce")
                if tif not in _TIFS:
                    raise errors.invalid_tif()
            if not qty_s:
                raise errors.mandatory("quantity")
        if qty_s:
            lots = self.replay.qty.units(parse(qty_s, "quantity"), "quantity", "LOT_SIZE")
            if lots <= 0:
                raise errors.filter_failure("LOT_SIZE")
        if otype != "MARKET" and self._cost(price, lots) < self.min_notional:
            raise errors.filter_failure("NOTIONAL")
        if otype == "MARKET" and lots:
            ref = self._best(not buy)
            if ref is not None and self._cost(ref, lots) < self.min_notional:
                raise errors.filter_failure("NOTIONAL")
        prev = acct.by_client.get(client_id)
        if prev is not None and acct.orders[prev].is_open:
            raise errors.duplicate_order()

        # ---- balance checks and execution plan (nothing changes before all checks pass) ----
        if otype == "MARKET":
            if quote_qty:
                units = int((quote_qty / self.qunit).to_integral_value(ROUND_DOWN))
                if buy:  # price plus fee within quoteOrderQty
                    units = int((Decimal(units) / (1 + self.taker)).to_integral_value(ROUND_DOWN))
                plan, book_out = self._walk(buy, quote_units=units)
            else:
                plan, book_out = self._walk(buy, lots=lots)
            got = sum(q for _, q in plan)
            if buy:
                need = sum((self._cost(p, q) + self._fee(self._cost(p, q), False) for p, q in plan), Decimal(0))
                if acct.free[self.quote] < need:
                    raise errors.insufficient_balance()
            elif acct.free[self.base] < self.replay.lot * (lots if lots else got):
                raise errors.insufficient_balance()
        else:
            lock = self._buy_lock(price, lots) if buy else self.replay.lot * lots
            if acct.free[self.quote if buy else self.base] < lock:
                raise errors.insufficient_balance()
            plan, _ = self._walk(buy, lots=lots, limit=price)
            if otype == "LIMIT_MAKER" and plan:
                raise errors.would_take()
        if test:
            return {}

        now = self.now_ms()
        order = Order(acct, self.next_order_id, client_id, self.symbol, side, otype, tif, price,
                      lots, quote_qty, now, update_ms=now)
        self.next_order_id += 1
        acct.orders[order.order_id] = order
        acct.by_client[client_id] = order.order_id
        acct.update_ms = now
        self.reports.append((order, "NEW", None, 0, Decimal(0)))
        if otype == "MARKET":
            for p, q in plan:
                self._fill(order, p, q, maker=False)
                self._consume(not buy, p, q)
            if quote_qty:
                order.orig_qty = order.executed
                order.status = "FILLED" if order.executed and not book_out else "EXPIRED"
            else:
                order.status = "FILLED" if order.executed == lots else "EXPIRED"
            if order.status == "EXPIRED":
                self.reports.append((order, "EXPIRED", None, order.executed, order.cum_quote))
        else:
            order.lock = lock
            acct.free[self.quote if buy else self.base] -= lock
            acct.locked[self.quote if buy else self.base] += lock
            if otype == "LIMIT" and tif == "FOK" and sum(q for _, q in plan) < lots:
                plan = []
            for p, q in plan:
                self._fill(order, p, q, maker=False)
                self._consume(not buy, p, q)
            if order.remaining == 0:
                self._close(order, "FILLED")
            elif tif in ("IOC", "FOK"):
                self._close(order, "EXPIRED")
            else:
                self._rest(order)
        return self.order_response(order, resp_type)

    def _find(self, acct: Account, params: dict, not_found) -> Order:
        oid, cid = params.get("orderId"), params.get("origClientOrderId")
        if oid:
            order = acct.orders.get(integer(params, "orderId"))
        elif cid:
            order = acct.orders.get(acct.by_client.get(cid, -1))
        else:
            raise errors.BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were "
                                      "empty/null!")
        if order is None or order.symbol != params.get("symbol", "").upper():
            raise not_found()
        return order

    def cancel(self, acct: Account, params: dict) -> dict:
        self._check_symbol(params)
        order = self._find(acct, params, errors.unknown_order)
        if not order.is_open:
            raise errors.unknown_order()
        self._close(order, "CANCELED")
        body = self.order_response(order, "RESULT")
        body.pop("workingTime", None)
        body["origClientOrderId"] = order.client_id
        body["clientOrderId"] = params.get("newClientOrderId") or ("cancel_" + uuid.uuid4().hex[:22])
        return body

    def cancel_all(self, acct: Account, params: dict) -> list[dict]:
        self._check_symbol(params)
        orders = [o for o in acct.orders.values() if o.is_open and o.symbol == self.symbol]
        if not orders:
            raise errors.unknown_order()
        return [self.cancel(acct, {"symbol": self.symbol, "orderId": str(o.order_id)}) for o in orders]

    def query(self, acct: Account, params: dict) -> dict:
        self._check_symbol(params)
        return self.order_status(self._find(acct, params, errors.order_not_found))

    def open_orders(self, acct: Account, params: dict) -> list[dict]:
        if params.get("symbol"):
            self._check_symbol(params)
        return [self.order_status(o) for o in acct.orders.values() if o.is_open]

    def all_orders(self, acct: Account, params: dict) -> list[dict]:
        self._check_symbol(params)
        first, start, end = (integer(params, k) for k in ("orderId", "startTime", "endTime"))
        limit = min(integer(params, "limit", 500, least=1), 1000)
        orders = [o for o in acct.orders.values() if (first is None or o.order_id >= first)
                  and (start is None or o.time_ms >= start) and (end is None or o.time_ms <= end)]
        orders = orders[:limit] if (first is not None or start is not None) else orders[-limit:]
        return [self.order_status(o) for o in orders]

    def my_trades(self, acct: Account, params: dict) -> list[dict]:
        self._check_symbol(params)
        oid, first, start, end = (integer(params, k) for k in ("orderId", "fromId", "startTime", "endTime"))
        limit = min(integer(params, "limit", 500, least=1), 1000)
        trades = [t for t in acct.trades if (oid is None or t["orderId"] == oid) and (first is None or t["id"] >= first)
                  and (start is None or t["time"] >= start) and (end is None or t["time"] <= end)]
        return trades[:limit] if (first is not None or start is not None) else trades[-limit:]

    def account(self, acct: Account) -> dict:
        maker, taker = int(self.maker * 10000), int(self.taker * 10000)
        return {
            "makerCommission": maker, "takerCommission": taker, "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": fmt(self.maker), "taker": fmt(self.taker), "buyer": fmt(Decimal(0)),
                                "seller": fmt(Decimal(0))},
            "canTrade": True, "canWithdraw": False, "canDeposit": False, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": acct.update_ms,
            "accountType": "SPOT", "balances": acct.balances(), "permissions": ["SPOT"], "uid": 0,
        }

    # ---- response shapes -----------------------------------------------------------------------
    def _common(self, o: Order) -> dict:
        P, Q = self.replay.price.str, self.replay.qty.str
        return {"price": P(o.price), "origQty": Q(o.orig_qty), "executedQty": Q(o.executed),
                "cummulativeQuoteQty": fmt(o.cum_quote), "status": o.status, "timeInForce": o.tif,
                "type": o.type, "side": o.side}

    def order_response(self, o: Order, resp_type: str) -> dict:
        body = {"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_id,
                "transactTime": o.update_ms}
        if resp_type in ("RESULT", "FULL"):
            body.update(self._common(o))
            body["origQuoteOrderQty"] = fmt(o.orig_quote)
            body["workingTime"] = o.time_ms
            body["selfTradePreventionMode"] = "NONE"
        if resp_type == "FULL":
            body["fills"] = list(o.fills)
        o.fills.clear()
        return body

    def order_status(self, o: Order) -> dict:
        body = {"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_id}
        body.update(self._common(o))
        body.update({"stopPrice": fmt(Decimal(0)), "icebergQty": fmt(Decimal(0)), "time": o.time_ms,
                     "updateTime": o.update_ms, "isWorking": True, "workingTime": o.time_ms,
                     "origQuoteOrderQty": fmt(o.orig_quote), "selfTradePreventionMode": "NONE"})
        return body

    # ---- replay events -------------------------------------------------------------------------
    def on_snapshot(self) -> None:
        self.overlay[True].clear()
        self.overlay[False].clear()
        for oid, spot in self.queue.items():
            queue_on_snapshot(spot, self.book.qty_at(self.open[oid].side == "BUY", self.open[oid].price))
        self._match_resting()

    def on_depth(self, msg: dict, changed: list[tuple[bool, int, int]]) -> None:
        for is_bid, price, prev in changed:
            self.overlay[is_bid].pop(price, None)
            for oid, spot in self.queue.items():
                o = self.open[oid]
                if o.price == price and (o.side == "BUY") == is_bid:
                    queue_on_depth(spot, prev, self.book.qty_at(is_bid, price), self.queue_model, self.queue_power)
        self._match_resting()

    def on_trade(self, msg: dict, price: int, qty: int) -> None:
        if not self.open:
            return
        for buy in (True, False):
            left = qty
            for order in self._resting(buy):
                if left <= 0 or not (order.price > price if buy else order.price < price):
                    break
                take = min(order.remaining, left)
                self._fill(order, order.price, take, maker=True)
                order.fills.clear()  # not part of any response
                left -= take
                if order.remaining == 0:
                    self._close(order, "FILLED")
        left, hit = qty, "BUY" if msg.get("m") else "SELL"  # at its price, by the opposite aggressor ("m": sold)
        for order in sorted((o for o in self.open.values() if o.price == price and o.side == hit), key=lambda o: o.order_id):
            take = queue_on_trade(self.queue[order.order_id], order.remaining, left, qty)
            if take > 0:
                self._fill(order, order.price, take, maker=True)
                order.fills.clear()
                left -= take
                if order.remaining == 0:
                    self._close(order, "FILLED")

    def _resting(self, buy: bool) -> list[Order]:
        orders = [o for o in self.open.values() if (o.side == "BUY") == buy]
        orders.sort(key=lambda o: ((-o.price if buy else o.price), o.order_id))
        return orders

    def _match_resting(self) -> None:
        if not self.open:
            return
        for buy in (True, False):
            orders = self._resting(buy)
            if not orders:
                continue
            best = self._best(not buy)
            if best is None or (best > orders[0].price if buy else best < orders[0].price):
                continue
            for order in orders:
                for price, avail in list(self._levels(not buy)):
                    if price > order.price if buy else price < order.price:
                        break
                    take = min(avail, order.remaining)
                    self._fill(order, order.price, take, maker=True)
                    self._consume(not buy, price, take)
                    if order.remaining == 0:
                        break
                order.fills.clear()  # not part of any response
                if order.remaining == 0:
                    self._close(order, "FILLED")
