#include "env/trading_env.h"

#include <algorithm>
#include <cmath>
#include <cstring>

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
}  // namespace

TradingEnv::TradingEnv(const EnvConfig& cfg, const MarketData* data, int env_id, uint64_t seed)
    : cfg_(cfg),
      data_(data),
      env_id_(env_id),
      notional_per_tick_lot_(cfg.tick_size * cfg.lot_size),
      agents_(cfg.num_agents),
      priority_(cfg.num_agents),
      consumed_bid_(data->levels),
      consumed_ask_(data->levels) {
  for (auto& a : agents_) a.pending.reserve(static_cast<size_t>(cfg.latency_steps) + 2);
  reseed(seed);
}

void TradingEnv::reseed(uint64_t seed) {
  rng_ = seed;
  needs_reset_ = true;
}

uint64_t TradingEnv::next_random() { return splitmix64(rng_); }

void TradingEnv::reset(OutRow& out) {
  const int64_t last = cfg_.start_max >= 0 ? cfg_.start_max
                                           : data_->rows - 1 - cfg_.horizon - cfg_.latency_steps;
  const uint64_t span = static_cast<uint64_t>(last - cfg_.start_min + 1);
  cursor_ = cfg_.start_min + static_cast<int64_t>(below(next_random(), span));
  steps_ = 0;
  needs_reset_ = false;
  for (auto& a : agents_) {
    a.position = 0;
    a.cash = cfg_.initial_cash;
    a.cost = 0;
    a.fees = 0;
    a.equity = cfg_.initial_cash;
    a.episode_return = 0;
    a.filled = 0;
    a.unfilled = 0;
    a.pending.clear();
    a.pending_head = 0;
  }
  for (int k = 0; k < cfg_.num_agents; ++k) out.reward[k] = 0.0f;
  write(out, false, false);
}

int64_t TradingEnv::pending_lots(const Agent& a) const {
  int64_t s = 0;
  for (size_t i = a.pending_head; i < a.pending.size(); ++i) s += a.pending[i].lots;
  return s;
}

int64_t TradingEnv::order_from_action(const Agent& a, int64_t discrete, float continuous) const {
  const int64_t hi = cfg_.max_position_lots;
  const int64_t lo = cfg_.allow_short ? -cfg_.max_position_lots : 0;
  const int64_t expected = a.position + pending_lots(a);  // as if every pending order fills
  int64_t target;
  if (cfg_.continuous) {
    target = static_cast<int64_t>(std::llround(static_cast<double>(continuous) * static_cast<double>(hi)));
  } else if (discrete == 1) {
    target = expected + cfg_.trade_lots;
  } else if (discrete == 2) {
    target = expected - cfg_.trade_lots;
  } else {
    return 0;
  }
  target = std::clamp(target, lo, hi);
  return target - expected;
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
    const int64_t avail = levels[4 * l + px_col + 1] - consumed[l];
    if (avail <= 0) continue;
    const int64_t take = std::min(avail, remaining);
    consumed[l] += take;
    touched_levels_ = std::max(touched_levels_, l + 1);
    remaining -= take;
    filled += take;
    ticks_x_lots += static_cast<double>(px) * static_cast<double>(take);
  }
  a.unfilled += remaining;
  if (filled == 0) return;
  const double notional = ticks_x_lots * notional_per_tick_lot_;
  const double fee = notional * cfg_.fee_bps * 1e-4;
  const int64_t signed_fill = buy ? filled : -filled;
  a.fees += fee;
  a.cash -= (buy ? notional : -notional) + fee;
  a.filled += signed_fill;
  // Average-cost basis of the open position: reduce proportionally, restart on a flip.
  const int64_t before = a.position;
  const int64_t after = before + signed_fill;
  const double avg_px_value = notional / static_cast<double>(filled);  // quote per lot of this fill
  if (before == 0 || (before > 0) == buy) {
    a.cost += (buy ? notional : -notional);
  } else if ((after > 0) == (before > 0) && after != 0) {
    a.cost *= static_cast<double>(after) / static_cast<double>(before);
  } else {
    a.cost = static_cast<double>(after) * avg_px_value;
  }
  a.position = after;
}

void TradingEnv::step(const int64_t* discrete, const float* continuous, OutRow& out) {
  if (needs_reset_) {
    reset(out);
    return;
  }
  const int K = cfg_.num_agents;
  // 1. actions -> orders due at cursor + latency
  for (int k = 0; k < K; ++k) {
    Agent& a = agents_[k];
    a.filled = 0;
    a.unfilled = 0;
    const int64_t lots = order_from_action(a, discrete ? discrete[k] : 0, continuous ? continuous[k] : 0.0f);
    if (a.pending_head == a.pending.size()) {
      a.pending.clear();
      a.pending_head = 0;
    }
    if (lots != 0) a.pending.push_back({cursor_ + cfg_.latency_steps, lots});
  }
  // 2. orders due now execute against this row, agents in a seeded random priority
  if (K == 1) {
    Agent& a = agents_[0];
    while (a.pending_head < a.pending.size() && a.pending[a.pending_head].due <= cursor_) {
      execute(a, a.pending[a.pending_head].lots, cursor_);
      ++a.pending_head;
    }
  } else {
    for (int k = 0; k < K; ++k) priority_[k] = k;
    for (int k = K - 1; k > 0; --k) {  // Fisher-Yates
      const int j = static_cast<int>(below(next_random(), static_cast<uint64_t>(k + 1)));
      std::swap(priority_[k], priority_[j]);
    }
    for (int idx = 0; idx < K; ++idx) {
      Agent& a = agents_[priority_[idx]];
      while (a.pending_head < a.pending.size() && a.pending[a.pending_head].due <= cursor_) {
        execute(a, a.pending[a.pending_head].lots, cursor_);
        ++a.pending_head;
      }
    }
  }
  // Liquidity taken this row is returned with the next row: reset only the levels touched.
  std::fill_n(consumed_bid_.begin(), touched_levels_, 0);
  std::fill_n(consumed_ask_.begin(), touched_levels_, 0);
  touched_levels_ = 0;
  // 3. advance, mark to market, reward
  ++cursor_;
  ++steps_;
  const double mark = data_->mid[cursor_] * notional_per_tick_lot_;  // quote per lot at mid
  bool ruined = false;
  for (int k = 0; k < K; ++k) {
    Agent& a = agents_[k];
    const double equity = a.cash + static_cast<double>(a.position) * mark;
    const double r = (equity - a.equity) * cfg_.reward_scale;
    a.equity = equity;
    a.episode_return += r;
    out.reward[k] = static_cast<float>(r);
    ruined |= equity < cfg_.ruin_fraction * cfg_.initial_cash;
  }
  const bool truncated = !ruined && steps_ >= cfg_.horizon;
  if (ruined || truncated) {
    needs_reset_ = true;
    for (auto& a : agents_) {  // orders still in flight are cancelled with the episode
      for (size_t i = a.pending_head; i < a.pending.size(); ++i) a.unfilled += std::abs(a.pending[i].lots);
    }
  }
  write(out, ruined, truncated);
}

void TradingEnv::write(OutRow& out, bool terminated, bool truncated) {
  const int K = cfg_.num_agents;
  const int64_t D = data_->dim;
  const int64_t stride = D + kAccountFeatures;
  const float* row = data_->features + cursor_ * D;
  const double mark = data_->mid[cursor_] * notional_per_tick_lot_;
  const double max_notional = static_cast<double>(cfg_.max_position_lots) * mark;
  const float time_left =
      static_cast<float>(cfg_.horizon - steps_) / static_cast<float>(cfg_.horizon);
  for (int k = 0; k < K; ++k) {
    const Agent& a = agents_[k];
    float* o = out.obs + k * stride;
    std::memcpy(o, row, sizeof(float) * static_cast<size_t>(D));
    o[D] = static_cast<float>(static_cast<double>(a.position) / static_cast<double>(cfg_.max_position_lots));
    const double upnl = static_cast<double>(a.position) * mark - a.cost;
    o[D + 1] = static_cast<float>(upnl / max_notional * 100.0);
    o[D + 2] = time_left;
    out.episode_return[k] = static_cast<float>(a.episode_return);
    out.position[k] = a.position;
    out.equity[k] = a.equity;
    out.fees[k] = a.fees;
    out.filled[k] = a.filled;
    out.unfilled[k] = a.unfilled;
  }
  *out.terminated = terminated;
  *out.truncated = truncated;
  *out.env_id = env_id_;
  *out.t = cursor_;
  *out.episode_length = static_cast<int32_t>(steps_);
}

}  // namespace trader
