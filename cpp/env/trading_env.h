// One trading environment over replayed order books: K agents send market orders, post-only limit
// orders and cancels; resting orders keep a queue position estimated from every level change and
// trade between two sampled rows (hftbacktest's queue models). Observations are rows of a feature
// matrix joined with each agent's account state (and, in quote modes, its own quotes).
//
// Timeline of one step (cursor c = the book row the agents observed, T_c its time):
//   1. each agent's action becomes orders: a market order due at the first row whose time is
//      >= T_c + order_latency_ns (row c with latency 0); in quote modes also a bid and an ask quote
//      (re-quoting at an unchanged price keeps the order; a new price cancels the old order, effective
//      at T_c + cancel_latency_ns, and sends a new one that reaches the exchange at T_c +
//      order_latency_ns and joins the back of its level); while the move guard bars a side at row c
//      (cpp/env/move_guard.h: both, or the position against the move), no order opens or adds to a
//      position on that side: its quote is not sent (its order cancelled) and market orders are clipped
//      toward flat;
//   2. market orders due at row c execute against row c's levels (walking the book, taker fee in
//      bps), agents in a seeded random priority; depth the book does not show is not filled;
//   3. the market changes between rows c and c + 1 are replayed in file order against the resting
//      orders: an order reaches the exchange just before the first change with exch_ts > its arrival
//      time (rejected if it would cross: post-only), a cancel likewise; trades and level changes
//      move its queue position and fill it (maker fee in bps, negative = rebate);
//   4. the cursor moves to c + 1; equity is marked at row c + 1's mid; reward (pnl, with an inventory
//      penalty, or dampened) times reward_scale; the observation is row c + 1.
// Market orders leave no lasting impact: the book is restored from the data at every row.
// Simplifications, on purpose: market orders do not trade with the agents' own resting orders; the
// position limit clips a quote's size when it is sent (a kept order is not re-clipped, and a cancel
// in flight can still fill); a book clear (resync) reaches resting orders as level changes to 0
// (hftbacktest instead drops every order on a clear); agents' orders never change the market's
// level sizes (their queue positions are estimates against the recorded market, as in hftbacktest).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "book/replay.h"
#include "env/move_guard.h"
#include "env/spec.h"

namespace trader {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();  // a time (ns) that never comes

// Read-only market data of one dataset (a day, an instrument), shared by every env of a pool (not
// owned). A pool may hold several: an episode runs inside one of them and never crosses into another
// (issue 13), with that dataset's own tick and lot size.
struct MarketData {
  const int64_t* book = nullptr;   // [rows, levels, 4]: bid px, bid qty, ask px, ask qty (ticks, lots)
  const float* features = nullptr;  // [rows, dim]
  const int64_t* ts = nullptr;      // [rows] row times, ns on the sampling clock (null: latencies must be 0)
  const MarketEvent* stream = nullptr;  // the changes between rows (null: no quote action types)
  const int64_t* stream_starts = nullptr;  // [rows + 1]: stream[starts[c] .. starts[c + 1]) follow row c
  bool has_trades = false;          // false: only trade-through / touch-cross fills (snapshot-only data)
  int64_t rows = 0;
  int64_t levels = 0;
  int64_t dim = 0;
  double tick_size = 0.01;  // quote per tick
  double lot_size = 1e-5;   // base per lot
  int64_t start_min = 0, start_max = 0;  // rows: episodes start in [start_min, start_max]
  uint64_t start_offset = 0;  // usable starts of the pool's datasets before this one (set by EnvPool)
  MoveGuard guard;  // set from the env's options before prepare() (off by default)
  // Derived by prepare() (a live market: row by row, prepare(from)):
  std::vector<double> mid;  // ticks, per row
  std::vector<uint8_t> guarded;  // per row: what the move guard bars, MoveGuard's bits (empty: the guard is off)
  // The stream without the level changes far from the touch: segment c keeps bid levels at prices
  // >= best bid(c) - near_ticks, ask levels <= best ask(c) + near_ticks, and every trade. An env
  // whose orders all lie inside that window walks it instead of the whole segment (the far records
  // cannot reach its orders: the result is the same, see TradingEnv::replay_segment).
  // Far records still move time: an order reaches the exchange before the first record stamped
  // after its arrival, near or far. near_far_ts[i] = the latest exch_ts of the far records skipped
  // just before near[i]; near_tail_ts[c] = the same after the last near record of segment c.
  int64_t near_ticks = 0;
  std::vector<MarketEvent> near;
  std::vector<int64_t> near_far_ts;
  std::vector<int64_t> near_due_ts;   // max(near_far_ts[i], near[i].exch_ts)
  std::vector<int64_t> near_starts;   // [rows + 1]
  std::vector<int64_t> near_tail_ts;  // [rows]

  // Derives mid and the near stream for rows >= from (the rows before are kept as prepared; a
  // growing live market re-prepares its last row once the segment after it is known).
  void prepare(int64_t from = 0);
};

// The first element of every output buffer (one set per pool, shared by its envs).
struct OutBase {
  float* obs;  // [rows, K, obs_dim]
  int64_t obs_dim;
#define TRADER_OUT_PTR(name, type, per_agent, doc) type* name;
  TRADER_ENV_OUTPUTS(TRADER_OUT_PTR)
#undef TRADER_OUT_PTR
};

// One env's output row: name() points at its entry of each field ([K] where the field is per agent).
struct OutRow {
  const OutBase* base;
  size_t r, rk;  // row, row * K
  float* obs() const { return base->obs + rk * static_cast<size_t>(base->obs_dim); }
#define TRADER_OUT_ACCESSOR(name, type, per_agent, doc) \
  type* name() const { return base->name + (per_agent ? rk : r); }
  TRADER_ENV_OUTPUTS(TRADER_OUT_ACCESSOR)
#undef TRADER_OUT_ACCESSOR
};

// One fill of an agent's order, as the execution kernel reports it (cpp/exec/live_kernel.h).
struct ExecFill {
  int64_t order;  // seq of the limit order; -1: a market order
  bool buy;
  bool maker;
  int64_t price;  // ticks
  int64_t lots;
  double fee;     // quote
};

class TradingEnv {
 public:
  // markets: num_markets datasets of equal levels and dim, start_offset set (EnvPool does it).
  TradingEnv(const EnvConfig& cfg, const MarketData* markets, int num_markets, int env_id, uint64_t seed);

  void reseed(uint64_t seed);
  void reset(OutRow& out);
  // actions: K ints (discrete, quote) or K * action_width floats (continuous, quote_continuous);
  // ignored when the previous step ended the episode: then the env resets (gymnasium's next-step
  // autoreset).
  void step(const int64_t* discrete, const float* continuous, OutRow& out);

  int env_id() const { return env_id_; }
  // Every fill from now on is also appended to *log (null: none; the pool never sets it).
  void set_fill_log(std::vector<ExecFill>* log) { fill_log_ = log; }
  int64_t obs_dim() const { return obs_dim_; }

 private:
  friend class LiveKernel;  // drives one env step by step on live rows (cpp/exec/live_kernel.h)
  struct MarketOrder {
    int64_t due;   // row
    int64_t lots;  // signed
  };
  // A post-only limit order of one agent, from its sending until filled, cancelled or rejected.
  struct LimitOrder {
    int64_t seq;        // sending order: queue priority among the agents' orders at one price
    int32_t agent;
    bool bid;
    bool live;          // reached the exchange
    bool dead;          // filled, cancelled or rejected: removed after the current market event
    int64_t price;      // ticks
    int64_t leaves;     // lots
    int64_t arrive_ts;  // ns: live just before the first market event with exch_ts > arrive_ts
    int64_t cancel_ts;  // ns: removed just before the first market event with exch_ts > cancel_ts
    int64_t level_qty;  // market lots at its price (row snapshot + changes since)
    int64_t crossing;   // non-empty opposite levels at prices that cross it (> 0: would cross)
    double front;       // market lots ahead (hftbacktest's front_q_qty)
    double cum_trade;   // lots traded at its price since the last level change (ProbQueueModel)
  };
  struct Agent {  // what a market-order step touches first, the quote state after
    int64_t position = 0;
    double cash = 0;
    double cost = 0;  // quote paid for the open position (average-cost accounting)
    double equity = 0;
    double cash_at_step = 0;  // cash when this step began (the markout reward)
    double episode_return = 0;
    double fees = 0, taker_fees = 0;
    int64_t filled = 0, taker_filled = 0, unfilled = 0;
    std::vector<MarketOrder> pending;  // FIFO, due rows non-decreasing
    size_t pending_head = 0;
    double maker_fees = 0;
    int64_t maker_filled = 0, quoted = 0;
    int32_t rejected = 0;
    int64_t quote_seq[2] = {-1, -1};  // the current bid / ask order (seq), -1: none
    int64_t resting[2] = {0, 0};      // leaves of its orders not removed yet, bid / ask (cancels in flight too)
    int64_t position_at_step = 0;     // position when this step began
    int64_t held_since = -1;          // ts (ns) of the row at which the position was opened since flat; -1: flat
  };

  uint64_t next_random();
  int64_t pending_lots(const Agent& a) const;
  // The first row at or after row's time + order latency (rows: never).
  int64_t due_row(int64_t row) const {
    if (order_latency_ns_ == 0) return row;
    const int64_t arrive = data_->ts[row] + order_latency_ns_;
    while (row < data_->rows && data_->ts[row] < arrive) ++row;
    return row;
  }
  int64_t order_from_action(const Agent& a, int64_t discrete, float continuous) const;
  // The market order that closes the position once every pending one has filled (flatten, max_hold_ns).
  int64_t closing_lots(const Agent& a) const { return -(a.position + pending_lots(a)); }
  // Agent k's quote action as step() reads it (trader.sim.spec.encode_quote): the bid and ask grid indices
  // (quote_levels: no quote) and the flatten flag; with quote_exit_touch the side that reduces a's position takes the
  // grid's first price, whatever the action asks (issue 13, session 27).
  struct QuoteFields {
    int64_t bid, ask;
    bool flatten;
  };
  QuoteFields quote_fields(const Agent& a, int k, const int64_t* discrete, const float* continuous) const;
  // max_hold_ns: the agent's position has been held that long at the cursor's row, so it is closed (issue 13).
  bool hold_expired(const Agent& a) const {
    return cfg_.max_hold_ns > 0 && a.position != 0 && a.held_since >= 0 &&
           data_->ts[cursor_] - a.held_since >= cfg_.max_hold_ns;
  }
  // After the position moved from `before` to a.position: it was opened (from flat, or across zero) at `ts`.
  static void track_hold(Agent& a, int64_t before, int64_t ts) {
    if (a.position == 0) {
      a.held_since = -1;
    } else if (before == 0 || (before > 0) != (a.position > 0) || a.held_since < 0) {
      a.held_since = ts;
    }
  }
  // What the move guard bars at the cursor's row: MoveGuard::kNoLong, kNoShort, both or none (cpp/env/move_guard.h).
  uint8_t guard_bars() const { return guard_on_ ? data_->guarded[static_cast<size_t>(cursor_)] : 0; }
  void send_market(Agent& a, int64_t lots) {
    if (a.pending_head == a.pending.size()) {
      a.pending.clear();
      a.pending_head = 0;
    }
    if (lots != 0) a.pending.push_back({due_row(cursor_), lots});
  }
  void quote(int k, int64_t bid_idx, int64_t ask_idx);
  void execute(Agent& a, int64_t lots, int64_t row);
  void book_fill(Agent& a, bool buy, int64_t lots, double notional, double fee);
  void maker_fill(LimitOrder& o, int64_t lots);
  void replay_segment(int64_t row);
  template <bool kNear>
  void replay_records(const MarketEvent* ev, int64_t begin, int64_t end);
  // Drops the orders that died (filled, cancelled, rejected) and narrows the reach; false: none left.
  bool remove_dead();
  void on_market_event(const MarketEvent& e);
  void on_depth(LimitOrder& o, double prev, double next) const;
  void due_orders(int64_t exch_ts);
  // The reach from the orders' price range: recomputed from every order when orders die, widened by
  // a new order in O(1) (orders_ holds no dead order when quote() runs: replay_segment removes them).
  void update_reach();
  void widen_reach(const LimitOrder& o);
  void set_reach();
  LimitOrder* find(int64_t seq);
  // Points the env at one dataset: data_ and the constants in its tick and lot size.
  void use_market(const MarketData* m);
  void write(OutRow& out, bool terminated, bool truncated);

  // Hot state first: one step of a discrete env touches the first cache lines of the object only.
  const MarketData* data_;
  int64_t cursor_ = 0;
  int64_t steps_ = 0;
  bool needs_reset_ = true;
  bool quoting_;
  bool guard_on_;  // the move guard is on (guard_window_ns > 0): every dataset has its flags
  ActionType actions_;
  int num_agents_;
  int64_t order_latency_ns_;
  int64_t obs_dim_;
  int64_t horizon_;
  RewardType reward_;
  double taker_fee_bps_, reward_scale_;
  double ruin_equity_;  // ruin_fraction * initial_cash
  // from trade_size / max_position / allow_short; hi_lots_ is max_lots_ or the tighter position_cap_trades
  // (max_lots_ stays the scale of observations and rewards)
  int64_t trade_lots_, max_lots_, hi_lots_, min_lots_;
  double notional_per_tick_lot_;
  std::vector<ExecFill>* fill_log_ = nullptr;  // beside what execute() reads anyway (set_fill_log)
  uint64_t rng_ = 0;
  std::vector<Agent> agents_;
  std::vector<int> priority_;
  std::vector<LimitOrder> orders_;                     // all agents' orders, in seq order
  std::vector<int64_t> consumed_bid_, consumed_ask_;  // lots taken this row by earlier agents
  int64_t touched_levels_ = 0;                         // levels of those vectors written this row
  int64_t next_seq_ = 0;
  int action_width_;  // floats per agent (continuous modes)
  int env_id_;
  EnvConfig cfg_;
  const MarketData* markets_;  // every dataset of the pool; data_ is one of them
  int num_markets_;
  uint64_t total_starts_;  // usable episode starts over all datasets
  int64_t next_due_ts_;  // earliest arrive_ts / cancel_ts not yet handled
  // markout_detrend: the dataset's mid drift, ticks per ns, from start_min to the last row an episode reaches
  double markout_drift_ = 0;
  int64_t markout_row_ = 0;  // markout reward: the first row markout_ns after the cursor's, or the episode's last
  double later_mark_ = 0;  // markout_inventory_weight: the previous step's mid markout_ns on, quote per lot
  bool died_ = false;    // an order died during the current market event
  int64_t bid_lo_, bid_hi_, ask_lo_, ask_hi_;  // price range of the orders per side (empty: lo > hi)
  int64_t reach_lo_[4], reach_hi_[4];  // per MarketEventKind: prices that can touch an order
};

}  // namespace trader
