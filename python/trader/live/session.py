"""The live loop: every row the feed samples on the exchange clock goes into the execution kernel (the
training env, ``trader.live.kernel``), which steps on it with the previous action; the policy acts on
the kernel's observation, and the orders the kernel says the action implies go to the broker.

    feed (websocket -> C++ book) --row every interval_ms of exchange time--> kernel (the env: features
        [+ encoder], account and quote features; paper fills) --> obs --> policy --> action
        --> kernel.plan: market lots, bid / ask quotes --> risk (max position / notional / order)
        --> broker (paper: the kernel's own execution | ccxt: market orders, post-only quotes kept at an
        unchanged price, else cancelled and sent anew) --> SQLite (orders, fills, positions, equity)

Real trading feeds the exchange's fills back into the kernel's account before each observation.

Guards, in the order a step checks them:

* stale data (``LiveFeed.stale_reason``, checked whenever no row came for an interval): no order;
  resting orders are cancelled once per stale spell;
* the daily loss limit: the kill switch (cancel all, optional flatten, kill record, stop);
* an order whose outcome is unknown (pending / unknown): no new order until the broker has resolved it;
* a market order the risk limits would clip or the exchange would refuse as too small: not sent (the
  step holds: the kernel steps with the action's no-market-order variant);
* real broker, newer rows already waiting (the session is behind the feed): the kernel steps on the
  row but nothing is sent; orders go out on the newest row only.

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

import numpy as np

from trader.live.broker import Broker, BrokerError, OrderRequest
from trader.live.kernel import ExecutionKernel, Plan
from trader.live.ledger import UNRESOLVED, D, Ledger
from trader.live.policy import PolicySpec
from trader.live.risk import RiskManager, kill_switch, utc_day

log = logging.getLogger("trader.live.session")


@dataclass
class SessionConfig:
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
    stale_steps: int = 0
    late_steps: int = 0  # real broker: steps that sent nothing because newer rows were already waiting
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
                 kernel: ExecutionKernel, config: SessionConfig | None = None, *, console=None, on_step=None):
        self.feed = feed
        self.broker = broker
        self.ledger = ledger
        self.policy = policy
        self.risk = risk
        self.kernel = kernel
        self.config = config or SessionConfig()
        self.console = console
        self.on_step = on_step  # test hook: (session, obs, action) once the step's action and plan are set
        self.result = SessionResult()
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self.last_action = "-"
        self.infer_ms: float | None = None
        self.mid = math.nan
        self.day_pnl = 0.0
        self.day_start: float | None = None
        self.action = None  # the action of the previous row, for the kernel's next step
        self.plan: Plan | None = None
        self._carry: list[np.ndarray] = []  # market events of rows the kernel could not take (crossed books)

    def stop(self, reason: str = "stopped") -> None:
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()

    # ---- the loop ------------------------------------------------------------------------------
    async def run(self) -> SessionResult:
        cfg = self.config
        interval = self.feed.book.interval_ns / 1e9
        feed_task = asyncio.ensure_future(self.feed.run())
        fills_task = None
        if self.broker.kind == "real" and self.kernel.quoting:  # resting quotes: fills from the user-data stream
            from trader.live.quoting import follow_fills

            fills_task = asyncio.ensure_future(follow_fills(self.broker, self._stop))
        live = None
        try:
            await self._warm_up(feed_task)
            live = self._status_start()
            t_end = None if cfg.duration is None else time.monotonic() + cfg.duration
            last_sync = last_equity = last_status = time.monotonic()
            stale_since = None
            while not self._stop.is_set():
                wait = interval if t_end is None else max(0.0, min(interval, t_end - time.monotonic()))
                row = await self._next_row(wait)
                if self._stop.is_set():
                    break
                if t_end is not None and time.monotonic() >= t_end:
                    self.stop("duration reached")
                    break
                if feed_task.done():
                    feed_task.result()  # raises what ended the feed
                    self.stop("feed ended")
                    break
                stale = self.feed.stale_reason(row)
                if stale is not None:
                    self.result.stale_steps += 1
                    if stale_since is None:
                        stale_since = time.monotonic()
                        log.warning("stale data: %s; no new orders", stale)
                        self.last_action = f"STALE: {stale}"
                        if cfg.cancel_on_stale:
                            await self.broker.cancel_all(f"stale data: {stale}")
                    if row is not None and row.top[0, 0] < row.top[0, 2] and row.top[0, 1] > 0 and row.top[0, 3] > 0:
                        await self._step(row, idle=True)  # the kernel steps on every valid row, with no orders
                    elif row is not None:  # a crossed or one-sided row: its events go with the next one
                        self._carry.append(row.records)
                    continue
                if row is None:
                    continue
                if stale_since is not None:
                    log.info("data fresh again after %.1f s", time.monotonic() - stale_since)
                    stale_since = None
                await self._step(row)
                now = time.monotonic()
                if self.broker.kind == "real" and now - last_sync >= cfg.sync_every:
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
            self.stop(self._stop_reason or "stopped")
            if fills_task is not None:
                try:
                    await asyncio.wait_for(fills_task, 30)
                except Exception as exc:  # noqa: BLE001 - the REST sync at shutdown reads what it missed
                    log.warning("user-data stream at stop: %s", exc)
            await self._shutdown(feed_task, live)
        self.result.stopped = self._stop_reason or "stopped"
        return self.result

    async def _next_row(self, timeout: float):
        row = asyncio.ensure_future(self.feed.next_row(timeout))
        stopping = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({row, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not row.done():
            row.cancel()
            return None
        return row.result()

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

    async def _step(self, row, idle: bool = False) -> None:
        """One row: the kernel steps with the previous action; the policy acts (idle: the action that
        sends nothing and cancels the quotes, while the data is stale)."""
        res, k, broker = self.result, self.kernel, self.broker
        if self._carry:
            row.records = np.concatenate(self._carry + [row.records])
            self._carry = []
        k.add(row)
        k.advance(self.action)
        if self.risk.position_limit is None:  # sizes in quote currency: the kernel's limit, now known
            self.risk.position_limit = float(k.amount(k.max_lots))
        if broker.kind == "paper":
            broker.book()
        else:  # the exchange's fills are the account
            pos = broker.position()
            k.set_account(pos.base, k.options.get("initial_cash", 0.0) + float(pos.quote), float(pos.cost))
        mid = row.mid_ticks * float(k.tick)
        self.mid = mid
        pos = broker.position()
        equity = pos.equity(mid)
        self.day_start = self.ledger.day_start_equity(utc_day(), equity)
        self.day_pnl = equity - self.day_start
        breach = self.risk.loss_breach(self.day_pnl)
        if breach is not None:
            await self._kill(breach, mid)
            return
        blocked = await broker.guard(mid)  # USD-M: the liquidation-distance guard (trader.live.futures)
        if blocked is not None:  # the guard cancelled and closed: the kernel's next action sends nothing
            self.last_action = blocked
            res.skipped_orders += 1
            self.action, self.plan = self._idle_action(), None
            return
        obs = k.obs
        if self.policy.obs_dim is not None and len(obs) != self.policy.obs_dim:
            raise ValueError(f"observation has {len(obs)} values, the policy expects {self.policy.obs_dim}: "
                             "same --depth and --encoder as in training?")
        if idle:
            self.action, self.plan = self._idle_action(), None
            if broker.kind == "paper":
                broker.place(k.plan(self.action))
            return
        t0 = time.perf_counter()
        action = self.policy.action(obs)
        self.infer_ms = (time.perf_counter() - t0) * 1e3
        res.steps += 1
        key = action if np.ndim(action) == 0 else tuple(np.round(action, 3).tolist())
        res.actions[key] = res.actions.get(key, 0) + 1
        if broker.kind == "real" and self.ledger.orders(UNRESOLVED):
            await broker.sync()
        unresolved = broker.kind == "real" and bool(self.ledger.orders(UNRESOLVED))
        plan = k.plan(action)
        # a close of a position held max_hold_ns only reduces it: sent like the kill switch's flatten, whatever the
        # order limits say (the kernel, the paper broker's execution, sends it in its next step in any case)
        if plan.market_lots and not plan.close and (unresolved or not self._market_allowed(plan, pos, mid)):
            res.skipped_orders += 1
            action = self._without_market_order(action)
            plan = k.plan(action)
        self.action, self.plan = action, plan
        if self.on_step is not None:
            self.on_step(self, obs, action)
        if unresolved:
            return
        if broker.kind == "real" and self.feed.book.rows:  # behind the feed: orders only on the newest row
            res.late_steps += 1
            return
        await self._place(plan, row)

    def _market_allowed(self, plan: Plan, pos, mid: float) -> bool:
        delta = self.kernel.amount(plan.market_lots)
        why = self.risk.refuses(delta, pos.base, mid) or self.broker.too_small(abs(delta), mid)
        if why:
            self.risk.refused += 1
            self.last_action = f"skipped: {why}"
            return False
        return True

    def _idle_action(self):
        """The action that sends nothing and quotes nothing: hold, or no quote on either side."""
        env = self.kernel.options
        mode, L = env["actions"], env["quote_levels"]
        if mode == "quote":
            return L * (L + 1) + L
        if mode == "quote_continuous":
            return np.array([1.0, 1.0, -1.0][:3 if env["quote_flatten"] else 2], dtype=np.float32)
        return self._without_market_order(np.zeros(1, np.float32) if mode == "continuous" else 0)

    def _without_market_order(self, action):
        """The action with its market order taken out: hold; for quotes, the same quotes without flatten."""
        env = self.kernel.options
        mode = env["actions"]
        if mode == "discrete":
            return 0
        if mode == "quote":
            return int(action) % (env["quote_levels"] + 1) ** 2
        a = np.array(action, dtype=np.float32)
        if mode == "quote_continuous":
            a[2] = -1.0
        else:  # continuous: the target that is the position now
            a[0] = np.float32(self.kernel.outputs()["position"] / self.kernel.max_lots)
        return a

    async def _place(self, plan: Plan, row) -> None:
        """The plan's orders: paper, the kernel's; real, a market order (LIMIT IOC with a slippage cap)
        and per side one post-only quote (trader.live.quoting.requote: kept at an unchanged price)."""
        res, k, broker = self.result, self.kernel, self.broker
        if broker.kind == "paper":
            rows = broker.place(plan)
            res.orders += len(rows)
            if rows:
                self.last_action = ", ".join(f"{r.side} {r.amount.normalize():f}" + (f" @ {r.price}" if r.price else "")
                                             for r in rows)
            return
        from trader.live.quoting import requote

        if plan.market_lots:
            side = "buy" if plan.market_lots > 0 else "sell"
            amount = k.amount(abs(plan.market_lots))
            price = None
            if self.config.max_slippage_bps is not None:
                f = self.config.max_slippage_bps / 1e4
                ref = float(k.price(row.top[0, 2])) * (1 + f) if side == "buy" else float(k.price(row.top[0, 0])) * (1 - f)
                price = broker.round_price(D(ref), up=side == "sell")
            order = await broker.submit(OrderRequest(side, amount, "max hold" if plan.close else "policy", price))
            res.orders += 1
            avg = f" @ {order.average:.2f}" if order.average else ""
            self.last_action = f"{side} {amount} -> {order.status} {order.filled}{avg}"
        if k.quoting:
            for side, q in (("buy", plan.bid), ("sell", plan.ask)):
                before = broker.last_order
                await requote(broker, side, k.price(q.price) if q.price else None, k.amount(q.lots))
                res.orders += int(broker.last_order is not before)

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
            if self.result.killed is None and self.result.error is None:
                try:
                    await self.broker.sync()
                    await self.broker.cancel_all("session end")
                    if self.broker.futures:  # the funding paid up to the stop, whenever the last read was
                        await self.broker.sync_funding()
                except BrokerError as exc:
                    log.error("at stop: %s (the next start reconciles)", exc)
            if self.broker.kind == "paper":
                self.broker.end("session end")
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
