// The market between two sampled rows against the resting orders: the near stream prepared once per
// market, the reach filter, arrivals and cancels, hftbacktest's queue-position and fill rules, and the
// replay of a row's segment (the step itself is in trading_env.cpp).
#include <algorithm>
#include <cmath>
#include <limits>

#include "env/trading_env.h"

namespace trader {

namespace {
// Rust's f64::min, which hftbacktest's queue model relies on: a NaN operand yields the other one.
inline double rust_min(double a, double b) {
  if (std::isnan(a)) return b;
  if (std::isnan(b)) return a;
  return a < b ? a : b;
}
}  // namespace

void MarketData::prepare(int64_t from) {
  from = std::clamp<int64_t>(from, 0, rows);
  mid.resize(static_cast<size_t>(rows));
  for (int64_t r = from; r < rows; ++r) {
    const int64_t* row = book + r * levels * 4;
    mid[static_cast<size_t>(r)] = 0.5 * static_cast<double>(row[0] + row[2]);
  }
  if (guard.on()) guard.extend(ts, mid, rows, guarded);
  const size_t kept = from == 0 || near_starts.empty() ? 0 : static_cast<size_t>(near_starts[static_cast<size_t>(from)]);
  near.resize(kept);
  near_far_ts.resize(kept);
  near_due_ts.resize(kept);
  near_starts.resize(static_cast<size_t>(rows) + 1, 0);
  near_tail_ts.resize(static_cast<size_t>(rows), std::numeric_limits<int64_t>::min());
  if (!stream) return;
  // Grid quotes lie within levels - 1 ticks of the touch of the row they were sent at; twice that
  // leaves room for the touch moving between rows before an env falls back to the whole segment.
  near_ticks = 2 * levels;
  for (int64_t r = from; r < rows; ++r) {
    near_starts[static_cast<size_t>(r)] = static_cast<int64_t>(near.size());
    const int64_t lo = book[r * levels * 4] - near_ticks, hi = book[r * levels * 4 + 2] + near_ticks;
    int64_t far_ts = std::numeric_limits<int64_t>::min();
    for (int64_t i = stream_starts[r]; i < stream_starts[r + 1]; ++i) {
      const MarketEvent& e = stream[i];
      const MarketEventKind k = e.kind();
      if ((k == kLevelBid && e.price < lo) || (k == kLevelAsk && e.price > hi)) {
        far_ts = std::max(far_ts, e.exch_ts);
        continue;
      }
      near.push_back(e);
      near_far_ts.push_back(far_ts);
      near_due_ts.push_back(std::max(far_ts, e.exch_ts));
      far_ts = std::numeric_limits<int64_t>::min();
    }
    near_tail_ts[static_cast<size_t>(r)] = far_ts;
  }
  near_starts[static_cast<size_t>(rows)] = static_cast<int64_t>(near.size());
}


// Per market event kind, a price interval that holds every event able to touch an order (see
// replay_segment): bid levels at a bid order's price or crossing an ask order, ask levels likewise,
// sell trades at or through a bid, buy trades at or through an ask. Empty side: an empty interval.
void TradingEnv::update_reach() {
  bid_lo_ = ask_lo_ = kNever;
  bid_hi_ = ask_hi_ = std::numeric_limits<int64_t>::min();
  for (const auto& o : orders_) {
    if (!o.dead) widen_reach(o);
  }
  set_reach();
}

void TradingEnv::widen_reach(const LimitOrder& o) {
  if (o.bid) {
    bid_lo_ = std::min(bid_lo_, o.price);
    bid_hi_ = std::max(bid_hi_, o.price);
  } else {
    ask_lo_ = std::min(ask_lo_, o.price);
    ask_hi_ = std::max(ask_hi_, o.price);
  }
}

void TradingEnv::set_reach() {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  const bool bids = bid_hi_ != kMin, asks = ask_hi_ != kMin;
  reach_lo_[kLevelBid] = std::min(bid_lo_, ask_lo_);
  reach_hi_[kLevelBid] = asks ? kNever : bid_hi_;
  reach_lo_[kLevelAsk] = bids ? kMin : ask_lo_;
  reach_hi_[kLevelAsk] = std::max(ask_hi_, bid_hi_);
  reach_lo_[kTradeSell] = bids ? kMin : kNever;
  reach_hi_[kTradeSell] = bid_hi_;
  reach_lo_[kTradeBuy] = ask_lo_;
  reach_hi_[kTradeBuy] = asks ? kNever : kMin;
}


void TradingEnv::maker_fill(LimitOrder& o, int64_t lots) {
  Agent& a = agents_[static_cast<size_t>(o.agent)];
  const double notional = static_cast<double>(o.price) * static_cast<double>(lots) * notional_per_tick_lot_;
  const double fee = notional * cfg_.maker_fee_bps * 1e-4;
  a.maker_filled += lots;
  a.maker_fees += fee;
  if (fill_log_) fill_log_->push_back({o.seq, o.bid, true, o.price, lots, fee});
  book_fill(a, o.bid, lots, notional, fee);
  o.leaves -= lots;
  a.resting[o.bid ? 0 : 1] -= lots;
  if (o.leaves == 0) {
    o.dead = true;
    died_ = true;
  }
}

// Orders and cancels that reach the exchange before a market event stamped exch_ts (> their time), in
// seq order. Per order, in its own time order: an arrival before its cancel is seen first (a crossing
// order is rejected, a new one joins its level) and the cancel removes it after; a cancel at or before
// the arrival overtakes its order and removes it unseen. The outcome depends only on the times, not on
// how the calls group them, so one call for several skipped far records equals one call per record.
void TradingEnv::due_orders(int64_t exch_ts) {
  next_due_ts_ = kNever;
  for (auto& o : orders_) {
    if (o.dead) continue;
    if (!o.live && o.arrive_ts < exch_ts && o.arrive_ts < o.cancel_ts) {
      if (o.crossing > 0) {  // post-only: it would take liquidity
        o.dead = died_ = true;
        ++agents_[static_cast<size_t>(o.agent)].rejected;
        continue;
      }
      o.live = true;
      o.front = static_cast<double>(o.level_qty);  // back of the level (hftbacktest new_order)
      o.cum_trade = 0;
    }
    if (o.cancel_ts < exch_ts) {
      o.dead = died_ = true;
      continue;
    }
    if (!o.live) next_due_ts_ = std::min(next_due_ts_, o.arrive_ts);
    next_due_ts_ = std::min(next_due_ts_, o.cancel_ts);
  }
}

// A level change at the order's price (hftbacktest models/queue.rs, QueueModel::depth).
void TradingEnv::on_depth(LimitOrder& o, double prev, double next) const {
  if (cfg_.queue_model == QueueModel::kRiskAverse) {  // RiskAdverseQueueModel: cancels never move it
    o.front = rust_min(o.front, next);
    return;
  }
  // ProbQueueModel: the decrease not explained by trades since the last change is split between
  // ahead and behind with p = f(back) / (f(back) + f(front)) (Rigtorp 2013; quant.stackexchange 3782).
  const double chg = prev - next - o.cum_trade;
  o.cum_trade = 0;
  if (chg < 0) {
    o.front = rust_min(o.front, next);
    return;
  }
  const double front = o.front;
  const double back = prev - front;
  double fb, ff;
  if (cfg_.queue_model == QueueModel::kPower) {
    fb = std::pow(back, cfg_.queue_power);
    ff = std::pow(front, cfg_.queue_power);
  } else {
    fb = std::log(1.0 + back);
    ff = std::log(1.0 + front);
  }
  double p = fb / (fb + ff);
  if (std::isinf(p)) p = 1.0;  // hftbacktest maps only infinities; a NaN falls through rust_min below
  const double est = front - (1.0 - p) * chg + std::min(back - p * chg, 0.0);
  o.front = rust_min(est, next);
}

void TradingEnv::on_market_event(const MarketEvent& e) {
  const MarketEventKind kind = e.kind();
  if (kind == kLevelBid || kind == kLevelAsk) {
    const bool bid_level = kind == kLevelBid;
    const int64_t prev = e.prev();
    for (auto& o : orders_) {
      if (o.dead) continue;
      if (o.bid == bid_level) {
        if (o.price != e.price) continue;
        if (o.live) on_depth(o, static_cast<double>(prev), static_cast<double>(e.qty));
        o.level_qty = e.qty;
      } else if (o.bid ? e.price <= o.price : e.price >= o.price) {
        // The opposite side at a price that crosses the order (touch cross: hftbacktest
        // PartialFillExchange::on_best_{bid,ask}_update fills it in full at its price).
        o.crossing += (e.qty > 0) - (prev > 0);
        if (o.live && o.crossing > 0) maker_fill(o, o.leaves);
      }
    }
    return;
  }
  // A trade: a buy aggressor takes asks, a sell aggressor bids. Orders at a better price than the
  // trade are traded through and fill in full; at the trade's price, the FIFO of the agents' orders
  // shares the trade (hftbacktest check_if_{buy,sell}_filled, ProbQueueModel::trade, is_filled:
  // fill floor(-front) lots once front <= -1, at most the trade's quantity not yet given to earlier
  // orders, at most the leaves).
  const bool hits_bids = kind == kTradeSell;
  int64_t remaining = e.qty;
  for (auto& o : orders_) {
    if (o.dead || !o.live || o.bid != hits_bids) continue;
    if (o.bid ? o.price > e.price : o.price < e.price) {
      maker_fill(o, o.leaves);
    } else if (o.price == e.price) {
      o.front -= static_cast<double>(remaining);
      o.cum_trade += static_cast<double>(e.qty);
      if (std::round(o.front) < 0) {
        const int64_t fill = std::min({static_cast<int64_t>(std::floor(-o.front)), remaining, o.leaves});
        if (fill > 0) {
          maker_fill(o, fill);
          remaining -= fill;
        }
      }
    }
  }
}

void TradingEnv::replay_segment(int64_t row) {
  // Far records are level changes below best bid - near_ticks or above best ask + near_ticks (row's
  // touch). They reach an order only if a bid level there is at a bid's price or crosses an ask, or
  // an ask level there is at an ask's price or crosses a bid, i.e. only if the lowest bid-level
  // reach or the highest ask-level reach lies outside the window; otherwise the near stream holds
  // every record that can touch the orders (orders only die during a segment, so reach only shrinks).
  const int64_t* top = data_->book + row * data_->levels * 4;
  const bool near = reach_lo_[kLevelBid] >= top[0] - data_->near_ticks &&
                    reach_hi_[kLevelAsk] <= top[2] + data_->near_ticks;
  if (near) {
    replay_records<true>(data_->near.data(), data_->near_starts[row], data_->near_starts[row + 1]);
    if (!orders_.empty() && data_->near_tail_ts[static_cast<size_t>(row)] > next_due_ts_) {
      due_orders(data_->near_tail_ts[static_cast<size_t>(row)]);
      remove_dead();
    }
  } else {
    replay_records<false>(data_->stream, data_->stream_starts[row], data_->stream_starts[row + 1]);
  }
  // Orders removed unseen by a market event (cancels, rejections) go at the next due time.
}

template <bool kNear>
void TradingEnv::replay_records(const MarketEvent* ev, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const MarketEvent& e = ev[i];
    // Near records: due_orders at the skipped far records' latest time, then at this record's: the
    // same orders arrive and cancel as with one call per record (nothing else happens in between).
    // near_due_ts = the later of the two, so one comparison tells whether either call has work.
    if (kNear ? data_->near_due_ts[static_cast<size_t>(i)] > next_due_ts_ : e.exch_ts > next_due_ts_) {
      if (kNear && data_->near_far_ts[static_cast<size_t>(i)] > next_due_ts_) {
        due_orders(data_->near_far_ts[static_cast<size_t>(i)]);
      }
      if (e.exch_ts > next_due_ts_) due_orders(e.exch_ts);
    }
    // Only events within reach of an order can change it (a pure filter: the rules in
    // on_market_event decide the same without it).
    const MarketEventKind kind = e.kind();
    if (e.price >= reach_lo_[kind] && e.price <= reach_hi_[kind]) on_market_event(e);
    if (died_ && !remove_dead()) return;
  }
}

bool TradingEnv::remove_dead() {
  if (died_) {
    orders_.erase(std::remove_if(orders_.begin(), orders_.end(),
                                 [this](const LimitOrder& o) {
                                   if (o.dead) agents_[static_cast<size_t>(o.agent)].resting[o.bid ? 0 : 1] -= o.leaves;
                                   return o.dead;
                                 }),
                  orders_.end());
    died_ = false;
    update_reach();
  }
  return !orders_.empty();
}


}  // namespace trader
