// One trading environment over replayed book snapshots: K agents trade market orders against the
// book of the current step; their orders of the same step consume the same levels in a seeded random
// priority. Observations are rows of a feature matrix joined with each agent's account state.
//
// Timeline of one step (cursor c = the book row the agents observed):
//   1. each agent's action becomes an order (signed lots) due at row c + latency_steps;
//   2. orders due at row c execute against row c's levels (walking the book, taker fee in bps);
//      depth the book does not show is not filled (the rest of the order is cancelled);
//   3. the cursor moves to c + 1; equity is marked at row c + 1's mid; reward = change of equity net
//      of fees, times reward_scale; the observation is row c + 1.
// The book is restored from the data at every row: fills leave no lasting market impact.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace trader {

struct EnvConfig {
  int64_t horizon = 1000;             // steps per episode (then truncated)
  int num_agents = 1;                 // K agents sharing each env's book
  bool continuous = false;            // false: Discrete(3) hold/buy/sell; true: target position in [-1, 1]
  int64_t trade_lots = 1;             // discrete mode: size of one order (lots)
  int64_t max_position_lots = 10;     // |position| limit (lots)
  bool allow_short = true;            // false: position >= 0
  int64_t latency_steps = 0;          // an order sent at row c executes at row c + latency
  double fee_bps = 1.0;               // taker fee, basis points of notional
  double initial_cash = 100000.0;     // quote currency
  double reward_scale = 1.0;          // reward = delta equity (quote) * reward_scale
  double ruin_fraction = 0.5;         // terminated when an agent's equity < ruin_fraction * initial_cash
  double tick_size = 0.01;            // quote per tick
  double lot_size = 1e-5;             // base per lot
  int64_t start_min = 0;              // episode starts are drawn uniformly in [start_min, start_max]
  int64_t start_max = -1;             // -1: the last row that leaves a full horizon
};

// Read-only market data shared by every env of a pool (not owned).
struct MarketData {
  const int64_t* book = nullptr;   // [rows, levels, 4]: bid px, bid qty, ask px, ask qty (ticks, lots)
  const float* features = nullptr;  // [rows, dim]
  int64_t rows = 0;
  int64_t levels = 0;
  int64_t dim = 0;
  std::vector<double> mid;  // ticks, per row (computed once)
};

constexpr int kAccountFeatures = 3;  // position / max, unrealized PnL (% of max notional), time left

// Pointers to one env's output row in each field buffer (K agents where marked).
struct OutRow {
  float* obs;               // [K, dim + 3]
  float* reward;            // [K]
  uint8_t* terminated;
  uint8_t* truncated;
  int32_t* env_id;
  int64_t* t;               // cursor (data row) of the observation
  int32_t* episode_length;  // steps since reset
  float* episode_return;    // [K] sum of rewards this episode
  int64_t* position;        // [K] lots
  double* equity;           // [K] quote, marked at mid
  double* fees;             // [K] fees paid this episode, quote
  int64_t* filled;          // [K] signed lots filled this step
  int64_t* unfilled;        // [K] lots cancelled this step: beyond the shown depth, or in flight at episode end
};

class TradingEnv {
 public:
  TradingEnv(const EnvConfig& cfg, const MarketData* data, int env_id, uint64_t seed);

  void reseed(uint64_t seed);
  void reset(OutRow& out);
  // actions: K ints (discrete) or K floats (continuous); ignored when the previous step ended the
  // episode: then the env resets (gymnasium's next-step autoreset).
  void step(const int64_t* discrete, const float* continuous, OutRow& out);

  int env_id() const { return env_id_; }

 private:
  struct Order {
    int64_t due;
    int64_t lots;  // signed
  };
  struct Agent {
    int64_t position = 0;
    double cash = 0;
    double cost = 0;  // quote paid for the open position (average-cost accounting)
    double fees = 0;
    double equity = 0;
    double episode_return = 0;
    int64_t filled = 0;
    int64_t unfilled = 0;
    std::vector<Order> pending;  // FIFO, due rows non-decreasing
    size_t pending_head = 0;
  };

  uint64_t next_random();
  int64_t pending_lots(const Agent& a) const;
  int64_t order_from_action(const Agent& a, int64_t discrete, float continuous) const;
  void execute(Agent& a, int64_t lots, int64_t row);
  void write(OutRow& out, bool terminated, bool truncated);

  EnvConfig cfg_;
  const MarketData* data_;
  int env_id_;
  uint64_t rng_ = 0;
  int64_t cursor_ = 0;
  int64_t steps_ = 0;
  bool needs_reset_ = true;
  double notional_per_tick_lot_;
  std::vector<Agent> agents_;
  std::vector<int> priority_;
  std::vector<int64_t> consumed_bid_, consumed_ask_;  // lots taken this row by earlier agents
  int64_t touched_levels_ = 0;                         // levels of those vectors written this row
};

}  // namespace trader
