// Exact L2 order book in integer ticks and lots.
//
// Each side is a vector sorted so that the best level is at the back: most updates touch the top of
// the book, so inserts and deletes there move few elements, and the top-L read is a reverse scan of
// contiguous memory. Bids are keyed by price and asks by -price, so both sides share one code path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace trader {

struct BookLevel {
  int64_t price;  // ticks
  int64_t qty;    // lots
};

class BookSide {
 public:
  explicit BookSide(bool is_bid) : is_bid_(is_bid) {}

  // Sets the absolute size at `price`; qty 0 removes the level. Returns false when asked to remove a
  // level that is not there (Binance documents this as normal for diffs; callers count it).
  bool set(int64_t price, int64_t qty);
  void clear() { keyed_.clear(); }

  bool empty() const { return keyed_.empty(); }
  size_t size() const { return keyed_.size(); }
  // i = 0 is the best level; i must be < size().
  BookLevel level(size_t i) const {
    const Keyed& k = keyed_[keyed_.size() - 1 - i];
    return {is_bid_ ? k.key : -k.key, k.qty};
  }
  BookLevel best() const { return level(0); }
  // Size resting at `price`, 0 if none.
  int64_t qty_at(int64_t price) const;
  bool is_bid() const { return is_bid_; }

 private:
  struct Keyed {
    int64_t key;  // price for bids, -price for asks: ascending, best last
    int64_t qty;
  };
  bool is_bid_;
  std::vector<Keyed> keyed_;
};

class OrderBook {
 public:
  OrderBook() : bids_(true), asks_(false) {}

  BookSide& bids() { return bids_; }
  BookSide& asks() { return asks_; }
  const BookSide& bids() const { return bids_; }
  const BookSide& asks() const { return asks_; }
  BookSide& side(bool is_bid) { return is_bid ? bids_ : asks_; }

  void clear() {
    bids_.clear();
    asks_.clear();
  }
  bool crossed() const {
    return !bids_.empty() && !asks_.empty() && bids_.best().price >= asks_.best().price;
  }
  // Writes the top `depth` levels as rows (bid price, bid qty, ask price, ask qty); rows past the
  // end of a side get price 0 and qty 0.
  void top(int64_t* out, size_t depth) const;

 private:
  BookSide bids_;
  BookSide asks_;
};

}  // namespace trader
