"""Binance's market streams for one symbol, kept in sync with REST depth snapshots: the one source of
market data for ``trader record`` (raw lines) and ``trader live`` (the C++ book).

Why not ccxt.pro's ``watch_order_book``: it hands out a merged book, not the messages, so a recorder
could not write the collector format from it, and a live book built from its merged levels would be
a copy of ccxt's book rather than the book the replay builds. Here the raw combined-stream messages
are read with aiohttp from the websocket URL in the ccxt client's own ``urls`` (so the same code runs
against Binance and against ``trader-sim serve``), and the REST snapshot comes through the ccxt
client (``publicGetDepth``: its raw body, with ``lastUpdateId``). Every message is delivered twice:

* to ``on_raw(ts_ns, text)`` exactly as received, for the recorder (``<ts_ns> <text>`` lines);
* decoded to ``BookHandler`` callbacks, in the order Binance's documented procedure ("How to manage a
  local order book correctly") applies them: a snapshot, then the diffs that chain onto it.

Sequences. A *sequence* is a run of messages that one snapshot makes consistent. A new one starts at
the first connection, after every reconnect and after every update-id gap (``U != previous u + 1``):
``on_sequence(reason)`` is called (the recorder opens a new file there), the diffs are buffered, a
snapshot is fetched, and the sequence becomes *valid* once a diff confirms the snapshot (the first
diff with ``u > lastUpdateId`` has ``U <= lastUpdateId + 1``; a snapshot older than the stream is
fetched again). The raw lines of a sequence are held in memory until it is valid, so every file the
recorder writes holds a snapshot that its diffs chain onto (``trader-sim convert`` finds no gap);
the snapshot line is written where it became valid, stamped ``max(its receive time, the previous
line's)`` so that local timestamps never go backwards.

ccxt.pro raises ``ChecksumError`` on a gap and drops its book; here a gap is handled the same way
(a fresh snapshot) without dropping the connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson

log = logging.getLogger("trader.live.stream")

DEPTH_KINDS = ("depth", "depth@100ms", "depth@1000ms", "depth@0ms", "depth@250ms", "depth@500ms")
MAX_PENDING_LINES = 500_000  # raw lines of a sequence still waiting for a valid snapshot


class BookHandler:
    """Receives the book messages of a MarketStream in the order they apply (all optional)."""

    def on_reset(self, reason: str) -> None:
        """The book is out of sync from now on (a new sequence started)."""

    def on_snapshot(self, last_update_id: int, bids: list, asks: list, ts_ns: int) -> None:
        """A valid snapshot: replace the book."""

    def on_diff(self, msg: dict, ts_ns: int) -> None:
        """A diff that chains onto the book (apply it)."""

    def on_trade(self, msg: dict, ts_ns: int) -> None:
        pass

    def on_ticker(self, msg: dict, ts_ns: int) -> None:
        pass


@dataclass
class StreamStats:
    messages: int = 0
    diffs_applied: int = 0
    diffs_stale: int = 0
    trades: int = 0
    tickers: int = 0
    snapshots: int = 0  # valid snapshots (= sequences started in sync)
    snapshots_refetched: int = 0  # snapshots older than the stream, fetched again
    gaps: int = 0
    reconnects: int = 0
    discarded_lines: int = 0
    last_message_monotonic: float = 0.0
    last_depth_monotonic: float = 0.0
    last_event_ms: int = 0  # exchange time (E) of the last depth diff
    last_update_id: int = 0
    reasons: list = field(default_factory=list)  # why each sequence started (first 100)


def stream_url(ws_base: str, names: list[str]) -> str:
    """The combined-stream URL for ``names`` from ccxt's ``urls['api']['ws']['spot']``
    (``wss://stream.binance.com:9443/ws`` -> ``.../stream?streams=a/b/c``)."""
    u = urlsplit(ws_base)
    path = u.path
    path = path.removesuffix("/ws")
    return urlunsplit((u.scheme, u.netloc, path.rstrip("/") + "/stream", "streams=" + "/".join(names), ""))


class MarketStream:
    """Combined stream of depth diffs, trades and bookTickers of one symbol, resynced after gaps and
    reconnects. ``client``: a ccxt async client (``ccxt.pro.binance`` or ``ccxt.async_support.binance``)
    with markets loaded; used for the websocket URL and the REST snapshot only.

    ``depth_stream``: ``depth@100ms`` (as the recorded data and the training sampling) or ``depth``.
    ``idle_timeout``: reconnect when nothing arrives for that long (seconds; None = never).
    """

    def __init__(self, client, symbol: str, *, book: BookHandler | None = None, on_raw=None, on_sequence=None,
                 depth_stream: str = "depth@100ms", trades: bool = True, tickers: bool = True,
                 snapshot_limit: int = 1000, idle_timeout: float | None = 60.0, ws_url: str | None = None,
                 max_backoff: float = 5.0):
        if depth_stream not in DEPTH_KINDS:
            raise ValueError(f"depth_stream: expected one of {DEPTH_KINDS}, got {depth_stream!r}")
        self.client = client
        self.symbol = symbol
        market = client.market(symbol)
        self.market_id = market["id"]
        # USD-M futures (ccxt binanceusdm): diffs chain by "pu" (the previous diff's "u"), not by U = u + 1
        # (Binance's "How to manage a local order book correctly", USD-M futures)
        self.futures = bool(market.get("linear"))
        s = self.market_id.lower()
        self.names = [f"{s}@{depth_stream}"] + ([f"{s}@trade"] if trades else []) + ([f"{s}@bookTicker"] if tickers else [])
        base = ws_url or _ws_base(client, "linear" if self.futures else "spot")
        self.url = stream_url(base, self.names)
        self.book = book or BookHandler()
        self.on_raw = on_raw
        self.on_sequence = on_sequence
        self.snapshot_limit = snapshot_limit
        self.idle_timeout = idle_timeout
        self.max_backoff = max_backoff
        self.stats = StreamStats()
        self.in_sync = False
        self._stop = asyncio.Event()
        self._queue: asyncio.Queue | None = None
        self._snapshot_task: asyncio.Task | None = None
        # sequence state
        self._state = "idle"  # idle | await (no snapshot) | sync (snapshot applied, awaiting a diff) | live
        self._last_u = 0
        self._buffer: list = []  # (ts, msg) diffs waiting for a snapshot
        self._pending_snap: tuple | None = None  # (ts, snap, text) waiting for a confirming diff
        self._pending_lines: list | None = None  # raw lines of a sequence not yet valid
        self._carry: list = []  # trades and tickers of an abandoned sequence, for the next one
        self._last_line_ts = 0
        self._refetches = 0

    # ---- lifecycle -----------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    async def run(self, duration: float | None = None) -> None:
        """Read until stop() (or ``duration`` seconds); reconnects with backoff on any network error."""
        deadline = None if duration is None else time.monotonic() + duration
        backoff = 0.05
        async with aiohttp.ClientSession() as session:
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                started = time.monotonic()
                reason = "connect" if self.stats.reconnects == 0 and self.stats.snapshots == 0 else "reconnect"
                try:
                    await self._connection(session, reason, deadline)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any failure of the connection: reconnect
                    log.warning("market stream: %s: %s; reconnecting", type(exc).__name__, exc)
                finally:
                    self._abandon_sequence()
                if self._stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                    break
                self.stats.reconnects += 1
                backoff = 0.05 if time.monotonic() - started > 10 else min(self.max_backoff, backoff * 2)
                await self._sleep(backoff)
        self.finish()

    def finish(self) -> None:
        """At stop: the raw lines of a sequence that never became valid cannot be written (a file needs
        a snapshot its diffs chain onto); they are counted in stats.discarded_lines."""
        n = len(self._pending_lines or ()) + len(self._carry)
        if n:
            self.stats.discarded_lines += n
            log.info("market stream: %d lines of an unsynchronised sequence discarded at stop", n)
        self._pending_lines, self._carry = None, []

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _connection(self, session, reason: str, deadline: float | None) -> None:
        self._queue = asyncio.Queue()
        async with session.ws_connect(self.url, autoping=True, heartbeat=None, max_msg_size=1 << 24) as ws:
            log.info("market stream connected: %s", self.url)
            self._new_sequence(reason)
            reader = asyncio.ensure_future(self._reader(ws))
            stopper = asyncio.ensure_future(self._stop.wait())
            try:
                while True:
                    timeout = self.idle_timeout
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            self._drain()
                            return
                        timeout = left if timeout is None else min(timeout, left)
                    getter = asyncio.ensure_future(self._queue.get())
                    done, _ = await asyncio.wait({getter, stopper}, timeout=timeout,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if getter not in done:
                        getter.cancel()
                        if stopper in done or (deadline is not None and time.monotonic() >= deadline):
                            self._drain()  # what was received before the stop is kept
                            return
                        raise TimeoutError(f"no message for {self.idle_timeout:g} s")
                    item = getter.result()
                    if item[0] == "closed":
                        raise ConnectionError(item[1])
                    if item[0] == "error":
                        raise item[1]
                    self._handle(item)
            finally:
                stopper.cancel()
                reader.cancel()
                if self._snapshot_task is not None:
                    self._snapshot_task.cancel()
                    self._snapshot_task = None
                if not ws.closed:
                    await ws.close()

    def _drain(self) -> None:
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item[0] in ("msg", "snapshot"):
                self._handle(item)

    async def _reader(self, ws) -> None:
        q = self._queue
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    q.put_nowait(("msg", time.time_ns(), msg.data))
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    q.put_nowait(("msg", time.time_ns(), msg.data.decode()))
                elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break
            q.put_nowait(("closed", f"connection closed by the server ({ws.close_code})"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            q.put_nowait(("closed", f"{type(exc).__name__}: {exc}"))

    # ---- snapshots -----------------------------------------------------------------------------
    def _request_snapshot(self, delay: float = 0.0) -> None:
        if self._snapshot_task is not None and not self._snapshot_task.done():
            return
        self._snapshot_task = asyncio.ensure_future(self._fetch_snapshot(delay, self._queue))

    async def _fetch_snapshot(self, delay: float, q: asyncio.Queue) -> None:
        import ccxt

        if delay:
            await asyncio.sleep(delay)
        backoff = 0.1
        while True:
            try:
                get_depth = self.client.fapiPublicGetDepth if self.futures else self.client.publicGetDepth
                snap = await get_depth({"symbol": self.market_id, "limit": self.snapshot_limit})
                q.put_nowait(("snapshot", time.time_ns(), snap))
                return
            except ccxt.NetworkError as exc:  # 429/418 (DDoSProtection), 5xx, timeouts
                wait = _retry_after(self.client, exc) or backoff
                log.warning("depth snapshot: %s; retrying in %.2f s", type(exc).__name__, wait)
                await asyncio.sleep(wait)
                backoff = min(self.max_backoff, backoff * 2)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - ends the connection; run() reconnects with backoff
                q.put_nowait(("error", exc, None))
                return

    # ---- sequencing (Binance's procedure, as trader.data.binance applies it to files) ----------
    def _new_sequence(self, reason: str) -> None:
        self.stats.gaps += reason == "gap"
        if len(self.stats.reasons) < 100:
            self.stats.reasons.append(reason)
        self.in_sync = False
        self._state = "await"
        self._buffer = []
        self._pending_snap = None
        self._pending_lines = []
        self._refetches = 0
        self.book.on_reset(reason)
        if self.on_sequence is not None:
            self.on_sequence(reason)
        self._request_snapshot()

    def _abandon_sequence(self) -> None:
        """The connection ended: of a sequence that never became valid, the trades and tickers are
        carried over to the next valid sequence; its diffs are dropped (no snapshot will cover them)."""
        if self._pending_lines:
            kept = [ln for ln in self._pending_lines if not ln[2]]
            self.stats.discarded_lines += len(self._pending_lines) - len(kept)
            self._carry += kept
        self._pending_lines = None
        self._state = "idle"
        self.in_sync = False
        self.book.on_reset("disconnect")

    def _emit_raw(self, ts: int, text: str, is_depth: bool) -> None:
        if self.on_raw is None:
            return
        if self._pending_lines is not None:
            if len(self._pending_lines) >= MAX_PENDING_LINES:
                drop = next((i for i, ln in enumerate(self._pending_lines) if ln[2]), 0)
                self._pending_lines.pop(drop)
                self.stats.discarded_lines += 1
            self._pending_lines.append((ts, text, is_depth))
            return
        ts = max(ts, self._last_line_ts)
        self._last_line_ts = ts
        self.on_raw(ts, text)

    def _flush_pending(self) -> None:
        lines = self._carry + (self._pending_lines or [])
        self._carry = []
        self._pending_lines = None
        for ts, text, _ in lines:
            self._emit_raw(ts, text, False)

    def _handle(self, item) -> None:
        kind, ts, payload = item
        if kind == "snapshot":
            self._on_snapshot(ts, payload)
            return
        st = self.stats
        st.messages += 1
        st.last_message_monotonic = time.monotonic()
        try:
            msg = orjson.loads(payload)
            stream, data = msg["stream"], msg["data"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            if isinstance(payload, str) and '"result"' in payload:
                return  # a control answer ({"result": null, "id": 1})
            log.warning("market stream: unexpected message %.200s", payload)
            return
        name = stream.partition("@")[2]
        if name in DEPTH_KINDS:
            st.last_depth_monotonic = st.last_message_monotonic
            st.last_event_ms = int(data.get("E") or 0)
            self._on_diff(ts, payload, data)
        elif name == "trade":
            st.trades += 1
            self._emit_raw(ts, payload, False)
            self.book.on_trade(data, ts)
        elif name == "bookTicker":
            st.tickers += 1
            self._emit_raw(ts, payload, False)
            if self._state == "live":
                self.book.on_ticker(data, ts)
        else:
            self._emit_raw(ts, payload, False)

    def _follows(self, d: dict, last_u: int) -> bool:
        """Whether diff ``d`` is the one right after the diff that ended at ``last_u``."""
        if self.futures:
            return int(d.get("pu", -1)) == last_u
        return int(d["U"]) == last_u + 1

    def _on_diff(self, ts: int, text: str, d: dict) -> None:
        U, u = int(d["U"]), int(d["u"])
        if self._state == "await":
            if self._buffer and not self._follows(d, int(self._buffer[-1][1]["u"])):
                # a gap before any snapshot applied: the buffered diffs can never be applied in order;
                # they are older than any snapshot still to come, so they are dropped (not recorded)
                self.stats.gaps += 1
                self._drop_pending_depth()
                self._buffer = []
            self._buffer.append((ts, d))
            self._emit_raw(ts, text, True)
            if self._pending_snap is not None:
                self._try_validate()
            return
        if self._state == "sync":
            if u <= self._last_u:
                self.stats.diffs_stale += 1
                self._emit_raw(ts, text, True)
                return
            if U > self._last_u + 1 and not self._follows(d, self._last_u):
                return self._gap(ts, text, d)
        elif not self._follows(d, self._last_u):
            return self._gap(ts, text, d)
        self._emit_raw(ts, text, True)
        self._apply(ts, d)

    def _apply(self, ts: int, d: dict) -> None:
        self._last_u = int(d["u"])
        self.stats.last_update_id = self._last_u
        self._state = "live"
        self.stats.diffs_applied += 1
        self.book.on_diff(d, ts)

    def _gap(self, ts: int, text: str, d: dict) -> None:
        log.info("market stream: update-id gap (previous u=%d, got U=%s u=%s): resync from a fresh snapshot",
                 self._last_u, d.get("U"), d.get("u"))
        self._new_sequence("gap")
        self._buffer.append((ts, d))
        self._emit_raw(ts, text, True)

    def _drop_pending_depth(self) -> None:
        if self._pending_lines:
            kept = [ln for ln in self._pending_lines if not ln[2]]
            self.stats.discarded_lines += len(self._pending_lines) - len(kept)
            self._pending_lines = kept

    def _on_snapshot(self, ts: int, snap: dict) -> None:
        if self._state != "await":
            return  # a late answer for a sequence already given up
        self._pending_snap = (ts, snap)
        self._try_validate()

    def _try_validate(self) -> None:
        ts, snap = self._pending_snap
        L = int(snap["lastUpdateId"])
        newer = [(t, d) for t, d in self._buffer if int(d["u"]) > L]
        if not newer:
            return  # wait for a diff past the snapshot to tell whether it is recent enough
        first = newer[0][1]
        if int(first["U"]) > L + 1 and not (self.futures and int(first.get("pu", -1)) == L):
            # the snapshot is older than the first diff we hold: fetch another (Binance's step 3)
            self.stats.snapshots_refetched += 1
            self._refetches += 1
            self._pending_snap = None
            self._request_snapshot(delay=min(1.0, 0.05 * self._refetches))
            return
        stale = len(self._buffer) - len(newer)
        self.stats.diffs_stale += stale
        self.stats.snapshots += 1
        # the raw snapshot line goes where the snapshot became usable: after the diffs received so far
        # (the converter buffers those and drops the stale ones, as done here)
        if self._pending_lines is not None:
            self._pending_lines.append((ts if not self._pending_lines else max(ts, self._pending_lines[-1][0]),
                                        orjson.dumps(snap).decode(), False))
        self._flush_pending()
        self._buffer = []
        self._pending_snap = None
        self._last_u = L
        self._state = "sync"
        self.in_sync = True
        self.book.on_snapshot(L, snap.get("bids", []), snap.get("asks", []), ts)
        for t, d in newer:
            self._apply(t, d)


def _ws_base(client, kind: str) -> str:
    """ccxt's ``urls['api']['ws'][kind]``: ``spot`` or ``linear`` (USD-M futures)."""
    ws = client.urls.get("api", {}).get("ws")
    if isinstance(ws, dict):
        ws = ws.get(kind)
    if not isinstance(ws, str):
        raise ValueError(f"the ccxt client has no websocket URL (urls['api']['ws']['{kind}']): use ccxt.pro.binance "
                         "or ccxt.pro.binanceusdm")
    return ws


def _retry_after(client, exc) -> float | None:
    """Seconds the exchange asked to wait (Retry-After of a 429/418), if this error was one."""
    import ccxt

    if not isinstance(exc, ccxt.DDoSProtection):
        return None
    headers = getattr(client, "last_response_headers", None) or {}
    for k, v in headers.items():
        if k.lower() == "retry-after":
            try:
                return max(0.0, float(v))
            except ValueError:
                return None
    return None
