#include "book/order_book.h"

#include <algorithm>

namespace trader {

bool BookSide::set(int64_t price, int64_t qty) {
  if (price <= 0) throw std::invalid_argument("book level price must be > 0 ticks");
  if (qty < 0) throw std::invalid_argument("book level qty must be >= 0 lots");
  const int64_t key = is_bid_ ? price : -price;
  // Fast path: most updates hit one of the best few levels, which sit at the back.
  auto it = keyed_.end();
  size_t scanned = 0;
  while (it != keyed_.begin() && scanned < 8) {
    auto prev = it - 1;
    if (prev->key < key) break;
    it = prev;
    ++scanned;
  }
  if (scanned == 8 && it != keyed_.begin() && (it - 1)->key >= key) {
    it = std::lower_bound(keyed_.begin(), it, key,
                          [](const Keyed& k, int64_t v) { return k.key < v; });
  }
  const bool found = it != keyed_.end() && it->key == key;
  if (qty == 0) {
    if (!found) return false;
    keyed_.erase(it);
    return true;
  }
  if (found) {
    it->qty = qty;
  } else {
    keyed_.insert(it, Keyed{key, qty});
  }
  return true;
}

int64_t BookSide::qty_at(int64_t price) const {
  const int64_t key = is_bid_ ? price : -price;
  auto it = std::lower_bound(keyed_.begin(), keyed_.end(), key,
                             [](const Keyed& k, int64_t v) { return k.key < v; });
  return (it != keyed_.end() && it->key == key) ? it->qty : 0;
}

void OrderBook::top(int64_t* out, size_t depth) const {
  const size_t nb = std::min(depth, bids_.size());
  const size_t na = std::min(depth, asks_.size());
  for (size_t i = 0; i < depth; ++i) {
    int64_t* row = out + 4 * i;
    if (i < nb) {
      const BookLevel b = bids_.level(i);
      row[0] = b.price;
      row[1] = b.qty;
    } else {
      row[0] = 0;
      row[1] = 0;
    }
    if (i < na) {
      const BookLevel a = asks_.level(i);
      row[2] = a.price;
      row[3] = a.qty;
    } else {
      row[2] = 0;
      row[3] = 0;
    }
  }
}

}  // namespace trader
