"""The C++ L2 book against a small pure-Python reference, over random adds, updates and deletes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trader import _core


class ReferenceBook:
    """The obvious L2 book: a dict per side, sorted on every read."""

    def __init__(self):
        self.sides = {True: {}, False: {}}

    def set(self, is_bid, price, qty):
        side = self.sides[is_bid]
        if qty == 0:
            return side.pop(price, None) is not None
        side[price] = qty
        return True

    def top(self, depth):
        out = np.zeros((depth, 4), dtype=np.int64)
        bids = sorted(self.sides[True].items(), reverse=True)[:depth]
        asks = sorted(self.sides[False].items())[:depth]
        for i, (p, q) in enumerate(bids):
            out[i, 0:2] = p, q
        for i, (p, q) in enumerate(asks):
            out[i, 2:4] = p, q
        return out


ops = st.lists(
    st.tuples(
        st.booleans(),
        st.one_of(st.integers(1, 40), st.integers(1, 10**12)),  # dense near the top, and far levels
        st.one_of(st.just(0), st.integers(1, 10**9)),
    ),
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(ops, st.integers(1, 30))
def test_book_matches_reference(sequence, depth):
    book, ref = _core.OrderBook(), ReferenceBook()
    for is_bid, price, qty in sequence:
        assert book.set(is_bid, price, qty) == ref.set(is_bid, price, qty)
        assert book.num_levels(True) == len(ref.sides[True])
        assert book.num_levels(False) == len(ref.sides[False])
    np.testing.assert_array_equal(book.top(depth), ref.top(depth))
    for is_bid in (True, False):
        for price, qty in list(ref.sides[is_bid].items())[:20]:
            assert book.qty_at(is_bid, price) == qty


def test_top_of_empty_book_is_zeros_and_crossed_is_false():
    book = _core.OrderBook()
    assert not book.crossed()
    np.testing.assert_array_equal(book.top(3), np.zeros((3, 4), dtype=np.int64))


def test_crossed_book_detected():
    book = _core.OrderBook()
    book.set(True, 100, 5)
    book.set(False, 101, 5)
    assert not book.crossed()
    book.set(True, 101, 1)
    assert book.crossed()


@pytest.mark.parametrize("price,qty", [(0, 1), (-5, 1), (10, -1)])
def test_bad_levels_raise(price, qty):
    with pytest.raises(ValueError, match="must be"):
        _core.OrderBook().set(True, price, qty)
