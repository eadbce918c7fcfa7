"""The USD-M futures matching engine: orders against the replayed book as ``trader.venue.matching``
fills them (same book walk, overlay and resting-order rules), on margin instead of balances.

Differences from spot, as Binance's USD-M API behaves (codes from its "Error Codes" page):

* one one-way position per account (``positionSide`` BOTH; another: -4061); fills move it at the
  average entry price and realize PnL into the wallet (``trader.venue.positions``);
* orders: LIMIT (GTC, IOC, FOK, GTX = post-only: one that would take is refused, -5022) and MARKET
  (what the book cannot fill expires); no locked balances: an order that would grow the position
  needs ``notional / leverage`` of available balance (-2019 "Margin is insufficient.");
* ``reduceOnly=true``: the order must be against the position and at most its size, else -2022
  (checked at placement; a resting reduce-only order is not re-checked when the position changes);
* min notional 5 (quote) unless reduce-only (-4164); client order ids unique among open orders
  (-4116), of the form ``^[.A-Z:/a-z0-9_-]{1,36}$`` (-4015);
* fees (``taker_bps`` / ``maker_bps``, default Binance's 5 / 2 bps) are paid from the wallet in the
  margin asset; each fill's realized PnL and fee, and each funding payment, is an income entry;
* leverage 1..125 (-4028) and margin type CROSSED / ISOLATED (-4046 when unchanged, -4048 with a
  position, -4047 with open orders) per account;
* funding: at every funding time (00:00, 08:00, 16:00 UTC of the exchange clock) the position pays
  ``position x mark x rate`` (longs pay a positive rate). The rate is ``funding_rate`` (default
  0.0001 = 0.01 %, Binance's rate when the premium is zero: its interest rate component): the
  recordings hold no markPrice stream, so the real rate of the day is not known; the payment times
  are those of the recording's clock (the USD-M sample crosses 2024-07-19 00:00 UTC).

Not modelled: liquidation itself (the liquidation price is reported, a position past it is not
closed by the exchange), hedge mode, stop and trailing orders, leverage tiers beyond the first.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

from trader.venue import errors
from trader.venue.amounts import fmt, integer, parse
from trader.venue.matching import MatchingEngine
from trader.venue.positions import (FUNDING_INTERVAL_MS, MAINT_MARGIN_RATE, MAX_LEVERAGE, FuturesAccount, FuturesOrder,
                                    liquidation_price, next_funding_ms)

_CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_TIFS = ("GTC", "IOC", "FOK", "GTX")
_ZERO = Decimal(0)


def _err(code: int, msg: str) -> errors.BinanceError:
    return errors.BinanceError(code, msg)


def _bool(params: dict, name: str) -> bool:
    v = params.get(name)
    if v in (None, ""):
        return False
    if v.lower() not in ("true", "false"):
        raise _err(-1130, f"Data sent for parameter '{name}' is not valid.")
    return v.lower() == "true"


class FuturesEngine(MatchingEngine):
    def __init__(self, replay, base: str, quote: str, now_ms, *, taker_bps: float = 5, maker_bps: float = 2,
                 min_notional: str = "5", funding_rate: str = "0.0001", leverage: int = 20):
        super().__init__(replay, base, quote, now_ms, taker_bps=taker_bps, maker_bps=maker_bps,
                         min_notional=min_notional)
        self.funding_rate = Decimal(funding_rate)
        self.default_leverage = leverage
        self.next_funding: int | None = None  # exchange ms of the next funding payment
        self.next_income_id = 1
        self.funding_history: list[dict] = []  # GET /fapi/v1/fundingRate entries, oldest first
        # ACCOUNT_UPDATE events not yet sent (trader.venue.futures_userdata drains them): (account, reason)
        self.account_events: list[tuple[FuturesAccount, str]] = []

    # ---- accounts ------------------------------------------------------------------------------
    def add_account(self, api_key: str, secret: str, balances: dict) -> FuturesAccount:
        acct = FuturesAccount(api_key, secret)
        acct.position.leverage = self.default_leverage
        for asset, amount in balances.items():
            if asset.upper() != self.quote:
                raise ValueError(f"account {api_key}: balance in {asset}; a USD-M account holds its margin asset "
                                 f"{self.quote} only")
            acct.wallet += Decimal(str(amount))
        acct.update_ms = self.now_ms()
        self.accounts[api_key] = acct
        return acct

    def mark(self) -> Decimal:
        """The mark price (quote): the mid of the replayed best prices, else the last trade's price."""
        bid, ask = self._best(True), self._best(False)
        if bid is None or ask is None:
            return Decimal(self.replay.recent_trades[-1]["p"] if self.replay.recent_trades else "0")
        return self.replay.tick * (bid + ask) / 2

    def _value(self, lots: int, price: Decimal) -> Decimal:
        return self.replay.lot * abs(lots) * price

    def unrealized(self, acct: FuturesAccount) -> Decimal:
        return acct.position.unrealized(self._value(acct.position.lots, self.mark()))

    def open_order_margin(self, acct: FuturesAccount) -> Decimal:
        lev = acct.position.leverage
        return sum((self._cost(o.price, o.remaining) / lev for o in acct.orders.values()
                    if o.is_open and not o.reduce_only), _ZERO)

    def available(self, acct: FuturesAccount) -> Decimal:
        pos = acct.position
        if pos.margin_type == "isolated":
            free = acct.wallet - pos.isolated_wallet()
        else:
            free = acct.wallet + self.unrealized(acct) - pos.entry_cost / pos.leverage
        return free - self.open_order_margin(acct)

    def _income(self, acct: FuturesAccount, kind: str, amount: Decimal, trade_id: int | str = "") -> None:
        acct.income.append({"symbol": self.symbol, "incomeType": kind, "income": fmt(amount), "asset": self.quote,
                            "info": kind, "time": self.now_ms(), "tranId": self.next_income_id,
                            "tradeId": str(trade_id)})
        self.next_income_id += 1

    # ---- fills ---------------------------------------------------------------------------------
    def _fill(self, order: FuturesOrder, price: int, lots: int, maker: bool) -> None:
        acct: FuturesAccount = order.account
        cost = self._cost(price, lots)
        fee = self._fee(cost, maker)
        realized = acct.position.apply(lots if order.side == "BUY" else -lots, cost)
        acct.wallet += realized - fee
        order.realized += realized
        order.executed += lots
        order.cum_quote += cost
        now = self.now_ms()
        order.update_ms = acct.update_ms = acct.position.update_ms = now
        trade_id = self.next_trade_id
        self.next_trade_id += 1
        P, Q = self.replay.price.str, self.replay.qty.str
        acct.trades.append({"symbol": self.symbol, "id": trade_id, "orderId": order.order_id, "side": order.side,
                            "price": P(price), "qty": Q(lots), "realizedPnl": fmt(realized), "quoteQty": fmt(cost),
                            "commission": fmt(fee), "commissionAsset": self.quote, "time": now,
                            "positionSide": "BOTH", "buyer": order.side == "BUY", "maker": maker})
        if realized:
            self._income(acct, "REALIZED_PNL", realized, trade_id)
        if fee:
            self._income(acct, "COMMISSION", -fee, trade_id)
        if order.type != "MARKET":
            order.status = "FILLED" if order.remaining == 0 else "PARTIALLY_FILLED"
        self.reports.append((order, "TRADE", acct.trades[-1], order.executed, order.cum_quote))
        self.account_events.append((acct, "ORDER"))

    def _close(self, order: FuturesOrder, status: str) -> None:
        order.status = status
        order.update_ms = order.account.update_ms = self.now_ms()
        self._unrest(order)
        if status != "FILLED":
            self.reports.append((order, status, None, order.executed, order.cum_quote))

    # ---- funding -------------------------------------------------------------------------------
    def _funding(self) -> None:
        now = self.now_ms()
        if self.next_funding is None:
            self.next_funding = next_funding_ms(now)
            return
        while now >= self.next_funding:
            mark = self.mark()
            self.funding_history.append({"symbol": self.symbol, "fundingRate": fmt(self.funding_rate),
                                         "fundingTime": self.next_funding, "markPrice": fmt(mark)})
            for acct in self.accounts.values():
                pos = acct.position
                if pos.lots == 0:
                    continue
                pay = -(self.replay.lot * pos.lots * mark * self.funding_rate).quantize(self._qexp)
                acct.wallet += pay
                acct.update_ms = now
                self._income(acct, "FUNDING_FEE", pay)
                acct.income[-1]["time"] = self.next_funding
                self.account_events.append((acct, "FUNDING_FEE"))
            self.next_funding += FUNDING_INTERVAL_MS

    def on_snapshot(self) -> None:
        super().on_snapshot()
        self._funding()

    def on_depth(self, msg: dict, changed) -> None:
        super().on_depth(msg, changed)
        self._funding()

    def on_trade(self, msg: dict, price: int, qty: int) -> None:
        super().on_trade(msg, price, qty)
        self._funding()

    # ---- account settings ----------------------------------------------------------------------
    def set_leverage(self, acct: FuturesAccount, params: dict) -> dict:
        self._check_symbol(params)
        lev = integer(params, "leverage")
        if lev is None:
            raise errors.mandatory("leverage")
        if not 1 <= lev <= MAX_LEVERAGE:
            raise _err(-4028, f"Leverage {lev} is not valid")
        acct.position.leverage = lev
        return {"leverage": lev, "maxNotionalValue": "480000000", "symbol": self.symbol}

    def set_margin_type(self, acct: FuturesAccount, params: dict) -> dict:
        self._check_symbol(params)
        mt = (params.get("marginType") or "").upper()
        if not mt:
            raise errors.mandatory("marginType")
        if mt not in ("ISOLATED", "CROSSED"):
            raise _err(-4044, "The margin type is invalid.")
        want = "isolated" if mt == "ISOLATED" else "cross"
        pos = acct.position
        if want == pos.margin_type:
            raise _err(-4046, "No need to change margin type.")
        if pos.lots:
            raise _err(-4048, "Margin type cannot be changed if there exists position.")
        if any(o.is_open for o in acct.orders.values()):
            raise _err(-4047, "Margin type cannot be changed if there exists open orders.")
        pos.margin_type = want
        return {"code": 200, "msg": "success"}

    # ---- orders --------------------------------------------------------------------------------
    def place(self, acct: FuturesAccount, params: dict, test: bool = False) -> dict:
        self._check_symbol(params)
        side = errors.order_side(params)
        if (params.get("positionSide") or "BOTH").upper() != "BOTH":
            raise _err(-4061, "Order's position side does not match user's setting.")
        otype = (params.get("type") or "").upper()
        if not otype:
            raise errors.mandatory("type")
        if otype not in ("LIMIT", "MARKET"):
            raise errors.invalid_order_type()
        client_id = params.get("newClientOrderId") or ("local_" + uuid.uuid4().hex[:22])
        if not _CLIENT_ID.match(client_id):
            raise _err(-4015, "Client order id is not valid.")
        resp_type = (params.get("newOrderRespType") or "ACK").upper()
        if resp_type not in ("ACK", "RESULT"):
            raise errors.bad_param("newOrderRespType", resp_type)
        reduce_only = _bool(params, "reduceOnly")
        buy = side == "BUY"
        price, tif = 0, "GTC"
        if otype == "LIMIT":
            if not params.get("price"):
                raise errors.mandatory("price")
            price = self.replay.price.units(parse(params["price"], "price"), "price", "PRICE_FILTER")
            if price <= 0:
                raise errors.filter_failure("PRICE_FILTER")
            tif = (params.get("timeInForce") or "").upper()
            if not tif:
                raise errors.mandatory("timeInForce")
            if tif not in _TIFS:
                raise errors.invalid_tif()
        if not params.get("quantity"):
            raise errors.mandatory("quantity")
        lots = self.replay.qty.units(parse(params["quantity"], "quantity"), "quantity", "LOT_SIZE")
        if lots <= 0:
            raise _err(-4003, "Quantity less than or equal to zero.")
        ref = price if otype == "LIMIT" else self._best(not buy)
        if not reduce_only and ref is not None and self._cost(ref, lots) < self.min_notional:
            raise _err(-4164, f"Order's notional must be no smaller than {self.min_notional} (unless you choose "
                              "reduce only).")
        prev = acct.by_client.get(client_id)
        if prev is not None and acct.orders[prev].is_open:
            raise _err(-4116, "ClientOrderId is duplicated.")
        pos = acct.position
        against = pos.lots < 0 if buy else pos.lots > 0
        if reduce_only and (not against or lots > abs(pos.lots)):
            raise _err(-2022, "ReduceOnly Order is rejected.")
        growing = lots - (min(lots, abs(pos.lots)) if against else 0)
        if growing and ref is not None and self.available(acct) < self._cost(ref, growing) / pos.leverage:
            raise _err(-2019, "Margin is insufficient.")
        plan, _ = self._walk(buy, lots=lots, limit=price if otype == "LIMIT" else None)
        if tif == "GTX" and plan:
            raise _err(-5022, "Due to the order could not be executed as maker, the Post Only order will be "
                              "rejected.")
        if tif == "FOK" and sum(q for _, q in plan) < lots:
            plan = []
        if test:
            return {}

        now = self.now_ms()
        order = FuturesOrder(acct, self.next_order_id, client_id, self.symbol, side, otype, tif, price, lots, _ZERO,
                             now, update_ms=now, reduce_only=reduce_only)
        self.next_order_id += 1
        acct.orders[order.order_id] = order
        acct.by_client[client_id] = order.order_id
        self.reports.append((order, "NEW", None, 0, _ZERO))
        for p, q in plan:
            self._fill(order, p, q, maker=False)
            self._consume(not buy, p, q)
        if order.remaining == 0:
            self._close(order, "FILLED")
        elif otype == "MARKET" or tif in ("IOC", "FOK"):
            self._close(order, "EXPIRED")
        else:
            self._rest(order)
        return self.order_status(order)

    def cancel(self, acct: FuturesAccount, params: dict) -> dict:
        self._check_symbol(params)
        order = self._find(acct, params, errors.unknown_order)
        if not order.is_open:
            raise errors.unknown_order()
        self._close(order, "CANCELED")
        return self.order_status(order)

    def cancel_all(self, acct: FuturesAccount, params: dict) -> dict:
        self._check_symbol(params)
        for o in [o for o in acct.orders.values() if o.is_open]:
            self._close(o, "CANCELED")
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    # ---- response shapes -----------------------------------------------------------------------
    def order_status(self, o: FuturesOrder) -> dict:
        P, Q = self.replay.price.str, self.replay.qty.str
        avg = o.cum_quote / (self.replay.lot * o.executed) if o.executed else _ZERO
        return {"orderId": o.order_id, "symbol": o.symbol, "status": o.status, "clientOrderId": o.client_id,
                "price": P(o.price), "avgPrice": fmt(avg), "origQty": Q(o.orig_qty), "executedQty": Q(o.executed),
                "cumQty": Q(o.executed), "cumQuote": fmt(o.cum_quote), "timeInForce": o.tif, "type": o.type,
                "reduceOnly": o.reduce_only, "closePosition": False, "side": o.side, "positionSide": "BOTH",
                "stopPrice": "0", "workingType": "CONTRACT_PRICE", "priceProtect": False, "origType": o.type,
                "priceMatch": "NONE", "selfTradePreventionMode": "NONE", "goodTillDate": 0, "time": o.time_ms,
                "updateTime": o.update_ms}

    def position_risk(self, acct: FuturesAccount) -> dict:
        """One entry of ``GET /fapi/v3/positionRisk`` (plus v2's ``leverage`` and ``marginType``)."""
        pos = acct.position
        qty = self.replay.lot * abs(pos.lots)
        entry = pos.entry_cost / qty if qty else _ZERO
        mark = self.mark()
        notional = self.replay.lot * pos.lots * mark
        im = abs(notional) / pos.leverage
        return {"symbol": self.symbol, "positionSide": "BOTH", "positionAmt": self.replay.qty.str(pos.lots),
                "entryPrice": fmt(entry), "breakEvenPrice": fmt(entry), "markPrice": fmt(mark),
                "unRealizedProfit": fmt(self.unrealized(acct)),
                "liquidationPrice": fmt(liquidation_price(pos, qty, entry, acct.wallet)),
                "isolatedMargin": fmt(pos.isolated_wallet() + (self.unrealized(acct) if pos.margin_type == "isolated"
                                                                else _ZERO)),
                "notional": fmt(notional), "marginAsset": self.quote, "isolatedWallet": fmt(pos.isolated_wallet()),
                "initialMargin": fmt(im), "maintMargin": fmt(abs(notional) * MAINT_MARGIN_RATE),
                "positionInitialMargin": fmt(im), "openOrderInitialMargin": fmt(self.open_order_margin(acct)),
                "adl": 0, "bidNotional": "0", "askNotional": "0", "leverage": str(pos.leverage),
                "marginType": pos.margin_type, "updateTime": pos.update_ms}

    def account(self, acct: FuturesAccount) -> dict:
        """``GET /fapi/v3/account`` (and v2's fields that ccxt reads)."""
        up = self.unrealized(acct)
        notional = abs(self.replay.lot * acct.position.lots * self.mark())
        pos_im, mm = notional / acct.position.leverage, notional * MAINT_MARGIN_RATE
        oo_im = self.open_order_margin(acct)
        avail = self.available(acct)
        asset = {"asset": self.quote, "walletBalance": fmt(acct.wallet), "unrealizedProfit": fmt(up),
                 "marginBalance": fmt(acct.wallet + up), "maintMargin": fmt(mm), "initialMargin":
                 fmt(pos_im + oo_im), "positionInitialMargin": fmt(pos_im), "openOrderInitialMargin": fmt(oo_im),
                 "crossWalletBalance": fmt(acct.wallet), "crossUnPnl": fmt(up), "availableBalance": fmt(avail),
                 "maxWithdrawAmount": fmt(max(avail, _ZERO)), "marginAvailable": True,
                 "updateTime": acct.update_ms or 1}
        return {"totalInitialMargin": fmt(pos_im + oo_im), "totalMaintMargin": fmt(mm),
                "totalWalletBalance": fmt(acct.wallet), "totalUnrealizedProfit": fmt(up),
                "totalMarginBalance": fmt(acct.wallet + up), "totalPositionInitialMargin": fmt(pos_im),
                "totalOpenOrderInitialMargin": fmt(oo_im), "totalCrossWalletBalance": fmt(acct.wallet),
                "totalCrossUnPnl": fmt(up), "availableBalance": fmt(avail), "maxWithdrawAmount": fmt(max(avail, _ZERO)),
                "canTrade": True, "canDeposit": False, "canWithdraw": False, "feeTier": 0,
                "updateTime": acct.update_ms, "assets": [asset], "positions": [self.position_risk(acct)]}

    def income(self, acct: FuturesAccount, params: dict) -> list[dict]:
        """``GET /fapi/v1/income``: incomeType, startTime, endTime (ms), limit (default 100, max 1000)."""
        if params.get("symbol"):
            self._check_symbol(params)
        kind = params.get("incomeType")
        start, end = integer(params, "startTime"), integer(params, "endTime")
        limit = min(integer(params, "limit", 100, least=1), 1000)
        out = [i for i in acct.income if (not kind or i["incomeType"] == kind)
               and (start is None or i["time"] >= start) and (end is None or i["time"] <= end)]
        return out[:limit] if start is not None else out[-limit:]
