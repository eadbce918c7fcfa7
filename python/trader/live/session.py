"""The live loop: every ``interval_ms``, sample the book, build the observation, ask the policy, turn
its action into an order within the risk limits, and hand it to the broker.

    feed (websocket -> C++ book) --sample--> features [+ encoder] + account --> policy --> action
        --> target position --> risk (max position / notional / order) --> broker (paper | ccxt)
        --> SQLite (orders, fills, positions, equity)

Guards, in the order a step checks them:

* stale data (``LiveFeed.stale_reason``): no order; resting orders are canceled once per stale spell;
* an order not final (pending / unknown / open): no new order until the broker has resolved it;
* the daily loss limit: the kill switch (cancel all, optional flatten, kill record, stop).

A status line shows position, PnL, latencies (feed lag behind the exchange's event time when the
clocks are comparable, book age, inference, order round trip) and the last action; on a terminal it
is a rich live line, otherwise a plain line every ``status_every`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from decimal import Decimal

from trader.live.broker import Broker, BrokerError, OrderRequest
from trader.live.ledger import D, Ledger
from trader.live.observation import Encoder, ObservationBuilder
from trader.live.policy import PolicySpec
from trader.live.risk import RiskManager, kill_switch, utc_day

log = logging.getLogger("trader.live.session")


@dataclass
class SessionConfig:
    interval_ms: float | None = None  # None: the policy's (training) interval
    duration: float | None = None  # seconds; None: until stopped
    warmup_timeout: float = 30.0  # seconds to wait for a book in sync before giving up
    sync_every: float = 1.0  # seconds between polls of orders not final
    equity_every: float = 1.0  # seconds between equity snapshots
    status_every: float = 5.0  # seconds between plain status lines (no terminal)
    max_slippage_bps: float | None = None  # None: market orders; else LIMIT IOC capped this far past the best
    flatten_on_exit: bool = False
    cancel_on_stale: bool = True


@dataclass
class SessionResult:
    steps: int = 0
    late_steps: int = 0
    stale_steps: int = 0
    orders: int = 0
    skipped_orders: int = 0
    stopped: str = ""
    killed: str | None = None
    error: str | None = None
    position: Decimal = Decimal(0)
    equity: float = 0.0
    actions: dict = field(default_factory=dict)


class LiveSession:
    def __init__(self, feed, broker: Broker, ledger: Ledger, policy: PolicySpec, risk: RiskManager,
                 config: SessionConfig | None = None, *, encoder: Encoder | None = None, console=None,
                 on_step=None):
        self.feed = feed
        self.broker = broker
        self.ledger = ledger
        self.policy = policy
        self.risk = risk
        self.config = config or SessionConfig()
        self.encoder = encoder
        self.console = console
        self.on_step = on_step  # test hook: called with (session, obs, action) after each step
        self.result = SessionResult()
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self.last_action = "-"
        self.infer_ms: float | None = None
        self.mid = math.nan
        self.day_pnl = 0.0
        self.day_start: float | None = None

    def stop(self, reason: str = "stopped") -> None:
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()

    # ---- the loop ------------------------------------------------------------------------------
    async def run(self) -> SessionResult:
        cfg = self.config
        interval = (cfg.interval_ms or self.policy.interval_ms) / 1000.0
        feed_task = asyncio.ensure_future(self.feed.run())
        live = None
        try:
            await self._warm_up(feed_task)
            builder = ObservationBuilder(self.feed.lot_size, max_position=self.policy.max_position,
                                         horizon=self.policy.horizon, encoder=self.encoder)
            live = self._status_start()
            t_end = None if cfg.duration is None else time.monotonic() + cfg.duration
            next_t = time.monotonic()
            last_sync = last_equity = last_status = time.monotonic()
            stale_since = None
            while not self._stop.is_set():
                next_t += interval
                now = time.monotonic()
                if next_t < now - interval:  # fell behind (a slow order): skip the missed steps
                    self.result.late_steps += int((now - next_t) / interval)
                    next_t = now
                await self._sleep_until(min(next_t, t_end) if t_end else next_t)
                if self._stop.is_set():
                    break
                if t_end is not None and time.monotonic() >= t_end:
                    self.stop("duration reached")
                    break
                if feed_task.done():
                    feed_task.result()  # raises what ended the feed
                    self.stop("feed ended")
                    break
                stale = self.feed.stale_reason()
                if stale is not None:
                    self.result.stale_steps += 1
                    if stale_since is None:
                        stale_since = time.monotonic()
                        log.warning("stale data: %s; no new orders", stale)
                        self.last_action = f"STALE: {stale}"
                        if cfg.cancel_on_stale:
                            await self.broker.cancel_all(f"stale data: {stale}")
                    continue
                if stale_since is not None:
                    log.info("data fresh again after %.1f s", time.monotonic() - stale_since)
                    stale_since = None
                await self._step(builder)
                now = time.monotonic()
                if now - last_sync >= cfg.sync_every:
                    last_sync = now
                    if self.broker.busy:
                        await self.broker.sync()
                if now - last_equity >= cfg.equity_every:
                    last_equity = now
                    self._equity_snapshot()
                if now - last_status >= cfg.status_every or live is not None:
                    last_status = now
                    self._status_update(live)
        except BrokerError as exc:
            self.result.error = str(exc)
            self.stop(f"broker error: {exc}")
            log.error("stopping: %s", exc)
        finally:
            await self._shutdown(feed_task, live)
        self.result.stopped = self._stop_reason or "stopped"
        return self.result

    async def _warm_up(self, feed_task) -> None:
        deadline = time.monotonic() + self.config.warmup_timeout
        while self.feed.stale_reason() is not None:
            if feed_task.done():
                feed_task.result()
                raise RuntimeError("the market stream ended before the book was in sync")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no book in sync after {self.config.warmup_timeout:g} s: "
                                   f"{self.feed.stale_reason()}")
            if self._stop.is_set():
                return
            await asyncio.sleep(0.02)
        self.feed.sample()  # start the trade-flow interval here

    async def _sleep_until(self, t: float) -> None:
        delay = t - time.monotonic()
        if delay <= 0:
            return
        try:
            await asyncio.wait_for(self._stop.wait(), delay)
        except asyncio.TimeoutError:
            pass

    async def _step(self, builder: ObservationBuilder) -> None:
        res = self.result
        sample = self.feed.sample()
        mid = sample.mid
        self.mid = mid
        pos = self.broker.position()
        equity = pos.equity(mid)
        self.day_start = self.ledger.day_start_equity(utc_day(), equity)
        self.day_pnl = equity - self.day_start
        breach = self.risk.loss_breach(self.day_pnl)
        if breach is not None:
            await self._kill(breach, mid)
            return
        blocked = await self.broker.guard(mid)  # USD-M: the liquidation-distance guard (trader.live.futures)
        if blocked is not None:
            self.last_action = blocked
            res.skipped_orders += 1
            return
        obs = builder.observe(sample.top, sample.flow, position=float(pos.base), unrealized=pos.unrealized(mid),
                              mid=mid)
        if self.policy.obs_dim is not None and len(obs) != self.policy.obs_dim:
            raise ValueError(f"observation has {len(obs)} values, the policy expects {self.policy.obs_dim}: "
                             "same --depth and --encoder as in training?")
        t0 = time.perf_counter()
        action = self.policy.action(obs)
        self.infer_ms = (time.perf_counter() - t0) * 1e3
        res.steps += 1
        res.actions[action] = res.actions.get(action, 0) + 1
        if self.on_step is not None:
            self.on_step(self, obs, action)
        if self.broker.busy:
            await self.broker.sync()
            if self.broker.busy:
                res.skipped_orders += 1
                return
        target = self.policy.target(action, float(pos.base))
        if target is None:
            return
        delta, note = self.risk.order_for(target, pos.base, mid)
        amount = self.broker.round_amount(abs(delta))
        if amount == 0:
            return
        small = self.broker.too_small(amount, mid)
        if small:
            res.skipped_orders += 1
            self.last_action = f"skipped: {small}"
            return
        side = "buy" if delta > 0 else "sell"
        price = None
        if self.config.max_slippage_bps is not None:
            k = self.config.max_slippage_bps / 1e4
            ref = sample.best_ask * (1 + k) if side == "buy" else sample.best_bid * (1 - k)
            price = self.broker.round_price(D(ref), up=side == "sell")
        row = await self.broker.submit(OrderRequest(side, amount, "policy", price))
        res.orders += 1
        avg = f" @ {row.average:.2f}" if row.average else ""
        self.last_action = f"{side} {amount} -> {row.status} {row.filled}{avg}" + (f" ({note})" if note else "")

    async def _kill(self, reason: str, mid: float) -> None:
        self.result.killed = reason
        self.last_action = f"KILL: {reason}"
        await kill_switch(self.broker, self.ledger, reason, flatten=self.risk.limits.flatten_on_kill, mid=mid)
        self.stop(f"kill switch: {reason}")

    def _equity_snapshot(self) -> None:
        if math.isnan(self.mid):
            return
        pos = self.broker.position()
        self.ledger.add_equity(pos.equity(self.mid), float(pos.base), self.mid, self.day_pnl)

    async def _shutdown(self, feed_task, live) -> None:
        try:
            if self.result.killed is None and self.result.error is None and self.broker.kind == "real":
                try:
                    await self.broker.sync()
                    await self.broker.cancel_all("session end")
                except BrokerError as exc:
                    log.error("at stop: %s (the next start reconciles)", exc)
            if self.config.flatten_on_exit and self.result.killed is None and not math.isnan(self.mid):
                pos = self.broker.position().base
                amount = self.broker.round_amount(abs(pos))
                if amount > 0 and not self.broker.too_small(amount, self.mid):
                    await self.broker.submit(OrderRequest("sell" if pos > 0 else "buy", amount, "flatten on exit",
                                                          reduce_only=self.broker.futures))
            self._equity_snapshot()
        finally:
            self.feed.stop()
            try:
                await asyncio.wait_for(feed_task, 10)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                feed_task.cancel()
            except Exception as exc:  # noqa: BLE001 - the feed's own failure was reported already
                log.debug("feed ended with %s", exc)
            self._status_update(live)
            if live is not None:
                live.stop()
            pos = self.broker.position()
            self.result.position = pos.base
            self.result.equity = pos.equity(self.mid) if not math.isnan(self.mid) else float(pos.quote)
            self.ledger.log_event("stop", f"{self._stop_reason or 'stopped'}; steps {self.result.steps}, orders "
                                 f"{self.result.orders}, position {pos.base}")

    # ---- status line ---------------------------------------------------------------------------
    def status_text(self) -> str:
        pos = self.broker.position()
        mid = self.mid
        pnl = pos.equity(mid) if not math.isnan(mid) else float(pos.quote)
        today = pnl - self.day_start if self.day_start is not None else 0.0
        m = self.broker.market
        lag = self.feed.book.last_lag_ms
        age = self.feed.age()
        parts = [
            f"{self.broker.symbol} {self.broker.kind}",
            f"pos {float(pos.base):+.8g} {m['base']}",
            f"PnL {pnl:+.2f} {m['quote']} (today {today:+.2f})",
            f"mid {mid:.2f}" if not math.isnan(mid) else "mid -",
            "lat feed " + (f"{lag:.0f}ms" if lag is not None else "-")
            + (f" age {age * 1e3:.0f}ms" if math.isfinite(age) else "")
            + (f" infer {self.infer_ms:.1f}ms" if self.infer_ms is not None else "")
            + (f" order {self.broker.last_latency_ms:.0f}ms" if self.broker.last_latency_ms is not None else ""),
            f"steps {self.result.steps} orders {self.result.orders} fills {pos.fills}",
            f"last: {self.last_action}",
        ]
        return " | ".join(parts)

    def _status_start(self):
        c = self.console
        if c is None or not c.is_terminal:
            return None
        from rich.live import Live
        from rich.text import Text

        live = Live(Text(self.status_text()), console=c, refresh_per_second=4, transient=False)
        live.start()
        return live

    def _status_update(self, live) -> None:
        if live is not None:
            from rich.text import Text

            live.update(Text(self.status_text()))
        elif self.console is not None:
            self.console.print(self.status_text(), highlight=False, markup=False, soft_wrap=True)
