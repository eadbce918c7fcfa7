#include "env/trading_env.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace trader {

namespace {
// splitmix64 (Steele, Lea, Flood 2014): one 64-bit state per env, so streams do not depend on threads.
inline uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
// Uniform integer in [0, n) by multiply-shift (Lemire 2019).
inline uint64_t below(uint64_t r, uint64_t n) {
  return static_cast<uint64_t>((static_cast<__uint128_t>(r) * n) >> 64);
}
// Quote grid index of a continuous action in [-1, 1]: L + 1 equal buckets, the top one = no quote.
inline int64_t grid_index(float x, int64_t levels) {
  const double b = std::floor((static_cast<double>(x) + 1.0) * 0.5 * static_cast<double>(levels + 1));
  return std::clamp<int64_t>(static_cast<int64_t>(b), 0, levels);
}
}  // namespace

TradingEnv::TradingEnv(const EnvConfig& cfg, const MarketData* markets, int num_markets, int env_id,
                       uint64_t seed)
    : data_(markets),
      quoting_(is_quote(cfg.actions)),
      guard_on_(cfg.guard_window_ns > 0),
      actions_(cfg.actions),
      num_agents_(static_cast<int>(cfg.num_agents)),
      order_latency_ns_(cfg.order_latency_ns),
      obs_dim_(markets->dim + kAccountFeatures + (is_quote(cfg.actions) ? kQuoteFeatures : 0)),
      horizon_(cfg.horizon),
      reward_(cfg.reward),
      taker_fee_bps_(cfg.taker_fee_bps),
      reward_scale_(cfg.reward_scale),
      ruin_equity_(cfg.ruin_fraction * cfg.initial_cash),
      agents_(static_cast<size_t>(cfg.num_agents)),
      priority_(static_cast<size_t>(cfg.num_agents)),
      consumed_bid_(static_cast<size_t>(markets->levels)),
      consumed_ask_(static_cast<size_t>(markets->levels)),
      action_width_(cfg.actions == ActionType::kQuoteContinuous ? (cfg.quote_flatten ? 3 : 2) : 1),
      env_id_(env_id),
      cfg_(cfg),
      markets_(markets),
      num_markets_(num_markets),
      total_starts_(markets[num_markets - 1].start_offset +
                    static_cast<uint64_t>(markets[num_markets - 1].start_max - markets[num_markets - 1].start_min + 1)),
      next_due_ts_(kNever) {
  use_market(markets);
  for (auto& a : agents_) a.pending.reserve(4);
  orders_.reserve(static_cast<size_t>(4 * cfg.num_agents));
  update_reach();
  reseed(seed);
}

void TradingEnv::reseed(uint64_t seed) {
  rng_ = seed;
  needs_reset_ = true;
}

uint64_t TradingEnv::next_random() { return splitmix64(rng_); }

void TradingEnv::use_market(const MarketData* m) {
  data_ = m;
  const SizeLots lots = size_lots(cfg_, m->lot_size, m->mid[0] * m->tick_size);
  trade_lots_ = lots.trade;
  max_lots_ = lots.max;
  hi_lots_ = cfg_.position_cap_trades > 0 ? std::min(max_lots_, cfg_.position_cap_trades * trade_lots_) : max_lots_;
  min_lots_ = cfg_.allow_short ? -hi_lots_ : 0;
  notional_per_tick_lot_ = m->tick_size * m->lot_size;
  markout_drift_ = 0;
  if (cfg_.markout_detrend && m->ts != nullptr) {  // session 12 (benchmarks/README.md, "without the day's drift")
    const int64_t r0 = m->start_min, r1 = std::min(m->start_max + horizon_, m->rows - 1);
    if (m->ts[r1] > m->ts[r0]) markout_drift_ = (m->mid[r1] - m->mid[r0]) / static_cast<double>(m->ts[r1] - m->ts[r0]);
  }
}

// One draw over the usable starts of every dataset: a dataset is picked with weight its number of
// starts, the episode stays inside it (issue 13); with one dataset, the start draw of before.
void TradingEnv::reset(OutRow& out) {
  const uint64_t u = below(next_random(), total_starts_);
  int m = 0, hi = num_markets_ - 1;  // the last dataset whose start_offset <= u
  while (m < hi) {
    const int mid = (m + hi + 1) / 2;
    if (markets_[mid].start_offset <= u) m = mid; else hi = mid - 1;
  }
  if (data_ != markets_ + m) use_market(markets_ + m);
  cursor_ = data_->start_min + static_cast<int64_t>(u - data_->start_offset);
  markout_row_ = cursor_;
  steps_ = 0;
  needs_reset_ = false;
  for (auto& a : agents_) {
    a = Agent{};
    a.cash = cfg_.initial_cash;
    a.equity = cfg_.initial_cash;
  }
  orders_.clear();
  update_reach();
  next_due_ts_ = kNever;
  for (int k = 0; k < cfg_.num_agents; ++k) out.reward()[k] = 0.0f;
  write(out, false, false);
}

int64_t TradingEnv::pending_lots(const Agent& a) const {
  int64_t s = 0;
  for (size_t i = a.pending_head; i < a.pending.size(); ++i) s += a.pending[i].lots;
  return s;
}

int64_t TradingEnv::order_from_action(const Agent& a, int64_t discrete, float continuous) const {
  const int64_t expected = a.position + pending_lots(a);  // as if every pending order fills
  int64_t target;
  if (actions_ == ActionType::kContinuous) {
    target = static_cast<int64_t>(std::llround(static_cast<double>(continuous) * static_cast<double>(max_lots_)));
  } else if (discrete == 1) {
    target = expected + trade_lots_;
  } else if (discrete == 2) {
    target = expected - trade_lots_;
  } else {
    return 0;
  }
  target = std::clamp(target, min_lots_, hi_lots_);
  const uint8_t bars = guard_bars();  // toward flat on a barred side
  if (bars & MoveGuard::kNoLong) target = std::min(target, std::max<int64_t>(expected, 0));
  if (bars & MoveGuard::kNoShort) target = std::max(target, std::min<int64_t>(expected, 0));
  return target - expected;
}

TradingEnv::LimitOrder* TradingEnv::find(int64_t seq) {
  if (seq < 0) return nullptr;
  for (auto& o : orders_) {
    if (o.seq == seq) return o.dead ? nullptr : &o;
  }
  return nullptr;
}

// Agent k sets its bid and ask quotes on the grid of row cursor_ (index quote_levels: no quote).
void TradingEnv::quote(int k, int64_t bid_idx, int64_t ask_idx) {
  Agent& a = agents_[static_cast<size_t>(k)];
  const int64_t* top = data_->book + cursor_ * data_->levels * 4;
  const int64_t now = data_->ts ? data_->ts[cursor_] : 0;
  // The move guard: a quote that would add to a position the guard bars (or open one) is not sent, and
  // its order is cancelled; the barred side's limit is flat (position 0).
  const uint8_t bars = guard_bars();
  const bool no_long = bars & MoveGuard::kNoLong, no_short = bars & MoveGuard::kNoShort;
  const int64_t hi = no_long ? 0 : hi_lots_, lo = no_short ? 0 : min_lots_;
  bool sent = false;
  for (int side = 0; side < 2; ++side) {
    const bool bid = side == 0;
    const int64_t idx = bid ? bid_idx : ask_idx;
    const int64_t offset = cfg_.quote_min_ticks + idx;
    const bool adds = bid ? no_long && a.position >= 0 : no_short && a.position <= 0;
    const int64_t price = idx == cfg_.quote_levels || adds ? 0 : (bid ? top[0] - offset : top[2] + offset);
    LimitOrder* cur = find(a.quote_seq[side]);
    if (cur && cur->price == price) continue;  // unchanged price: keeps its queue position
    if (cur) {
      cur->cancel_ts = std::min(cur->cancel_ts, now + cfg_.cancel_latency_ns);
      next_due_ts_ = std::min(next_due_ts_, cur->cancel_ts);
    }
    a.quote_seq[side] = -1;
    if (price <= 0) continue;
    // Size: position + this side's resting lots (cancels in flight included: they can still fill)
    // stay within the position limit.
    const int64_t resting = a.resting[side];
    const int64_t room = bid ? hi - a.position - resting : a.position - lo - resting;
    const int64_t lots = std::min(trade_lots_, room);
    if (lots <= 0) continue;
    LimitOrder o{};
    o.seq = next_seq_++;
    o.agent = k;
    o.bid = bid;
    o.price = price;
    o.leaves = lots;
    o.arrive_ts = now + cfg_.order_latency_ns;
    o.cancel_ts = kNever;
    // Size at its price and crossing levels from row c's snapshot: grid prices lie inside the shown
    // depth (quote_min_ticks + quote_levels - 1 < levels), so absent prices have size 0.
    // Opposite levels cross only a quote inside the spread, from the opposite touch on.
    const int own = bid ? 0 : 2, opp = bid ? 2 : 0;
    // A level's price is at least its index in ticks from the touch, so only the first quote_min_ticks +
    // quote_levels levels can hold a grid price: a fixed count the branch predictor learns (an exit at
    // the price would mispredict about once per quote).
    const int64_t grid_levels = std::clamp<int64_t>(cfg_.quote_min_ticks + cfg_.quote_levels, 0, data_->levels);
    for (int64_t l = 0; l < grid_levels; ++l) {
      o.level_qty = top[4 * l + own] == price ? top[4 * l + own + 1] : o.level_qty;
    }
    for (int64_t l = 0; l < data_->levels; ++l) {
      const int64_t px = top[4 * l + opp];
      if (px <= 0 || (bid ? px > price : px < price)) break;  // levels go away from the touch
      if (top[4 * l + opp + 1] > 0) ++o.crossing;
    }
    orders_.push_back(o);
    widen_reach(o);
    a.quote_seq[side] = o.seq;
    a.quoted += lots;
    a.resting[side] += lots;
    next_due_ts_ = std::min(next_due_ts_, o.arrive_ts);
    sent = true;
  }
  // Only a new order widens the reach (a cancel in flight keeps its order reachable until it is removed).
  if (sent) set_reach();
}

// Cash, fees and the average-cost basis after a fill of `lots` (> 0) worth `notional` quote.
void TradingEnv::book_fill(Agent& a, bool buy, int64_t lots, double notional, double fee) {
  const int64_t signed_fill = buy ? lots : -lots;
  a.fees += fee;
  a.cash -= (buy ? notional : -notional) + fee;
  a.filled += signed_fill;
  // Average-cost basis of the open position: reduce proportionally, restart on a flip.
  const int64_t before = a.position;
  const int64_t after = before + signed_fill;
  const double avg_px_value = notional / static_cast<double>(lots);  // quote per lot of this fill
  if (before == 0 || (before > 0) == buy) {
    a.cost += (buy ? notional : -notional);
  } else if ((after > 0) == (before > 0) && after != 0) {
    a.cost *= static_cast<double>(after) / static_cast<double>(before);
  } else {
    a.cost = static_cast<double>(after) * avg_px_value;
  }
  a.position = after;
}

void TradingEnv::execute(Agent& a, int64_t lots, int64_t row) {
  if (lots == 0) return;
  const bool buy = lots > 0;
  int64_t remaining = buy ? lots : -lots;
  const int64_t* levels = data_->book + row * data_->levels * 4;
  std::vector<int64_t>& consumed = buy ? consumed_ask_ : consumed_bid_;
  const int px_col = buy ? 2 : 0;
  double ticks_x_lots = 0;  // sum of price * qty over the fills
  int64_t filled = 0;
  for (int64_t l = 0; l < data_->levels && remaining > 0; ++l) {
    const int64_t px = levels[4 * l + px_col];
    if (px <= 0) break;  // the book shows no more levels
    const int64_t avail = levels[4 * l + px_col + 1] - consumed[static_cast<size_t>(l)];
    if (avail <= 0) continue;
    const int64_t take = std::min(avail, remaining);
    consumed[static_cast<size_t>(l)] += take;
    touched_levels_ = std::max(touched_levels_, l + 1);
    remaining -= take;
    filled += take;
    ticks_x_lots += static_cast<double>(px) * static_cast<double>(take);
    if (fill_log_) {
      const double level_notional = static_cast<double>(px) * static_cast<double>(take) * notional_per_tick_lot_;
      fill_log_->push_back({-1, buy, false, px, take, level_notional * taker_fee_bps_ * 1e-4});
    }
  }
  a.unfilled += remaining;
  if (filled == 0) return;
  const double notional = ticks_x_lots * notional_per_tick_lot_;
  const double fee = notional * taker_fee_bps_ * 1e-4;
  a.taker_filled += filled;
  a.taker_fees += fee;
  book_fill(a, buy, filled, notional, fee);
}

TradingEnv::QuoteFields TradingEnv::quote_fields(const Agent& a, int k, const int64_t* discrete,
                                                 const float* continuous) const {
  QuoteFields q;
  if (cfg_.actions == ActionType::kQuote) {
    // 32-bit divisions: the action is below 2 (L + 1)^2 (the binding checks it), and they cost a
    // fraction of 64-bit ones.
    const uint32_t v = static_cast<uint32_t>(discrete[k]), L1 = static_cast<uint32_t>(cfg_.quote_levels + 1);
    q.flatten = v >= L1 * L1;
    q.bid = (v % (L1 * L1)) / L1;
    q.ask = v % L1;
  } else {
    const float* c = continuous + static_cast<size_t>(k) * static_cast<size_t>(action_width_);
    q.bid = grid_index(c[0], cfg_.quote_levels);
    q.ask = grid_index(c[1], cfg_.quote_levels);
    q.flatten = action_width_ == 3 && c[2] > 0.0f;
  }
  if (cfg_.quote_exit_touch && a.position != 0) (a.position > 0 ? q.ask : q.bid) = 0;
  return q;
}

void TradingEnv::step(const int64_t* discrete, const float* continuous, OutRow& out) {
  if (needs_reset_) {
    reset(out);
    return;
  }
  const int K = num_agents_;
  const bool quoting = quoting_;
  if (K > 1) {  // a seeded random priority: market orders and same-time quotes go in this order
    for (int k = 0; k < K; ++k) priority_[static_cast<size_t>(k)] = k;
    for (int k = K - 1; k > 0; --k) {  // Fisher-Yates
      const int j = static_cast<int>(below(next_random(), static_cast<uint64_t>(k + 1)));
      std::swap(priority_[static_cast<size_t>(k)], priority_[static_cast<size_t>(j)]);
    }
  }
  const double mid_before = data_->mid[static_cast<size_t>(cursor_)];  // ticks
  // 1. actions -> orders
  for (int idx = 0; idx < K; ++idx) {
    const int k = K == 1 ? 0 : priority_[static_cast<size_t>(idx)];
    Agent& a = agents_[static_cast<size_t>(k)];
    a.filled = a.taker_filled = a.unfilled = 0;
    a.cash_at_step = a.cash;
    a.position_at_step = a.position;
    const bool expired = hold_expired(a);  // closed instead of what the action asks (market orders) or beside it
    if (!quoting) {
      send_market(a, expired ? closing_lots(a)
                             : order_from_action(a, discrete ? discrete[k] : 0, continuous ? continuous[k] : 0.0f));
      continue;
    }
    a.maker_filled = a.quoted = 0;
    a.rejected = 0;
    const QuoteFields q = quote_fields(a, k, discrete, continuous);
    send_market(a, q.flatten || expired ? closing_lots(a) : 0);
    quote(k, q.bid, q.ask);
  }
  // 2. market orders due now execute against this row, agents in the priority order
  for (int idx = 0; idx < K; ++idx) {
    Agent& a = agents_[K == 1 ? 0 : static_cast<size_t>(priority_[static_cast<size_t>(idx)])];
    while (a.pending_head < a.pending.size() && a.pending[a.pending_head].due <= cursor_) {
      execute(a, a.pending[a.pending_head].lots, cursor_);
      ++a.pending_head;
    }
  }
  // Liquidity taken this row is returned with the next row: reset only the levels touched.
  std::fill_n(consumed_bid_.begin(), touched_levels_, 0);
  std::fill_n(consumed_ask_.begin(), touched_levels_, 0);
  touched_levels_ = 0;
  // 3. the market between this row and the next, against the resting orders
  if (!orders_.empty()) replay_segment(cursor_);
  // 4. advance, mark to market, reward
  ++cursor_;
  ++steps_;
  const double mark = data_->mid[cursor_] * notional_per_tick_lot_;  // quote per lot at mid
  double mark_later = mark;
  double later_move = 0.0;  // the change of the undetrended later mid over this step, quote per lot
  double hurdle = 0.0;  // quote per lot filled, in markout rewards only (session 21: bps; session 22: spreads)
  if (marks_out(reward_)) {
    // The first row markout_ns after row cursor_'s time, within the episode (its rows are training rows:
    // trader.evaluate.folds): it only moves forward, one comparison per step on average.
    const int64_t last = std::min(cursor_ - steps_ + horizon_, data_->rows - 1);
    const int64_t due = data_->ts[cursor_] + cfg_.markout_ns;
    markout_row_ = std::max(markout_row_, cursor_);
    while (markout_row_ < last && data_->ts[markout_row_] < due) ++markout_row_;
    double later = data_->mid[static_cast<size_t>(markout_row_)];
    // Against the last step's (another episode's at a first step, whose position_at_step is 0, so unused)
    later_move = later * notional_per_tick_lot_ - later_mark_;
    later_mark_ = later * notional_per_tick_lot_;
    if (cfg_.markout_detrend) later -= markout_drift_ * static_cast<double>(data_->ts[markout_row_] - data_->ts[cursor_]);
    mark_later = later * notional_per_tick_lot_;
    const int64_t* top = data_->book + cursor_ * data_->levels * 4;
    hurdle = cfg_.markout_hurdle_bps * 1e-4 * mark +
             cfg_.markout_hurdle_spreads * static_cast<double>(top[2] - top[0]) * notional_per_tick_lot_;
  }
  bool ruined = false;
  for (int k = 0; k < K; ++k) {
    Agent& a = agents_[static_cast<size_t>(k)];
    if (cfg_.max_hold_ns > 0) track_hold(a, a.position_at_step, data_->ts[cursor_]);
    const double equity = a.cash + static_cast<double>(a.position) * mark;
    double r = equity - a.equity;
    const double q = static_cast<double>(a.position);
    if (marks_out(reward_)) {
      // This step's fills (cash paid or received, fees included) against the mid markout_ns later: a
      // fill's own edge, not the later moves of the inventory (session 9: the fills' edge against the
      // next row's mid was gone 10 s later, benchmarks/README.md "Where the PnL comes from").
      r = (a.cash - a.cash_at_step) + static_cast<double>(a.filled) * mark_later;
      if (r < 0) r *= cfg_.markout_loss_weight;  // session 23: losses weigh more than gains
      r -= hurdle * static_cast<double>(std::abs(a.filled));
      // The lots held before this step's fills, marked from the last step's later mid to this step's: each
      // fill's markout, then these, telescope to the fill's move to the episode's last row (session 32).
      r += cfg_.markout_inventory_weight * static_cast<double>(a.position_at_step) * later_move;
    }
    if (reward_ == RewardType::kInventoryPenalty || reward_ == RewardType::kMarkoutPenalty) {
      // bps of the max-position notional at full inventory, quadratic in q / q_max: the running
      // inventory penalty of Cartea, Jaimungal and Penalva (2015, ch. 10), which markout alone lacks
      const double x = q / static_cast<double>(max_lots_);
      r -= cfg_.inventory_penalty_bps * 1e-4 * static_cast<double>(max_lots_) * mark * x * x;
    } else if (reward_ == RewardType::kDampened) {
      // Spooner, Fearnley, Savani, Koukorinis 2018: asymmetrically dampened PnL
      r -= std::max(0.0, cfg_.dampen_eta * q * (mark - mid_before * notional_per_tick_lot_));
    }
    r *= reward_scale_;
    a.equity = equity;
    a.episode_return += r;
    out.reward()[k] = static_cast<float>(r);
    ruined |= equity < ruin_equity_;
  }
  const bool truncated = !ruined && steps_ >= horizon_;
  if (ruined || truncated) {
    needs_reset_ = true;
    for (auto& a : agents_) {  // orders still in flight are cancelled with the episode
      for (size_t i = a.pending_head; i < a.pending.size(); ++i) a.unfilled += std::abs(a.pending[i].lots);
    }
  }
  write(out, ruined, truncated);
}

void TradingEnv::write(OutRow& out, bool terminated, bool truncated) {
  // The pool's output pointers are read once (OutBase), not once per field through OutRow.
  const OutBase& b = *out.base;
  const size_t r = out.r;
  const int K = num_agents_;
  const int64_t D = data_->dim;
  const int64_t stride = obs_dim_;
  const float* row = data_->features + cursor_ * D;
  const int64_t* top = data_->book + cursor_ * data_->levels * 4;
  const double mark = data_->mid[cursor_] * notional_per_tick_lot_;
  const double max_notional = static_cast<double>(max_lots_) * mark;
  const float time_left = static_cast<float>(horizon_ - steps_) / static_cast<float>(horizon_);
  const bool quoting = quoting_;
  for (int k = 0; k < K; ++k) {
    Agent& a = agents_[static_cast<size_t>(k)];
    const size_t i = out.rk + static_cast<size_t>(k);
    float* o = b.obs + i * static_cast<size_t>(stride);
    std::memcpy(o, row, sizeof(float) * static_cast<size_t>(D));
    const double upnl = static_cast<double>(a.position) * mark - a.cost;
    o[D] = static_cast<float>(static_cast<double>(a.position) / static_cast<double>(max_lots_));
    o[D + 1] = static_cast<float>(upnl / max_notional * 100.0);
    o[D + 2] = time_left;
    b.episode_return[i] = static_cast<float>(a.episode_return);
    b.position[i] = a.position;
    b.equity[i] = a.equity;
    b.fees[i] = a.fees;
    b.taker_fees[i] = a.taker_fees;
    b.filled[i] = a.filled;
    b.taker_filled[i] = a.taker_filled;
    b.unfilled[i] = a.unfilled;
    if (!quoting) continue;  // the quote outputs stay 0 (buffers start zeroed; nothing else writes them)
    int64_t px[2] = {0, 0};
    double queue[2] = {0, 0};
    float f[kQuoteFeatures];
    for (int side = 0; side < 2; ++side) {
      const LimitOrder* q = find(a.quote_seq[side]);
      float* g = f + 3 * side;
      if (!q) {
        a.quote_seq[side] = -1;
        g[0] = g[1] = g[2] = 0.0f;
        continue;
      }
      px[side] = q->price;
      queue[side] = q->live ? q->front : std::numeric_limits<double>::quiet_NaN();
      g[0] = 1.0f;
      g[1] = static_cast<float>(static_cast<double>(side == 0 ? top[0] - q->price : q->price - top[2]) /
                                static_cast<double>(cfg_.quote_levels));
      g[2] = !q->live            ? 1.0f
             : q->level_qty > 0  ? static_cast<float>(q->front / static_cast<double>(q->level_qty))
                                 : 0.0f;
    }
    std::memcpy(o + D + kAccountFeatures, f, sizeof f);
    b.maker_fees[i] = a.maker_fees;
    b.maker_filled[i] = a.maker_filled;
    b.quoted[i] = a.quoted;
    b.rejected[i] = a.rejected;
    b.bid_price[i] = px[0];
    b.ask_price[i] = px[1];
    b.bid_queue[i] = queue[0];
    b.ask_queue[i] = queue[1];
  }
  b.terminated[r] = terminated;
  b.truncated[r] = truncated;
  b.env_id[r] = env_id_;
  b.t[r] = cursor_;
  b.episode_length[r] = static_cast<int32_t>(steps_);
  b.guarded[r] = guard_bars() != 0;
}

}  // namespace trader
