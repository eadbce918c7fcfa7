"""REST endpoints of the Binance spot API that ccxt's ``binance`` class calls.

Public: ``GET /api/v3/ping, time, exchangeInfo, depth, trades, aggTrades, ticker/bookTicker,
ticker/price``; ``GET /fapi/v1/exchangeInfo`` and ``/dapi/v1/exchangeInfo`` answer with no symbols
(ccxt's ``load_markets`` asks for spot, linear and inverse markets by default).
Signed (HMAC-SHA256, ``X-MBX-APIKEY``): ``GET /api/v3/account``; ``POST /api/v3/order`` and
``/order/test``; ``GET`` and ``DELETE /api/v3/order``; ``GET`` and ``DELETE /api/v3/openOrders``;
``GET /api/v3/allOrders, myTrades``; ``GET /sapi/v1/capital/config/getall`` (ccxt's
``fetch_currencies`` during ``load_markets`` when it has keys), ``/sapi/v1/margin/allPairs`` and
``/sapi/v1/margin/isolated/allPairs`` (no margin here: empty), ``/sapi/v1/asset/tradeFee``.

Every request goes through the fault injector first (429, 5xx, latency), and an accepted
``POST``/``DELETE /api/v3/order`` may have its response dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from decimal import Decimal
from urllib.parse import parse_qsl

import orjson
from aiohttp import web
from trader.venue import errors
from trader.venue.amounts import MAX_PRICE_TICKS, MAX_QTY_LOTS, fmt, integer
from trader.venue.auth import api_key_only, verify

log = logging.getLogger("trader.venue")

_PREFIXES = ("/api/v3/", "/sapi/v1/", "/fapi/v1/", "/fapi/v2/", "/fapi/v3/", "/dapi/v1/")


def _ms() -> int:
    return int(time.time() * 1000)


def _json(body, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json",
                        headers=headers)


class RestApi:
    def __init__(self, exchange):
        self.x = exchange  # LocalExchange: replay, engine, injector
        e = self.x.engine
        self.routes = {
            ("GET", "/api/v3/ping"): (False, lambda a, p: {}),
            ("GET", "/api/v3/time"): (False, lambda a, p: {"serverTime": _ms()}),
            ("GET", "/api/v3/exchangeInfo"): (False, self.exchange_info),
            ("GET", "/api/v3/depth"): (False, self.depth),
            ("GET", "/api/v3/trades"): (False, self.trades),
            ("GET", "/api/v3/aggTrades"): (False, self.agg_trades),
            ("GET", "/api/v3/ticker/bookTicker"): (False, self.book_ticker),
            ("GET", "/api/v3/ticker/price"): (False, self.ticker_price),
            ("GET", "/fapi/v1/exchangeInfo"): (False, self.empty_exchange_info),
            ("GET", "/dapi/v1/exchangeInfo"): (False, self.empty_exchange_info),
            ("GET", "/api/v3/account"): (True, lambda a, p: e.account(a)),
            ("POST", "/api/v3/order"): (True, e.place),
            ("POST", "/api/v3/order/test"): (True, lambda a, p: e.place(a, p, test=True)),
            ("GET", "/api/v3/order"): (True, e.query),
            ("DELETE", "/api/v3/order"): (True, e.cancel),
            ("GET", "/api/v3/openOrders"): (True, e.open_orders),
            ("DELETE", "/api/v3/openOrders"): (True, e.cancel_all),
            ("GET", "/api/v3/allOrders"): (True, e.all_orders),
            ("GET", "/api/v3/myTrades"): (True, e.my_trades),
            ("GET", "/sapi/v1/capital/config/getall"): (True, self.coins),
            ("GET", "/sapi/v1/margin/allPairs"): (True, lambda a, p: []),
            ("GET", "/sapi/v1/margin/isolated/allPairs"): (True, lambda a, p: []),
            ("GET", "/sapi/v1/asset/tradeFee"): (True, self.trade_fee),
        }

    def install(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{tail:.*}", self.dispatch)
        app.router.add_route("*", "/sapi/{tail:.*}", self.dispatch)
        app.router.add_route("*", "/fapi/{tail:.*}", self.dispatch)
        app.router.add_route("*", "/dapi/{tail:.*}", self.dispatch)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        route = self.routes.get((request.method, path))
        if route is None:
            known = any(p == path for _, p in self.routes)
            return web.Response(status=405 if known else 404, text="Method Not Allowed" if known else "Not Found")
        signed, handler = route
        endpoint = next((path[len(p):] for p in _PREFIXES if path.startswith(p)), path)
        inj = self.x.injector
        inj.stats.requests += 1
        headers = {"X-MBX-USED-WEIGHT-1M": str(inj.used_weight())}
        faulty = inj.applies(endpoint)
        if faulty:
            retry_after = inj.rate_limited()
            if retry_after is not None:
                err = errors.too_many_requests(inj.faults.rate_limit, inj.faults.rate_window_s, retry_after)
                return _json(err.body(), err.status, {**headers, **err.headers})
            if inj.error():
                status = inj.faults.error_status
                return web.Response(status=status, text="Service Unavailable.", headers=headers)
        # Read the whole request first: with latency injected, a client that gives up meanwhile must
        # not stop an order that reached the exchange from being processed (the dangerous real case).
        query = request.rel_url.raw_query_string
        raw = await request.read() if request.can_read_body else b""
        latency = inj.latency_s()
        if latency:
            await asyncio.sleep(latency / 2)
        status = 200
        try:
            body = raw.decode("utf-8")
            params = dict(parse_qsl(query, keep_blank_values=True, errors="strict"))
            params.update(parse_qsl(body, keep_blank_values=True, errors="strict"))
            acct = None
            if signed == "key":  # the API key alone (listenKey endpoints)
                acct = api_key_only(self.x.engine.accounts, request.headers.get("X-MBX-APIKEY"))
            elif signed:
                acct = verify(self.x.engine.accounts, request.headers.get("X-MBX-APIKEY"), query, body, params)
            result = handler(acct, params)
        except errors.BinanceError as exc:
            status, result = exc.status, exc.body()
            headers.update(exc.headers)
        except UnicodeDecodeError:  # a body or %-escape that is not UTF-8: a 400, never HTTP 500 (issue 16)
            err = errors.not_utf8()
            status, result = err.status, err.body()
        self.x.userdata.flush()  # the execution reports of what the request changed
        if (status == 200 and endpoint == "order" and request.method in ("POST", "DELETE") and faulty
                and inj.drop()):
            log.info("fault: dropped the response to an accepted %s /api/v3/order", request.method)
            if request.transport is not None:
                request.transport.close()
            return web.Response()
        if latency:
            await asyncio.sleep(latency / 2)
        return _json(result, status, headers)

    # ---- public --------------------------------------------------------------------------------
    def _symbol(self, params: dict, required: bool = True) -> None:
        sym = params.get("symbol")
        if not sym:
            if required:
                raise errors.mandatory("symbol")
            return
        if sym.upper() != self.x.replay.symbol:
            raise errors.invalid_symbol()

    def symbol_info(self) -> dict:
        r, e = self.x.replay, self.x.engine
        tick, lot = fmt(r.tick), fmt(r.lot)
        return {
            "symbol": r.symbol, "status": "TRADING", "baseAsset": e.base, "baseAssetPrecision": 8,
            "quoteAsset": e.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "icebergAllowed": False, "ocoAllowed": False, "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": False, "cancelReplaceAllowed": False,
            "amendAllowed": False, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": fmt(r.tick * MAX_PRICE_TICKS),
                 "tickSize": tick},
                {"filterType": "LOT_SIZE", "minQty": lot, "maxQty": fmt(r.lot * MAX_QTY_LOTS), "stepSize": lot},
                {"filterType": "MARKET_LOT_SIZE", "minQty": lot, "maxQty": fmt(r.lot * MAX_QTY_LOTS), "stepSize": lot},
                {"filterType": "NOTIONAL", "minNotional": fmt(e.min_notional), "applyMinToMarket": True,
                 "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            ],
            "permissions": [], "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "NONE", "allowedSelfTradePreventionModes": ["NONE"],
        }

    def exchange_info(self, acct, params: dict) -> dict:
        symbols = [params["symbol"]] if params.get("symbol") else None
        if params.get("symbols"):
            try:
                symbols = json.loads(params["symbols"])
            except json.JSONDecodeError:
                raise errors.bad_param("symbols", params["symbols"]) from None
            if not isinstance(symbols, list):
                raise errors.bad_param("symbols", params["symbols"])
        if symbols is not None and any(str(s).upper() != self.x.replay.symbol for s in symbols):
            raise errors.invalid_symbol()
        return {"timezone": "UTC", "serverTime": _ms(),
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                "limit": 6000}],
                "exchangeFilters": [], "symbols": [self.symbol_info()]}

    def empty_exchange_info(self, acct, params: dict) -> dict:
        return {"timezone": "UTC", "serverTime": _ms(), "rateLimits": [], "exchangeFilters": [], "assets": [],
                "symbols": []}

    def depth(self, acct, params: dict) -> dict:
        self._symbol(params)
        limit = integer(params, "limit", 100, least=1)
        return self.x.replay.depth(min(limit, 5000))

    def trades(self, acct, params: dict) -> list:
        self._symbol(params)
        limit = min(integer(params, "limit", 500, least=1), 1000)
        out = list(self.x.replay.recent_trades)[-limit:]
        return [{"id": t["t"], "price": t["p"], "qty": t["q"],
                 "quoteQty": fmt(Decimal(t["p"]) * Decimal(t["q"])),
                 "time": t["T"], "isBuyerMaker": t["m"], "isBestMatch": True} for t in out]

    def agg_trades(self, acct, params: dict) -> list:
        self._symbol(params)
        limit = min(integer(params, "limit", 500, least=1), 1000)
        from_id, start, end = (integer(params, k) for k in ("fromId", "startTime", "endTime"))
        trades = list(self.x.replay.recent_trades)
        if from_id is not None:
            trades = [t for t in trades if t["t"] >= from_id][:limit]
        else:
            trades = [t for t in trades if (start is None or t["T"] >= start) and (end is None or t["T"] <= end)]
            trades = trades[:limit] if start is not None else trades[-limit:]
        return [{"a": t["t"], "p": t["p"], "q": t["q"], "f": t["t"], "l": t["t"], "T": t["T"], "m": t["m"],
                 "M": True} for t in trades]

    def book_ticker(self, acct, params: dict) -> dict:
        self._symbol(params, required=False)
        d = self.x.replay.depth(1)
        bid = d["bids"][0] if d["bids"] else ["0.00000000", "0.00000000"]
        ask = d["asks"][0] if d["asks"] else ["0.00000000", "0.00000000"]
        body = {"symbol": self.x.replay.symbol, "bidPrice": bid[0], "bidQty": bid[1], "askPrice": ask[0],
                "askQty": ask[1]}
        return body if params.get("symbol") else [body]

    def ticker_price(self, acct, params: dict):
        self._symbol(params, required=False)
        last = self.x.replay.recent_trades[-1]["p"] if self.x.replay.recent_trades else "0.00000000"
        body = {"symbol": self.x.replay.symbol, "price": last}
        return body if params.get("symbol") else [body]

    # ---- sapi ----------------------------------------------------------------------------------
    def coins(self, acct, params: dict) -> list:
        out = []
        for asset in dict.fromkeys([self.x.engine.base, self.x.engine.quote, *acct.free]):
            out.append({"coin": asset, "name": asset, "depositAllEnable": False, "withdrawAllEnable": False,
                        "free": fmt(acct.free[asset]), "locked": fmt(acct.locked[asset]), "freeze": "0",
                        "withdrawing": "0", "ipoing": "0", "ipoable": "0", "storage": "0", "isLegalMoney": False,
                        "trading": True, "networkList": []})
        return out

    def trade_fee(self, acct, params: dict) -> list:
        e = self.x.engine
        return [{"symbol": self.x.replay.symbol, "makerCommission": fmt(e.maker), "takerCommission": fmt(e.taker)}]
