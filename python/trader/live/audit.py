"""Audit a live ledger against a local exchange's account (``trader-sim serve`` / ``LocalExchange``):
the order-safety invariants, checked from both sides. Used by the tests and by rehearsals.

* no client order id appears twice on the exchange (no duplicate order);
* every exchange order is in the ledger, with the same exchange id, state and executed quantity;
* every order the ledger marks ``rejected`` is absent from the exchange;
* the ledger's fills are exactly the account's trades (same trade ids, quantities, prices, fees);
* the exchange's balances equal the ledger's baseline plus what its fills moved; USD-M futures: the
  position amount equals the ledger's, the wallet balance equals the baseline plus the realized PnL,
  fees and funding of the ledger (``trader.live.futures``), and the ledger's funding payments are the
  account's FUNDING_FEE incomes.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from trader.live.ledger import D, Ledger

_STATE = {"NEW": "open", "PARTIALLY_FILLED": "open", "FILLED": "filled", "CANCELED": "cancelled",
          "EXPIRED": "cancelled", "REJECTED": "rejected", "EXPIRED_IN_MATCH": "cancelled"}


def audit(exchange, api_key: str, ledger: Ledger, symbol: str = "BTC/USDT", *, allow_unfinished: bool = False) -> dict:
    """Check the invariants; returns counts, raises AssertionError listing every violation."""
    orders = exchange.orders(api_key)
    trades = exchange.call(lambda: list(exchange.engine.accounts[api_key].trades))
    balances = exchange.balances(api_key)
    base, quote = exchange.engine.base, exchange.engine.quote
    rows = {r.client_id: r for r in ledger.orders()}
    problems = []
    counts = Counter(o["clientOrderId"] for o in orders)
    dup = {c: n for c, n in counts.items() if n > 1}
    if dup:
        problems.append(f"client ids sent more than once: {dup}")
    for o in orders:
        r = rows.get(o["clientOrderId"])
        if r is None:
            problems.append(f"exchange order {o['orderId']} ({o['clientOrderId']}) not in the ledger")
            continue
        if r.exchange_id != str(o["orderId"]):
            problems.append(f"{r.client_id}: exchange id {o['orderId']}, ledger {r.exchange_id}")
        if _STATE.get(o["status"]) != r.status:
            problems.append(f"{r.client_id}: exchange {o['status']}, ledger {r.status}")
        if D(o["executedQty"]) != r.filled:
            problems.append(f"{r.client_id}: executed {o['executedQty']} on the exchange, ledger {r.filled}")
    for r in rows.values():
        if r.status == "rejected" and counts.get(r.client_id):
            problems.append(f"{r.client_id}: rejected in the ledger but on the exchange")
        if r.status in ("pending", "unknown", "open") and not allow_unfinished:
            problems.append(f"{r.client_id}: still {r.status} in the ledger")
    fills = {f.trade_id: f for f in ledger.fills()}
    ex_ids = {str(t["id"]): t for t in trades}
    if set(fills) != set(ex_ids):
        problems.append(f"fills: {len(set(ex_ids) - set(fills))} exchange trade(s) missing from the ledger, "
                        f"{len(set(fills) - set(ex_ids))} ledger fill(s) unknown to the exchange")
    for tid in set(fills) & set(ex_ids):
        f, t = fills[tid], ex_ids[tid]
        if (f.amount, f.price, f.fee) != (D(t["qty"]), D(t["price"]), D(t["commission"])):
            problems.append(f"fill {tid}: ledger {f.amount}@{f.price} fee {f.fee}, exchange {t['qty']}@{t['price']} "
                            f"fee {t['commission']}")
    pos = ledger.position(symbol)
    if getattr(exchange, "market", "spot") == "usdm":
        problems += _futures_problems(exchange, api_key, ledger, symbol, pos, balances[quote][0], quote)
        if problems:
            raise AssertionError("audit failed:\n  " + "\n  ".join(problems))
        return {"orders": len(orders), "ledger_orders": len(rows), "fills": len(fills), "rejected":
                sum(r.status == "rejected" for r in rows.values()), "position": pos.base,
                "funding": len(ledger.funding(symbol))}
    for asset, moved in ((base, pos.base), (quote, pos.quote)):
        baseline = ledger.get_meta(f"baseline:{asset}")
        if baseline is None:
            continue
        total = sum(balances.get(asset, (Decimal(0), Decimal(0))))
        if D(baseline) + moved != total:
            problems.append(f"{asset}: exchange {total}, ledger baseline {baseline} + fills {moved}")
    if problems:
        raise AssertionError("audit failed:\n  " + "\n  ".join(problems))
    return {"orders": len(orders), "ledger_orders": len(rows), "fills": len(fills), "rejected":
            sum(r.status == "rejected" for r in rows.values()), "position": pos.base}


def _futures_problems(exchange, api_key: str, ledger: Ledger, symbol: str, pos, wallet: Decimal, quote: str) -> list:
    problems = []
    amt = D(exchange.position(api_key)["positionAmt"])
    if amt != pos.base:
        problems.append(f"position: exchange {amt}, ledger {pos.base}")
    incomes = exchange.call(lambda: [i for i in exchange.engine.accounts[api_key].income
                                     if i["incomeType"] == "FUNDING_FEE"])
    have = {i: a for i, a, _ in ledger.funding(symbol)}
    want = {str(i["tranId"]): D(i["income"]) for i in incomes}
    if have != want:
        problems.append(f"funding: ledger {have}, exchange {want}")
    baseline = ledger.get_meta(f"baseline:{quote}")
    if baseline is not None and abs(D(baseline) + pos.quote + pos.cost - wallet) > Decimal("1e-8"):
        problems.append(f"{quote} wallet: exchange {wallet}, ledger baseline {baseline} + realized, fees and funding "
                        f"{pos.quote + pos.cost}")
    return problems
