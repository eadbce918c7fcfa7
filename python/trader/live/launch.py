"""Build and run a live session from the command's options: clients, ledger, broker, feed, encoder,
reconciliation, signal handling. ``trader live`` calls :func:`run_live`; tests call it too.

Two ccxt clients: a public one for the market stream's REST snapshots and one with the keys for the
broker, so that a snapshot (weight 10-50 under ccxt's throttle) never delays an order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from trader.live.keys import ApiKeys
from trader.live.ledger import Ledger
from trader.live.signals import install_stop_signals, remove_stop_signals

log = logging.getLogger("trader.live")

EXIT_OK, EXIT_ERROR, EXIT_REFUSED, EXIT_KILLED = 0, 1, 2, 3


@dataclass
class LiveOptions:
    symbol: str = "BTC/USDT"
    checkpoint: object = "scripted:hold"  # path, a list of paths (their committee), scripted:NAME or a callable
    real: bool = False
    exchange: str = "binance"
    base_url: str | None = None
    testnet: bool = False
    keys: ApiKeys | None = None
    db: str | None = None  # the SQLite ledger [default: default_db(self)]
    max_position: float | None = None  # default: the policy's
    max_notional: float | None = None
    daily_loss_limit: float | None = None
    max_order: float | None = None
    duration: float | None = None
    interval_ms: float | None = None
    depth: int | None = None
    encoder: str | None = None
    fee_bps: float | None = None  # paper: the kernel's taker fee (None: the policy's, as trader backtest)
    maker_fee_bps: float | None = None  # paper: the kernel's maker fee (None: the policy's)
    max_slippage_bps: float | None = None
    stale_after: float = 5.0
    flatten_on_kill: bool = False
    flatten_on_exit: bool = False
    clear_kill: bool = False
    rebaseline: bool = False
    record_dir: str | None = None
    recv_window_ms: int = 5000
    snapshot_limit: int = 1000
    warmup_timeout: float = 30.0
    connect_timeout: float = 10.0  # seconds the start waits for the exchange's markets, retries included
    # USD-M futures (trader.live.futures)
    market: str = "spot"  # spot | usdm
    leverage: int = 1
    margin_mode: str = "cross"  # cross | isolated
    liquidation_buffer_pct: float = 10.0  # percent of the mark price
    trade_size: float | None = None
    risk: dict = field(default_factory=dict)  # env risk rules (trader.sim.flags.LIVE_RISK_OPTIONS) over the run's
    on_step: object = None  # test hook: LiveSession's on_step(session, obs, action)


class RefusedToStart(RuntimeError):
    pass


def venue(opts: LiveOptions) -> str:
    name = opts.exchange if opts.market == "spot" else f"{opts.exchange}-{opts.market}"
    if opts.base_url:
        return f"{name}@{opts.base_url.rstrip('/')}"
    return f"{name}-testnet" if opts.testnet else name


def market_symbol(symbol: str, market: str) -> str:
    """ccxt's symbol of the market: USD-M perpetuals settle in their quote (``BTC/USDT`` ->
    ``BTC/USDT:USDT``)."""
    if market == "usdm" and ":" not in symbol and "/" in symbol:
        return f"{symbol}:{symbol.split('/')[1]}"
    return symbol


async def run_live_async(opts: LiveOptions, console=None, install_signals: bool = True):
    """Run a session; returns (exit code, SessionResult or None, message)."""
    import ccxt

    from trader.live.broker import BrokerError, CcxtBroker
    from trader.live.exchange_client import make_client
    from trader.live.futures import FuturesBroker
    from trader.live.feed import LiveFeed
    from trader.live.kernel import ExecutionKernel
    from trader.live.observation import Encoder, RowFeatures
    from trader.live.paper import PaperBroker
    from trader.live.policy import load_policy
    from trader.live.reconcile import ReconcileError, check_kill, reconcile
    from trader.live.risk import RiskLimits, RiskManager
    from trader.live.session import LiveSession, SessionConfig
    from trader.live.ledger import LedgerError

    if not opts.real and opts.max_slippage_bps is not None:
        return EXIT_REFUSED, None, ("--max-slippage-bps: the paper broker executes as the training env does (market "
                                    "orders walk the book); the cap applies to --real orders only")
    if opts.real and opts.keys is None:
        return EXIT_REFUSED, None, ("--real needs API keys: set TRADER_API_KEY and TRADER_API_SECRET, or pass "
                                    "--keys-file FILE (outside the repository)")
    policy = load_policy(opts.checkpoint, trade_size=opts.trade_size, env=opts.risk)
    if console is not None:
        console.print(f"policy: {policy.name}", highlight=False, markup=False)
    if opts.depth is not None:
        policy.depth = opts.depth
    encoder_dir = opts.encoder or policy.encoder  # an agent trained with --encoder brings its own
    if encoder_dir and policy.encoder_sha256:
        from trader.nn.embed import checkpoint_sha256

        if checkpoint_sha256(encoder_dir) != policy.encoder_sha256:
            return EXIT_REFUSED, None, (f"--encoder {encoder_dir}: not the encoder the agent was trained with "
                                        f"({policy.encoder}, sha256 {policy.encoder_sha256[:12]})")
    encoder = Encoder(encoder_dir) if encoder_dir else None
    if encoder is not None:
        policy.depth = encoder.levels
    # None with sizes in quote currency: the kernel's limit, in lots at the first row's mid (session.py)
    limits = RiskLimits(max_position=opts.max_position or policy.max_position, max_notional=opts.max_notional,
                        daily_loss_limit=opts.daily_loss_limit, max_order=opts.max_order,
                        flatten_on_kill=opts.flatten_on_kill)
    symbol = market_symbol(opts.symbol, opts.market)
    db = Path(opts.db or default_db(opts))
    db.parent.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(db)
    public = make_client(opts.exchange, market=opts.market, base_url=opts.base_url, testnet=opts.testnet)
    private = None
    try:
        try:
            ledger.bind(venue=venue(opts), symbol=symbol, broker="real" if opts.real else "paper")
        except LedgerError as exc:
            return EXIT_REFUSED, None, str(exc)
        if opts.clear_kill:
            n = ledger.clear_kills()
            if n:
                ledger.log_event("clear-kill", f"{n} kill record(s) cleared by the operator")
        await _load_markets(public, venue(opts), opts.connect_timeout)
        if symbol not in public.markets:
            return EXIT_REFUSED, None, f"unknown symbol {symbol!r} on {venue(opts)}"
        interval_ms = opts.interval_ms or policy.interval_ms
        feed = LiveFeed(public, symbol, depth=policy.depth, interval_ms=interval_ms,
                        stale_after=opts.stale_after, record_dir=opts.record_dir, snapshot_limit=opts.snapshot_limit)
        env = dict(policy.env)
        if opts.fee_bps is not None:
            env["taker_fee_bps"] = opts.fee_bps
        if opts.maker_fee_bps is not None:
            env["maker_fee_bps"] = opts.maker_fee_bps
        kernel = ExecutionKernel(env, tick=feed.tick, lot=feed.lot, levels=policy.depth,
                                 features=RowFeatures(feed.lot_size, encoder, policy.feature_set, interval_ms / 1000,
                                                      with_features=policy.encoder_with_features))
        if opts.real:
            private = make_client(opts.exchange, market=opts.market, base_url=opts.base_url, testnet=opts.testnet,
                                  keys=opts.keys, recv_window_ms=opts.recv_window_ms)
            try:
                await _load_markets(private, venue(opts), opts.connect_timeout)
            except ccxt.AuthenticationError as exc:
                return EXIT_REFUSED, None, (f"refusing to start: the exchange refused the API key "
                                            f"({type(exc).__name__}); check the key, its permissions and the clock")
            if opts.market == "usdm":
                broker = FuturesBroker(ledger, private, symbol, recv_window_ms=opts.recv_window_ms,
                                       leverage=opts.leverage, margin_mode=opts.margin_mode,
                                       liquidation_buffer_pct=opts.liquidation_buffer_pct)
            else:
                broker = CcxtBroker(ledger, private, symbol, recv_window_ms=opts.recv_window_ms)
            try:
                report = await reconcile(broker, ledger, rebaseline=opts.rebaseline)
                if broker.futures:  # after the reconciliation: no open order, the position known
                    await broker.configure()
            except (ReconcileError, BrokerError) as exc:
                ledger.log_event("refused", str(exc))
                return EXIT_REFUSED, None, f"refusing to start: {exc}"
            log.info("reconciled with the exchange: %s", report.summary())
            if console is not None:
                console.print(f"reconciled: {report.summary()}", highlight=False, markup=False)
        else:
            try:
                check_kill(ledger)
            except ReconcileError as exc:
                return EXIT_REFUSED, None, f"refusing to start: {exc}"
            broker = PaperBroker(ledger, public.market(symbol), kernel)
            await broker.start()
        ledger.log_event("start", f"{broker.kind} {symbol} policy {policy.name}")
        session = LiveSession(feed, broker, ledger, policy, RiskManager(limits), kernel,
                              SessionConfig(duration=opts.duration, max_slippage_bps=opts.max_slippage_bps,
                                            flatten_on_exit=opts.flatten_on_exit,
                                            warmup_timeout=opts.warmup_timeout),
                              console=console, on_step=opts.on_step)
        loop = asyncio.get_running_loop()
        sigs = install_stop_signals(loop, session.stop) if install_signals else ()
        try:
            result = await session.run()
        finally:
            remove_stop_signals(loop, sigs)
        if result.killed:
            return EXIT_KILLED, result, f"kill switch: {result.killed}"
        if result.error:
            return EXIT_ERROR, result, result.error
        return EXIT_OK, result, result.stopped
    finally:
        await public.close()
        if private is not None:
            await private.close()
        ledger.close()


class ExchangeUnreachable(ConnectionError):
    """The exchange did not answer within --connect-timeout (retries included)."""


async def _load_markets(client, where: str, timeout: float) -> None:
    """load_markets, retried on network errors (5xx, 429 with its Retry-After, timeouts) for at most
    `timeout` seconds in all: every attempt's own request timeout is cut to the time left, so that an
    exchange that cannot be reached fails the start within --connect-timeout, not after ccxt's
    per-request timeout times the retries (issue 17: 68-95 s before)."""
    import time

    import ccxt

    deadline = time.monotonic() + timeout
    own_timeout_ms, wait, attempts = client.timeout, 0.2, 0
    try:
        while True:
            client.timeout = max(100, min(own_timeout_ms, int((deadline - time.monotonic()) * 1000)))
            attempts += 1
            try:
                await client.load_markets(reload=True)
                return
            except ccxt.NetworkError as exc:
                left = deadline - time.monotonic()
                if left < 0.1:
                    raise ExchangeUnreachable(
                        f"the exchange could not be reached: {where}: no answer in {timeout:g} s ({attempts} "
                        f"attempt(s); last: {type(exc).__name__}: {exc}); check the network, --base-url or "
                        "--testnet, or allow more time with --connect-timeout") from None
                headers = getattr(client, "last_response_headers", None) or {}
                retry = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
                delay = float(retry) if isinstance(exc, ccxt.DDoSProtection) and retry else wait
                await asyncio.sleep(min(delay, left))
                wait = min(2.0, wait * 2)
    finally:
        client.timeout = own_timeout_ms


def run_live(opts: LiveOptions, console=None):
    return asyncio.run(run_live_async(opts, console))


STATE_DIR_ENV = "TRADER_STATE_DIR"


def state_dir() -> Path:
    """Where live sessions keep their SQLite ledgers: $TRADER_STATE_DIR, else $XDG_DATA_HOME/trader/live
    (~/.local/share/trader/live; the XDG base directory spec's place for user data). One place whatever
    the working directory, so that a restart finds its orders, position and kill switch record, and no
    ledger lands inside a checkout (issue 17)."""
    if os.environ.get(STATE_DIR_ENV):
        return Path(os.environ[STATE_DIR_ENV]).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home).expanduser() / "trader" / "live"


def default_db(opts: LiveOptions, folder: str | os.PathLike | None = None) -> str:
    """The ledger of a venue, symbol and broker kind: FOLDER/{venue}__{symbol}__{paper|real}.sqlite, under
    `folder` (--state-dir) or state_dir()."""
    name = "__".join(re.sub(r"[^A-Za-z0-9.-]+", "-", part).strip("-").lower()
                     for part in (venue(opts), market_symbol(opts.symbol, opts.market), "real" if opts.real else "paper"))
    return str((Path(folder).expanduser() if folder else state_dir()) / f"{name}.sqlite")
