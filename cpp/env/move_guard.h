// The move guard (issue 13): after the mid moves by more than guard_sigmas times its recent volatility
// within guard_window_ns, the env accepts only orders that reduce a position, for guard_hold_ns after
// the last such move (guard_sides "both"); or, with guard_sides "against_move", only the position
// against the move is barred: after a fall no order opens or adds to a long, after a rise to a short.
// A rule of the execution path, shared by the simulator and live quoting (the live kernel is the env),
// like a venue's volatility interruption or hummingbot's volatility buffer, not a reward the agent may
// learn to ignore.
//
// Why (benchmarks/README.md, session 16): in NEXOUSDT's fold-1 test block the mid rose 377 bps in 18
// minutes, two 1-minute moves 12 and 13 times the 1-minute standard deviation; symmetric quotes were
// sold to all the way up and one seed in ten lost more than every other seed earned.
//
// Per row r of one dataset (its times ts, ns, ascending; mid in ticks), from rows <= r only:
//   p      = the last row with ts[p] <= ts[r] - window (none: the first window; the guard is up);
//   x      = ln(mid[r] / mid[p]), the move over the window;
//   var    = max(S / N, (1 / mid[r])^2): S, N the sums of x^2 and of 1 over the rows before r, each term
//            decayed by 2^(-age / halflife) (an EWMA with its start-up bias removed), floored at one
//            tick (a one-tick move is the least a market can move);
//   a trip = x^2 > sigmas^2 * var, once armed: ts[r] >= ts[0] + 6 * window (five windows of moves seen);
//   fell[r] = a trip with x < 0 at a row r' <= r with ts[r] - ts[r'] <= hold; rose[r] likewise, x > 0;
//   up[r]  = the bits of what row r bars: kNoLong (no order opens or adds to a long position) and
//            kNoShort (... a short one). Both bits when not armed; once armed, "both": both bits when
//            fell[r] or rose[r]; "against_move": kNoLong when fell[r], kNoShort when rose[r].
// Before it is armed the guard is up: with no estimate of the volatility yet, nothing adds risk (a
// live session waits six windows before it opens a position, as hummingbot's strategies wait for
// their volatility buffer).
// Why "against_move" (benchmarks/README.md, session 31): the reduce-only guard over a 30-minute window
// halved the loss of the largest fall, where the quoter's fills earned and the long it held lost, and
// took as much from the ordinary blocks, where it also stopped the quotes that earn after moves that do
// not go on. Barring only the position the move would hurt keeps the other side's quotes. Measured over
// the 22 blocks it cut the largest fall's loss further and cost the ordinary blocks as much (after a
// rise, the asks that earn when the move reverts are the orders it bars), so neither rule is a default.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "env/spec.h"

namespace trader {

class MoveGuard {
 public:
  MoveGuard() = default;
  explicit MoveGuard(const EnvConfig& cfg)
      : window_ns_(cfg.guard_window_ns),
        halflife_ns_(cfg.guard_halflife_ns),
        hold_ns_(cfg.guard_hold_ns),
        sigmas_(cfg.guard_sigmas),
        against_move_(cfg.guard_sides == GuardSides::kAgainstMove) {}

  // The bits of up[r]: what the guard bars at row r.
  static constexpr uint8_t kNoLong = 1, kNoShort = 2, kReduceOnly = kNoLong | kNoShort;

  // The guard is armed once this many windows of rows have passed (five windows of moves seen).
  static constexpr int64_t kArmWindows = 6;

  bool on() const { return window_ns_ > 0; }
  // Decides the rows after those decided so far, up to `rows` (their mids and times never change once
  // appended), into up[0 .. rows) (the bits above; 0: nothing barred).
  void extend(const int64_t* ts, const std::vector<double>& mid, int64_t rows, std::vector<uint8_t>& up);

 private:
  static constexpr int64_t kNoTrip = std::numeric_limits<int64_t>::min();
  int64_t window_ns_ = 0, halflife_ns_ = 0, hold_ns_ = 0;
  double sigmas_ = 0;
  bool against_move_ = false;
  int64_t done_ = 0;       // rows decided
  int64_t from_ = 0;       // p of the last row decided
  double sum_ = 0, weight_ = 0;  // S and N above, as of the last move summed
  int64_t last_ts_ = 0;    // time of the last move summed
  bool summed_ = false;    // any move summed yet
  int64_t fall_ts_ = kNoTrip, rise_ts_ = kNoTrip;  // times of the last trip down and up
};

}  // namespace trader
