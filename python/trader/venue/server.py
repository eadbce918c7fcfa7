"""``LocalExchange``: a local Binance spot API over a replayed dataset, for tests and rehearsals."""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import threading
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web
from trader.venue.fapi import FapiApi
from trader.venue.faults import FaultInjector, Faults, FaultStats
from trader.venue.futures import FuturesEngine
from trader.venue.futures_userdata import FuturesUserData
from trader.venue.matching import MatchingEngine
from trader.venue.replay import MarketReplay, ReplayClock, ReplaySink
from trader.venue.rest import RestApi
from trader.venue.streams import StreamHub
from trader.venue.userdata import WS_API_PATH, UserDataHub

log = logging.getLogger("trader.venue")

_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USDP", "DAI", "EUR", "TRY", "BRL", "JPY", "GBP", "AUD",
           "BTC", "ETH", "BNB")


def split_symbol(symbol: str) -> tuple[str, str]:
    """BTCUSDT -> (BTC, USDT), by the usual Binance quote assets."""
    s = symbol.upper()
    for q in _QUOTES:
        if s.endswith(q) and len(s) > len(q):
            return s[: -len(q)], q
    raise ValueError(f"cannot tell base and quote of {symbol!r}: pass base= and quote=")


class _Fanout(ReplaySink):
    def __init__(self, *sinks):
        self.sinks = sinks

    def on_snapshot(self):
        for s in self.sinks:
            s.on_snapshot()

    def on_depth(self, msg, changed):
        for s in self.sinks:
            s.on_depth(msg, changed)

    def on_trade(self, msg, price, qty):
        for s in self.sinks:
            s.on_trade(msg, price, qty)

    def on_book_ticker(self, msg):
        for s in self.sinks:
            s.on_book_ticker(msg)


class LocalExchange:
    """A Binance-compatible exchange on 127.0.0.1 that replays a recorded dataset.

    >>> with LocalExchange(keys={"k": {"secret": "s", "balances": {"USDT": "1000"}}}, speed=0) as ex:
    ...     client = ccxt.binance({"apiKey": "k", "secret": "s", **ex.ccxt_config()})

    ``data``: a dataset folder, a loaded ``Dataset``, or None for the bundled sample.
    ``speed``: replay speed (1 = as recorded, 10 = ten times faster); 0 = manual clock, moved by
    :meth:`advance` / :meth:`advance_to` only (deterministic tests).
    ``keys``: ``{api_key: {"secret": ..., "balances": {asset: amount}}}``.
    ``loop``: start the data again when it ends (ids and times keep increasing).
    ``faults``: a :class:`Faults`; changeable while running (``ex.faults.error_rate = 0.5``).
    ``market``: ``spot`` (the Binance spot API) or ``usdm`` (the USD-M futures API, ``trader.venue.fapi``,
    for ccxt's ``binanceusdm``); default: the dataset's market. ``funding_rate`` (per 8 h funding
    time) and ``leverage`` (each account's initial leverage): USD-M only. Fees default to Binance's
    base tiers: spot 10/10 bps, USD-M taker 5 / maker 2 bps.
    """

    def __init__(self, data=None, *, keys: dict | None = None, speed: float = 1.0, host: str = "127.0.0.1",
                 port: int = 0, loop: bool = False, faults: Faults | None = None, taker_bps: float | None = None,
                 maker_bps: float | None = None, min_notional: str = "5", base: str | None = None,
                 quote: str | None = None, market: str | None = None, funding_rate: str = "0.0001",
                 leverage: int = 20):
        from trader.data.dataset import Dataset, load_dataset

        dataset = data if isinstance(data, Dataset) else load_dataset(data)
        self.dataset_path = Path(dataset.path)
        self.replay = MarketReplay(dataset, loop=loop)
        if base is None or quote is None:
            b, q = split_symbol(self.replay.symbol)
            base, quote = base or b, quote or q
        self.clock = ReplayClock(self.replay.start_ns, speed)
        self.faults = faults or Faults()
        self.injector = FaultInjector(self.faults)
        self.market = market or self.replay.market
        if self.market == "usdm":
            self.engine = FuturesEngine(self.replay, base.upper(), quote.upper(), self.exchange_ms,
                                        taker_bps=5 if taker_bps is None else taker_bps,
                                        maker_bps=2 if maker_bps is None else maker_bps, min_notional=min_notional,
                                        funding_rate=funding_rate, leverage=leverage)
            self.userdata = FuturesUserData(self.engine, self.injector)
        elif self.market == "spot":
            self.engine = MatchingEngine(self.replay, base.upper(), quote.upper(), self.exchange_ms,
                                         taker_bps=10 if taker_bps is None else taker_bps,
                                         maker_bps=10 if maker_bps is None else maker_bps, min_notional=min_notional)
            self.userdata = UserDataHub(self.engine, self.injector)
        else:
            raise ValueError(f"market {self.market!r}: the local exchange serves spot or usdm")
        self.hub = StreamHub(self.replay.symbol, self.injector)
        self.replay.sink = _Fanout(self.engine, self.userdata, self.hub)
        for api_key, entry in (keys or {}).items():
            self.engine.add_account(api_key, entry["secret"], entry.get("balances", {}))
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    # ---- addresses -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    def ccxt_urls(self) -> dict:
        """``urls['api']`` for a ccxt ``binance`` / ``ccxt.pro.binance`` client: every endpoint here."""
        return ccxt_urls(self.url, f"ws://{self.host}:{self.port}")

    def ccxt_config(self, api_key: str | None = None, secret: str | None = None) -> dict:
        """Constructor config for ``ccxt.binance(...)`` / ``ccxt.pro.binance(...)`` against this server."""
        config: dict = {"urls": {"api": self.ccxt_urls()}}
        if api_key is not None:
            config["apiKey"] = api_key
            config["secret"] = secret if secret is not None else self.engine.accounts[api_key].secret
        return config

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> LocalExchange:
        """Serve from a background thread (its own event loop); returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run():
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop_async())
                loop.close()

        self._thread = threading.Thread(target=run, name="local-exchange", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("local exchange did not start")
        if failure:
            self._thread = None
            raise failure[0]
        return self

    async def start_async(self) -> None:
        """Bind and start serving on the running event loop (for callers that own one)."""
        self._loop = asyncio.get_running_loop()
        app = web.Application()
        if self.market == "usdm":
            FapiApi(self).install(app)
            app.router.add_get("/fstream/private/ws", self.userdata.handle)
            for path in ("/fstream/ws", "/fstream/ws/{streams:.*}", "/fstream/stream", "/fstream/{category}/ws",
                         "/fstream/{category}/ws/{streams:.*}", "/fstream/{category}/stream"):
                app.router.add_get(path, self.hub.handle)
        else:
            RestApi(self).install(app)
            for path in ("/ws", "/ws/{streams:.*}", "/stream"):
                app.router.add_get(path, self.hub.handle)
            app.router.add_get(WS_API_PATH, self.userdata.handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._wake = asyncio.Event()
        self._task = asyncio.ensure_future(self._run_replay())
        log.info("local exchange on %s (%s, ws %s)", self.url, self.replay.symbol, self.ws_url)

    async def stop_async(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.hub.close_all()
        await self.userdata.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> LocalExchange:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def _run_replay(self) -> None:
        while True:
            self.replay.step_until(self.clock.now())
            nxt = self.replay.next_time()
            wait = None if nxt is None else self.clock.wall_seconds_until(nxt)
            if wait is None:  # paused, manual, or the data is over
                await self._wake.wait()
                self._wake.clear()
            else:
                await asyncio.sleep(min(wait, 0.05))

    # ---- clock (callable from any thread) ------------------------------------------------------
    def call(self, fn, *args, timeout: float = 30.0):
        """Run ``fn(*args)`` on the server's event loop (where all state lives) and return its result."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return fn(*args)
        try:
            if asyncio.get_running_loop() is loop:
                return fn(*args)
        except RuntimeError:
            pass

        async def wrapper():
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(wrapper(), loop).result(timeout)

    def _wake_replay(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def advance(self, seconds: float) -> int:
        """Move replay time forward by ``seconds`` of data time and apply what is due; returns how many
        messages were applied."""
        def go():
            self.clock.advance(int(seconds * 1e9))
            n = self.replay.step_until(self.clock.now())
            self._wake_replay()
            return n
        return self.call(go)

    def advance_to(self, ts_ns: int) -> int:
        def go():
            self.clock.advance_to(ts_ns)
            n = self.replay.step_until(self.clock.now())
            self._wake_replay()
            return n
        return self.call(go)

    def pause(self) -> None:
        def go():
            self.clock.pause()
            self.replay.step_until(self.clock.now())
        self.call(go)

    def resume(self, speed: float | None = None) -> None:
        def go():
            self.clock.resume(speed)
            self._wake_replay()
        self.call(go)

    def exchange_ms(self) -> int:
        """The exchange's "now" in ms: replay time on the data's exchange-time axis."""
        return self.replay.exchange_ms(self.clock.now())

    # ---- state (for tests and the CLI) ---------------------------------------------------------
    @property
    def last_update_id(self) -> int:
        return self.call(lambda: self.replay.last_update_id)

    @property
    def finished(self) -> bool:
        return self.call(lambda: self.replay.finished)

    @property
    def stats(self) -> FaultStats:
        return self.injector.stats

    def book(self, limit: int = 100) -> dict:
        """The current book as ``GET /api/v3/depth`` returns it."""
        return self.call(self.replay.depth, limit)

    def drop_user_streams(self) -> int:
        """Close every user-data stream connection (fault injection); returns how many were open."""
        async def go():
            return await self.userdata.drop_all()
        return asyncio.run_coroutine_threadsafe(go(), self._loop).result(10)

    def balances(self, api_key: str) -> dict[str, tuple[Decimal, Decimal]]:
        """{asset: (free, locked)}; USD-M: {margin asset: (wallet balance, 0)}."""
        def go():
            acct = self.engine.accounts[api_key]
            if self.market == "usdm":
                return {self.engine.quote: (acct.wallet, Decimal(0))}
            return {a: (acct.free[a], acct.locked[a]) for a in dict.fromkeys([*acct.free, *acct.locked])}
        return self.call(go)

    def position(self, api_key: str) -> dict:
        """USD-M: the account's position as ``GET /fapi/v3/positionRisk`` shows it."""
        return self.call(lambda: self.engine.position_risk(self.engine.accounts[api_key]))

    def orders(self, api_key: str) -> list[dict]:
        """Every order of the account, oldest first, as ``GET /api/v3/order`` shows it."""
        def go():
            acct = self.engine.accounts[api_key]
            return [self.engine.order_status(o) for o in acct.orders.values()]
        return self.call(go)


def ccxt_urls(http_base: str, ws_base: str) -> dict:
    """ccxt ``binance``'s ``urls['api']`` with every host replaced by the local server.

    HTTP keys keep their paths (``/api/v3``, ``/sapi/v1``, ``/fapi/v1``, ...); the spot/margin
    websocket goes to ``<ws_base>/ws``, the spot WebSocket API to ``<ws_base>/ws-api/ws-api/v3`` (the
    user-data stream, trader.venue.userdata), the others to paths this server does not serve (so a
    stray futures call fails here instead of reaching the real exchange).
    """
    api = _ccxt_api_urls()

    def rewrite(v):
        if isinstance(v, dict):
            return {k: rewrite(x) for k, x in v.items()}
        if not isinstance(v, str):
            return v
        u = urlsplit(v)
        if u.scheme in ("http", "https"):
            return http_base + u.path
        if u.scheme in ("ws", "wss"):
            label = (u.hostname or "").split(".")[0]
            return ws_base + (u.path if label == "stream" else f"/{label}{u.path}")
        return v

    return rewrite(api)


@functools.lru_cache(maxsize=1)
def _ccxt_api_urls() -> dict:
    try:
        import ccxt.pro

        return copy.deepcopy(ccxt.pro.binance({"enableRateLimit": False}).urls["api"])
    except ImportError:  # ccxt not installed: the keys ccxt 4.5 uses
        return _STATIC_URLS


_STATIC_URLS = {
    "sapi": "https://api.binance.com/sapi/v1", "sapiV2": "https://api.binance.com/sapi/v2",
    "sapiV3": "https://api.binance.com/sapi/v3", "sapiV4": "https://api.binance.com/sapi/v4",
    "dapiPublic": "https://dapi.binance.com/dapi/v1", "dapiPrivate": "https://dapi.binance.com/dapi/v1",
    "eapiPublic": "https://eapi.binance.com/eapi/v1", "eapiPrivate": "https://eapi.binance.com/eapi/v1",
    "dapiPrivateV2": "https://dapi.binance.com/dapi/v2", "dapiData": "https://dapi.binance.com/futures/data",
    "fapiPublic": "https://fapi.binance.com/fapi/v1", "fapiPublicV2": "https://fapi.binance.com/fapi/v2",
    "fapiPublicV3": "https://fapi.binance.com/fapi/v3", "fapiPrivate": "https://fapi.binance.com/fapi/v1",
    "fapiPrivateV2": "https://fapi.binance.com/fapi/v2", "fapiPrivateV3": "https://fapi.binance.com/fapi/v3",
    "fapiData": "https://fapi.binance.com/futures/data", "public": "https://api.binance.com/api/v3",
    "private": "https://api.binance.com/api/v3", "v1": "https://api.binance.com/api/v1",
    "papi": "https://papi.binance.com/papi/v1", "papiV2": "https://papi.binance.com/papi/v2",
    "ws": {"spot": "wss://stream.binance.com:9443/ws", "margin": "wss://stream.binance.com:9443/ws",
           "linear": "wss://fstream.binance.com/ws", "inverse": "wss://dstream.binance.com/ws"},
}
