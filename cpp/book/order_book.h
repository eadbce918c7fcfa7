// Exact L2 order book in integer ticks and lots: every level is kept, at any price.
//
// Each side maps a price to a key that grows toward the better side (bids: key = price; asks:
// key = 2^63 - price), so both sides share one code path with "best = highest key"; every valid
// price (1 .. 2^63-1) gives a key in 1 .. 2^63-1.
//
// The levels of a side live in two places:
//   * a dense window of W ticks (W a power of two) for the keys [base, base + W): the size at each
//     tick in a ring buffer indexed by key mod W, a bitmap of the non-empty ticks and a summary
//     bitmap (one bit per non-zero bitmap word). An update there is O(1) with no search; the next
//     level below a removed best, and the top-L walk, take a count-leading-zeros per level (a few
//     more across empty stretches, through the summary).
//   * an overflow for the levels below the window (far from the top: stale far bids, far asks):
//     sorted, in chunks of at most 128 levels, so an insert or erase there moves at most one chunk.
//     The levels nearest the window sit at its back, so moving the window moves levels at the back.
// Invariants: no level has a key >= base + W; every overflow key is < base; a non-empty side has
// its best level in the window. The window follows the best level: a new best above the window
// moves it up (levels falling off its bottom go to the overflow), and a best that sinks into the
// bottom quarter moves it down (overflow levels come back in); after a move the best is 7/8 of the
// way up. W starts at kMinWindow and grows 4x (up to kMaxWindow) while more than 1 update in 32
// lands below the window. level(i), size() and top() are exact: size() = window count + overflow
// size, and the walk goes from the best down through the bitmap, then into the overflow.
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

namespace book_detail {

struct Keyed {
  uint64_t key;
  int64_t qty;
};

// Levels in ascending key order, in chunks of at most kChunk (a two-level B-tree without the
// tree): an insert or erase moves at most one chunk, and the first key of every chunk sits in one
// contiguous array for the binary search.
class ChunkedLevels {
 public:
  static constexpr size_t kChunk = 128;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void clear() {
    chunks_.clear();
    firsts_.clear();
    size_ = 0;
  }
  const Keyed& back() const { return chunks_.back().back(); }
  void pop_back() {
    chunks_.back().pop_back();
    --size_;
    if (chunks_.back().empty()) {
      chunks_.pop_back();
      firsts_.pop_back();
    }
  }
  // `l.key` must be above every key held.
  void push_back(const Keyed& l) {
    if (chunks_.empty() || chunks_.back().size() >= kChunk) {
      chunks_.emplace_back();
      chunks_.back().reserve(kChunk + 1);
      firsts_.push_back(l.key);
    }
    chunks_.back().push_back(l);
    ++size_;
  }
  // Same contract as BookSide::set.
  bool set(uint64_t key, int64_t qty);
  // 0 if absent.
  int64_t get(uint64_t key) const;
  // The j-th level counting down from the highest key (j < size()).
  const Keyed& from_back(size_t j) const;
  // Calls f(level) for the min(n, size()) highest levels, highest first; returns how many.
  template <class F>
  size_t visit_from_back(size_t n, F&& f) const {
    size_t m = 0;
    for (size_t c = chunks_.size(); c != 0 && m < n;) {
      const std::vector<Keyed>& v = chunks_[--c];
      for (size_t j = v.size(); j != 0 && m < n; ++m) f(v[--j]);
    }
    return m;
  }

 private:
  std::vector<std::vector<Keyed>> chunks_;  // non-empty, ascending, at most kChunk levels each
  std::vector<uint64_t> firsts_;             // chunks_[i].front().key
  size_t size_ = 0;
};

}  // namespace book_detail

class BookSide {
 public:
  explicit BookSide(bool is_bid);

  // Sets the absolute size at `price`; qty 0 removes the level. Returns false when asked to remove
  // a level that is not there (Binance documents this as normal for diffs; callers count it).
  // Throws std::invalid_argument on price <= 0 or qty < 0 (the side is left unchanged).
  bool set(int64_t price, int64_t qty) {
    if (price <= 0 || qty < 0) bad_level(price);
    const uint64_t k = to_key(price);
    ++updates_;
    if (k - base_ < window_) {  // unsigned: false for keys below base too
      const uint64_t s = k & mask_;
      int64_t& q = qty_[s];
      if (qty != 0) {
        if (q == 0) {
          bits_[s >> 6] |= uint64_t{1} << (s & 63);
          sum_[s >> 12] |= uint64_t{1} << ((s >> 6) & 63);
          ++win_count_;
          if (k > best_) best_ = k;
        }
        q = qty;
        return true;
      }
      if (q == 0) return false;
      q = 0;
      uint64_t& word = bits_[s >> 6];
      word &= ~(uint64_t{1} << (s & 63));
      if (word == 0) sum_[s >> 12] &= ~(uint64_t{1} << ((s >> 6) & 63));
      --win_count_;
      if (k == best_) best_removed();
      return true;
    }
    return set_outside(k, qty);
  }
  void clear();

  bool empty() const { return win_count_ == 0; }  // a non-empty side has its best in the window
  size_t size() const { return win_count_ + over_.size(); }
  // i = 0 is the best level; i must be < size().
  BookLevel level(size_t i) const;
  BookLevel best() const {
    if (win_count_ == 0) return {0, 0};
    return {to_price(best_), qty_[best_ & mask_]};
  }
  // Size resting at `price`, 0 if none.
  int64_t qty_at(int64_t price) const;
  bool is_bid() const { return is_bid_; }

  // Writes the best min(n, size()) levels, best first: price to out[i * stride] and qty to
  // out[i * stride + 1]; returns how many.
  size_t write_top(int64_t* out, size_t n, size_t stride) const;

  // Window size in ticks now (for benchmarks and tests).
  size_t window_ticks() const { return static_cast<size_t>(window_); }

  static constexpr uint64_t kMinWindow = 1 << 12;  // ticks; 32 KiB of sizes
  static constexpr uint64_t kMaxWindow = 1 << 16;  // ticks; 512 KiB of sizes

 private:
  using Keyed = book_detail::Keyed;
  static constexpr uint64_t kFlip = uint64_t{1} << 63;

  // Bids: key = price; asks: key = 2^63 - price (branch-free: bids and asks interleave in a feed,
  // so a branch on the side would mispredict). The map is its own inverse.
  uint64_t to_key(int64_t price) const {
    return ((static_cast<uint64_t>(price) ^ neg_) - neg_) + flip_;
  }
  int64_t to_price(uint64_t key) const {
    return static_cast<int64_t>(((key ^ neg_) - neg_) + flip_);
  }
  // The key of ring slot s (which must be inside the window).
  uint64_t slot_key(uint64_t s) const { return base_ + ((s - base_) & mask_); }

  [[noreturn]] static void bad_level(int64_t price);
  bool set_outside(uint64_t k, int64_t qty);
  void best_removed();
  // Highest set slot at or below slot s, going down and wrapping; some slot must be set.
  uint64_t scan_down(uint64_t s) const;
  // Highest non-zero bitmap word strictly below word w, wrapping; some other word must be set.
  uint64_t prev_word(uint64_t w) const;
  void set_empty();                  // the side has no level (any more)
  void move_up(uint64_t k) { evict_below(target_base(k)); }  // k >= base + W: k ends 7/8 up
  void evict_below(uint64_t nb);     // window levels below nb to the overflow; base = nb >= base
  void move_down();                  // best in the bottom quarter: best 7/8 up
  void pull_overflow();              // overflow levels with key >= base into the window
  void maybe_grow();
  uint64_t target_base(uint64_t k) const;
  void window_put(uint64_t k, int64_t qty) {
    const uint64_t s = k & mask_;
    qty_[s] = qty;
    bits_[s >> 6] |= uint64_t{1} << (s & 63);
    sum_[s >> 12] |= uint64_t{1} << ((s >> 6) & 63);
    ++win_count_;
  }
  void resize_window(uint64_t w);

  bool is_bid_;
  uint64_t neg_;             // 0 for bids, all ones for asks
  uint64_t flip_;            // 0 for bids, 2^63 for asks
  uint64_t window_ = 0;      // W
  uint64_t mask_ = 0;        // W - 1
  uint64_t base_ = 0;        // lowest key of the window, a multiple of 64; base + W <= 2^63
  uint64_t best_ = 0;        // key of the best level; 0 when the side is empty
  size_t win_count_ = 0;     // levels in the window
  uint64_t updates_ = 0;     // set() calls since the last growth check
  uint64_t misses_ = 0;      // of those, updates of overflow levels
  std::vector<int64_t> qty_;    // W sizes, slot = key mod W
  std::vector<uint64_t> bits_;  // W / 64 words: bit set = size at that slot non-zero
  std::vector<uint64_t> sum_;   // W / 4096 words: bit set = that bits_ word non-zero
  book_detail::ChunkedLevels over_;  // levels below the window
};

class OrderBook {
 public:
  OrderBook() : bids_(true), asks_(false) {}

  BookSide& bids() { return bids_; }
  BookSide& asks() { return asks_; }
  const BookSide& bids() const { return bids_; }
  const BookSide& asks() const { return asks_; }
  BookSide& side(bool is_bid) { return is_bid ? bids_ : asks_; }
  const BookSide& side(bool is_bid) const { return is_bid ? bids_ : asks_; }

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
