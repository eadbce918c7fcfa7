#include "env/spec.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace trader {

namespace {
void need(bool ok, const char* option, const std::string& what) {
  if (!ok) throw std::invalid_argument(std::string(option) + ": expected " + what);
}
bool finite_at_least(double v, double lo) { return std::isfinite(v) && v >= lo; }
}  // namespace

void validate(const EnvConfig& c) {
  need(c.horizon >= 1, "horizon", ">= 1 steps");
  need(c.num_agents >= 1 && c.num_agents <= 1024, "num_agents", "1 to 1024");
  need(c.tick_size > 0 && std::isfinite(c.tick_size), "tick_size", "> 0 quote");
  need(c.lot_size > 0 && std::isfinite(c.lot_size), "lot_size", "> 0 base");
  need(finite_at_least(c.trade_notional, 0), "trade_notional", "a finite value >= 0 quote (0: off)");
  need(finite_at_least(c.max_position_notional, 0), "max_position_notional", "a finite value >= 0 quote (0: off)");
  need((c.trade_notional > 0) == (c.max_position_notional > 0), "trade_notional / max_position_notional",
       "both > 0 (sizes in quote currency) or both 0 (trade_size and max_position in base units), got " +
           std::to_string(c.trade_notional) + " and " + std::to_string(c.max_position_notional));
  if (sizes_in_quote(c)) {
    const EnvConfig defaults;
    need(c.trade_size == defaults.trade_size && c.max_position == defaults.max_position,
         "trade_size / trade_notional",
         "sizes in base units (trade_size, max_position) or in quote currency (trade_notional, "
         "max_position_notional), not both; got trade_size " + std::to_string(c.trade_size) + ", max_position " +
             std::to_string(c.max_position) + " with trade_notional " + std::to_string(c.trade_notional));
    need(c.max_position_notional >= c.trade_notional, "max_position_notional",
         ">= trade_notional (" + std::to_string(c.trade_notional) + " quote), got " +
             std::to_string(c.max_position_notional));
  } else {
    need(std::isfinite(c.trade_size) && std::llround(c.trade_size / c.lot_size) >= 1, "trade_size",
         "at least one lot (" + std::to_string(c.lot_size) + " base), got " + std::to_string(c.trade_size));
    need(std::isfinite(c.max_position) && c.max_position >= c.trade_size, "max_position",
         ">= trade_size (" + std::to_string(c.trade_size) + " base), got " + std::to_string(c.max_position));
  }
  need(finite_at_least(c.taker_fee_bps, 0), "taker_fee_bps", "a finite value >= 0 bps");
  need(std::isfinite(c.maker_fee_bps), "maker_fee_bps", "a finite number of bps (negative = rebate)");
  need(c.order_latency_ns >= 0, "order_latency_ns", ">= 0 ns");
  need(c.cancel_latency_ns >= 0, "cancel_latency_ns", ">= 0 ns");
  need(finite_at_least(c.queue_power, 0) && c.queue_power > 0, "queue_power", "a finite value > 0");
  need(c.quote_levels >= 1, "quote_levels", ">= 1 offsets per side");
  need(!c.quote_exit_touch || is_quote(c.actions), "quote_exit_touch", "actions quote or quote_continuous");
  need(finite_at_least(c.inventory_penalty_bps, 0), "inventory_penalty_bps", "a finite value >= 0 bps");
  need(finite_at_least(c.dampen_eta, 0), "dampen_eta", "a finite value >= 0");
  need(c.markout_ns >= 0, "markout_ns", ">= 0 ns");
  need(!c.markout_detrend || marks_out(c.reward), "markout_detrend", "reward markout or markout_penalty");
  need(finite_at_least(c.markout_hurdle_bps, 0), "markout_hurdle_bps", "a finite value >= 0 bps");
  need(c.markout_hurdle_bps == 0 || marks_out(c.reward), "markout_hurdle_bps", "reward markout or markout_penalty");
  need(finite_at_least(c.markout_hurdle_spreads, 0), "markout_hurdle_spreads", "a finite value >= 0 spreads");
  need(c.markout_hurdle_spreads == 0 || marks_out(c.reward), "markout_hurdle_spreads", "reward markout or markout_penalty");
  need(finite_at_least(c.markout_loss_weight, 1), "markout_loss_weight", "a finite value >= 1 (1: a loss counts once)");
  need(c.markout_loss_weight == 1 || marks_out(c.reward), "markout_loss_weight", "reward markout or markout_penalty");
  need(finite_at_least(c.markout_inventory_weight, 0) && c.markout_inventory_weight <= 1, "markout_inventory_weight",
       "a value in [0, 1] (1: the inventory's whole later move)");
  need(c.markout_inventory_weight == 0 || marks_out(c.reward), "markout_inventory_weight",
       "reward markout or markout_penalty");
  need(c.guard_window_ns >= 0, "guard_window_ns", ">= 0 ns (0: off)");
  need(std::isfinite(c.guard_sigmas) && c.guard_sigmas > 0, "guard_sigmas", "a finite value > 0");
  need(c.guard_halflife_ns > 0, "guard_halflife_ns", "> 0 ns");
  need(c.guard_hold_ns >= 0, "guard_hold_ns", ">= 0 ns");
  need(c.guard_sides == GuardSides::kBoth || c.guard_window_ns > 0, "guard_sides / guard_window_ns",
       "a window > 0 for 'against_move' (0: the move guard is off, so no side would be barred)");
  need(c.position_cap_trades >= 0, "position_cap_trades", ">= 0 trade sizes (0: off)");
  need(c.max_hold_ns >= 0, "max_hold_ns", ">= 0 ns (0: off)");
  need(c.initial_cash > 0 && std::isfinite(c.initial_cash), "initial_cash", "> 0 quote");
  need(std::isfinite(c.reward_scale), "reward_scale", "a finite number");
  need(c.ruin_fraction >= 0 && c.ruin_fraction < 1, "ruin_fraction", "in [0, 1)");
  need(c.start_min >= 0, "start_min", ">= 0");
}

SizeLots size_lots(const EnvConfig& c, double lot_size, double ref_price) {
  if (sizes_in_quote(c)) {
    const double quote_per_lot = ref_price * lot_size;
    return {std::llround(c.trade_notional / quote_per_lot), std::llround(c.max_position_notional / quote_per_lot)};
  }
  return {std::llround(c.trade_size / lot_size), std::llround(c.max_position / lot_size)};
}

void validate_depth(const EnvConfig& c, int64_t levels) {
  if (!is_quote(c.actions)) return;
  // Every grid price must lie inside the shown depth, so that its queue is known from the row.
  need(c.quote_min_ticks > -levels && c.quote_min_ticks + c.quote_levels - 1 < levels,
       "quote_min_ticks / quote_levels",
       "a quote grid inside the book depth: -depth < quote_min_ticks and quote_min_ticks + quote_levels - 1 < "
       "depth (" + std::to_string(levels) + " levels), got quote_min_ticks " + std::to_string(c.quote_min_ticks) +
       ", quote_levels " + std::to_string(c.quote_levels));
}

}  // namespace trader
