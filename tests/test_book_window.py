"""The C++ L2 book against a dict reference on long random walks.

The book keeps the levels near the best price in a dense tick window that follows the best price
and the far levels in a sorted overflow (cpp/book/order_book.h). These walks move the mid across
many window widths, jump it around, put levels far away and near the price limits, and delete the
best level over and over, so that levels keep moving between the window and the overflow.
"""

import random

import numpy as np
import pytest

from trader import _core

MAX_PRICE = 2**63 - 1


class Ref:
    def __init__(self):
        self.sides = {True: {}, False: {}}

    def set(self, is_bid, price, qty):
        side = self.sides[is_bid]
        if qty == 0:
            return side.pop(price, None) is not None
        side[price] = qty
        return True

    def best(self, is_bid):
        side = self.sides[is_bid]
        if not side:
            return None
        return max(side) if is_bid else min(side)

    def top(self, depth):
        out = np.zeros((depth, 4), dtype=np.int64)
        bids = sorted(self.sides[True].items(), reverse=True)[:depth]
        asks = sorted(self.sides[False].items())[:depth]
        for i, (p, q) in enumerate(bids):
            out[i, 0:2] = p, q
        for i, (p, q) in enumerate(asks):
            out[i, 2:4] = p, q
        return out


def check_full(book, ref):
    for is_bid in (True, False):
        assert book.num_levels(is_bid) == len(ref.sides[is_bid])
    depth = max(len(ref.sides[True]), len(ref.sides[False])) + 1
    np.testing.assert_array_equal(book.top(depth), ref.top(depth))
    bid, ask = ref.best(True), ref.best(False)
    assert book.crossed() == (bid is not None and ask is not None and bid >= ask)


def walk(seed, ops, lo, hi, step, depth_scale, far_p, del_p, del_best_p, jump_p=0.0, jump=0):
    """Applies `ops` random level updates to the book and the reference, comparing them as it goes.
    Returns (updates applied, top-25 comparisons, full-book comparisons, most levels on a side)."""
    rng = random.Random(seed)
    book, ref = _core.OrderBook(), Ref()
    mid = rng.randint(lo, hi)
    applied = top_checks = full_checks = peak_levels = 0
    for op in range(ops):
        mid = min(hi, max(lo, mid + int(rng.gauss(0, step))))
        if rng.random() < jump_p:
            mid = min(hi, max(lo, mid + rng.choice((-1, 1)) * rng.randint(0, jump)))
        is_bid = rng.random() < 0.5
        side = ref.sides[is_bid]
        r = rng.random()
        if r < del_best_p and side:
            price, qty = ref.best(is_bid), 0
        else:
            if r < del_best_p + far_p:
                price = rng.randint(lo, hi)
            elif r < del_best_p + far_p + 0.3 and side:
                price = rng.choice(list(side)) if len(side) < 64 else ref.best(is_bid)
            else:
                d = int(rng.expovariate(1.0 / depth_scale)) - 2  # a few cross the mid
                price = mid - d if is_bid else mid + d
            price = min(hi, max(lo, price))
            qty = 0 if rng.random() < del_p else rng.randint(1, 10**12)
        assert book.set(is_bid, price, qty) == ref.set(is_bid, price, qty)
        assert book.qty_at(is_bid, price) == qty
        assert book.num_levels(is_bid) == len(side)
        applied += 1
        peak_levels = max(peak_levels, len(side))
        if op % 64 == 0:
            np.testing.assert_array_equal(book.top(25), ref.top(25))
            top_checks += 1
        if op % 1000 == 999:
            check_full(book, ref)
            full_checks += 1
        if op % 4000 == 3999 and rng.random() < 0.5:
            book.clear()
            ref = Ref()
    check_full(book, ref)
    full_checks += 1
    return applied, top_checks, full_checks, peak_levels


@pytest.mark.parametrize(
    "seed,lo,hi,step,depth_scale,far_p,del_p,del_best_p,jump_p,jump",
    [
        # The mid drifts across many 65536-tick windows; levels a few hundred ticks deep.
        (1, 1, 10**9, 300, 400, 0.01, 0.3, 0.05, 0.0, 0),
        # Deep books (thousands of levels spread over a window width and more), slow drift.
        (2, 1, 10**8, 30, 30000, 0.02, 0.15, 0.02, 0.0, 0),
        # Jumps of up to 10^7 ticks either way; far outliers anywhere up to 10^12.
        (3, 1, 10**12, 20, 1000, 0.02, 0.3, 0.05, 0.01, 10**7),
        # The best level deleted over and over, so the book drains toward the overflow.
        (4, 1, 10**7, 5, 2000, 0.01, 0.05, 0.45, 0.002, 10**5),
        # Near the smallest prices and near the largest one.
        (5, 1, 50_000, 40, 3000, 0.05, 0.3, 0.05, 0.01, 20_000),
        (6, MAX_PRICE - 10**7, MAX_PRICE, 40, 3000, 0.05, 0.3, 0.05, 0.01, 10**6),
        # The whole price range: almost every level alone in its own window width.
        (7, 1, MAX_PRICE, 0, 10**15, 0.5, 0.3, 0.1, 0.0, 0),
    ],
)
def test_random_walk_matches_reference(seed, lo, hi, step, depth_scale, far_p, del_p, del_best_p,
                                       jump_p, jump):
    ops = 12_000
    applied, top_checks, full_checks, peak_levels = walk(seed, ops, lo, hi, step, depth_scale, far_p, del_p,
                                                         del_best_p, jump_p, jump)
    assert applied == ops
    assert top_checks == (ops + 63) // 64 and full_checks == ops // 1000 + 1
    assert peak_levels > 1  # the walk built books of several levels, not one level set over and over


def test_far_levels_and_window_moves():
    book, ref = _core.OrderBook(), Ref()

    def both(is_bid, price, qty):
        assert book.set(is_bid, price, qty) == ref.set(is_bid, price, qty)

    # A dense book around 61800.0 (tick 0.1) plus stale far bids and asks.
    for i in range(3000):
        both(True, 618_000 - i, 1 + i)
        both(False, 618_001 + i, 1 + i)
    for p in (1, 5_600, 10_000, 244_260, 400_000):
        both(True, p, 7)
    for p in (6_213_687, 10**9, 10**12, MAX_PRICE):
        both(False, p, 9)
    check_full(book, ref)
    # The market runs up by 3 window widths, one tick at a time on both sides, then back down.
    for up in range(0, 200_000, 97):
        both(True, 618_000 + up, 5)
        both(False, 618_001 + up, 5)
        both(True, 618_000 + up - 40, 0)
        both(False, 618_001 + up + 40, 3)
        if up % 9700 == 0:
            check_full(book, ref)
    check_full(book, ref)
    # Delete every bid from the best down: the best keeps sinking through the overflow.
    while ref.sides[True]:
        both(True, ref.best(True), 0)
        assert book.num_levels(True) == len(ref.sides[True])
        if len(ref.sides[True]) % 500 == 0:
            np.testing.assert_array_equal(book.top(10), ref.top(10))
    # Same for the asks, ending with the one at the largest price.
    while ref.sides[False]:
        both(False, ref.best(False), 0)
        if len(ref.sides[False]) % 500 == 0:
            np.testing.assert_array_equal(book.top(10), ref.top(10))
    check_full(book, ref)
    assert not book.set(True, 618_000, 0)
    assert not book.set(False, MAX_PRICE, 0)
    # Refill after the book emptied: the window is placed anew.
    both(False, 3, 1)
    both(False, MAX_PRICE, 2)
    both(True, 2, 1)
    both(True, MAX_PRICE - 1, 4)
    check_full(book, ref)
