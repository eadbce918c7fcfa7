"""The spot user-data stream as ccxt.pro's ``binance`` (4.5) subscribes to it: the WebSocket API.

ccxt connects to ``urls.api.ws['ws-api'].spot`` (here ``/ws-api/ws-api/v3``, see ``ccxt_urls``) and
sends ``{"id": ..., "method": "userDataStream.subscribe.signature", "params": {apiKey, timestamp,
[recvWindow], signature}}``, the parameters signed as on REST (HMAC-SHA256 of ``k=v&...`` sorted by
key). The answer is ``{"id", "status": 200, "result": {"subscriptionId": n}}``; from then on every
change of the account's orders arrives as ``{"subscriptionId": n, "event": <executionReport>}`` and
each batch of changes ends with an ``outboundAccountPosition`` (the balances of the symbol's assets).
Field names and meanings follow Binance's "User Data Stream" page (spot).

The execution reports come from ``MatchingEngine.reports`` and are sent after every request and
every replayed message (:meth:`UserDataHub.flush`). :meth:`UserDataHub.drop_all` closes every
subscription (the "user-data stream drop" fault): reports made while a client is not subscribed are
lost to it, as on Binance, and must be read back over REST.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from decimal import Decimal

import orjson
from aiohttp import web
from trader.venue import errors
from trader.venue.amounts import fmt
from trader.venue.auth import verify
from trader.venue.replay import ReplaySink
from trader.venue.streams import WsConnection, serve_connection

log = logging.getLogger("trader.venue")

WS_API_PATH = "/ws-api/ws-api/v3"
_ZERO = fmt(Decimal(0))


class UserDataStreams(ReplaySink, abc.ABC):
    """What the spot and USD-M user-data hubs share: their events wait until the replayed market moves
    (every snapshot, diff and trade flushes them: fills go out with the market message that made them),
    and their connections (``conns``; ``subs``: connection -> its subscriptions) close on a fault or at
    shutdown."""

    conns: set
    subs: dict

    @abc.abstractmethod
    def flush(self) -> None:
        """Send what waits."""

    def on_snapshot(self) -> None:
        self.flush()

    def on_depth(self, msg: dict, changed: list[tuple[bool, int, int]]) -> None:
        self.flush()

    def on_trade(self, msg: dict, price: int, qty: int) -> None:
        self.flush()

    async def drop_all(self) -> int:
        """Close every user-data connection (injected fault); returns how many were closed."""
        conns = list(self.conns)
        for conn in conns:
            self.subs.pop(conn, None)
        await asyncio.gather(*(c.close(1001, b"injected user-data stream drop") for c in conns),
                             return_exceptions=True)
        return len(conns)

    async def close_all(self) -> None:
        await asyncio.gather(*(c.close(1001, b"server shutdown") for c in list(self.conns)),
                             return_exceptions=True)


class UserDataHub(UserDataStreams):
    def __init__(self, engine, injector):
        self.engine = engine
        self.injector = injector
        self.conns: set[WsConnection] = set()
        self.subs: dict[WsConnection, dict[int, object]] = {}  # connection -> {subscriptionId: account}
        self.next_sub = 0
        self.sent = 0

    def one_way_latency(self) -> float:
        return self.injector.faults.latency_ms / 2000.0

    # ---- events --------------------------------------------------------------------------------
    def execution_report(self, order, exec_type: str, trade: dict | None, executed: int, cum_quote) -> dict:
        e = self.engine
        P, Q = e.replay.price.str, e.replay.qty.str
        if exec_type == "TRADE":
            status = "FILLED" if order.orig_qty and executed >= order.orig_qty else "PARTIALLY_FILLED"
        else:
            status = exec_type
        canceled = exec_type == "CANCELED"
        return {
            "e": "executionReport", "E": e.now_ms(), "s": order.symbol,
            "c": f"cancel_{order.order_id}" if canceled else order.client_id,
            "S": order.side, "o": order.type, "f": order.tif, "q": Q(order.orig_qty), "p": P(order.price),
            "P": _ZERO, "F": _ZERO, "g": -1, "C": order.client_id if canceled else "", "x": exec_type,
            "X": status, "r": "NONE", "i": order.order_id,
            "l": trade["qty"] if trade else Q(0), "z": Q(executed), "L": trade["price"] if trade else P(0),
            "n": trade["commission"] if trade else _ZERO, "N": trade["commissionAsset"] if trade else None,
            "T": trade["time"] if trade else order.update_ms, "t": trade["id"] if trade else -1,
            "I": 0, "w": status in ("NEW", "PARTIALLY_FILLED") and order.type != "MARKET",
            "m": trade["isMaker"] if trade else False, "M": False, "O": order.time_ms, "Z": fmt(cum_quote),
            "Y": trade["quoteQty"] if trade else _ZERO, "Q": fmt(order.orig_quote), "W": order.time_ms,
            "V": "NONE",
        }

    def position(self, acct) -> dict:
        e = self.engine
        now = e.now_ms()
        return {"e": "outboundAccountPosition", "E": now, "u": acct.update_ms,
                "B": [{"a": a, "f": fmt(acct.free[a]), "l": fmt(acct.locked[a])} for a in (e.base, e.quote)]}

    def flush(self) -> None:
        """Send the engine's pending execution reports to the subscriptions of their accounts."""
        reports, self.engine.reports = self.engine.reports, []
        if not reports or not self.subs:
            return
        touched = []
        for order, exec_type, trade, executed, cum_quote in reports:
            event = self.execution_report(order, exec_type, trade, executed, cum_quote)
            self._send(order.account, event)
            if order.account not in touched:
                touched.append(order.account)
        for acct in touched:
            self._send(acct, self.position(acct))

    def _send(self, acct, event: dict) -> None:
        for conn, subs in self.subs.items():
            for sid, sub_acct in subs.items():
                if sub_acct is acct:
                    conn.send_json_later({"subscriptionId": sid, "event": event})
                    self.sent += 1

    # ---- connections ---------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = WsConnection(ws, False, self)
        self.subs[conn] = {}
        try:
            await serve_connection(conn, self.conns, self._request)
        finally:
            self.subs.pop(conn, None)
        return ws

    def _request(self, conn: WsConnection, text: str) -> None:
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            req = None
        if not isinstance(req, dict):
            conn.send_json_later({"id": None, "status": 400,
                                  "error": {"code": -1100, "msg": "Illegal characters found in a request: "
                                                                  "expected a JSON object."}})
            return
        rid, method, params = req.get("id"), req.get("method"), req.get("params") or {}
        try:
            if method == "userDataStream.subscribe.signature":
                result = self._subscribe(conn, params)
            elif method == "userDataStream.unsubscribe":
                sid = params.get("subscriptionId") if isinstance(params, dict) else None
                if self.subs[conn].pop(sid, None) is None:
                    raise errors.BinanceError(-2035, "User Data Stream subscription not found.")
                result = {}
            else:
                raise errors.not_supported(f"WebSocket API method {method!r}")
        except errors.BinanceError as exc:
            conn.send_json_later({"id": rid, "status": exc.status, "error": exc.body()})
            return
        conn.send_json_later({"id": rid, "status": 200, "result": result})

    def _subscribe(self, conn: WsConnection, params) -> dict:
        if not isinstance(params, dict) or not all(isinstance(v, (str, int)) for v in params.values()):
            raise errors.mandatory("params")
        fields = {k: str(v) for k, v in params.items()}
        sig = fields.pop("signature", "")
        payload = "&".join(f"{k}={fields[k]}" for k in sorted(fields))
        acct = verify(self.engine.accounts, fields.get("apiKey"), f"{payload}&signature={sig}", "", fields)
        sid = self.next_sub
        self.next_sub += 1
        self.subs[conn][sid] = acct
        return {"subscriptionId": sid}

