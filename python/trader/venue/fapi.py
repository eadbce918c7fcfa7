"""REST endpoints of Binance's USD-M futures API (``/fapi``) that ccxt 4.5's ``binanceusdm`` calls,
served by ``LocalExchange(market="usdm")`` over the :class:`~trader.venue.futures.FuturesEngine`.

Public: ``GET /fapi/v1/ping, time, exchangeInfo, depth, trades, aggTrades, ticker/bookTicker,
premiumIndex`` (mark price = the book's mid, the configured funding rate and the next funding time),
``fundingRate`` (the rates applied so far); ``GET /api/v3/exchangeInfo`` and ``/dapi/v1/exchangeInfo``
answer with no symbols.
Signed: ``GET /fapi/v2|v3/account`` (``fetch_balance``), ``GET /fapi/v2|v3/positionRisk``
(``fetch_positions``), ``GET /fapi/v1/leverageBracket``, ``POST /fapi/v1/leverage``, ``POST
/fapi/v1/marginType``, ``GET /fapi/v1/positionSide/dual`` (one-way only), ``GET /fapi/v1/commissionRate``;
``POST``/``GET``/``DELETE /fapi/v1/order``, ``GET /fapi/v1/openOrders``, ``DELETE
/fapi/v1/allOpenOrders``, ``GET /fapi/v1/allOrders``, ``GET /fapi/v1/userTrades``, ``GET
/fapi/v1/income`` (``fetch_funding_history``). API key only: ``POST``/``PUT``/``DELETE
/fapi/v1/listenKey`` (the user-data stream, ``trader.venue.futures_userdata``).

Every request goes through the same fault injector as spot (429 with Retry-After, 5xx, latency), and
an accepted ``POST``/``DELETE /fapi/v1/order`` may have its response dropped.
"""

from __future__ import annotations

import time

from trader.venue.amounts import MAX_PRICE_TICKS, MAX_QTY_LOTS, fmt, integer
from trader.venue.positions import MAINT_MARGIN_RATE, MAX_LEVERAGE
from trader.venue.rest import RestApi


def _ms() -> int:
    return int(time.time() * 1000)


class FapiApi(RestApi):
    def __init__(self, exchange):  # not RestApi.__init__: its routes are the spot API's
        self.x = exchange
        e = exchange.engine
        u = exchange.userdata
        self.routes = {
            ("GET", "/fapi/v1/ping"): (False, lambda a, p: {}),
            ("GET", "/fapi/v1/time"): (False, lambda a, p: {"serverTime": _ms()}),
            ("GET", "/fapi/v1/exchangeInfo"): (False, self.exchange_info),
            ("GET", "/api/v3/exchangeInfo"): (False, self.empty_exchange_info),
            ("GET", "/dapi/v1/exchangeInfo"): (False, self.empty_exchange_info),
            ("GET", "/fapi/v1/depth"): (False, self.depth),
            ("GET", "/fapi/v1/trades"): (False, self.trades),
            ("GET", "/fapi/v1/aggTrades"): (False, self.agg_trades),
            ("GET", "/fapi/v1/ticker/bookTicker"): (False, self.book_ticker),
            ("GET", "/fapi/v1/premiumIndex"): (False, self.premium_index),
            ("GET", "/fapi/v1/fundingRate"): (False, self.funding_rates),
            ("GET", "/fapi/v2/account"): (True, lambda a, p: e.account(a)),
            ("GET", "/fapi/v3/account"): (True, lambda a, p: e.account(a)),
            ("GET", "/fapi/v2/positionRisk"): (True, self.position_risk),
            ("GET", "/fapi/v3/positionRisk"): (True, self.position_risk),
            ("GET", "/fapi/v1/leverageBracket"): (True, self.leverage_bracket),
            ("POST", "/fapi/v1/leverage"): (True, e.set_leverage),
            ("POST", "/fapi/v1/marginType"): (True, e.set_margin_type),
            ("GET", "/fapi/v1/positionSide/dual"): (True, lambda a, p: {"dualSidePosition": False}),
            ("GET", "/fapi/v1/commissionRate"): (True, self.commission_rate),
            ("POST", "/fapi/v1/order"): (True, e.place),
            ("GET", "/fapi/v1/order"): (True, e.query),
            ("DELETE", "/fapi/v1/order"): (True, e.cancel),
            ("GET", "/fapi/v1/openOrders"): (True, e.open_orders),
            ("DELETE", "/fapi/v1/allOpenOrders"): (True, e.cancel_all),
            ("GET", "/fapi/v1/allOrders"): (True, e.all_orders),
            ("GET", "/fapi/v1/userTrades"): (True, e.my_trades),
            ("GET", "/fapi/v1/income"): (True, e.income),
            ("POST", "/fapi/v1/listenKey"): ("key", u.new_listen_key),
            ("PUT", "/fapi/v1/listenKey"): ("key", u.keep_alive),
            ("DELETE", "/fapi/v1/listenKey"): ("key", u.close_listen_key),
        }

    # ---- public --------------------------------------------------------------------------------
    def symbol_info(self) -> dict:
        r, e = self.x.replay, self.x.engine
        tick, lot = fmt(r.tick), fmt(r.lot)
        return {
            "symbol": r.symbol, "pair": r.symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000", "baseAsset": e.base, "quoteAsset": e.quote, "marginAsset": e.quote,
            "pricePrecision": r.price.places, "quantityPrecision": r.qty.places, "baseAssetPrecision": 8,
            "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": [], "triggerProtect": "0.0500",
            "liquidationFee": "0.012500", "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": fmt(r.tick * MAX_PRICE_TICKS),
                 "tickSize": tick},
                {"filterType": "LOT_SIZE", "minQty": lot, "maxQty": fmt(r.lot * MAX_QTY_LOTS), "stepSize": lot},
                {"filterType": "MARKET_LOT_SIZE", "minQty": lot, "maxQty": fmt(r.lot * MAX_QTY_LOTS), "stepSize": lot},
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MIN_NOTIONAL", "notional": fmt(e.min_notional)},
            ],
            "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
        }

    def exchange_info(self, acct, params: dict) -> dict:
        return {"timezone": "UTC", "serverTime": _ms(), "futuresType": "U_MARGINED",
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                "limit": 2400}],
                "exchangeFilters": [], "assets": [{"asset": self.x.engine.quote, "marginAvailable": True,
                                                   "autoAssetExchange": "0"}],
                "symbols": [self.symbol_info()]}

    def depth(self, acct, params: dict) -> dict:
        body = super().depth(acct, params)
        now = self.x.exchange_ms()
        return {"lastUpdateId": body["lastUpdateId"], "E": now, "T": now, "bids": body["bids"], "asks": body["asks"]}

    def premium_index(self, acct, params: dict):
        self._symbol(params, required=False)
        e = self.x.engine
        mark = fmt(e.mark())
        body = {"symbol": self.x.replay.symbol, "markPrice": mark, "indexPrice": mark, "estimatedSettlePrice": mark,
                "lastFundingRate": fmt(e.funding_rate), "interestRate": fmt(e.funding_rate),
                "nextFundingTime": e.next_funding or 0, "time": self.x.exchange_ms()}
        return body if params.get("symbol") else [body]

    def funding_rates(self, acct, params: dict) -> list:
        self._symbol(params, required=False)
        limit = min(integer(params, "limit", 100, least=1), 1000)
        return self.x.engine.funding_history[-limit:]

    # ---- signed --------------------------------------------------------------------------------
    def position_risk(self, acct, params: dict) -> list:
        self._symbol(params, required=False)
        return [self.x.engine.position_risk(acct)]

    def leverage_bracket(self, acct, params: dict) -> list:
        self._symbol(params, required=False)
        return [{"symbol": self.x.replay.symbol, "brackets": [
            {"bracket": 1, "initialLeverage": MAX_LEVERAGE, "notionalCap": 1_000_000_000, "notionalFloor": 0,
             "maintMarginRatio": float(MAINT_MARGIN_RATE), "cum": 0.0}]}]

    def commission_rate(self, acct, params: dict) -> dict:
        self._symbol(params)
        e = self.x.engine
        return {"symbol": self.x.replay.symbol, "makerCommissionRate": fmt(e.maker),
                "takerCommissionRate": fmt(e.taker)}

