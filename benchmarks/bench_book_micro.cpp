// Micro-benchmark and randomized cross-check of the L2 book (cpp/book/order_book.*).
// Not part of the default build. Build by hand, e.g.:
//   g++ -O3 -std=c++17 -Icpp benchmarks/bench_book_micro.cpp cpp/book/order_book.cpp
//       cpp/book/replay.cpp cpp/events/npy_events.cpp -o /tmp/bench_book_micro
// Usage:
//   bench_book_micro bench  REPEATS events.npy...   median ns per level update of replay_all
//   bench_book_micro verify events.npy...           replay against a std::map book, compare often
//   bench_book_micro fuzz   SEED OPS                randomized scenarios against a std::map book
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "book/order_book.h"
#include "book/replay.h"
#include "events/npy_events.h"

using namespace trader;

namespace {

struct Ref {
  std::map<int64_t, int64_t> side[2];  // [0] asks, [1] bids
  bool set(bool bid, int64_t p, int64_t q) {
    auto& s = side[bid];
    if (q == 0) return s.erase(p) != 0;
    s[p] = q;
    return true;
  }
  std::vector<int64_t> top(size_t depth) const {
    std::vector<int64_t> out(depth * 4, 0);
    size_t i = 0;
    for (auto it = side[1].rbegin(); it != side[1].rend() && i < depth; ++it, ++i) {
      out[4 * i] = it->first;
      out[4 * i + 1] = it->second;
    }
    i = 0;
    for (auto it = side[0].begin(); it != side[0].end() && i < depth; ++it, ++i) {
      out[4 * i + 2] = it->first;
      out[4 * i + 3] = it->second;
    }
    return out;
  }
};

long g_fail = 0;
#define EXPECT(c)                                                                       \
  do {                                                                                  \
    if (!(c)) {                                                                         \
      if (g_fail++ < 20)                                                                \
        std::fprintf(stderr, "FAIL %s:%d %s (%s)\n", __FILE__, __LINE__, #c, ctx);       \
    }                                                                                   \
  } while (0)

#ifndef BOOK_BASELINE
bool full_equal(const OrderBook& b, const Ref& r) {
  for (int bid = 0; bid < 2; ++bid) {
    const BookSide& s = bid ? b.bids() : b.asks();
    if (s.size() != r.side[bid].size()) return false;
    if (s.empty() != r.side[bid].empty()) return false;
    std::vector<int64_t> all(2 * s.size() + 2);
    if (s.write_top(all.data(), s.size() + 1, 2) != s.size()) return false;
    size_t i = 0;
    auto cmp = [&](int64_t p, int64_t q) {
      const BookLevel l = s.level(i);
      const bool ok = l.price == p && l.qty == q && all[2 * i] == p && all[2 * i + 1] == q &&
                      s.qty_at(p) == q;
      ++i;
      return ok;
    };
    if (bid) {
      for (auto it = r.side[1].rbegin(); it != r.side[1].rend(); ++it)
        if (!cmp(it->first, it->second)) return false;
    } else {
      for (auto& kv : r.side[0])
        if (!cmp(kv.first, kv.second)) return false;
    }
  }
  return true;
}

void check_state(const OrderBook& b, const Ref& r, std::mt19937_64& rng, const char* ctx) {
  for (int bid = 0; bid < 2; ++bid) {
    const BookSide& s = bid ? b.bids() : b.asks();
    const auto& m = r.side[bid];
    EXPECT(s.size() == m.size());
    EXPECT(s.empty() == m.empty());
    if (!m.empty()) {
      const auto best = bid ? *m.rbegin() : *m.begin();
      EXPECT(s.best().price == best.first && s.best().qty == best.second);
      // a random level by rank
      const size_t i = rng() % m.size();
      auto it = bid ? std::prev(m.end(), static_cast<long>(i) + 1)
                    : std::next(m.begin(), static_cast<long>(i));
      if (m.size() < 5000 || (rng() & 7) == 0) {
        const BookLevel l = s.level(i);
        EXPECT(l.price == it->first && l.qty == it->second);
      }
      EXPECT(s.qty_at(it->first) == it->second);
    }
  }
  const size_t depth = 1 + rng() % 40;
  std::vector<int64_t> got(depth * 4, -7);
  b.top(got.data(), depth);
  EXPECT(got == r.top(depth));
  const bool rc = !r.side[0].empty() && !r.side[1].empty() &&
                  r.side[1].rbegin()->first >= r.side[0].begin()->first;
  EXPECT(b.crossed() == rc);
}

#endif

// ---------------------------------------------------------------------------------------------
int bench(int repeats, int argc, char** argv) {
  for (int a = 0; a < argc; ++a) {
    const std::vector<Event> ev = read_events_npy(argv[a]);
    std::vector<double> t;
    ReplayStats st{};
    for (int r = 0; r < repeats; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      st = replay_all(ev.data(), ev.size());
      const auto t1 = std::chrono::steady_clock::now();
      t.push_back(std::chrono::duration<double>(t1 - t0).count());
    }
    std::sort(t.begin(), t.end());
    const double med = t[t.size() / 2];
    Replayer rp;
    for (const Event& e : ev) rp.apply(e);
#ifdef BOOK_BASELINE
    const size_t wb = 0, wa = 0;
#else
    const size_t wb = rp.book().bids().window_ticks(), wa = rp.book().asks().window_ticks();
#endif
    std::printf("%-28s %8zu events %8llu updates  median %7.2f ms (min %7.2f)  "
                "%6.1f ns/update (min %6.1f)  crossed %llu  W bid %zu ask %zu  levels %zu/%zu\n",
                argv[a], ev.size(), static_cast<unsigned long long>(st.level_updates), med * 1e3,
                t[0] * 1e3, med / static_cast<double>(st.level_updates) * 1e9,
                t[0] / static_cast<double>(st.level_updates) * 1e9,
                static_cast<unsigned long long>(st.crossed), wb, wa, rp.book().bids().size(),
                rp.book().asks().size());
  }
  return 0;
}

#ifndef BOOK_BASELINE
int verify(int argc, char** argv) {
  std::mt19937_64 rng(1);
  for (int a = 0; a < argc; ++a) {
    const char* ctx = argv[a];
    const std::vector<Event> ev = read_events_npy(argv[a]);
    OrderBook b;
    Ref r;
    size_t msgs = 0;
    for (const Event& e : ev) {
      if (e.kind == kBookClear) {
        b.clear();
        r.side[0].clear();
        r.side[1].clear();
      } else if (e.kind == kBookSnapshot || e.kind == kBookDelta) {
        const bool bid = e.flags & kFlagBid;
        EXPECT(b.side(bid).set(e.price, e.qty) == r.set(bid, e.price, e.qty));
      } else {
        continue;
      }
      if (e.flags & kFlagEndOfMessage) {
        ++msgs;
        check_state(b, r, rng, ctx);
        if (msgs % 5000 == 0) EXPECT(full_equal(b, r));
      }
    }
    EXPECT(full_equal(b, r));
    std::printf("verify %s: %zu messages, %zu/%zu levels, W %zu/%zu, failures so far %ld\n",
                argv[a], msgs, b.bids().size(), b.asks().size(), b.bids().window_ticks(),
                b.asks().window_ticks(), g_fail);
  }
  return g_fail != 0;
}

// ---------------------------------------------------------------------------------------------
// Randomized scenarios. Each scenario draws prices around a moving mid for each side.
struct Scenario {
  const char* name;
  int64_t lo, hi;       // price bounds (clamped)
  double drift_sd;      // random-walk step of the mid per op (ticks)
  double jump_p;        // probability of a jump of the mid
  int64_t jump;         // jump size (either way)
  double depth_scale;   // typical distance from mid (ticks), geometric-ish
  double far_p;         // probability of a uniformly random price in [lo, hi]
  double del_p;         // probability of a delete
  double del_best_p;    // probability of deleting the best level of a side
  double clear_p;       // probability of clearing a side or the book
};

void run_scenario(const Scenario& sc, uint64_t seed, int ops) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::normal_distribution<double> nd(0, 1);
  OrderBook b;
  Ref r;
  const char* ctx = sc.name;
  const double lo = static_cast<double>(sc.lo), hi = static_cast<double>(sc.hi);
  double mid = lo + (hi - lo) * u(rng);
  auto clamp = [&](double p) -> int64_t {
    if (p <= static_cast<double>(sc.lo)) return sc.lo;
    if (p >= static_cast<double>(sc.hi)) return sc.hi;
    return static_cast<int64_t>(p);
  };
  size_t max_levels = 0;
  for (int op = 0; op < ops; ++op) {
    mid += sc.drift_sd * nd(rng);
    if (u(rng) < sc.jump_p) mid += (rng() & 1 ? 1.0 : -1.0) * static_cast<double>(sc.jump) * u(rng);
    if (mid < static_cast<double>(sc.lo)) mid = static_cast<double>(sc.lo);
    if (mid > static_cast<double>(sc.hi)) mid = static_cast<double>(sc.hi);
    const bool bid = rng() & 1;
    const double x = u(rng);
    if (x < sc.clear_p) {
      if (rng() & 1) {
        b.clear();
        r.side[0].clear();
        r.side[1].clear();
      } else {
        b.side(bid).clear();
        r.side[bid].clear();
      }
      check_state(b, r, rng, ctx);
      continue;
    }
    int64_t price;
    int64_t qty = 1 + static_cast<int64_t>(rng() % 1000000);
    auto& m = r.side[bid];
    if (x < sc.clear_p + sc.del_best_p && !m.empty()) {
      price = bid ? m.rbegin()->first : m.begin()->first;
      qty = 0;
    } else {
      const double y = u(rng);
      if (y < sc.far_p) {
        price = clamp(lo + (hi - lo) * u(rng));
      } else if (y < sc.far_p + 0.3 && !m.empty()) {
        // an existing level by rank, mostly near the top
        const size_t n = m.size();
        const size_t rank = u(rng) < 0.7 ? rng() % std::min<size_t>(n, 20) : rng() % n;
        price = bid ? std::prev(m.end(), static_cast<long>(rank) + 1)->first
                    : std::next(m.begin(), static_cast<long>(rank))->first;
      } else {
        const double d = -std::log(1 - u(rng)) * sc.depth_scale - 2;  // some cross the mid
        price = clamp(bid ? mid - d : mid + d);
      }
      if (u(rng) < sc.del_p) qty = 0;
    }
    const bool want = r.set(bid, price, qty);
    const bool got = b.side(bid).set(price, qty);
    EXPECT(got == want);
    EXPECT(b.side(bid).qty_at(price) == qty);
    const int64_t probe = clamp(mid + (u(rng) - 0.5) * 4 * sc.depth_scale);
    const auto pit = r.side[bid].find(probe);
    EXPECT(b.side(bid).qty_at(probe) == (pit == r.side[bid].end() ? 0 : pit->second));
    check_state(b, r, rng, ctx);
    max_levels = std::max({max_levels, r.side[0].size(), r.side[1].size()});
    if (op % 997 == 0) {
      EXPECT(full_equal(b, r));
      OrderBook copy = b;  // copies are deep
      EXPECT(full_equal(copy, r));
      copy.bids().set(1, 1);
      copy.asks().set(1, 1);
      EXPECT(full_equal(b, r));
    }
  }
  EXPECT(full_equal(b, r));
  std::printf("  %-24s seed %llu: %d ops, max %zu levels, final %zu/%zu, W %zu/%zu, failures %ld\n",
              sc.name, static_cast<unsigned long long>(seed), ops, max_levels, r.side[1].size(),
              r.side[0].size(), b.bids().window_ticks(), b.asks().window_ticks(), g_fail);
}

int fuzz(uint64_t seed, int ops) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const Scenario scenarios[] = {
      // name, lo, hi, drift, jump_p, jump, depth, far_p, del_p, del_best_p, clear_p
      {"walk-near-top", 1, 10'000'000, 3, 0, 0, 30, 0.0, 0.3, 0.05, 0.0},
      {"walk-fast", 1, 10'000'000, 200, 0, 0, 300, 0.01, 0.35, 0.05, 0.0005},
      {"walk-deep", 1, 10'000'000, 20, 0.001, 50'000, 3000, 0.02, 0.3, 0.03, 0.0002},
      {"jumps", 1, 1'000'000'000'000, 10, 0.01, 100'000'000, 500, 0.01, 0.3, 0.05, 0.0005},
      {"sparse-1e12", 1, 1'000'000'000'000, 0, 0, 0, 1e9, 0.5, 0.3, 0.1, 0.001},
      {"delete-best", 1, 1'000'000, 5, 0.002, 20'000, 100, 0.01, 0.1, 0.4, 0.0},
      {"near-zero", 1, 20'000, 50, 0.01, 10'000, 2000, 0.05, 0.3, 0.05, 0.001},
      {"near-int64-max", kMax - 10'000'000, kMax, 50, 0.005, 1'000'000, 5000, 0.05, 0.3, 0.05,
       0.001},
      {"full-int64", 1, kMax, 0, 0, 0, 1e17, 0.6, 0.3, 0.1, 0.001},
      {"tiny-range", 1000, 1060, 1, 0, 0, 10, 0.2, 0.4, 0.1, 0.0},
      {"big-book-trend", 1, 100'000'000, 400, 0.0005, 2'000'000, 20000, 0.01, 0.1, 0.02, 0.0},
      {"big-book-wander", 1, 10'000'000, 100, 0.001, 300'000, 40000, 0.02, 0.15, 0.05, 0.0001},
  };
  for (const Scenario& sc : scenarios) run_scenario(sc, seed++, ops);
  return g_fail != 0;
}

#endif  // BOOK_BASELINE
}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::strcmp(argv[1], "bench") == 0)
    return bench(std::atoi(argv[2]), argc - 3, argv + 3);
#ifndef BOOK_BASELINE
  if (argc >= 3 && std::strcmp(argv[1], "verify") == 0) return verify(argc - 2, argv + 2);
  if (argc >= 4 && std::strcmp(argv[1], "fuzz") == 0)
    return fuzz(std::strtoull(argv[2], nullptr, 10), std::atoi(argv[3]));
#endif
  std::fprintf(stderr, "usage: bench REPEATS files... | verify files... | fuzz SEED OPS\n");
  return 2;
}
