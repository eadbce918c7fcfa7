"""Start-up reconciliation of the SQLite state with the exchange; refusal to trade when they disagree.

Run before the first order of every real session (after a clean stop, a crash or a SIGKILL alike):

1. a kill record that nobody cleared: refuse (``--clear-kill`` after a look at why it tripped);
2. every order the ledger does not hold as final is resolved with the exchange: ``pending`` and
   ``unknown`` orders are looked up by client id (found: its state and fills are stored; not found,
   once no attempt can still land: ``rejected``, it never reached the exchange -- it is *not* sent
   again, the decision it came from is stale); ``open`` ones are fetched by id;
3. open orders on the exchange for the symbol: one that the ledger does not know (placed by hand or
   by another program) means the state cannot be reconciled: refuse, naming it. Ours are canceled
   (the session starts without resting orders) and every order is brought to its final state before
   the fills are read, so that none fills unseen while this runs;
4. fills: every order with fewer recorded fills than its executed quantity gets its ``myTrades``;
   then the account's trades after the last recorded trade id are swept for fills of our orders;
5. balances (USD-M futures: the position and the wallet balance, ``trader.live.futures``): the exchange's total of base and quote must equal the baseline recorded at the first
   start plus what the stored fills moved (fees included). A difference means trades or transfers the
   ledger does not know of: refuse, with the numbers (``--rebaseline`` accepts the exchange's balances
   as the new baseline, after transfers made on purpose).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from trader.live.broker import BrokerError, CcxtBroker
from trader.live.ledger import LIVE, UNRESOLVED, D, Ledger, S

log = logging.getLogger("trader.live.reconcile")


class ReconcileError(RuntimeError):
    """The stored state and the exchange's cannot be reconciled: the session must not start."""


@dataclass
class ReconcileReport:
    resolved: list = field(default_factory=list)  # (client id, stored status, new status)
    fills_recovered: int = 0
    cancelled: int = 0
    balances: dict = field(default_factory=dict)  # asset -> (exchange, expected)
    baseline_set: bool = False
    notes: list = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{len(self.resolved)} order(s) resolved", f"{self.fills_recovered} fill(s) recovered",
                 f"{self.cancelled} open order(s) cancelled"]
        if self.baseline_set:
            parts.append("balances baseline recorded")
        bal = ", ".join(f"{a} {v[0]}" for a, v in self.balances.items())
        return "; ".join(parts) + (f"; balances {bal}" if bal else "")


def check_kill(ledger: Ledger) -> None:
    kill = ledger.active_kill()
    if kill is not None:
        raise ReconcileError(f"the kill switch tripped earlier ({kill['reason']}) and was not cleared: look at "
                             f"why, then start again with --clear-kill")


async def reconcile(broker: CcxtBroker, ledger: Ledger, *, rebaseline: bool = False,
                    tolerance: Decimal = Decimal("0.00000001")) -> ReconcileReport:
    import ccxt

    check_kill(ledger)
    rep = ReconcileReport()
    sym = broker.symbol
    try:
        # 2. orders not final
        for row in ledger.orders(LIVE):
            before = row.status
            if row.status in UNRESOLVED:
                found = await broker._resolve(row.client_id)
                if found is None:
                    found = ledger.update_order(row.client_id, status="rejected",
                                               error="not on the exchange: it never reached it (not resent)")
            else:
                try:
                    o = await broker._call(broker.client.fetch_order, row.exchange_id, sym)
                except ccxt.OrderNotFound:
                    raise ReconcileError(f"order {row.client_id} (id {row.exchange_id}) is open in the ledger but "
                                         "the exchange does not know it") from None
                found = await broker.apply(row.client_id, o)
            rep.resolved.append((row.client_id, before, found.status))
            log.info("reconcile: order %s %s -> %s (filled %s)", row.client_id, before, found.status, found.filled)
        # 3. open orders, cancelled before the fills are read: one that fills meanwhile is counted below
        fills_before = ledger.position(sym).fills
        opened = await broker._call(broker.client.fetch_open_orders, sym)
        strangers = [o for o in opened if ledger.order(o.get("clientOrderId") or "") is None]
        if strangers:
            desc = ", ".join(f"id {o['id']} (client id {o.get('clientOrderId')}, {o.get('side')} {o.get('amount')} @ "
                             f"{o.get('price')})" for o in strangers[:5])
            raise ReconcileError(f"{len(strangers)} open order(s) on {sym} unknown to the ledger {ledger.path}: {desc}. "
                                 "Cancel them (or use another account) before starting")
        if opened:
            rep.cancelled = await broker.cancel_all("open at start")
        # 4. fills: every order is final now (one that filled since 2. too), with its myTrades; then the sweep
        await broker.sync_orders()
        last = ledger.max_trade_id()
        foreign = []
        while last is not None:
            trades = await broker._call(broker.client.fetch_my_trades, sym, None, 1000, {"fromId": last + 1})
            for t in trades:
                row = ledger.by_exchange_id(str(t.get("order")))
                if row is None:
                    foreign.append(t)
                else:
                    broker._add_trade(row.client_id, row.exchange_id, row.side, t)
            ids = [int(t["id"]) for t in trades if str(t.get("id", "")).isdigit()]
            last = max(ids) if len(trades) >= 1000 and ids and max(ids) > last else None
        rep.fills_recovered = ledger.position(sym).fills - fills_before
        if foreign:
            rep.notes.append(f"{len(foreign)} trade(s) on {sym} by orders this ledger did not place")
        # 5. balances (USD-M: the position and the wallet balance, trader.live.futures)
        if getattr(broker, "futures", False):
            from trader.live.futures import check_futures_account

            await check_futures_account(broker, ledger, rep, rebaseline=rebaseline, tolerance=tolerance)
            ledger.log_event("reconcile", rep.summary())
            return rep
        bal = await broker._call(broker.client.fetch_balance)
        pos = ledger.position(sym)
        moved = {broker.base: pos.base, broker.quote: pos.quote}
        for cur, fee in pos.fees.items():
            if cur not in moved:
                moved[cur] = -fee
        totals = {a: D((bal.get(a) or {}).get("total") or 0) for a in moved}
        have_baseline = all(ledger.get_meta(f"baseline:{a}") is not None for a in moved)
        if rebaseline or not have_baseline:
            for a, delta in moved.items():
                ledger.set_meta(f"baseline:{a}", S(totals[a] - delta))
            rep.baseline_set = True
        for a, delta in moved.items():
            rep.balances[a] = (totals[a], D(ledger.get_meta(f"baseline:{a}")) + delta)
        off = {a: v for a, v in rep.balances.items() if abs(v[0] - v[1]) > tolerance * (1 + pos.fills)}
        if off:
            desc = "; ".join(f"{a}: exchange {v[0]}, expected {v[1]} (baseline {ledger.get_meta('baseline:' + a)} + "
                             f"fills {moved[a]})" for a, v in off.items())
            raise ReconcileError(f"balances do not match the ledger: {desc}. Trades or transfers the ledger does not "
                                 "know of; if they were made on purpose, start with --rebaseline"
                                 + (f" ({rep.notes[0]})" if rep.notes else ""))
    except BrokerError as exc:
        raise ReconcileError(f"cannot reach the exchange to reconcile: {exc}") from None
    except ccxt.AuthenticationError as exc:
        raise ReconcileError(f"the exchange refused the API key ({type(exc).__name__}); check the key, its "
                             "permissions and the clock") from None
    except ccxt.BaseError as exc:
        raise ReconcileError(f"exchange error while reconciling: {type(exc).__name__}: {str(exc)[:300]}") from None
    ledger.log_event("reconcile", rep.summary())
    return rep
