// Exact decimal text to integer units of 1e-12, as python/trader/data/fixed_point.py does: prices and
// sizes are never floats. 128-bit, so any size Binance can send fits (a 64-bit unit count would stop
// at 9.2 million coins).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace trader::feed {

using Units = unsigned __int128;

constexpr int kScaleDigits = 12;
constexpr Units kScale = 1000000000000ULL;  // 10**kScaleDigits

// "61837.63" -> 61837630000000000. Grammar [0-9]+(\.[0-9]+)?; decimals past the 12th must be
// zeros. Returns false and sets `why` (without the text) on anything else.
bool parse_units(std::string_view s, Units& out, const char*& why);

// Inverse of parse_units without trailing zeros: 10000000000 -> "0.01".
std::string units_to_str(Units v);
std::string u128_to_str(Units v);
// Decimal digits (as Python's str(int)) to Units; false if not digits or too large.
bool parse_u128(std::string_view s, Units& out);

inline Units gcd_units(Units a, Units b) {
  while (b) {
    if ((a >> 64) == 0 && (b >> 64) == 0) {  // 64-bit division is far cheaper than 128-bit
      uint64_t x = static_cast<uint64_t>(a), y = static_cast<uint64_t>(b);
      while (y) {
        const uint64_t t = x % y;
        x = y;
        y = t;
      }
      return x;
    }
    const Units t = a % b;
    a = b;
    b = t;
  }
  return a;
}

}  // namespace trader::feed
