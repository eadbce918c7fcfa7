#include "book/replay.h"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <unordered_map>

namespace trader {

namespace {

constexpr size_t kMaxExamples = 100;

[[noreturn]] void bad_event(const Event& e, const char* what) {
  throw std::invalid_argument("event from file #" + std::to_string(e.file) + " line " +
                              std::to_string(e.line) + ": " + what);
}

bool side_is_bid(const Event& e) {
  const bool bid = e.flags & kFlagBid;
  const bool ask = e.flags & kFlagAsk;
  if (bid == ask) bad_event(e, "book level must have exactly one of the bid/ask flags");
  return bid;
}

int64_t event_ts(const Event& e, Clock clock) {
  return clock == Clock::kExchange ? e.exch_ts : e.local_ts;
}

}  // namespace

bool Replayer::apply(const Event& e) {
  ++stats_.events;
  switch (e.kind) {
    case kBookClear:
      book_.clear();
      ++stats_.snapshots;
      break;
    case kBookSnapshot:
    case kBookDelta: {
      const bool bid = side_is_bid(e);
      if (e.price <= 0) bad_event(e, "book level price must be > 0 ticks");
      if (e.qty < 0) bad_event(e, "book level qty must be >= 0 lots");
      if (!book_.side(bid).set(e.price, e.qty)) ++stats_.missing_deletes;
      ++stats_.level_updates;
      break;
    }
    case kTrade:
      ++stats_.trades;
      return false;
    case kBookTicker:
      ++stats_.ticker_events;
      return false;
    default:
      bad_event(e, "unknown event kind");
  }
  if (!(e.flags & kFlagEndOfMessage)) return false;
  ++stats_.book_messages;
  if (book_.crossed()) {
    ++stats_.crossed;
    if (crossed_.size() < kMaxExamples) {
      crossed_.push_back({{e.file, e.line, e.update_id},
                          book_.bids().best().price,
                          book_.asks().best().price});
    }
  }
  return true;
}

ReplayStats replay_all(const Event* ev, size_t n) {
  Replayer r;
  for (size_t i = 0; i < n; ++i) r.apply(ev[i]);
  return r.stats();
}

SamplePlan plan_samples(const Event* ev, size_t n, int64_t interval_ns, Clock clock) {
  SamplePlan plan;
  plan.interval_ns = interval_ns;
  plan.clock = clock;
  if (interval_ns < 0) throw std::invalid_argument("interval_ns must be >= 0");
  if (interval_ns == 0) {
    for (size_t i = 0; i < n; ++i) {
      if (is_book_event(ev[i]) && (ev[i].flags & kFlagEndOfMessage)) ++plan.rows;
    }
    return plan;
  }
  int64_t first = 0, last = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!is_book_event(ev[i])) continue;
    const int64_t t = event_ts(ev[i], clock);
    if (t <= 0) continue;
    if (first == 0) first = t;
    last = std::max(last, t);
  }
  if (first == 0) return plan;  // no timed book message: nothing to sample
  // Grid on multiples of the interval, starting at the first one at or after the first message.
  plan.start_ns = (first + interval_ns - 1) / interval_ns * interval_ns;
  if (plan.start_ns > last) return plan;
  plan.rows = static_cast<size_t>((last - plan.start_ns) / interval_ns) + 1;
  return plan;
}

void sample_top(const Event* ev, size_t n, const SamplePlan& plan, size_t depth, int64_t* ts,
                int64_t* book, int64_t* trade_flow, MarketStream* stream) {
  Replayer r;
  size_t row = 0;
  int64_t bought = 0, sold = 0;
  if (stream) {
    stream->events.clear();
    stream->starts.assign(plan.rows + 1, 0);
    stream->trades = 0;
  }
  // Every event goes through here: the stream records what it changes before the book applies it, at
  // its time on the sampling clock (the rows' clock: a recording without exchange time uses local time).
  auto apply = [&](const Event& e) {
    if (stream) {
      std::vector<MarketEvent>& out = stream->events;
      if (e.kind == kBookClear) {
        for (bool bid : {true, false}) {
          const BookSide& side = r.book().side(bid);
          for (size_t i = 0; i < side.size(); ++i) {
            const BookLevel l = side.level(i);
            out.push_back({event_ts(e, plan.clock), l.price, 0, MarketEvent::pack(bid ? kLevelBid : kLevelAsk, l.qty)});
          }
        }
      } else if (e.kind == kBookSnapshot || e.kind == kBookDelta) {
        const bool bid = side_is_bid(e);
        const int64_t prev = e.price > 0 ? r.book().side(bid).qty_at(e.price) : 0;
        out.push_back({event_ts(e, plan.clock), e.price, e.qty, MarketEvent::pack(bid ? kLevelBid : kLevelAsk, prev)});
      } else if (e.kind == kTrade && (e.flags & (kFlagBid | kFlagAsk))) {
        out.push_back({event_ts(e, plan.clock), e.price, e.qty, MarketEvent::pack(e.flags & kFlagBid ? kTradeBuy : kTradeSell, 0)});
        ++stream->trades;
      }
    }
    return r.apply(e);
  };
  auto emit = [&](int64_t t) {
    if (stream) {
      stream->starts[row] = static_cast<int64_t>(stream->events.size());
      stream->starts[row + 1] = stream->starts[row];
    }
    ts[row] = t;
    r.book().top(book + row * depth * 4, depth);
    trade_flow[2 * row] = bought;
    trade_flow[2 * row + 1] = sold;
    bought = sold = 0;
    ++row;
  };
  auto count_trade = [&](const Event& e) {
    if (e.flags & kFlagBid) bought += e.qty;
    if (e.flags & kFlagAsk) sold += e.qty;
  };

  if (plan.interval_ns == 0) {
    int64_t clock_now = 0;
    for (size_t i = 0; i < n && row < plan.rows; ++i) {
      const Event& e = ev[i];
      if (e.kind == kTrade) count_trade(e);
      clock_now = std::max(clock_now, event_ts(e, plan.clock));
      if (apply(e)) emit(clock_now);
    }
    if (stream) stream->starts[plan.rows] = static_cast<int64_t>(stream->events.size());
    return;
  }

  // Interval mode: before applying a message stamped after grid time t_k, row k takes the book as
  // it stands (all messages stamped <= t_k applied). A trade counts toward the next row emitted.
  int64_t clock_now = 0;
  size_t i = 0;
  while (i < n && row < plan.rows) {
    // Find the message [i, j] (book events up to END) or a single non-book event.
    const Event& e = ev[i];
    if (!is_book_event(e)) {
      // Trades and tickers never move the grid: streams are not ordered by each other's clocks.
      if (e.kind == kTrade) count_trade(e);
      apply(e);
      ++i;
      continue;
    }
    size_t j = i;
    int64_t msg_ts = 0;
    bool ended = false;  // found the message's END event at j
    while (j < n && is_book_event(ev[j])) {
      msg_ts = std::max(msg_ts, event_ts(ev[j], plan.clock));
      if (ev[j].flags & kFlagEndOfMessage) {
        ended = true;
        break;
      }
      ++j;
    }
    clock_now = std::max(clock_now, msg_ts);
    while (row < plan.rows &&
           clock_now > plan.start_ns + static_cast<int64_t>(row) * plan.interval_ns) {
      emit(plan.start_ns + static_cast<int64_t>(row) * plan.interval_ns);
    }
    // Without an END the message is [i, j): ev[j] (if any) is a trade or ticker, handled above on
    // the next turn so that a trade is counted in the flow.
    const size_t end = ended ? j : j - 1;
    for (size_t k = i; k <= end; ++k) apply(ev[k]);
    i = end + 1;
  }
  while (row < plan.rows) emit(plan.start_ns + static_cast<int64_t>(row) * plan.interval_ns);
  if (stream) stream->starts[plan.rows] = static_cast<int64_t>(stream->events.size());
}

TickerCheck check_tickers(const Event* ev, size_t n) {
  TickerCheck out;
  Replayer r;
  std::unordered_map<uint64_t, std::array<int64_t, 4>> top_at;  // update id -> top of book
  top_at.reserve(n / 8 + 16);
  struct Ticker {
    EventRef at;
    int64_t v[4];
  };
  std::vector<Ticker> tickers;
  Ticker pending{};
  bool have_bid = false;
  for (size_t i = 0; i < n; ++i) {
    const Event& e = ev[i];
    if (r.apply(e)) {
      std::array<int64_t, 4> top{};
      r.book().top(top.data(), 1);
      top_at[e.update_id] = top;
      continue;
    }
    if (e.kind != kBookTicker) continue;
    if (e.flags & kFlagBid) {
      pending = Ticker{{e.file, e.line, e.update_id}, {e.price, e.qty, 0, 0}};
      have_bid = true;
    } else if (e.flags & kFlagAsk) {
      if (!have_bid || pending.at.update_id != e.update_id) {
        bad_event(e, "bookTicker ask event without its bid event of the same update id");
      }
      pending.v[2] = e.price;
      pending.v[3] = e.qty;
      tickers.push_back(pending);
      have_bid = false;
    } else {
      bad_event(e, "bookTicker event must have the bid or the ask flag");
    }
  }
  out.replay = r.stats();
  out.crossed = r.crossed_examples();
  out.tickers = tickers.size();
  for (const Ticker& t : tickers) {
    auto it = top_at.find(t.at.update_id);
    if (it == top_at.end()) continue;
    ++out.compared;
    const auto& b = it->second;
    if (b[0] == t.v[0] && b[1] == t.v[1] && b[2] == t.v[2] && b[3] == t.v[3]) {
      ++out.matched;
    } else {
      ++out.mismatched;
      if (out.mismatches.size() < kMaxExamples) {
        TickerMismatch m{t.at, {t.v[0], t.v[1], t.v[2], t.v[3]}, {b[0], b[1], b[2], b[3]}};
        out.mismatches.push_back(m);
      }
    }
  }
  return out;
}

}  // namespace trader
