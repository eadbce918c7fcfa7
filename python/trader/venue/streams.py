"""Websocket market streams, as ccxt.pro's ``binance`` uses them.

Endpoints: ``/ws`` and ``/ws/<stream>[/<stream>...]`` send raw payloads; ``/stream?streams=a/b``
wraps them as ``{"stream": name, "data": payload}``. ccxt.pro connects to ``<urls.api.ws.spot>/<n>``
(e.g. ``/ws/0``: "0" is not a stream and is ignored, as on Binance) and sends
``{"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 1}``; the answer is
``{"result": null, "id": 1}``. Also UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY/GET_PROPERTY.

Streams of the dataset's symbol:

* ``<s>@depth@100ms``: every recorded diff as recorded (``U``/``u`` from the dataset);
* ``<s>@depth`` and ``<s>@depth@1000ms``: the recorded diffs merged per second of event time;
* ``<s>@trade``, ``<s>@aggTrade`` (each trade its own aggregate), ``<s>@bookTicker``.

Each connection has its own send queue (so a slow client never holds up the replay) that delivers in
order after the injected one-way latency (``latency_ms / 2``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

import orjson
from aiohttp import WSMsgType, web

log = logging.getLogger("trader.venue")

STREAM_KINDS = ("depth", "depth@100ms", "depth@1000ms", "trade", "aggTrade", "bookTicker")
MAX_QUEUE = 100_000  # messages waiting for one client before it is dropped as too slow


async def serve_connection(conn: "WsConnection", conns: set, on_text) -> None:
    """Run one websocket connection: its sender in the background, each text frame to on_text(conn,
    text), until the client closes; then the connection is marked closed, leaves `conns` and its
    sender stops."""
    conns.add(conn)
    sender = asyncio.ensure_future(conn.sender())
    try:
        async for msg in conn.ws:
            if msg.type == WSMsgType.TEXT:
                on_text(conn, msg.data)
            elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    finally:
        conn.closed = True
        conns.discard(conn)
        conn.ready.set()
        sender.cancel()


class WsConnection:
    def __init__(self, ws: web.WebSocketResponse, combined: bool, hub: StreamHub):
        self.ws = ws
        self.combined = combined
        self.hub = hub
        self.subs: set[str] = set()
        self.queue: deque[tuple[float, str]] = deque()
        self.ready = asyncio.Event()
        self.closed = False
        self.opened = time.monotonic()

    def send_later(self, text: str) -> None:
        if self.closed:
            return
        if len(self.queue) >= MAX_QUEUE:
            log.warning("websocket client too slow (%d messages queued): disconnecting it", len(self.queue))
            asyncio.ensure_future(self.close(1008, b"too slow"))
            return
        self.queue.append((time.monotonic() + self.hub.one_way_latency(), text))
        self.ready.set()

    def send_json_later(self, obj) -> None:
        self.send_later(orjson.dumps(obj).decode())

    async def sender(self) -> None:
        try:
            while not self.closed:
                while self.queue and not self.closed:
                    due, text = self.queue[0]
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    self.queue.popleft()
                    await self.ws.send_str(text)
                self.ready.clear()
                await self.ready.wait()
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass

    async def close(self, code: int = 1000, message: bytes = b"") -> None:
        if self.closed:
            return
        self.closed = True
        self.hub.conns.discard(self)
        self.ready.set()
        try:
            await self.ws.close(code=code, message=message)
        except (ConnectionError, RuntimeError):
            pass


class StreamHub:
    def __init__(self, symbol: str, injector):
        self.symbol_lower = symbol.lower()
        self.symbol = symbol.upper()
        self.injector = injector
        self.conns: set[WsConnection] = set()
        self._merged: dict | None = None  # the 1000ms diff being built
        self._gap_counts = {"100ms": 0, "1000ms": 0}
        self.published = 0

    def one_way_latency(self) -> float:
        return self.injector.faults.latency_ms / 2000.0

    def valid(self, name: str) -> bool:
        sym, _, kind = name.partition("@")
        return sym == self.symbol_lower and kind in STREAM_KINDS

    def _subscribed(self, *names: str) -> bool:
        return any(n in c.subs for c in self.conns for n in names)

    def publish(self, names: tuple[str, ...], payload: dict) -> None:
        """Send ``payload`` to every connection subscribed to one of ``names`` (aliases of a stream)."""
        raw = None
        wrapped = {}
        for conn in list(self.conns):
            for name in names:
                if name in conn.subs:
                    if conn.combined:
                        if name not in wrapped:
                            wrapped[name] = orjson.dumps({"stream": name, "data": payload}).decode()
                        conn.send_later(wrapped[name])
                    else:
                        if raw is None:
                            raw = orjson.dumps(payload).decode()
                        conn.send_later(raw)
                    break
        self.published += 1

    def _gap(self, variant: str) -> bool:
        every = self.injector.faults.sequence_gap_every
        self._gap_counts[variant] += 1
        if every > 0 and self._gap_counts[variant] % every == 0:
            self.injector.stats.sequence_gaps += 1
            return True
        return False

    # ---- replay sink ---------------------------------------------------------------------------
    def on_snapshot(self) -> None:
        self._flush_merged()

    def on_depth(self, msg: dict, changed) -> None:
        s = self.symbol_lower
        if not self._gap("100ms"):
            self.publish((f"{s}@depth@100ms",), msg)
        if not self._subscribed(f"{s}@depth", f"{s}@depth@1000ms"):
            self._merged = None
            return
        m = self._merged
        if m is not None and msg["E"] // 1000 != m["E"] // 1000:
            self._flush_merged()
            m = None
        if m is None:
            m = self._merged = {"e": "depthUpdate", "E": msg["E"], "s": msg["s"], "U": msg["U"], "u": msg["u"],
                                "b": {}, "a": {}}
            if "pu" in msg:  # futures: the merged diff follows the one before its first part
                m["pu"] = msg["pu"]
        m["E"], m["u"] = msg["E"], msg["u"]
        for p, q in msg["b"]:
            m["b"][p] = q
        for p, q in msg["a"]:
            m["a"][p] = q

    def _flush_merged(self) -> None:
        m, self._merged = self._merged, None
        if m is None or self._gap("1000ms"):
            return
        m["b"] = [[p, q] for p, q in m["b"].items()]
        m["a"] = [[p, q] for p, q in m["a"].items()]
        s = self.symbol_lower
        self.publish((f"{s}@depth", f"{s}@depth@1000ms"), m)

    def on_trade(self, msg: dict, price: int, qty: int) -> None:
        s = self.symbol_lower
        self.publish((f"{s}@trade",), msg)
        if self._subscribed(f"{s}@aggTrade"):
            agg = {"e": "aggTrade", "E": msg["E"], "s": msg["s"], "a": msg["t"], "p": msg["p"], "q": msg["q"],
                   "f": msg["t"], "l": msg["t"], "T": msg["T"], "m": msg["m"], "M": True}
            self.publish((f"{s}@aggTrade",), agg)

    def on_book_ticker(self, msg: dict) -> None:
        self.publish((f"{self.symbol_lower}@bookTicker",), msg)

    # ---- connections ---------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        combined = request.path.endswith("/stream")  # /stream, or /fstream/stream for USD-M
        conn = WsConnection(ws, combined, self)
        initial = request.query.get("streams", "") if combined else request.match_info.get("streams", "")
        for name in filter(None, initial.split("/")):
            if self.valid(name):
                conn.subs.add(name)
        timer = None
        every = self.injector.faults.ws_disconnect_every
        if every > 0:
            def disconnect():
                if not conn.closed:
                    self.injector.stats.ws_disconnects += 1
                    asyncio.ensure_future(conn.close(1001, b"injected disconnect"))
            timer = asyncio.get_running_loop().call_later(every, disconnect)
        try:
            await serve_connection(conn, self.conns, self._control)
        finally:
            if timer is not None:
                timer.cancel()
        return ws

    def _control(self, conn: WsConnection, text: str) -> None:
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            conn.send_json_later({"error": {"code": 3, "msg": "Invalid JSON: expected a JSON object"}, "id": None})
            return
        if not isinstance(req, dict):
            conn.send_json_later({"error": {"code": 3, "msg": "Invalid JSON: expected a JSON object"}, "id": None})
            return
        rid = req.get("id")
        method = req.get("method")
        params = req.get("params") or []
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                conn.send_json_later({"error": {"code": 2, "msg": "Invalid request: params must be a list of "
                                                "stream names"}, "id": rid})
                return
            bad = [p for p in params if not self.valid(p)]
            if bad:
                conn.send_json_later({"error": {"code": 2, "msg": f"Invalid request: unknown stream {bad[0]!r} "
                                                f"(this exchange serves {self.symbol_lower}@"
                                                f"{{{','.join(STREAM_KINDS)}}})"}, "id": rid})
                return
            if method == "SUBSCRIBE":
                conn.subs.update(params)
            else:
                conn.subs.difference_update(params)
            conn.send_json_later({"result": None, "id": rid})
        elif method == "LIST_SUBSCRIPTIONS":
            conn.send_json_later({"result": sorted(conn.subs), "id": rid})
        elif method == "SET_PROPERTY":
            if isinstance(params, list) and len(params) == 2 and params[0] == "combined":
                conn.combined = bool(params[1])
            conn.send_json_later({"result": None, "id": rid})
        elif method == "GET_PROPERTY":
            conn.send_json_later({"result": conn.combined, "id": rid})
        else:
            conn.send_json_later({"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"},
                                  "id": rid})

    async def close_all(self) -> None:
        await asyncio.gather(*(c.close(1001, b"server shutdown") for c in list(self.conns)),
                             return_exceptions=True)
