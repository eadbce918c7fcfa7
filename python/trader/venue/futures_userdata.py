"""The USD-M user-data stream as ccxt.pro's ``binanceusdm`` (4.5) uses it: a listenKey from ``POST
/fapi/v1/listenKey`` (API key only; the same key again while it is open, as on Binance), then a
websocket on ``<urls.api.ws.linear>`` rewritten to ``/fstream/private/ws?listenKey=<key>`` (ccxt's
``get_private_ws_url``; ``/fstream/ws/<key>``, the older form, works too).

Events (field names from Binance's "User Data Streams" page for USD-M futures):

* ``ORDER_TRADE_UPDATE`` for every change of an order (NEW, TRADE, CANCELED, EXPIRED), from
  ``FuturesEngine.reports``, with the fill's price, quantity, fee and realized PnL;
* ``ACCOUNT_UPDATE`` after each batch of changes of an account (reason ``ORDER``) and at every
  funding payment (reason ``FUNDING_FEE``): the wallet balance and the position (amount, entry price,
  unrealized PnL, margin type, isolated wallet).

They are sent after every request and every replayed message (:meth:`FuturesUserData.flush`).
:meth:`FuturesUserData.drop_all` closes every connection (the user-data stream drop fault): what
happens meanwhile is lost to the client and must be read back over REST. Market data (depth,
trades, bookTicker) is the spot ``StreamHub`` under ``/fstream/...``.
"""

from __future__ import annotations

import secrets
from decimal import Decimal

from aiohttp import web
from trader.venue import errors
from trader.venue.amounts import fmt
from trader.venue.streams import WsConnection, serve_connection
from trader.venue.userdata import UserDataStreams

_ZERO = Decimal(0)


class FuturesUserData(UserDataStreams):
    def __init__(self, engine, injector):
        self.engine = engine
        self.injector = injector
        self.keys: dict[str, object] = {}  # listenKey -> account
        self.conns: set[WsConnection] = set()
        self.subs: dict[WsConnection, object] = {}  # connection -> account
        self.sent = 0

    def one_way_latency(self) -> float:
        return self.injector.faults.latency_ms / 2000.0

    # ---- listenKey (REST) ----------------------------------------------------------------------
    def key_of(self, acct) -> str | None:
        return next((k for k, a in self.keys.items() if a is acct), None)

    def new_listen_key(self, acct, params: dict) -> dict:
        key = self.key_of(acct) or secrets.token_hex(32)
        self.keys[key] = acct
        return {"listenKey": key}

    def keep_alive(self, acct, params: dict) -> dict:
        key = self.key_of(acct)
        if key is None:
            raise errors.BinanceError(-1125, "This listenKey does not exist.")
        return {"listenKey": key}

    def close_listen_key(self, acct, params: dict) -> dict:
        key = self.key_of(acct)
        if key is not None:
            del self.keys[key]
        return {}

    # ---- events --------------------------------------------------------------------------------
    def order_update(self, order, exec_type: str, trade: dict | None, executed: int, cum_quote) -> dict:
        e = self.engine
        P, Q = e.replay.price.str, e.replay.qty.str
        if exec_type == "TRADE":
            status = "FILLED" if executed >= order.orig_qty else "PARTIALLY_FILLED"
        else:
            status = exec_type
        avg = cum_quote / (e.replay.lot * executed) if executed else _ZERO
        now = e.now_ms()
        return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": trade["time"] if trade else order.update_ms, "o": {
            "s": order.symbol, "c": order.client_id, "S": order.side, "o": order.type, "f": order.tif,
            "q": Q(order.orig_qty), "p": P(order.price), "ap": fmt(avg), "sp": "0", "x": exec_type, "X": status,
            "i": order.order_id, "l": trade["qty"] if trade else Q(0), "z": Q(executed),
            "L": trade["price"] if trade else P(0), "N": e.quote, "n": trade["commission"] if trade else fmt(_ZERO),
            "T": trade["time"] if trade else order.update_ms, "t": trade["id"] if trade else 0, "b": "0", "a": "0",
            "m": trade["maker"] if trade else False, "R": order.reduce_only, "wt": "CONTRACT_PRICE",
            "ot": order.type, "ps": "BOTH", "cp": False, "rp": trade["realizedPnl"] if trade else fmt(_ZERO),
            "pP": False, "si": 0, "ss": 0, "V": "NONE", "pm": "NONE", "gtd": 0}}

    def account_update(self, acct, reason: str) -> dict:
        e = self.engine
        risk = e.position_risk(acct)
        now = e.now_ms()
        return {"e": "ACCOUNT_UPDATE", "E": now, "T": now, "a": {
            "m": reason, "B": [{"a": e.quote, "wb": fmt(acct.wallet), "cw": fmt(acct.wallet), "bc": "0"}],
            "P": [{"s": risk["symbol"], "pa": risk["positionAmt"], "ep": risk["entryPrice"],
                   "bep": risk["breakEvenPrice"], "cr": "0", "up": risk["unRealizedProfit"],
                   "mt": risk["marginType"], "iw": risk["isolatedWallet"], "ps": "BOTH"}]}}

    def flush(self) -> None:
        """Send the engine's pending order and account events to the connections of their accounts."""
        e = self.engine
        reports, e.reports = e.reports, []
        events, e.account_events = e.account_events, []
        if not self.subs:
            return
        touched: list[tuple[object, str]] = []
        for order, exec_type, trade, executed, cum_quote in reports:
            self._send(order.account, self.order_update(order, exec_type, trade, executed, cum_quote))
        for acct, reason in events:
            if (acct, reason) not in touched:
                touched.append((acct, reason))
        for acct, reason in touched:
            self._send(acct, self.account_update(acct, reason))

    def _send(self, acct, event: dict) -> None:
        for conn, sub in self.subs.items():
            if sub is acct:
                conn.send_json_later(event)
                self.sent += 1

    # ---- connections ---------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        key = request.query.get("listenKey") or request.match_info.get("key", "")
        acct = self.keys.get(key)
        if acct is None:
            await ws.send_json({"error": {"code": -1125, "msg": "This listenKey does not exist."}})
            await ws.close(code=1008, message=b"invalid listenKey")
            return ws
        conn = WsConnection(ws, False, self)
        self.subs[conn] = acct
        try:
            await serve_connection(conn, self.conns, lambda c, text: None)
        finally:
            self.subs.pop(conn, None)
        return ws

