// Self-contained tests of the C++ core (no test framework): the order book against a reference
// std::map, events.npy reading, replay, sampling and the bookTicker check on the bundled sample.
//
// Usage: test_core <sample folder>   (python/trader/data/sample: events.npy and meta.json)
// Prints each failing check as file:line: expression, then "N passed, M failed" on its own line;
// exits 1 if anything failed.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "book/order_book.h"
#include "book/replay.h"
#include "events/event.h"
#include "events/npy_events.h"

using namespace trader;
namespace fs = std::filesystem;

// ---- a tiny check harness ----------------------------------------------------------------------
namespace {

uint64_t g_passed = 0;
uint64_t g_failed = 0;
constexpr uint64_t kMaxPrinted = 50;  // a broken invariant in the 200k-op loop must not flood

void report_failure(const char* file, int line, const std::string& what) {
  if (g_failed < kMaxPrinted) std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, what.c_str());
  if (g_failed == kMaxPrinted) std::fprintf(stderr, "(further failures not printed)\n");
  ++g_failed;
}

}  // namespace

#define CHECK(expr)                                       \
  do {                                                    \
    if (expr) {                                           \
      ++g_passed;                                         \
    } else {                                              \
      report_failure(__FILE__, __LINE__, #expr);          \
    }                                                     \
  } while (0)

#define CHECK_EQ(a, b)                                                                        \
  do {                                                                                        \
    const auto va_ = (a);                                                                     \
    const auto vb_ = (b);                                                                     \
    if (va_ == vb_) {                                                                         \
      ++g_passed;                                                                             \
    } else {                                                                                  \
      std::ostringstream os_;                                                                 \
      os_ << #a " == " #b " (" << va_ << " vs " << vb_ << ")";                                \
      report_failure(__FILE__, __LINE__, os_.str());                                          \
    }                                                                                         \
  } while (0)

// Checks that `stmt` throws `Exc` whose what() contains `needle` ("" = any message).
#define CHECK_THROWS(stmt, Exc, needle)                                                       \
  do {                                                                                        \
    bool thrown_ = false;                                                                     \
    std::string msg_;                                                                         \
    try {                                                                                     \
      stmt;                                                                                   \
    } catch (const Exc& e_) {                                                                 \
      thrown_ = true;                                                                         \
      msg_ = e_.what();                                                                       \
    } catch (const std::exception& e_) {                                                      \
      report_failure(__FILE__, __LINE__,                                                      \
                     std::string(#stmt " threw another exception: ") + e_.what());            \
      break;                                                                                  \
    }                                                                                         \
    if (!thrown_) {                                                                           \
      report_failure(__FILE__, __LINE__, #stmt " did not throw " #Exc);                       \
    } else if (msg_.find(needle) == std::string::npos) {                                      \
      report_failure(__FILE__, __LINE__,                                                      \
                     std::string(#stmt ": message '") + msg_ + "' lacks '" + (needle) + "'"); \
    } else {                                                                                  \
      ++g_passed;                                                                             \
    }                                                                                         \
  } while (0)

namespace {

std::string g_sample_dir;

std::string sample_events_path() { return g_sample_dir + "/events.npy"; }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

// A scratch folder removed at exit.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("trader_test_core_" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// Sample events, loaded once.
const std::vector<Event>& sample() {
  static const std::vector<Event> ev = read_events_npy(sample_events_path());
  return ev;
}

// "num_events": N from meta.json (a flat integer field; no JSON library needed).
int64_t meta_int(const std::string& key) {
  const std::string meta = read_file(g_sample_dir + "/meta.json");
  const size_t k = meta.find("\"" + key + "\"");
  if (k == std::string::npos) throw std::runtime_error("meta.json has no " + key);
  const size_t colon = meta.find(':', k);
  return std::stoll(meta.substr(colon + 1));
}

// ---- 1. random property test against std::map --------------------------------------------------

// Reference book: price -> qty per side.
struct RefBook {
  std::map<int64_t, int64_t> bids, asks;
  std::map<int64_t, int64_t>& side(bool bid) { return bid ? bids : asks; }
  // The same rows as OrderBook::top.
  std::vector<int64_t> top(size_t depth) const {
    std::vector<int64_t> out(depth * 4, 0);
    size_t i = 0;
    for (auto it = bids.rbegin(); it != bids.rend() && i < depth; ++it, ++i) {
      out[4 * i] = it->first;
      out[4 * i + 1] = it->second;
    }
    i = 0;
    for (auto it = asks.begin(); it != asks.end() && i < depth; ++it, ++i) {
      out[4 * i + 2] = it->first;
      out[4 * i + 3] = it->second;
    }
    return out;
  }
};

bool full_compare(const OrderBook& book, const RefBook& ref) {
  if (book.bids().size() != ref.bids.size() || book.asks().size() != ref.asks.size()) return false;
  size_t i = 0;
  for (auto it = ref.bids.rbegin(); it != ref.bids.rend(); ++it, ++i) {
    const BookLevel l = book.bids().level(i);
    if (l.price != it->first || l.qty != it->second) return false;
  }
  i = 0;
  for (auto it = ref.asks.begin(); it != ref.asks.end(); ++it, ++i) {
    const BookLevel l = book.asks().level(i);
    if (l.price != it->first || l.qty != it->second) return false;
  }
  return true;
}

// One phase of random ops. Prices come from [lo, hi]; some ops reuse a resting price (updates and
// deletes of existing levels) or hit the best few levels (the vector's fast path). drift > 0: fresh
// prices are drawn within +-drift of a mid price that random-walks (with rare far jumps) over
// [lo, hi], so the best levels wander across the whole range as in a trending market.
void random_phase(std::mt19937_64& rng, int64_t lo, int64_t hi, int ops, double delete_p,
                  int64_t drift = 0) {
  OrderBook book;
  RefBook ref;
  constexpr size_t kDepth = 20;
  std::vector<int64_t> got(kDepth * 4);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  std::uniform_int_distribution<int64_t> price_d(lo, hi);
  std::uniform_int_distribution<int64_t> qty_d(1, 1'000'000);
  uint64_t bad_ops = 0;
  size_t max_size = 0;
  int64_t mid = lo + (hi - lo) / 2;
  std::uniform_int_distribution<int64_t> drift_d(-drift, drift);
  for (int op = 0; op < ops; ++op) {
    const bool bid = rng() & 1;
    auto& rs = ref.side(bid);
    int64_t price;
    const double r = u01(rng);
    if (r < 0.35 && !rs.empty()) {
      // an existing level: pick by rank from the best
      const size_t n = rs.size();
      size_t rank = (u01(rng) < 0.7) ? static_cast<size_t>(rng() % std::min<size_t>(n, 12))
                                     : static_cast<size_t>(rng() % n);
      auto it = bid ? std::prev(rs.end(), static_cast<std::ptrdiff_t>(rank) + 1)
                    : std::next(rs.begin(), static_cast<std::ptrdiff_t>(rank));
      price = it->first;
    } else if (r < 0.55 && !rs.empty()) {
      // near the best, either side of it
      const int64_t best = bid ? rs.rbegin()->first : rs.begin()->first;
      const int64_t off = static_cast<int64_t>(rng() % 21) - 10;  // no overflow near the limits
      price = off >= 0 ? (best > hi - off ? hi : best + off) : (best < lo - off ? lo : best + off);
    } else if (drift > 0) {
      const double j = u01(rng);
      if (j < 0.001) {
        mid = price_d(rng);  // a far jump
      } else if (j < 0.3) {
        const int64_t step = drift_d(rng) / 4;
        mid = std::clamp(mid + step, lo + drift, hi - drift);
      }
      price = std::clamp(mid + drift_d(rng), lo, hi);
    } else {
      price = price_d(rng);
    }
    const int64_t qty = u01(rng) < delete_p ? 0 : qty_d(rng);

    const bool present = rs.count(price) != 0;
    const bool ok = book.side(bid).set(price, qty);
    const bool expect_ok = qty != 0 || present;
    if (qty == 0) {
      rs.erase(price);
    } else {
      rs[price] = qty;
    }
    max_size = std::max(max_size, rs.size());

    // After every op: sizes, best levels, top(20), qty_at of the touched and of a random price.
    bool good = ok == expect_ok;
    good = good && book.bids().size() == ref.bids.size() && book.asks().size() == ref.asks.size();
    good = good && book.bids().empty() == ref.bids.empty() && book.asks().empty() == ref.asks.empty();
    if (!ref.bids.empty()) {
      good = good && book.bids().best().price == ref.bids.rbegin()->first &&
             book.bids().best().qty == ref.bids.rbegin()->second;
    }
    if (!ref.asks.empty()) {
      good = good && book.asks().best().price == ref.asks.begin()->first &&
             book.asks().best().qty == ref.asks.begin()->second;
    }
    book.top(got.data(), kDepth);
    good = good && got == ref.top(kDepth);
    good = good && book.side(bid).qty_at(price) == (qty ? qty : 0);
    const int64_t probe = price_d(rng);
    const bool probe_bid = rng() & 1;
    const auto& ps = ref.side(probe_bid);
    const auto pit = ps.find(probe);
    good = good && book.side(probe_bid).qty_at(probe) == (pit == ps.end() ? 0 : pit->second);
    const bool ref_crossed = !ref.bids.empty() && !ref.asks.empty() &&
                             ref.bids.rbegin()->first >= ref.asks.begin()->first;
    good = good && book.crossed() == ref_crossed;
    if (op % 1000 == 999) good = good && full_compare(book, ref);
    if (!good) {
      if (bad_ops < 5) {
        std::fprintf(stderr, "  op %d: set(%s, %lld, %lld) -> %d diverged from the reference\n", op,
                     bid ? "bid" : "ask", static_cast<long long>(price), static_cast<long long>(qty), ok);
      }
      ++bad_ops;
    }
  }
  CHECK_EQ(bad_ops, uint64_t{0});
  CHECK(full_compare(book, ref));
  std::printf("  phase [%lld, %lld]: %d ops, max %zu levels a side, final %zu bids / %zu asks\n",
              static_cast<long long>(lo), static_cast<long long>(hi), ops, max_size, ref.bids.size(),
              ref.asks.size());
}

void test_random_property() {
  std::mt19937_64 rng(20240808);
  // Narrow: 61 prices, both sides overlap (crossed books are legal for the container), many deletes.
  random_phase(rng, 1000, 1060, 60'000, 0.4);
  // Wide: the book grows to thousands of levels, so lower_bound (past the 8-level scan) is used.
  random_phase(rng, 1, 5'000'000, 80'000, 0.25);
  // Very wide near int64 limits: keys are negated for asks, so test large magnitudes.
  random_phase(rng, std::numeric_limits<int64_t>::max() - 100'000, std::numeric_limits<int64_t>::max(),
               60'000, 0.3);
  // Drifting: a mid that walks over a wide range, levels within +-300 ticks of it, many deletes.
  random_phase(rng, 1, 20'000'000, 60'000, 0.45, 300);
  // Drifting near both ends of the price range (price 1 and int64 max).
  random_phase(rng, 1, 5'000, 30'000, 0.45, 200);
  random_phase(rng, std::numeric_limits<int64_t>::max() - 5'000, std::numeric_limits<int64_t>::max(),
               30'000, 0.45, 200);
}

// ---- 2. OrderBook edge cases --------------------------------------------------------------------
void test_book_edges() {
  OrderBook b;
  CHECK(b.bids().empty() && b.asks().empty());
  CHECK(!b.crossed());
  CHECK(b.bids().is_bid() && !b.asks().is_bid());

  // delete of a missing level returns false and changes nothing
  CHECK(!b.bids().set(100, 0));
  CHECK(!b.asks().set(100, 0));
  CHECK(b.bids().empty() && b.asks().empty());
  CHECK(b.bids().set(100, 5));
  CHECK(!b.bids().set(101, 0));
  CHECK(!b.bids().set(99, 0));
  CHECK_EQ(b.bids().size(), size_t{1});
  CHECK(b.bids().set(100, 0));   // real delete
  CHECK(!b.bids().set(100, 0));  // second delete: missing now
  CHECK(b.bids().empty());

  // invalid arguments throw and leave the book as it was
  CHECK(b.bids().set(100, 5));
  CHECK_THROWS(b.bids().set(0, 1), std::invalid_argument, "price");
  CHECK_THROWS(b.bids().set(-5, 1), std::invalid_argument, "price");
  CHECK_THROWS(b.asks().set(0, 0), std::invalid_argument, "price");
  CHECK_THROWS(b.bids().set(100, -1), std::invalid_argument, "qty");
  CHECK_THROWS(b.asks().set(100, std::numeric_limits<int64_t>::min()), std::invalid_argument, "qty");
  CHECK_THROWS(b.asks().set(std::numeric_limits<int64_t>::min(), 1), std::invalid_argument, "price");
  CHECK_EQ(b.bids().size(), size_t{1});
  CHECK_EQ(b.bids().qty_at(100), int64_t{5});
  CHECK(b.asks().empty());

  // qty update in place, qty_at of absent and of invalid prices
  CHECK(b.bids().set(100, 7));
  CHECK_EQ(b.bids().size(), size_t{1});
  CHECK_EQ(b.bids().qty_at(100), int64_t{7});
  CHECK_EQ(b.bids().qty_at(101), int64_t{0});
  CHECK_EQ(b.bids().qty_at(0), int64_t{0});
  CHECK_EQ(b.asks().qty_at(100), int64_t{0});

  // top past the end fills zeros, on both sides independently; depth 0 writes nothing
  CHECK(b.bids().set(99, 3));
  CHECK(b.asks().set(105, 2));
  std::vector<int64_t> t(4 * 4, -1);
  b.top(t.data(), 4);
  const std::vector<int64_t> want = {100, 7, 105, 2, 99, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  CHECK(t == want);
  std::vector<int64_t> guard(4, -1);
  b.top(guard.data(), 0);
  CHECK(guard == std::vector<int64_t>(4, -1));
  OrderBook empty;
  std::vector<int64_t> t2(8, -1);
  empty.top(t2.data(), 2);
  CHECK(t2 == std::vector<int64_t>(8, 0));

  // level(i) order: bids descending, asks ascending
  CHECK(b.asks().set(110, 1));
  CHECK(b.asks().set(104, 9));
  CHECK_EQ(b.asks().level(0).price, int64_t{104});
  CHECK_EQ(b.asks().level(1).price, int64_t{105});
  CHECK_EQ(b.asks().level(2).price, int64_t{110});
  CHECK_EQ(b.bids().level(1).price, int64_t{99});

  // crossed(): needs both sides; best bid >= best ask (locked counts as crossed)
  CHECK(!b.crossed());                    // 100 < 104
  CHECK(b.bids().set(103, 1));
  CHECK(!b.crossed());                    // 103 < 104
  CHECK(b.bids().set(104, 1));
  CHECK(b.crossed());                     // locked: 104 == 104
  CHECK(b.bids().set(104, 0));
  CHECK(!b.crossed());
  CHECK(b.bids().set(200, 1));
  CHECK(b.crossed());                     // 200 > 104
  b.asks().clear();
  CHECK(!b.crossed());                    // one side empty: never crossed
  CHECK(b.asks().set(150, 1));
  CHECK(b.crossed());
  b.clear();
  CHECK(!b.crossed());
  CHECK(b.bids().empty() && b.asks().empty());
  OrderBook only_asks;
  CHECK(only_asks.asks().set(1, 1));
  CHECK(!only_asks.crossed());
}

// ---- 3. read_events_npy ------------------------------------------------------------------------
void test_read_npy(const TempDir& tmp) {
  const std::string path = sample_events_path();
  const std::string bytes = read_file(path);
  // The shape in the header, parsed here independently of the reader.
  const size_t sp = bytes.find("'shape': (");
  CHECK(sp != std::string::npos);
  const size_t shape = static_cast<size_t>(std::stoull(bytes.substr(sp + 10, 24)));
  const std::vector<Event>& ev = sample();
  CHECK_EQ(ev.size(), shape);
  CHECK_EQ(static_cast<int64_t>(ev.size()), meta_int("num_events"));
  CHECK(ev.size() > 1000);
  // Header length: the data must be the file's last shape * 64 bytes.
  const size_t data_off = bytes.size() - shape * sizeof(Event);
  CHECK(std::memcmp(bytes.data() + data_off, ev.data(), shape * sizeof(Event)) == 0);
  CHECK(bytes.find("'descr': " + std::string(kEventNpyDescr)) != std::string::npos);

  // Missing file.
  const std::string missing = tmp.file("no_such.npy");
  CHECK_THROWS(read_events_npy(missing), std::runtime_error, missing);

  // Truncated copies: inside the data, at the end of the header, inside the header, in the magic.
  const std::vector<size_t> cuts = {bytes.size() - 1, bytes.size() - 64, data_off + 10, data_off,
                                    data_off - 5, 9, 4, 0};
  for (size_t cut : cuts) {
    const std::string p = tmp.file("trunc_" + std::to_string(cut) + ".npy");
    write_file(p, bytes.substr(0, cut));
    CHECK_THROWS(read_events_npy(p), std::runtime_error, p);
  }

  // Wrong descr: price as float64 (same header length).
  {
    std::string bad = bytes;
    const std::string from = "('price', '<i8')";
    const size_t at = bad.find(from);
    CHECK(at != std::string::npos && at < data_off);
    bad.replace(at, from.size(), "('price', '<f8')");
    const std::string p = tmp.file("bad_descr.npy");
    write_file(p, bad);
    CHECK_THROWS(read_events_npy(p), std::runtime_error, p);
    CHECK_THROWS(read_events_npy(p), std::runtime_error, "dtype");
  }
  // Big-endian fields.
  {
    std::string bad = bytes;
    const size_t at = bad.find("'<u8'");
    bad[at + 1] = '>';
    const std::string p = tmp.file("bad_endian.npy");
    write_file(p, bad);
    CHECK_THROWS(read_events_npy(p), std::runtime_error, p);
  }
  // Not a .npy at all.
  {
    const std::string p = tmp.file("not_npy.npy");
    write_file(p, "hello world, this is not numpy\n");
    CHECK_THROWS(read_events_npy(p), std::runtime_error, p);
  }
  // Fortran order.
  {
    std::string bad = bytes;
    const size_t at = bad.find("'fortran_order': False");
    CHECK(at != std::string::npos);
    bad.replace(at, 22, "'fortran_order': True ");
    const std::string p = tmp.file("fortran.npy");
    write_file(p, bad);
    CHECK_THROWS(read_events_npy(p), std::runtime_error, p);
  }
  // A header promising far more events than the file holds (and than memory could): must be a
  // clean runtime_error, not an allocation failure.
  for (const char* shape_text : {"99999999999999999", "999999999999999999999999", "x"}) {
    std::string bad = bytes.substr(0, data_off);
    const size_t s = bad.find("'shape': (") + 10;
    const size_t e = bad.find(',', s);
    bad.replace(s, e - s, shape_text);
    // keep the header length field right (format 1.0: 2 bytes little-endian after the magic)
    const size_t hl = bad.size() - 10;
    CHECK(bad[6] == 1);
    bad[8] = static_cast<char>(hl & 0xff);
    bad[9] = static_cast<char>((hl >> 8) & 0xff);
    bad += bytes.substr(data_off, 64 * 3);
    const std::string p = tmp.file(std::string("huge_shape_") + shape_text[0] + std::to_string(std::strlen(shape_text)) + ".npy");
    write_file(p, bad);
    CHECK_THROWS(read_events_npy(p), std::runtime_error, p);
  }
  // An empty array reads as zero events.
  {
    std::string hdr = bytes.substr(0, data_off);
    const size_t s = hdr.find("'shape': (") + 10;
    const size_t e = hdr.find(',', s);
    hdr.replace(s, e - s, std::string(e - s - 1, ' ') + "0");  // same length: "    0"
    const std::string p = tmp.file("empty.npy");
    write_file(p, hdr);
    try {
      CHECK(read_events_npy(p).empty());
    } catch (const std::exception& ex) {
      report_failure(__FILE__, __LINE__, std::string("empty array: ") + ex.what());
    }
  }
}

// ---- 4. replay of the sample --------------------------------------------------------------------
void test_replay_sample() {
  const std::vector<Event>& ev = sample();
  const ReplayStats s = replay_all(ev.data(), ev.size());
  CHECK_EQ(s.events, static_cast<uint64_t>(ev.size()));
  CHECK_EQ(s.level_updates + s.snapshots + s.trades + s.ticker_events, s.events);
  CHECK(s.snapshots >= 1);
  CHECK(s.book_messages > 0);
  CHECK(s.book_messages <= s.level_updates + s.snapshots);
  CHECK(s.trades > 0);
  CHECK(s.ticker_events > 0 && s.ticker_events % 2 == 0);
  CHECK_EQ(s.crossed, uint64_t{0});
  // Independent counts by kind.
  uint64_t by_kind[6] = {0, 0, 0, 0, 0, 0};
  uint64_t book_ends = 0;
  for (const Event& e : ev) {
    if (e.kind < 6) ++by_kind[e.kind];
    if (is_book_event(e) && (e.flags & kFlagEndOfMessage)) ++book_ends;
  }
  CHECK_EQ(s.snapshots, by_kind[kBookClear]);
  CHECK_EQ(s.level_updates, by_kind[kBookSnapshot] + by_kind[kBookDelta]);
  CHECK_EQ(s.trades, by_kind[kTrade]);
  CHECK_EQ(s.ticker_events, by_kind[kBookTicker]);
  CHECK_EQ(s.book_messages, book_ends);
  CHECK_EQ(static_cast<int64_t>(s.trades), meta_int("trade"));

  const TickerCheck c = check_tickers(ev.data(), ev.size());
  CHECK(c.compared > 0);
  CHECK_EQ(c.mismatched, uint64_t{0});
  CHECK_EQ(c.matched, c.compared);
  CHECK(c.mismatches.empty());
  CHECK_EQ(c.replay.crossed, uint64_t{0});
  CHECK(c.crossed.empty());
  CHECK_EQ(c.tickers, s.ticker_events / 2);
  CHECK(c.compared <= c.tickers);
  CHECK_EQ(c.replay.events, s.events);
  std::printf("  %llu events, %llu book messages, tickers compared %llu / %llu, matched %llu\n",
              static_cast<unsigned long long>(s.events), static_cast<unsigned long long>(s.book_messages),
              static_cast<unsigned long long>(c.compared), static_cast<unsigned long long>(c.tickers),
              static_cast<unsigned long long>(c.matched));
}

// ---- 5. sample_top -----------------------------------------------------------------------------
struct Sampled {
  SamplePlan plan;
  std::vector<int64_t> ts, book, flow;
};

Sampled run_sample(const std::vector<Event>& ev, int64_t interval_ns, Clock clock, size_t depth) {
  Sampled s;
  s.plan = plan_samples(ev.data(), ev.size(), interval_ns, clock);
  // Sentinels show any row sample_top failed to write.
  s.ts.assign(s.plan.rows, std::numeric_limits<int64_t>::min());
  s.book.assign(s.plan.rows * depth * 4, -1);
  s.flow.assign(s.plan.rows * 2, -1);
  sample_top(ev.data(), ev.size(), s.plan, depth, s.ts.data(), s.book.data(), s.flow.data());
  return s;
}

// Common row checks; returns the number of rows with both sides.
size_t check_rows(const Sampled& s, size_t depth) {
  const size_t rows = s.plan.rows;
  CHECK(rows > 0);
  CHECK_EQ(s.ts.size(), rows);
  uint64_t unwritten = 0, decreasing = 0, crossed = 0, bad_order = 0, negative_flow = 0;
  size_t both = 0;
  for (size_t r = 0; r < rows; ++r) {
    if (s.ts[r] == std::numeric_limits<int64_t>::min()) ++unwritten;
    if (r && s.ts[r] < s.ts[r - 1]) ++decreasing;
    const int64_t* b = s.book.data() + r * depth * 4;
    for (size_t i = 0; i < depth * 4; ++i) {
      if (b[i] < 0) ++unwritten;
    }
    if (b[0] > 0 && b[2] > 0) {
      ++both;
      if (!(b[0] < b[2])) ++crossed;
    }
    // within a row: bid prices strictly descending, ask prices strictly ascending, zeros only at the end
    for (size_t i = 1; i < depth; ++i) {
      const int64_t* p = b + 4 * (i - 1);
      const int64_t* q = b + 4 * i;
      if (q[0] != 0 && !(p[0] > q[0])) ++bad_order;
      if (q[2] != 0 && !(p[2] != 0 && p[2] < q[2])) ++bad_order;
    }
    if (s.flow[2 * r] < 0 || s.flow[2 * r + 1] < 0) ++negative_flow;
  }
  CHECK_EQ(unwritten, uint64_t{0});
  CHECK_EQ(decreasing, uint64_t{0});
  CHECK_EQ(crossed, uint64_t{0});
  CHECK_EQ(bad_order, uint64_t{0});
  CHECK_EQ(negative_flow, uint64_t{0});
  CHECK(both > 0);
  return both;
}

void test_sample_top() {
  const std::vector<Event>& ev = sample();
  constexpr size_t kDepth = 10;

  // Per book message.
  {
    const Sampled s = run_sample(ev, 0, Clock::kExchange, kDepth);
    size_t ends = 0;
    for (const Event& e : ev) ends += is_book_event(e) && (e.flags & kFlagEndOfMessage);
    CHECK_EQ(s.plan.rows, ends);
    check_rows(s, kDepth);
    // last row == the final book of a separate Replayer
    Replayer r;
    for (const Event& e : ev) r.apply(e);
    std::vector<int64_t> final_top(kDepth * 4);
    r.book().top(final_top.data(), kDepth);
    CHECK(std::equal(final_top.begin(), final_top.end(), s.book.end() - kDepth * 4));
    // every row is the book after its message: spot-check all rows against a second replay
    Replayer r2;
    size_t row = 0;
    uint64_t row_mismatch = 0;
    std::vector<int64_t> t(kDepth * 4);
    int64_t bought = 0, sold = 0, flow_bought = 0, flow_sold = 0;
    for (const Event& e : ev) {
      if (e.kind == kTrade) (e.flags & kFlagBid ? bought : sold) += e.qty;
      if (r2.apply(e)) {
        r2.book().top(t.data(), kDepth);
        if (!std::equal(t.begin(), t.end(), s.book.begin() + row * kDepth * 4)) ++row_mismatch;
        flow_bought += s.flow[2 * row];
        flow_sold += s.flow[2 * row + 1];
        CHECK(flow_bought == bought && flow_sold == sold);
        ++row;
      }
    }
    CHECK_EQ(row, s.plan.rows);
    CHECK_EQ(row_mismatch, uint64_t{0});
  }

  // 100 ms grid on the exchange clock.
  constexpr int64_t kInterval = 100'000'000;
  for (Clock clock : {Clock::kExchange, Clock::kLocal}) {
    const Sampled s = run_sample(ev, kInterval, clock, kDepth);
    CHECK_EQ(s.plan.interval_ns, kInterval);
    CHECK_EQ(s.plan.start_ns % kInterval, int64_t{0});
    check_rows(s, kDepth);
    uint64_t off_grid = 0;
    for (size_t r = 0; r < s.plan.rows; ++r) {
      if (s.ts[r] % kInterval != 0 || s.ts[r] != s.plan.start_ns + static_cast<int64_t>(r) * kInterval) ++off_grid;
    }
    CHECK_EQ(off_grid, uint64_t{0});
    // The grid spans the book messages' timestamps.
    int64_t first = 0, last = 0;
    for (const Event& e : ev) {
      if (!is_book_event(e)) continue;
      const int64_t t = clock == Clock::kExchange ? e.exch_ts : e.local_ts;
      if (t <= 0) continue;
      if (!first) first = t;
      last = std::max(last, t);
    }
    CHECK(s.plan.start_ns >= first && s.plan.start_ns - first < kInterval);
    CHECK(s.ts.back() <= last && last - s.ts.back() < kInterval);
    // Grid row k is the book after every book message whose (running max) time is <= t_k; so the
    // last row is the book of a separate Replayer fed the messages up to the last grid time. Messages
    // stamped after that (less than one interval) belong to no row.
    const int64_t t_last = s.ts.back();
    Replayer r;
    int64_t clock_now = 0;
    size_t i = 0;
    while (i < ev.size()) {
      if (!is_book_event(ev[i])) {
        r.apply(ev[i++]);
        continue;
      }
      size_t j = i;
      int64_t msg_ts = 0;
      for (; j < ev.size() && is_book_event(ev[j]); ++j) {
        msg_ts = std::max(msg_ts, clock == Clock::kExchange ? ev[j].exch_ts : ev[j].local_ts);
        if (ev[j].flags & kFlagEndOfMessage) break;
      }
      clock_now = std::max(clock_now, msg_ts);
      if (clock_now > t_last) break;
      for (; i <= j && i < ev.size(); ++i) r.apply(ev[i]);
    }
    std::vector<int64_t> want(kDepth * 4);
    r.book().top(want.data(), kDepth);
    CHECK(std::equal(want.begin(), want.end(), s.book.end() - kDepth * 4));
    // With the grid extended past the last message, the last row is the final book.
    Sampled ext = s;
    ext.plan.rows += 1;
    ext.ts.assign(ext.plan.rows, 0);
    ext.book.assign(ext.plan.rows * kDepth * 4, -1);
    ext.flow.assign(ext.plan.rows * 2, -1);
    sample_top(ev.data(), ev.size(), ext.plan, kDepth, ext.ts.data(), ext.book.data(), ext.flow.data());
    Replayer full;
    for (const Event& e : ev) full.apply(e);
    full.book().top(want.data(), kDepth);
    CHECK(std::equal(want.begin(), want.end(), ext.book.end() - kDepth * 4));
    CHECK(std::equal(s.book.begin(), s.book.end(), ext.book.begin()));
    std::printf("  grid 100 ms (%s clock): %zu rows\n", clock == Clock::kExchange ? "exchange" : "local",
                s.plan.rows);
  }

  // Degenerate inputs: no events; events without book messages.
  {
    const SamplePlan p0 = plan_samples(nullptr, 0, kInterval, Clock::kExchange);
    CHECK_EQ(p0.rows, size_t{0});
    const SamplePlan p1 = plan_samples(nullptr, 0, 0, Clock::kExchange);
    CHECK_EQ(p1.rows, size_t{0});
    CHECK_THROWS(plan_samples(ev.data(), ev.size(), -1, Clock::kExchange), std::invalid_argument, "interval");
  }
}

// ---- 6. Replayer rejects bad events ------------------------------------------------------------
Event level_event(uint8_t kind, uint8_t flags, int64_t price, int64_t qty) {
  Event e{};
  e.kind = kind;
  e.flags = flags;
  e.file = 3;
  e.line = 4242;
  e.exch_ts = 1;
  e.local_ts = 1;
  e.price = price;
  e.qty = qty;
  return e;
}

void test_replayer_rejects() {
  Replayer r;
  for (uint8_t kind : {uint8_t{0}, uint8_t{6}, uint8_t{7}, uint8_t{255}}) {
    CHECK_THROWS(r.apply(level_event(kind, kFlagBid | kFlagEndOfMessage, 100, 1)), std::invalid_argument,
                 "unknown event kind");
  }
  for (uint8_t kind : {uint8_t{kBookSnapshot}, uint8_t{kBookDelta}}) {
    CHECK_THROWS(r.apply(level_event(kind, 0, 100, 1)), std::invalid_argument, "flags");
    CHECK_THROWS(r.apply(level_event(kind, kFlagEndOfMessage, 100, 1)), std::invalid_argument, "flags");
    CHECK_THROWS(r.apply(level_event(kind, kFlagBid | kFlagAsk, 100, 1)), std::invalid_argument, "flags");
    CHECK_THROWS(r.apply(level_event(kind, kFlagBid | kFlagAsk | kFlagEndOfMessage, 100, 1)),
                 std::invalid_argument, "flags");
    CHECK_THROWS(r.apply(level_event(kind, kFlagBid, 0, 1)), std::invalid_argument, "price");
    CHECK_THROWS(r.apply(level_event(kind, kFlagAsk, -1, 1)), std::invalid_argument, "price");
    CHECK_THROWS(r.apply(level_event(kind, kFlagBid, 100, -1)), std::invalid_argument, "qty");
  }
  // messages name the file index and line
  CHECK_THROWS(r.apply(level_event(9, 0, 100, 1)), std::invalid_argument, "file #3 line 4242");
  // the book is untouched by rejected events; good ones still apply
  CHECK(r.book().bids().empty() && r.book().asks().empty());
  CHECK(r.apply(level_event(kBookDelta, kFlagBid | kFlagEndOfMessage, 100, 1)));
  CHECK(!r.apply(level_event(kBookDelta, kFlagAsk, 101, 1)));
  CHECK_EQ(r.book().bids().qty_at(100), int64_t{1});
  CHECK_EQ(r.book().asks().qty_at(101), int64_t{1});
  // a delete of a missing level is counted, not an error
  CHECK(r.apply(level_event(kBookDelta, kFlagAsk | kFlagEndOfMessage, 555, 0)));
  CHECK_EQ(r.stats().missing_deletes, uint64_t{1});
  // trades and tickers never end a book message; a clear with END does
  CHECK(!r.apply(level_event(kTrade, kFlagBid | kFlagEndOfMessage, 100, 1)));
  CHECK(!r.apply(level_event(kBookTicker, kFlagBid, 100, 1)));
  CHECK(r.apply(level_event(kBookClear, kFlagEndOfMessage, 0, 0)));
  CHECK(r.book().bids().empty() && r.book().asks().empty());
  // a crossed book message is counted with its place
  CHECK(r.apply(level_event(kBookDelta, kFlagBid | kFlagEndOfMessage, 200, 1)));
  CHECK(r.apply(level_event(kBookDelta, kFlagAsk | kFlagEndOfMessage, 150, 1)));
  CHECK_EQ(r.stats().crossed, uint64_t{1});
  CHECK(r.crossed_examples().size() == 1 && r.crossed_examples()[0].at.line == 4242 &&
        r.crossed_examples()[0].bid == 200 && r.crossed_examples()[0].ask == 150);

  // check_tickers: an ask half without its bid half, and a ticker without a side, are refused
  std::vector<Event> v = {level_event(kBookTicker, kFlagAsk | kFlagEndOfMessage, 100, 1)};
  CHECK_THROWS(check_tickers(v.data(), v.size()), std::invalid_argument, "bookTicker");
  v = {level_event(kBookTicker, kFlagEndOfMessage, 100, 1)};
  CHECK_THROWS(check_tickers(v.data(), v.size()), std::invalid_argument, "bookTicker");
  // sample_top propagates the Replayer's refusal
  v = {level_event(kBookDelta, kFlagEndOfMessage, 100, 1)};
  SamplePlan plan = plan_samples(v.data(), v.size(), 0, Clock::kExchange);
  std::vector<int64_t> ts(plan.rows + 1), bk((plan.rows + 1) * 4), fl((plan.rows + 1) * 2);
  CHECK_THROWS(sample_top(v.data(), v.size(), plan, 1, ts.data(), bk.data(), fl.data()),
               std::invalid_argument, "flags");
}

// ---- 7. trade flow in interval mode: a trade inside an unterminated book message --------------
void test_interval_trade_flow() {
  // Book message at t=1 (END), then a book event without END followed by a trade (malformed
  // message boundaries), then a message at t=250.
  auto at = [](Event e, int64_t t) {
    e.exch_ts = t;
    e.local_ts = t;
    return e;
  };
  std::vector<Event> v = {
      at(level_event(kBookDelta, kFlagBid | kFlagEndOfMessage, 100, 1), 100),
      at(level_event(kBookDelta, kFlagAsk, 101, 1), 150),
      at(level_event(kTrade, kFlagBid | kFlagEndOfMessage, 101, 7), 160),
      at(level_event(kBookDelta, kFlagAsk | kFlagEndOfMessage, 102, 1), 250),
  };
  const SamplePlan plan = plan_samples(v.data(), v.size(), 100, Clock::kExchange);
  CHECK_EQ(plan.rows, size_t{2});  // grid 100, 200
  std::vector<int64_t> ts(plan.rows), bk(plan.rows * 4), fl(plan.rows * 2);
  sample_top(v.data(), v.size(), plan, 1, ts.data(), bk.data(), fl.data());
  CHECK_EQ(fl[0] + fl[2], int64_t{7});  // the trade is counted once, whatever row it lands in
  CHECK_EQ(fl[1] + fl[3], int64_t{0});
}

// Runs one test function, turning an escaped exception into a failure.
void run(const char* name, const std::function<void()>& fn) {
  const uint64_t before = g_failed;
  std::printf("[ RUN  ] %s\n", name);
  std::fflush(stdout);
  try {
    fn();
  } catch (const std::exception& e) {
    report_failure(__FILE__, __LINE__, std::string(name) + " threw: " + e.what());
  } catch (...) {
    report_failure(__FILE__, __LINE__, std::string(name) + " threw a non-std exception");
  }
  std::printf("[ %s ] %s\n", g_failed == before ? " OK " : "FAIL", name);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <sample dataset folder (events.npy, meta.json)>\n", argv[0]);
    return 2;
  }
  g_sample_dir = argv[1];
  if (!fs::exists(sample_events_path())) {
    std::fprintf(stderr, "%s: no such file\n", sample_events_path().c_str());
    return 2;
  }
  TempDir tmp;
  run("random_property", test_random_property);
  run("book_edges", test_book_edges);
  run("read_npy", [&] { test_read_npy(tmp); });
  run("replay_sample", test_replay_sample);
  run("sample_top", test_sample_top);
  run("replayer_rejects", test_replayer_rejects);
  run("interval_trade_flow", test_interval_trade_flow);
  std::printf("%llu passed, %llu failed\n", static_cast<unsigned long long>(g_passed),
              static_cast<unsigned long long>(g_failed));
  return g_failed == 0 ? 0 : 1;
}
