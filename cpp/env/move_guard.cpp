#include "env/move_guard.h"

#include <algorithm>
#include <cmath>

namespace trader {

void MoveGuard::extend(const int64_t* ts, const std::vector<double>& mid, int64_t rows, std::vector<uint8_t>& up) {
  if (!on() || rows <= done_) return;
  up.resize(static_cast<size_t>(rows), kReduceOnly);
  const int64_t armed_ts = ts[0] + kArmWindows * window_ns_;
  const double k2 = sigmas_ * sigmas_;
  for (int64_t r = done_; r < rows; ++r) {
    const int64_t t = ts[r];
    const size_t i = static_cast<size_t>(r);
    if (t - window_ns_ < ts[0]) {  // no row a full window back yet
      up[i] = kReduceOnly;
      continue;
    }
    while (from_ + 1 < r && ts[from_ + 1] <= t - window_ns_) ++from_;
    const double x = std::log(mid[i] / mid[static_cast<size_t>(from_)]);
    if (t >= armed_ts) {
      const double floor = 1.0 / mid[i];
      const double var = std::max(sum_ / weight_, floor * floor);
      if (x * x > k2 * var) (x < 0 ? fall_ts_ : rise_ts_) = t;
    }
    const bool fell = fall_ts_ != kNoTrip && t - fall_ts_ <= hold_ns_;
    const bool rose = rise_ts_ != kNoTrip && t - rise_ts_ <= hold_ns_;
    if (t < armed_ts) {
      up[i] = kReduceOnly;
    } else if (against_move_) {
      up[i] = static_cast<uint8_t>((fell ? kNoLong : 0) | (rose ? kNoShort : 0));
    } else {
      up[i] = fell || rose ? kReduceOnly : 0;
    }
    const double decay =
        summed_ ? std::exp2(-static_cast<double>(t - last_ts_) / static_cast<double>(halflife_ns_)) : 0.0;
    sum_ = decay * sum_ + x * x;
    weight_ = decay * weight_ + 1.0;
    last_ts_ = t;
    summed_ = true;
  }
  done_ = rows;
}

}  // namespace trader
