"""USD-M perpetual futures through ccxt's ``binanceusdm``: the real broker with what spot does not have.

* **Account settings, set explicitly at start** (:meth:`FuturesBroker.configure`): the margin mode
  (``cross`` / ``isolated``) and the leverage, then read back from the exchange's position risk; a
  mismatch refuses the start. Nothing relies on whatever the account was left with.
* **Reduce-only closes**: flattening (kill switch, exit, the liquidation guard) sends a market order
  with ``reduceOnly`` (``OrderRequest.reduce_only``), so a close can never open the other side.
* **Funding payments** (``GET /fapi/v1/income?incomeType=FUNDING_FEE``, ccxt ``fetch_funding_history``)
  are stored by income id in the ledger (``Ledger.add_funding``), which moves the position's quote
  amount: they are in the PnL, the equity and the daily loss. Read at start, at every ``sync`` at
  most every ``funding_every`` seconds, and after the user-data stream reconnects.
* **Liquidation-distance guard** (:meth:`FuturesBroker.guard`, every ``guard_every`` seconds): with
  the exchange's liquidation price L and the mark price M of the position, the distance
  ``|M - L| / M x 100`` (percent). At or under ``liquidation_buffer_pct`` no new order may be placed
  and the position is closed (cancel all, then a reduce-only market order); the event is logged.
* **Reconciliation** (:func:`check_futures_account`): the exchange's position amount must equal the
  ledger's, and the wallet balance of the margin asset must equal the baseline plus what the stored
  fills and funding moved (realized PnL, fees, funding: ``quote + cost`` of the ledger's position,
  with the average-cost basis that Binance's entry price also follows).
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal

from trader.live.broker import BrokerError, CcxtBroker, OrderRequest
from trader.live.ledger import D, S

log = logging.getLogger("trader.live.futures")

MARGIN_MODES = ("cross", "isolated")


class FuturesBroker(CcxtBroker):
    kind = "real"
    futures = True

    def __init__(self, ledger, client, symbol: str, *, leverage: int = 1, margin_mode: str = "cross",
                 liquidation_buffer_pct: float = 10.0, guard_every: float = 1.0, funding_every: float = 10.0,
                 **kwargs):
        super().__init__(ledger, client, symbol, **kwargs)
        if not client.market(symbol).get("linear"):
            raise ValueError(f"{symbol}: not a USD-M (linear) futures market")
        if margin_mode not in MARGIN_MODES:
            raise ValueError(f"margin mode {margin_mode!r}: expected one of {', '.join(MARGIN_MODES)}")
        if not 1 <= leverage <= 125:
            raise ValueError(f"leverage {leverage}: expected 1 to 125")
        if liquidation_buffer_pct <= 0:
            raise ValueError("liquidation_buffer_pct must be > 0 (percent of the mark price)")
        self.leverage = leverage
        self.margin_mode = margin_mode
        self.liquidation_buffer_pct = liquidation_buffer_pct
        self.guard_every = guard_every
        self.funding_every = funding_every
        self._last_guard = self._last_funding = 0.0
        self.guard_trips = 0
        self.last_risk: dict | None = None  # the exchange's position risk, last read

    # ---- settings ------------------------------------------------------------------------------
    async def configure(self) -> dict:
        """Set the margin mode and the leverage on the exchange, then check them there."""
        import ccxt

        try:
            await self._call(self.client.set_margin_mode, self.margin_mode, self.symbol)
        except ccxt.MarginModeAlreadySet:
            pass
        except ccxt.ExchangeError as exc:
            if "-4046" not in str(exc):  # "No need to change margin type."
                raise BrokerError(f"cannot set the margin mode to {self.margin_mode}: {exc}") from None
        try:
            await self._call(self.client.set_leverage, self.leverage, self.symbol)
        except ccxt.ExchangeError as exc:
            raise BrokerError(f"cannot set the leverage to {self.leverage}: {exc}") from None
        risk = await self.position_risk()
        got = (int(D(risk.get("leverage") or 0)), risk.get("marginType"))
        if got != (self.leverage, self.margin_mode):
            raise BrokerError(f"the exchange reports leverage {got[0]} and margin mode {got[1]} after setting "
                              f"{self.leverage} and {self.margin_mode}")
        self.ledger.log_event("futures-settings", f"{self.symbol} leverage {self.leverage} margin {self.margin_mode}")
        return risk

    async def position_risk(self) -> dict:
        """The raw ``GET /fapi/v2/positionRisk`` entry of the symbol: v2, because it lists the symbol
        when flat too and carries ``leverage`` and ``marginType`` (v3 drops both and lists only symbols
        with a position or open orders; ccxt's ``fetch_positions`` also skips flat ones)."""
        market = self.client.market(self.symbol)
        rows = await self._call(self.client.fapiPrivateV2GetPositionRisk, {"symbol": market["id"]})
        row = next((r for r in rows if r.get("symbol") == market["id"] and r.get("positionSide", "BOTH") == "BOTH"),
                   None)
        if row is None:
            raise BrokerError(f"the exchange sent no position entry for {self.symbol}")
        self.last_risk = row
        return row

    # ---- funding -------------------------------------------------------------------------------
    async def sync_funding(self) -> int:
        """Store the funding payments not yet in the ledger; returns how many were new."""
        self._last_funding = time.monotonic()
        have = self.ledger.funding(self.symbol)
        since = have[-1][2] if have else None
        rows = await self._call(self.client.fetch_funding_history, self.symbol, since, 1000)
        n = 0
        for r in rows:
            info = r.get("info") or {}
            n += self.ledger.add_funding(str(info.get("tranId", r.get("id"))), self.symbol,
                                         D(info.get("income", r.get("amount"))), info.get("asset", self.quote),
                                         int(info.get("time", r.get("timestamp"))))
        if n:
            log.info("%d funding payment(s) recorded", n)
        return n

    async def sync(self):
        out = await super().sync()
        if time.monotonic() - self._last_funding >= self.funding_every:
            await self.sync_funding()
        return out

    # ---- the liquidation guard -----------------------------------------------------------------
    def liquidation_distance_pct(self, risk: dict) -> float | None:
        """|mark - liquidation| / mark x 100, None without a position or a liquidation price."""
        liq, mark = float(risk.get("liquidationPrice") or 0), float(risk.get("markPrice") or 0)
        if D(risk.get("positionAmt") or 0) == 0 or liq <= 0 or mark <= 0:
            return None
        return abs(mark - liq) / mark * 100.0

    async def guard(self, mid: float) -> str | None:
        """Called before every decision: why no new order may be placed now (None: it may). Within
        the buffer the position is closed here."""
        now = time.monotonic()
        if now - self._last_guard < self.guard_every:
            return None
        self._last_guard = now
        if now - self._last_funding >= self.funding_every:
            await self.sync_funding()
        risk = await self.position_risk()
        dist = self.liquidation_distance_pct(risk)
        if dist is None or dist > self.liquidation_buffer_pct:
            return None
        self.guard_trips += 1
        reason = (f"mark {risk['markPrice']} within {dist:.2f} % of the liquidation price {risk['liquidationPrice']} "
                  f"(--liquidation-buffer-pct {self.liquidation_buffer_pct:g})")
        log.error("liquidation guard: %s; closing the position", reason)
        self.ledger.log_event("liquidation-guard", reason)
        await self.cancel_all("liquidation guard")
        await self.close_position("liquidation guard")
        return f"liquidation guard: {reason}"

    async def close_position(self, reason: str):
        """A reduce-only market order for the exchange's whole position (None when flat)."""
        risk = await self.position_risk()
        amt = D(risk.get("positionAmt") or 0)
        amount = self.round_amount(abs(amt))
        if amount == 0:
            return None
        return await self.submit(OrderRequest("sell" if amt > 0 else "buy", amount, reason, reduce_only=True))


async def check_futures_account(broker: FuturesBroker, ledger, report, *, rebaseline: bool,
                                tolerance: Decimal) -> None:
    """Step 5 of the reconciliation for USD-M (module docstring); raises ReconcileError on a mismatch."""
    from trader.live.reconcile import ReconcileError

    await broker.sync_funding()
    risk = await broker.position_risk()
    bal = await broker._call(broker.client.fetch_balance)
    assets = {a.get("asset"): a for a in (bal.get("info") or {}).get("assets", [])}
    wallet = D((assets.get(broker.quote) or {}).get("walletBalance") or 0)
    pos = ledger.position(broker.symbol)
    exchange_amt = D(risk.get("positionAmt") or 0)
    if exchange_amt != pos.base:
        raise ReconcileError(f"position on {broker.symbol}: exchange {exchange_amt}, ledger {pos.base} (trades the "
                             "ledger does not know of)")
    moved = pos.quote + pos.cost  # realized PnL - fees + funding
    key = f"baseline:{broker.quote}"
    if rebaseline or ledger.get_meta(key) is None:
        ledger.set_meta(key, S(wallet - moved))
        report.baseline_set = True
    expected = D(ledger.get_meta(key)) + moved
    report.balances[broker.quote] = (wallet, expected)
    if abs(wallet - expected) > tolerance * (1 + pos.fills):
        raise ReconcileError(f"wallet balance {broker.quote}: exchange {wallet}, expected {expected} (baseline "
                             f"{ledger.get_meta(key)} + realized PnL, fees and funding {moved}). Trades or transfers "
                             "the ledger does not know of; if they were made on purpose, start with --rebaseline")
