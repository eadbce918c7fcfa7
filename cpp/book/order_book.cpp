#include "book/order_book.h"

#include <algorithm>

namespace trader {

namespace {

// Growth of the window: checked after every kGrowCheck updates below it.
constexpr uint64_t kGrowCheck = 64;
constexpr uint64_t kGrowRatio = 32;

inline int top_bit(uint64_t x) { return 63 - __builtin_clzll(x); }
// Bits 0..b inclusive.
inline uint64_t bits_upto(uint64_t b) { return ~uint64_t{0} >> (63 - b); }

}  // namespace

namespace book_detail {

namespace {

inline std::vector<Keyed>::const_iterator find_key(const std::vector<Keyed>& v, uint64_t key) {
  return std::lower_bound(v.begin(), v.end(), key,
                          [](const Keyed& l, uint64_t k) { return l.key < k; });
}

}  // namespace

bool ChunkedLevels::set(uint64_t key, int64_t qty) {
  // The last chunk whose first key is <= key (or the first chunk, for a key below them all).
  size_t c = static_cast<size_t>(std::upper_bound(firsts_.begin(), firsts_.end(), key) -
                                 firsts_.begin());
  if (c == 0) {
    if (qty == 0) return false;
    if (chunks_.empty()) {
      push_back({key, qty});
      return true;
    }
    c = 1;
  }
  --c;
  std::vector<Keyed>& v = chunks_[c];
  auto it = v.begin() + (find_key(v, key) - v.cbegin());
  const bool found = it != v.end() && it->key == key;
  if (qty == 0) {
    if (!found) return false;
    v.erase(it);
    --size_;
    if (v.empty()) {
      chunks_.erase(chunks_.begin() + static_cast<std::ptrdiff_t>(c));
      firsts_.erase(firsts_.begin() + static_cast<std::ptrdiff_t>(c));
    } else {
      firsts_[c] = v.front().key;
    }
    return true;
  }
  if (found) {
    it->qty = qty;
    return true;
  }
  v.insert(it, Keyed{key, qty});
  ++size_;
  firsts_[c] = v.front().key;
  if (v.size() > kChunk) {
    // Split in halves.
    std::vector<Keyed> hi;
    hi.reserve(kChunk + 1);
    const size_t half = v.size() / 2;
    hi.assign(v.begin() + static_cast<std::ptrdiff_t>(half), v.end());
    v.resize(half);
    const uint64_t first = hi.front().key;
    chunks_.insert(chunks_.begin() + static_cast<std::ptrdiff_t>(c) + 1, std::move(hi));
    firsts_.insert(firsts_.begin() + static_cast<std::ptrdiff_t>(c) + 1, first);
  }
  return true;
}

int64_t ChunkedLevels::get(uint64_t key) const {
  const size_t c = static_cast<size_t>(std::upper_bound(firsts_.begin(), firsts_.end(), key) -
                                       firsts_.begin());
  if (c == 0) return 0;
  const std::vector<Keyed>& v = chunks_[c - 1];
  auto it = find_key(v, key);
  return (it != v.end() && it->key == key) ? it->qty : 0;
}

const Keyed& ChunkedLevels::from_back(size_t j) const {
  for (size_t c = chunks_.size();;) {
    const std::vector<Keyed>& v = chunks_[--c];
    if (j < v.size()) return v[v.size() - 1 - j];
    j -= v.size();
  }
}

}  // namespace book_detail

BookSide::BookSide(bool is_bid)
    : is_bid_(is_bid), neg_(is_bid ? 0 : ~uint64_t{0}), flip_(is_bid ? 0 : kFlip) {
  resize_window(kMinWindow);
}

void BookSide::bad_level(int64_t price) {
  if (price <= 0) throw std::invalid_argument("book level price must be > 0 ticks");
  throw std::invalid_argument("book level qty must be >= 0 lots");
}

uint64_t BookSide::target_base(uint64_t k) const {
  const uint64_t up = window_ - window_ / 8;
  const uint64_t b = k > up ? (k - up) & ~uint64_t{63} : 0;
  const uint64_t hi = kFlip - window_;
  return b < hi ? b : hi;
}

uint64_t BookSide::prev_word(uint64_t w) const {
  const uint64_t sum_mask = (window_ >> 12) - 1;
  uint64_t sw = w >> 6;
  uint64_t y = sum_[sw] & ((uint64_t{1} << (w & 63)) - 1);
  while (y == 0) {
    sw = (sw - 1) & sum_mask;
    y = sum_[sw];
  }
  return (sw << 6) | static_cast<uint64_t>(top_bit(y));
}

uint64_t BookSide::scan_down(uint64_t s) const {
  uint64_t w = s >> 6;
  const uint64_t x = bits_[w] & bits_upto(s & 63);
  if (x != 0) return (w << 6) | static_cast<uint64_t>(top_bit(x));
  w = prev_word(w);
  return (w << 6) | static_cast<uint64_t>(top_bit(bits_[w]));
}

void BookSide::pull_overflow() {
  while (!over_.empty() && over_.back().key >= base_) {
    window_put(over_.back().key, over_.back().qty);
    over_.pop_back();
  }
}

void BookSide::set_empty() {
  best_ = 0;
  // Park the window at the top of the key range, where (almost) no level goes: the next level set
  // takes the slow path and places the window around itself.
  base_ = kFlip - window_;
}

void BookSide::evict_below(uint64_t nb) {
  // Levels with keys in [base, min(nb, base + W)) leave the window for the back of the overflow:
  // they are above every overflow key, and visited in ascending order.
  const uint64_t words = std::min(nb - base_, window_) >> 6;
  const uint64_t word_mask = (window_ >> 6) - 1;
  uint64_t w = (base_ & mask_) >> 6;
  uint64_t key0 = base_;
  for (uint64_t j = 0; j < words && win_count_ != 0; ++j, key0 += 64, w = (w + 1) & word_mask) {
    uint64_t x = bits_[w];
    if (x == 0) continue;
    bits_[w] = 0;
    sum_[w >> 6] &= ~(uint64_t{1} << (w & 63));
    do {
      const uint64_t b = static_cast<uint64_t>(__builtin_ctzll(x));
      const uint64_t s = (w << 6) | b;
      over_.push_back({key0 + b, qty_[s]});
      qty_[s] = 0;
      --win_count_;
      x &= x - 1;
    } while (x != 0);
  }
  base_ = nb;
}

void BookSide::move_down() {
  const uint64_t nb = target_base(best_);
  if (nb >= base_) return;
  // Every window level is <= best < nb + W, so the slots that change hands (keys [nb, base)) are
  // empty; only overflow levels move in.
  base_ = nb;
  pull_overflow();
}

void BookSide::best_removed() {
  if (win_count_ == 0) {
    if (over_.empty()) {
      set_empty();
      return;
    }
    best_ = over_.back().key;
    base_ = target_base(best_);
    pull_overflow();
    return;
  }
  best_ = slot_key(scan_down(best_ & mask_));
  if (best_ - base_ < window_ / 4) move_down();
}

void BookSide::resize_window(uint64_t w) {
  if (win_count_ != 0) {
    // Everything to the overflow, then back into the new window.
    evict_below(base_ + window_);
  }
  window_ = w;
  mask_ = w - 1;
  qty_.assign(w, 0);
  bits_.assign(w >> 6, 0);
  sum_.assign(w >> 12, 0);
  if (best_ != 0) {
    base_ = target_base(best_);
    pull_overflow();
  } else {
    set_empty();
  }
}

bool BookSide::set_outside(uint64_t k, int64_t qty) {
  if (win_count_ == 0) {  // empty side: the invariant keeps the overflow empty too
    if (qty == 0) return false;
    base_ = target_base(k);
    window_put(k, qty);
    best_ = k;
    return true;
  }
  if (k >= base_) {  // above the window: a new best
    if (qty == 0) return false;
    move_up(k);
    window_put(k, qty);
    best_ = k;
    return true;
  }
  // Below the window: never the best level.
  const bool ok = over_.set(k, qty);
  if (++misses_ == kGrowCheck) maybe_grow();
  return ok;
}

void BookSide::maybe_grow() {
  // More than 1 update in kGrowRatio below the window since the last check: 4 times wider.
  if (window_ < kMaxWindow && misses_ * kGrowRatio > updates_) {
    resize_window(std::min(window_ * 4, kMaxWindow));
  }
  misses_ = 0;
  updates_ = 0;
}

void BookSide::clear() {
  if (win_count_ != 0) {
    for (uint64_t sw = 0; sw < sum_.size(); ++sw) {
      uint64_t y = sum_[sw];
      while (y != 0) {
        const uint64_t w = (sw << 6) | static_cast<uint64_t>(__builtin_ctzll(y));
        uint64_t x = bits_[w];
        while (x != 0) {
          qty_[(w << 6) | static_cast<uint64_t>(__builtin_ctzll(x))] = 0;
          x &= x - 1;
        }
        bits_[w] = 0;
        y &= y - 1;
      }
      sum_[sw] = 0;
    }
  }
  win_count_ = 0;
  over_.clear();
  set_empty();
}

BookLevel BookSide::level(size_t i) const {
  if (i >= win_count_) {
    const Keyed& l = over_.from_back(i - win_count_);
    return {to_price(l.key), l.qty};
  }
  const uint64_t s0 = best_ & mask_;
  uint64_t w = s0 >> 6;
  uint64_t x = bits_[w] & bits_upto(s0 & 63);
  for (;;) {
    const size_t c = static_cast<size_t>(__builtin_popcountll(x));
    if (i < c) break;
    i -= c;
    w = prev_word(w);
    x = bits_[w];
  }
  for (; i != 0; --i) x &= ~(uint64_t{1} << top_bit(x));
  const uint64_t s = (w << 6) | static_cast<uint64_t>(top_bit(x));
  return {to_price(slot_key(s)), qty_[s]};
}

size_t BookSide::write_top(int64_t* out, size_t n, size_t stride) const {
  size_t m = 0;
  const size_t in_window = std::min(n, win_count_);
  if (in_window != 0) {
    const uint64_t s0 = best_ & mask_;
    uint64_t w = s0 >> 6;
    uint64_t x = bits_[w] & bits_upto(s0 & 63);
    while (m < in_window) {
      if (x == 0) {
        w = prev_word(w);
        x = bits_[w];
      }
      const int b = top_bit(x);
      x &= ~(uint64_t{1} << b);
      const uint64_t s = (w << 6) | static_cast<uint64_t>(b);
      out[m * stride] = to_price(slot_key(s));
      out[m * stride + 1] = qty_[s];
      ++m;
    }
  }
  if (m < n) {
    int64_t* o = out + m * stride;
    m += over_.visit_from_back(n - m, [&](const Keyed& l) {
      o[0] = to_price(l.key);
      o[1] = l.qty;
      o += stride;
    });
  }
  return m;
}

int64_t BookSide::qty_at(int64_t price) const {
  if (price <= 0) return 0;
  const uint64_t k = to_key(price);
  if (k - base_ < window_) return qty_[k & mask_];
  if (k >= base_) return 0;
  return over_.get(k);
}

void OrderBook::top(int64_t* out, size_t depth) const {
  const size_t nb = bids_.write_top(out, depth, 4);
  const size_t na = asks_.write_top(out + 2, depth, 4);
  for (size_t i = nb; i < depth; ++i) {
    out[4 * i] = 0;
    out[4 * i + 1] = 0;
  }
  for (size_t i = na; i < depth; ++i) {
    out[4 * i + 2] = 0;
    out[4 * i + 3] = 0;
  }
}

}  // namespace trader
