"""The queue rules of one resting order in the reference env (trader.sim.reference), after
hftbacktest (nkaz001/hftbacktest, hftbacktest/src/backtest/models/queue.rs and
proc/partialfillexchange.rs), written out in plain Python with C's and Rust's float semantics so that
they give the same numbers as the C++ env (cpp/env/trading_env.cpp).

- A new order joins the back of its level: front = the level's size when it reaches the exchange.
- A trade at its price (by the opposite aggressor) moves it up: front -= the trade's lots not yet
  given to earlier orders of the agents at that price, cum_trade += the trade's lots; once
  round(front) < 0 it fills min(floor(-front), those lots, leaves) (hftbacktest is_filled; front is
  not reset: the cap by the trade's lots keeps later fills right).
- A level change prev -> new at its price: risk_averse (RiskAdverseQueueModel): front = min(front,
  new). power / log (ProbQueueModel with PowerProbQueueFunc x^n / LogProbQueueFunc log(1 + x)): the
  decrease not explained by trades since the last change, chg = prev - new - cum_trade (cum_trade
  reset), is split between ahead and behind with p = f(back) / (f(back) + f(front)), back = prev -
  front: front = min(front - (1 - p) chg + min(back - p chg, 0), new); an increase (chg < 0) gives
  front = min(front, new). Infinite p becomes 1; a NaN falls through Rust's min to `new`.
"""

from __future__ import annotations

import math

NEVER = (1 << 63) - 1


def rust_min(a: float, b: float) -> float:
    """Rust's f64::min (hftbacktest's): a NaN operand yields the other one."""
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return a if a < b else b


def c_pow(x: float, n: float) -> float:
    """C's pow: NaN for a negative base and a non-integer exponent, inf on overflow."""
    try:
        return math.pow(x, n)
    except ValueError:
        return math.nan
    except OverflowError:
        return math.inf


def c_log(x: float) -> float:
    """C's log: -inf at 0, NaN below."""
    return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)


class LimitOrder:
    """A post-only limit order, from its sending until filled, cancelled or rejected."""

    def __init__(self, seq, agent, bid, price, leaves, arrive_ts):
        self.seq, self.agent, self.bid, self.price, self.leaves = seq, agent, bid, price, leaves
        self.arrive_ts = arrive_ts  # ns: live before the first record with exch_ts > arrive_ts
        self.cancel_ts = NEVER     # ns: removed before the first record with exch_ts > cancel_ts
        self.live = self.dead = False
        self.level_qty = 0          # market lots at its price
        self.crossing = 0           # non-empty opposite levels crossing it
        self.front = 0.0            # market lots ahead
        self.cum_trade = 0.0        # lots traded at its price since the last level change




def on_depth(o: LimitOrder, prev: float, new: float, model: str, power: float) -> None:
    """A level change prev -> new at the order's price."""
    if model == "risk_averse":
        o.front = rust_min(o.front, new)
        return
    chg = prev - new - o.cum_trade
    o.cum_trade = 0.0
    if chg < 0:
        o.front = rust_min(o.front, new)
        return
    front = o.front
    back = prev - front
    if model == "power":
        fb, ff = c_pow(back, power), c_pow(front, power)
    else:
        fb, ff = c_log(1.0 + back), c_log(1.0 + front)
    try:
        p = fb / (fb + ff)
    except ZeroDivisionError:
        p = math.nan if fb == 0 or math.isnan(fb) else math.copysign(math.inf, fb)
    if math.isinf(p):
        p = 1.0
    est = front - (1.0 - p) * chg + min(back - p * chg, 0.0)
    o.front = rust_min(est, new)


def on_trade_at_price(o: LimitOrder, remaining: int, qty: int) -> int:
    """A trade of `qty` lots at the order's price, `remaining` of them not given to earlier orders:
    moves the order up; returns the lots it fills now."""
    o.front -= float(remaining)
    o.cum_trade += float(qty)
    if o.front <= -0.5:  # C's round(front) < 0
        return max(min(math.floor(-o.front), remaining, o.leaves), 0)
    return 0
