"""Risk limits and the kill switch.

* ``max_position``: |position| (base units) never exceeds it: an order that would take it past (further
  from 0) is not sent; by default the policy's, and for a policy sized in quote currency the kernel's
  limit in lots at the session's first mid (``RiskManager.position_limit``, set by the session);
* ``max_notional``: |position| x mid (quote) never exceeds it, the same way;
* ``max_order``: the size of one order (base units); a larger one is not sent.

The orders come from the execution kernel (the training env), whole: the session holds instead of
sending what the limits refuse, so that the kernel and the exchange stay in step.

USD-M futures add the liquidation-distance guard (``trader.live.futures``, ``--liquidation-buffer-pct``): it
refuses new orders and closes the position when the mark is that close to the liquidation price.
* ``daily_loss_limit``: when the equity (mark-to-market PnL of the session's fills) falls that far
  below its value at the start of the UTC day, the kill switch trips.

The kill switch (``kill_switch``): no new orders; every open order canceled; optionally the position
flattened with a market order (reduce-only on USD-M futures); a ``kills`` record committed; the session stops. A ledger with an
uncleared kill record refuses to trade again until an operator clears it (``trader live
--clear-kill``), after looking at why it tripped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal


log = logging.getLogger("trader.live.risk")


@dataclass(frozen=True)
class RiskLimits:
    max_position: float | None  # None: the policy's, known at the first row (sizes in quote currency)
    max_notional: float | None = None
    daily_loss_limit: float | None = None
    max_order: float | None = None
    flatten_on_kill: bool = False

    def __post_init__(self):
        if self.max_position is not None and self.max_position <= 0:
            raise ValueError("max_position must be > 0")
        for name in ("max_notional", "daily_loss_limit", "max_order"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ValueError(f"{name} must be > 0 (or unset)")


class RiskManager:
    def __init__(self, limits: RiskLimits):
        self.limits = limits
        self.position_limit = limits.max_position  # base units; None until the session's first row sets it
        self.refused = 0  # orders not sent

    def refuses(self, delta: Decimal, position: Decimal, mid: float) -> str | None:
        """Why a signed order of ``delta`` base units from ``position`` is not within the limits (None: it is)."""
        lim = self.limits
        cap = self.position_limit
        if lim.max_notional is not None and mid > 0:
            cap = min(cap, lim.max_notional / mid)
        target = float(position + delta)
        if abs(target) > cap * (1 + 1e-12) and abs(target) > abs(float(position)):
            return f"position {target:+.8g} past the limit {cap:.8g} (max position / notional)"
        if lim.max_order is not None and abs(float(delta)) > lim.max_order * (1 + 1e-12):
            return f"order {delta:+} larger than the max order {lim.max_order:g}"
        return None

    def loss_breach(self, day_pnl: float) -> str | None:
        lim = self.limits.daily_loss_limit
        if lim is not None and day_pnl <= -lim:
            return f"daily loss limit: PnL today {day_pnl:.2f} <= -{lim:g}"
        return None


def utc_day(ts_ns: int | None = None) -> str:
    t = datetime.now(timezone.utc) if ts_ns is None else datetime.fromtimestamp(ts_ns / 1e9, tz=timezone.utc)
    return t.strftime("%Y-%m-%d")


async def kill_switch(broker, ledger, reason: str, *, flatten: bool = False, mid: float | None = None) -> dict:
    """Cancel every open order, optionally flatten, record the kill. Returns what was done."""
    from trader.live.broker import OrderRequest

    log.error("KILL SWITCH: %s", reason)
    ledger.record_kill(reason)  # first: a crash from here on still leaves the session stopped
    done = {"reason": reason, "cancelled": 0, "flatten": None}
    try:
        done["cancelled"] = await broker.cancel_all(f"kill switch: {reason}")
    except Exception as exc:  # noqa: BLE001 - keep going: the kill record is already stored
        log.error("kill switch: cancel failed: %s", exc)
        done["cancel_error"] = str(exc)
    if flatten:
        pos = broker.position().base
        amount = broker.round_amount(abs(pos))
        small = broker.too_small(amount, mid) if mid else None
        if amount > 0 and not small:
            row = await broker.submit(OrderRequest("sell" if pos > 0 else "buy", amount, reason="flatten",
                                                   reduce_only=broker.futures))
            done["flatten"] = row.status
        else:
            done["flatten"] = f"nothing to flatten ({small or 'flat'})"
    ledger.log_event("kill", repr(done))
    return done
