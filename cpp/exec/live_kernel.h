// The execution kernel of paper and live trading (issue 16, nautilus_trader's principle: one execution
// code path for backtest, paper and live). It is the training env itself -- one TradingEnv, one agent --
// over a MarketData that grows while the session runs: each live row (the book sampled on the
// exchange clock, its feature row) arrives with the market events since the previous row, and the
// env steps on it exactly as it steps on a recording. So the observation's account and quote
// features, the orders an action implies (market lots, bid / ask quote prices and sizes, keep or
// cancel) and the paper fills (the env's queue model on the live book) are the env's own.
//
// Timeline of a live session (row r = the sample at grid time t_r):
//   row 0 arrives        -> reset(): the observation of row 0;
//   policy acts at row r -> plan(action): the orders step() will send at row r, for the broker now;
//   row r + 1 arrives    -> step(action): row r's orders, the market between rows r and r + 1 against
//                           the resting orders (fills), marked at row r + 1: the next observation.
// A live session never ends an episode: at the horizon the time-left feature starts again (as a new
// episode does in training) and the account carries on; ruin is the risk manager's business.
// Real trading: the exchange's fills replace the simulated ones in the account (set_account).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "env/trading_env.h"

namespace trader {

// The orders an action implies at the current row (what TradingEnv::step sends in its phase 1).
struct OrderPlan {
  int64_t market_lots = 0;  // signed market order (0: none)
  bool close = false;       // it closes a position held max_hold_ns (whatever the action asks)
  struct Side {
    int64_t price = 0;    // ticks; 0: no quote on this side after the action
    int64_t lots = 0;     // size of the order at that price (a kept order: what it still leaves)
    int64_t seq = -1;     // the order (kernel id)
    bool kept = false;    // the order resting before keeps its place (same price)
    int64_t cancel = -1;  // seq of the order this action cancels, -1: none
  } side[2];              // bid, ask
};

class LiveKernel {
 public:
  LiveKernel(const EnvConfig& cfg, int64_t levels, int64_t dim, double tick_size, double lot_size);
  LiveKernel(const LiveKernel&) = delete;
  LiveKernel& operator=(const LiveKernel&) = delete;

  // Appends a row: book [levels, 4] (ticks, lots), its feature row [dim], its time (ns, exchange
  // clock) and the n market events since the previous row (ignored for the first row).
  void append(const int64_t* book, const float* features, int64_t ts, const MarketEvent* events, size_t n);
  void reset();  // at the first row
  OrderPlan plan(const int64_t* discrete, const float* continuous) const;
  void step(const int64_t* discrete, const float* continuous);  // the next row must be appended
  // A market order of `lots` (signed) now, against the current row, by the env's own execute() (the
  // kill switch's flatten, the flatten at exit); its fills replace fills().
  void market(int64_t lots);
  // Lots an order still leaves resting or in flight, -1 once it is filled, cancelled or rejected.
  int64_t leaves(int64_t seq) const;
  // Real trading: the account from the exchange's fills (position in lots, cash and average-cost
  // basis in quote); the observation is written again with it.
  void set_account(int64_t position, double cash, double cost);

  int64_t rows() const { return data_.rows; }
  int64_t levels() const { return data_.levels; }
  int64_t dim() const { return data_.dim; }
  int64_t cursor() const { return env_ ? env_->cursor_ : 0; }
  int64_t obs_dim() const { return static_cast<int64_t>(obs_.size()); }
  const float* obs() const { return obs_.data(); }
  const OutBase& out() const { return base_; }
  const std::vector<ExecFill>& fills() const { return fills_; }  // of the last step
  double cash() const { return env_ ? env_->agents_[0].cash : cfg_.initial_cash; }
  double cost() const { return env_ ? env_->agents_[0].cost : 0.0; }
  const EnvConfig& config() const { return cfg_; }

 private:
  void write();
  void refresh();

  EnvConfig cfg_;
  MarketData data_;
  std::vector<int64_t> book_, ts_, starts_;
  std::vector<float> features_;
  std::vector<MarketEvent> stream_;
  std::optional<TradingEnv> env_;  // made at reset(): its sizes in lots can depend on the first row's mid
  std::vector<float> obs_;
  OutBase base_{};
#define TRADER_OUT_VALUE(name, type, per_agent, doc) type name##_ = 0;
  TRADER_ENV_OUTPUTS(TRADER_OUT_VALUE)
#undef TRADER_OUT_VALUE
  std::vector<ExecFill> fills_;
};

}  // namespace trader
