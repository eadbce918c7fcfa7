"""Queue places of the local exchange's resting orders, by the training env's queue model: the rules
of ``trader.sim.reference_queue`` (hftbacktest's, the readable spec the C++ env equals), applied to the
orders the matching engine keeps (``trader.venue.matching``).

A resting order joins the back of its level (the replayed size at its price when it rests); a replayed
trade at its price by the opposite aggressor consumes the queue ahead first, then fills it (partial
fills; our orders at one price share the trade in order of arrival); level decreases not explained by
trades move it forward with the probability of the ``power`` model, exponent 2 (the env's defaults;
``MatchingEngine(queue_model=, queue_power=)``); a snapshot leaves it no further back than the level's
new size. Fills by a trade through its price and by the opposite touch crossing it stay the engine's.
"""

from __future__ import annotations

from trader.sim import reference_queue


def check_queue_model(model: str, power: float) -> None:
    if model not in ("power", "log", "risk_averse"):
        raise ValueError(f"queue_model: expected power, log or risk_averse, got {model!r}")
    if not power > 0:
        raise ValueError(f"queue_power: expected > 0, got {power}")


class QueueSpot:
    """A resting order's place in its level (the fields reference_queue's rules use)."""

    def __init__(self, front: float):
        self.front = front  # market lots ahead: the level's size when it rested (the back of the level)
        self.cum_trade = 0.0  # lots traded at its price since the last level change
        self.leaves = 0  # lots it still rests for (set before each trade)


def queue_on_depth(spot: QueueSpot, prev: int, new: int, model: str, power: float) -> None:
    """A level change prev -> new lots at the order's price."""
    reference_queue.on_depth(spot, float(prev), float(new), model, power)


def queue_on_trade(spot: QueueSpot, leaves: int, remaining: int, qty: int) -> int:
    """A trade of ``qty`` lots at the order's price by the opposite aggressor, ``remaining`` of them not
    given to earlier orders at that price: the queue ahead goes first; returns the lots it fills now."""
    spot.leaves = leaves
    return reference_queue.on_trade_at_price(spot, remaining, qty)


def queue_on_snapshot(spot: QueueSpot, qty: int) -> None:
    """A book snapshot (resync): the order is no further back than the level's new size."""
    spot.front = reference_queue.rust_min(spot.front, float(qty))
