// Replay of an event array through the L2 book: stats, top-L sampling and the bookTicker check.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "book/order_book.h"
#include "events/event.h"

namespace trader {

struct ReplayStats {
  uint64_t events = 0;
  uint64_t book_messages = 0;     // depth messages and snapshots applied (END flags on book events)
  uint64_t snapshots = 0;         // kBookClear events
  uint64_t level_updates = 0;     // kBookSnapshot + kBookDelta events
  uint64_t missing_deletes = 0;   // deltas removing a level the book did not hold
  uint64_t trades = 0;
  uint64_t ticker_events = 0;
  uint64_t crossed = 0;           // book messages after which best bid >= best ask
};

// A place in the source data, for error reports.
struct EventRef {
  uint32_t file = 0;
  uint32_t line = 0;
  uint64_t update_id = 0;
};

struct CrossedBook {
  EventRef at;
  int64_t bid = 0;  // ticks
  int64_t ask = 0;  // ticks
};

// Applies events one at a time. Throws std::invalid_argument (naming file index and line) on an
// event the book cannot take: unknown kind, a level without a side, price <= 0, qty < 0.
class Replayer {
 public:
  // Returns true when `e` ended a book message: the book is consistent now.
  bool apply(const Event& e);
  const OrderBook& book() const { return book_; }
  const ReplayStats& stats() const { return stats_; }
  const std::vector<CrossedBook>& crossed_examples() const { return crossed_; }

 private:
  OrderBook book_;
  ReplayStats stats_;
  std::vector<CrossedBook> crossed_;  // first 100 only; stats_.crossed counts all
};

ReplayStats replay_all(const Event* ev, size_t n);

// ---- Sampling the top L levels -----------------------------------------------------------------
enum class Clock { kExchange, kLocal };

struct SamplePlan {
  size_t rows = 0;
  int64_t start_ns = 0;     // first grid time (interval mode)
  int64_t interval_ns = 0;  // 0 = one row after every book message
  Clock clock = Clock::kExchange;
};

// interval_ns == 0: one row per book message; otherwise rows on the grid of multiples of
// interval_ns covering the book messages' timestamps.
SamplePlan plan_samples(const Event* ev, size_t n, int64_t interval_ns, Clock clock);

// ---- The market between rows: what the env's queue model sees ------------------------------------
enum MarketEventKind : uint8_t {
  kLevelBid = 0,   // a bid level's size changed (from prev to qty)
  kLevelAsk = 1,   // an ask level's size changed
  kTradeBuy = 2,   // a trade whose aggressor bought (it took asks)
  kTradeSell = 3,  // a trade whose aggressor sold (it took bids)
};

// One book level change or trade, 32 bytes (the env walks these in its hot loop). A book clear
// (snapshot resync) becomes one change to size 0 for every level the book held.
struct MarketEvent {
  int64_t exch_ts;     // ns on the rows' sampling clock: exchange time, or local time for a recording without it
  int64_t price;       // ticks
  int64_t qty;         // level: size after the change; trade: traded lots
  uint64_t prev_kind;  // kind << 56 | level size before the change (lots; 0 for trades)

  MarketEventKind kind() const { return static_cast<MarketEventKind>(prev_kind >> 56); }
  int64_t prev() const { return static_cast<int64_t>(prev_kind & ((uint64_t{1} << 56) - 1)); }
  static uint64_t pack(MarketEventKind k, int64_t prev) {
    return (static_cast<uint64_t>(k) << 56) | static_cast<uint64_t>(prev);
  }
};
static_assert(sizeof(MarketEvent) == 32, "MarketEvent: 32 bytes");

// events[starts[c] .. starts[c + 1]) are the changes applied after row c was sampled and before row
// c + 1 (the sampler's own rule, so row c + 1 = row c + those changes); starts has rows + 1 entries.
struct MarketStream {
  std::vector<MarketEvent> events;
  std::vector<int64_t> starts;
  uint64_t trades = 0;  // 0: snapshot-only data, only trade-through / touch-cross can fill orders
};

// Fills ts[rows], book[rows x depth x 4] (bid px, bid qty, ask px, ask qty in ticks and lots) and
// trade_flow[rows x 2] (lots bought and sold by aggressors since the previous row); with `stream`,
// also every level change and trade in file order, split at the rows.
// Interval mode: row k is the book after every message with timestamp <= start + k * interval.
void sample_top(const Event* ev, size_t n, const SamplePlan& plan, size_t depth, int64_t* ts,
                int64_t* book, int64_t* trade_flow, MarketStream* stream = nullptr);

// ---- Checking the rebuilt book against the exchange's bookTicker -------------------------------
struct TickerMismatch {
  EventRef at;
  int64_t ticker[4];  // bid px, bid qty, ask px, ask qty published
  int64_t book[4];    // the same rebuilt from the depth stream at the equal update id
};

struct TickerCheck {
  ReplayStats replay;
  uint64_t tickers = 0;        // bookTicker messages in the data
  uint64_t compared = 0;       // those with a book message of equal update id
  uint64_t matched = 0;
  uint64_t mismatched = 0;
  std::vector<TickerMismatch> mismatches;  // first 100
  std::vector<CrossedBook> crossed;        // first 100
};

TickerCheck check_tickers(const Event* ev, size_t n);

}  // namespace trader
