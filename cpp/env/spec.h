// The one declaration of the trading env's options and output fields (envpool's env_spec idea, as a
// plain table). From these two X-macro lists come: the EnvConfig struct below, the binding's keyword
// parsing and validation (cpp/bindings/env_bindings.cpp), `_core.env_spec()` / `_core.env_outputs()`,
// and from those, in Python, trader.sim.spec (spaces, the reference env's config, learner arguments
// and CLI options). Add an option or an output here and nowhere else.
//
// Units are the user's: trade_size and max_position in base currency (or trade_notional and
// max_position_notional in quote currency, issue 13: one size for every instrument), fees in bps of
// notional, latencies in ns of the data's clocks. The env converts to lots and ticks once per dataset.
#pragma once

#include <cstdint>

namespace trader {

// ---- Enum-valued options: values and their names (the order of the names is the enum's) ----------
enum class ActionType : int32_t { kDiscrete, kContinuous, kQuote, kQuoteContinuous };
inline constexpr const char* kActionTypeNames[] = {"discrete", "continuous", "quote", "quote_continuous"};

enum class QueueModel : int32_t { kPower, kLog, kRiskAverse };
inline constexpr const char* kQueueModelNames[] = {"power", "log", "risk_averse"};

enum class RewardType : int32_t { kPnl, kInventoryPenalty, kDampened, kMarkout, kMarkoutPenalty };
inline constexpr const char* kRewardTypeNames[] = {"pnl", "inventory_penalty", "dampened", "markout",
                                                   "markout_penalty"};
// The rewards that value fills at a later mid (they read the row times).
inline bool marks_out(RewardType r) { return r == RewardType::kMarkout || r == RewardType::kMarkoutPenalty; }

// What the move guard bars while up (cpp/env/move_guard.h): both sides, or the position against the move.
enum class GuardSides : int32_t { kBoth, kAgainstMove };
inline constexpr const char* kGuardSidesNames[] = {"both", "against_move"};

// X(name, C++ type, default, unit, doc)
#define TRADER_ENV_OPTIONS(X)                                                                                \
  X(horizon, int64_t, 500, "steps", "steps per episode (then truncated)")                                   \
  X(num_agents, int64_t, 1, "agents", "K agents sharing each env's book (1 to 1024)")                      \
  X(actions, ActionType, ActionType::kDiscrete, "",                                                         \
    "discrete: hold/buy/sell market orders; continuous: target position in [-1, 1]; quote: discrete grid " \
    "of bid/ask post-only quotes; quote_continuous: the same grid from a Box(-1, 1)")                      \
  X(trade_size, double, 0.01, "base", "size of one market order (discrete) or one quote")                  \
  X(max_position, double, 0.1, "base", "|position| limit")                                                  \
  X(trade_notional, double, 0.0, "quote",                                                                   \
    "trade_size in quote currency instead (0: off), converted to lots per dataset at the mid of its first " \
    "row; set with max_position_notional, leave trade_size and max_position at their defaults")            \
  X(max_position_notional, double, 0.0, "quote",                                                            \
    "max_position in quote currency instead (0: off), per dataset at the mid of its first row")            \
  X(allow_short, bool, true, "", "false: position >= 0")                                                   \
  X(taker_fee_bps, double, 1.0, "bps", "fee on market orders, bps of notional (>= 0)")                     \
  X(maker_fee_bps, double, 0.0, "bps", "fee on limit-order fills, bps of notional (negative = rebate)")    \
  X(order_latency_ns, int64_t, 0, "ns",                                                                     \
    "an order sent at row time T reaches the exchange at T + latency (exchange timestamps); market "       \
    "orders execute at the first row at or after it")                                                      \
  X(cancel_latency_ns, int64_t, 0, "ns", "a cancel sent at row time T takes effect at T + latency")        \
  X(queue_model, QueueModel, QueueModel::kPower, "",                                                        \
    "how level decreases not explained by trades move a resting order (hftbacktest's ProbQueueModel "      \
    "with x^n or log(1+x), or RiskAdverseQueueModel: only trades move it)")                                \
  X(queue_power, double, 2.0, "", "exponent n of the power queue model")                                   \
  X(quote_min_ticks, int64_t, 0, "ticks", "smallest quote offset from the same-side touch (-1: one tick inside)") \
  X(quote_levels, int64_t, 5, "levels", "quote offsets per side: quote_min_ticks .. quote_min_ticks + quote_levels - 1") \
  X(quote_flatten, bool, false, "", "quote actions carry a flag: flatten the position with a market order") \
  X(quote_exit_touch, bool, false, "",                                                                       \
    "quote actions: while the agent holds a position, the side that reduces it rests at the grid's nearest "  \
    "price (quote_min_ticks from the touch), whatever the action asks for that side, so a position waits for " \
    "its closing fill at the touch, not for the policy to quote again (issue 13, session 27)")               \
  X(reward, RewardType, RewardType::kPnl, "",                                                                \
    "pnl: change of mark-to-mid equity net of fees; inventory_penalty: pnl - penalty; dampened: "          \
    "pnl - max(0, eta * position * change of mid) (Spooner et al. 2018); markout: this step's fills "      \
    "valued at the mid markout_ns later (at the episode's last row if sooner), net of fees; "             \
    "markout_penalty: markout - penalty")                                                                  \
  X(inventory_penalty_bps, double, 1.0, "bps",                                                              \
    "inventory_penalty and markout_penalty rewards: per step, this many bps of the max-position notional "  \
    "times (q / q_max)^2")                                                                                  \
  X(dampen_eta, double, 0.5, "", "dampened reward: eta")                                                   \
  X(markout_ns, int64_t, 10000000000, "ns", "markout rewards: how long after a fill its mid is read")      \
  X(markout_detrend, bool, false, "",                                                                       \
    "markout rewards: the later mid less the dataset's drift over the same time (the mean mid change per " \
    "ns from start_min to the last row an episode reaches), so that a trending training day does not "    \
    "teach a side")                                                                                        \
  X(markout_hurdle_bps, double, 0.0, "bps",                                                                 \
    "markout rewards: each fill is also charged this many bps of its notional at the mid, in the reward "   \
    "only (not in PnL): the edge a fill must clear to be learned, so that noise in the training rows "      \
    "does not teach quotes that lose out of sample (issue 13)")                                            \
  X(markout_hurdle_spreads, double, 0.0, "spreads",                                                        \
    "markout rewards: each fill is also charged this fraction of the bid-ask spread (at the row its fills are " \
    "marked at) per lot, in the reward only: markout_hurdle_bps in the book's own unit, so that one value "   \
    "asks the same of a one-tick book and of a wide one (issue 13, session 22)")                             \
  X(markout_loss_weight, double, 1.0, "",                                                                   \
    "markout rewards: a step whose fills lose against the later mid (fees included) counts that loss this "  \
    "many times, in the reward only: loss aversion (Tversky and Kahneman 1992), a hurdle that grows with "   \
    "the fills' own markout noise where markout_hurdle_bps is one number (issue 13, session 23; 1: off)")    \
  X(markout_inventory_weight, double, 0.0, "",                                                              \
    "markout rewards: also this fraction of the inventory's later moves: each step, the position held before " \
    "its fills times the step's change of the mid markout_ns later (not detrended). With 1 a truncated "      \
    "episode's rewards sum to its PnL (each fill's markout, then its lots' moves to the last row); 0: off (issue " \
    "13, session 32: the markout reward alone never sees a position held into a trend)")                    \
  X(guard_window_ns, int64_t, 0, "ns",                                                                      \
    "move guard (issue 13, cpp/env/move_guard.h): after the mid moves by more than the guard's sigmas of "  \
    "such moves within this window, only orders that reduce a position, until the hold has passed (0: off)") \
  X(guard_sigmas, double, 5.0, "", "move guard: a move this many standard deviations of such moves trips it") \
  X(guard_halflife_ns, int64_t, 1800000000000, "ns", "move guard: half-life of the volatility estimate")    \
  X(guard_hold_ns, int64_t, 300000000000, "ns", "move guard: how long it stays up after the last trip")   \
  X(guard_sides, GuardSides, GuardSides::kBoth, "",                                                         \
    "move guard: both: while up, only orders that reduce a position; against_move: after a fall, no order "  \
    "opens or adds to a long position, after a rise a short one, and the other side quotes as usual (both " \
    "before it is armed and after moves both ways within the hold) (issue 13, session 31)")                 \
  X(position_cap_trades, int64_t, 0, "trades",                                                              \
    "a hard |position| limit of this many trade sizes (0: off) under max_position: quotes and orders that "  \
    "would pass it are not sent, while observations and rewards still scale by max_position, so a trained " \
    "agent can run under a tighter risk limit (issue 13)")                                                 \
  X(max_hold_ns, int64_t, 0, "ns",                                                                          \
    "a position held this long since the agent was last flat is closed with a market order (taker fee), as " \
    "the flatten action closes it (0: off): the inventory's risk ends within this time of a fill, the "     \
    "markout reward's horizon when set to markout_ns (issue 13, session 26)")                              \
  X(initial_cash, double, 100000.0, "quote", "cash at the start of an episode")                            \
  X(reward_scale, double, 1.0, "", "every reward is multiplied by this")                                   \
  X(ruin_fraction, double, 0.5, "", "terminated when an agent's equity < ruin_fraction * initial_cash")    \
  X(tick_size, double, 0.01, "quote", "price of one tick (set from the market by trader.sim)")             \
  X(lot_size, double, 1e-5, "base", "size of one lot (set from the market by trader.sim)")                 \
  X(start_min, int64_t, 0, "rows", "episode starts are drawn uniformly in [start_min, start_max]")         \
  X(start_max, int64_t, -1, "rows", "-1: the last row that leaves a full horizon")

struct EnvConfig {
#define TRADER_FIELD(name, type, def, unit, doc) type name = def;
  TRADER_ENV_OPTIONS(TRADER_FIELD)
#undef TRADER_FIELD
};

// X(name, C++ type, per agent, doc). The observation is declared apart (its width is the data's).
// uint8_t fields are flags (numpy bool).
#define TRADER_ENV_OUTPUTS(X)                                                                      \
  X(reward, float, true, "reward of this step")                                                  \
  X(terminated, uint8_t, false, "an agent's equity fell below ruin_fraction * initial_cash")     \
  X(truncated, uint8_t, false, "the episode reached its horizon")                                \
  X(env_id, int32_t, false, "which env this row belongs to")                                     \
  X(t, int64_t, false, "data row of the observation")                                            \
  X(episode_length, int32_t, false, "steps since reset")                                         \
  X(episode_return, float, true, "sum of rewards this episode")                                  \
  X(position, int64_t, true, "position, lots")                                                   \
  X(equity, double, true, "cash + position at mid, quote")                                       \
  X(fees, double, true, "fees paid this episode, quote (maker + taker)")                         \
  X(maker_fees, double, true, "maker fees paid this episode, quote (negative: rebates earned)")  \
  X(taker_fees, double, true, "taker fees paid this episode, quote")                             \
  X(filled, int64_t, true, "signed lots filled this step (maker + taker)")                       \
  X(maker_filled, int64_t, true, "lots filled this step by resting limit orders")                \
  X(taker_filled, int64_t, true, "lots filled this step by market orders")                       \
  X(unfilled, int64_t, true,                                                                     \
    "market-order lots cancelled this step: beyond the shown depth, or in flight at episode end") \
  X(quoted, int64_t, true, "lots of new limit orders sent this step")                            \
  X(rejected, int32_t, true, "post-only orders rejected this step (they would have crossed)")    \
  X(bid_price, int64_t, true, "price of the agent's current bid, ticks (0: none)")               \
  X(ask_price, int64_t, true, "price of the agent's current ask, ticks (0: none)")               \
  X(bid_queue, double, true, "market lots ahead of the current bid (NaN: not at the exchange yet)") \
  X(ask_queue, double, true, "market lots ahead of the current ask (NaN: not at the exchange yet)") \
  X(guarded, uint8_t, false, "the move guard bars a side at this row: no next order opens or adds to a position on it")

constexpr int kAccountFeatures = 3;  // position / max, unrealized PnL (% of max notional), time left
// quote modes, per side (bid then ask): has an order, (touch - price) / quote_levels (asks: price -
// touch), market lots ahead / level size (1 before the order reaches the exchange)
constexpr int kQuoteFeatures = 6;

// Throws std::invalid_argument naming the option and what was expected.
void validate(const EnvConfig& c);

// Sizes in quote currency (trade_notional, max_position_notional > 0) rather than base units.
inline bool sizes_in_quote(const EnvConfig& c) { return c.trade_notional > 0; }

// The order size and position limit in lots of one dataset: base units / lot_size, or quote currency /
// (ref_price * lot_size), ref_price in quote per base (the mid of the dataset's first row; issue 13).
struct SizeLots {
  int64_t trade, max;
};
SizeLots size_lots(const EnvConfig& c, double lot_size, double ref_price);
// The quote grid against the book depth of the data (levels per side).
void validate_depth(const EnvConfig& c, int64_t levels);

inline bool is_quote(ActionType a) { return a == ActionType::kQuote || a == ActionType::kQuoteContinuous; }

}  // namespace trader
