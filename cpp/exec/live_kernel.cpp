#include "exec/live_kernel.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace trader {

namespace {
EnvConfig live_config(EnvConfig cfg, double tick_size, double lot_size) {
  cfg.num_agents = 1;
  cfg.tick_size = tick_size;
  cfg.lot_size = lot_size;
  cfg.start_min = cfg.start_max = 0;  // the session starts at its first row
  validate(cfg);
  return cfg;
}

MarketData empty_market(const EnvConfig& cfg, int64_t levels, int64_t dim) {
  if (levels < 1) throw std::invalid_argument("levels: expected >= 1 book level a side");
  if (dim < 1) throw std::invalid_argument("dim: expected >= 1 feature column");
  validate_depth(cfg, levels);
  if (!(cfg.tick_size > 0 && std::isfinite(cfg.tick_size))) throw std::invalid_argument("tick_size: expected > 0 quote");
  if (!(cfg.lot_size > 0 && std::isfinite(cfg.lot_size))) throw std::invalid_argument("lot_size: expected > 0 base");
  if (!sizes_in_quote(cfg) && std::llround(cfg.trade_size / cfg.lot_size) < 1) {
    throw std::invalid_argument("trade_size: expected at least one lot (" + std::to_string(cfg.lot_size) +
                                " base), got " + std::to_string(cfg.trade_size));
  }
  MarketData d;
  d.levels = levels;
  d.dim = dim;
  d.tick_size = cfg.tick_size;
  d.lot_size = cfg.lot_size;
  d.has_trades = true;  // a live feed carries the trade stream
  d.guard = MoveGuard(cfg);
  return d;
}
}  // namespace

LiveKernel::LiveKernel(const EnvConfig& cfg, int64_t levels, int64_t dim, double tick_size, double lot_size)
    : cfg_(live_config(cfg, tick_size, lot_size)),
      data_(empty_market(cfg_, levels, dim)),
      starts_{0} {
  obs_.assign(static_cast<size_t>(dim + kAccountFeatures + (is_quote(cfg_.actions) ? kQuoteFeatures : 0)), 0.0f);
  base_.obs = obs_.data();
  base_.obs_dim = static_cast<int64_t>(obs_.size());
#define TRADER_OUT_BIND(name, type, per_agent, doc) base_.name = &name##_;
  TRADER_ENV_OUTPUTS(TRADER_OUT_BIND)
#undef TRADER_OUT_BIND
  refresh();
}

void LiveKernel::refresh() {
  data_.book = book_.data();
  data_.features = features_.data();
  data_.ts = ts_.data();
  data_.stream = stream_.data();
  data_.stream_starts = starts_.data();
}

void LiveKernel::append(const int64_t* book, const float* features, int64_t ts, const MarketEvent* events,
                        size_t n) {
  const int64_t L = data_.levels, r = data_.rows;
  if (book[0] <= 0 || book[2] <= 0 || book[0] >= book[2]) {
    throw std::invalid_argument("book: row " + std::to_string(r) + " needs a best bid and a best ask with bid < ask (got bid " +
                                std::to_string(book[0]) + ", ask " + std::to_string(book[2]) + " ticks)");
  }
  for (int64_t i = 0; i < data_.dim; ++i) {
    if (!std::isfinite(features[i])) {
      throw std::invalid_argument("features: non-finite value at row " + std::to_string(r) + ", column " + std::to_string(i));
    }
  }
  if (r > 0 && ts < ts_.back()) {
    throw std::invalid_argument("ts: row " + std::to_string(r) + " at " + std::to_string(ts) +
                                " ns is before the previous row (" + std::to_string(ts_.back()) + " ns)");
  }
  book_.insert(book_.end(), book, book + L * 4);
  features_.insert(features_.end(), features, features + data_.dim);
  ts_.push_back(ts);
  if (r > 0) stream_.insert(stream_.end(), events, events + n);  // the segment after row r - 1
  starts_.back() = static_cast<int64_t>(stream_.size());           // ends row r - 1's segment
  starts_.push_back(static_cast<int64_t>(stream_.size()));         // row r's: empty until the next row
  data_.rows = r + 1;
  refresh();
  data_.prepare(std::max<int64_t>(r - 1, 0));  // row r - 1's segment is known now
}

void LiveKernel::write() {
  OutRow row{&base_, 0, 0};
  env_->write(row, false, false);
}

void LiveKernel::reset() {
  if (data_.rows < 1) throw std::logic_error("reset: no row yet");
  // Sizes in quote currency become lots at the first row's mid (TradingEnv::use_market; issue 13).
  if (sizes_in_quote(cfg_) && size_lots(cfg_, data_.lot_size, data_.mid[0] * data_.tick_size).trade < 1) {
    throw std::invalid_argument("trade_notional: less than one lot at the first row's mid");
  }
  fills_.clear();
  env_.emplace(cfg_, &data_, 1, 0, 0);
  env_->set_fill_log(&fills_);
  OutRow row{&base_, 0, 0};
  env_->reset(row);
}

OrderPlan LiveKernel::plan(const int64_t* discrete, const float* continuous) const {
  if (!env_) throw std::logic_error("plan: reset first");
  // Phase 1 of TradingEnv::step on a copy of the env: the same quote() and order_from_action().
  TradingEnv sim = *env_;
  sim.fill_log_ = nullptr;
  TradingEnv::Agent& a = sim.agents_[0];
  OrderPlan p;
  p.close = sim.hold_expired(a);
  if (!sim.quoting_) {
    p.market_lots = p.close ? sim.closing_lots(a)
                            : sim.order_from_action(a, discrete ? discrete[0] : 0, continuous ? continuous[0] : 0.0f);
    return p;
  }
  const TradingEnv::QuoteFields q = sim.quote_fields(a, 0, discrete, continuous);
  p.market_lots = q.flatten || p.close ? sim.closing_lots(a) : 0;
  const int64_t before[2] = {a.quote_seq[0], a.quote_seq[1]};
  const bool resting[2] = {sim.find(before[0]) != nullptr, sim.find(before[1]) != nullptr};
  sim.quote(0, q.bid, q.ask);
  for (int side = 0; side < 2; ++side) {
    OrderPlan::Side& s = p.side[side];
    const TradingEnv::LimitOrder* o = sim.find(a.quote_seq[side]);
    if (o) {
      s.price = o->price;
      s.lots = o->leaves;
      s.seq = o->seq;
      s.kept = o->seq == before[side];
    }
    if (resting[side] && !s.kept) s.cancel = before[side];
  }
  return p;
}

void LiveKernel::step(const int64_t* discrete, const float* continuous) {
  if (!env_) throw std::logic_error("step: reset first");
  if (env_->cursor_ + 1 >= data_.rows) throw std::logic_error("step: the next row has not arrived");
  fills_.clear();
  OutRow row{&base_, 0, 0};
  env_->step(discrete, continuous, row);
  if (env_->needs_reset_) {  // the horizon (or ruin): a live session goes on with its account
    env_->needs_reset_ = false;
    env_->steps_ = 0;
    write();
  }
}

void LiveKernel::market(int64_t lots) {
  if (!env_) throw std::logic_error("market: reset first");
  fills_.clear();
  TradingEnv::Agent& a = env_->agents_[0];
  a.filled = a.taker_filled = a.unfilled = 0;
  const int64_t before = a.position;
  env_->execute(a, lots, env_->cursor_);
  TradingEnv::track_hold(a, before, data_.ts[static_cast<size_t>(env_->cursor_)]);
  const double mark = data_.mid[static_cast<size_t>(env_->cursor_)] * env_->notional_per_tick_lot_;
  a.equity = a.cash + static_cast<double>(a.position) * mark;
  write();
}

int64_t LiveKernel::leaves(int64_t seq) const {
  if (!env_) return -1;
  for (const auto& o : env_->orders_) {
    if (o.seq == seq) return o.dead ? -1 : o.leaves;
  }
  return -1;
}

void LiveKernel::set_account(int64_t position, double cash, double cost) {
  if (!env_) throw std::logic_error("set_account: reset first");
  TradingEnv::Agent& a = env_->agents_[0];
  const int64_t before = a.position;
  a.position = position;
  TradingEnv::track_hold(a, before, data_.ts[static_cast<size_t>(env_->cursor_)]);
  a.cash = cash;
  a.cost = cost;
  a.equity = cash + static_cast<double>(position) * data_.mid[static_cast<size_t>(env_->cursor_)] *
                        env_->notional_per_tick_lot_;
  write();
}

}  // namespace trader
