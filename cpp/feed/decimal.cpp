#include "feed/decimal.h"

#include <algorithm>

namespace trader::feed {
namespace {
constexpr Units kU128Max = ~static_cast<Units>(0);
}

bool parse_units(std::string_view s, Units& out, const char*& why) {
  why = "expected a non-negative decimal number";
  const size_t n = s.size();
  size_t i = 0;
  // Fast path: up to 19 significant digits accumulate in 64 bits (every Binance price and size).
  uint64_t v64 = 0;
  int frac_digits = 0;
  size_t int_digits = 0;
  while (i < n && s[i] >= '0' && s[i] <= '9' && int_digits < 19) {
    v64 = v64 * 10 + static_cast<uint64_t>(s[i] - '0');
    ++i;
    ++int_digits;
  }
  if (int_digits == 0) return false;
  if (i == n || s[i] == '.') {
    size_t total = int_digits;
    bool fast = true;
    if (i < n) {
      size_t j = i + 1;
      if (j == n) return false;
      while (j < n && s[j] >= '0' && s[j] <= '9') {
        if (frac_digits < kScaleDigits && total < 19) {
          v64 = v64 * 10 + static_cast<uint64_t>(s[j] - '0');
          ++frac_digits;
          ++total;
        } else if (frac_digits < kScaleDigits || s[j] != '0') {
          fast = false;  // more digits than 64 bits hold, or nonzero past the 12th decimal
          break;
        }
        ++j;
      }
      if (fast && j != n) return false;
    }
    if (fast) {
      static constexpr uint64_t kPow10[kScaleDigits + 1] = {
          1000000000000ULL, 100000000000ULL, 10000000000ULL, 1000000000ULL, 100000000ULL, 10000000ULL, 1000000ULL,
          100000ULL,        10000ULL,        1000ULL,        100ULL,        10ULL,        1ULL};
      out = static_cast<Units>(v64) * kPow10[frac_digits];
      return true;
    }
  }
  // General path: any length, 128 bits, overflow checked.
  i = 0;
  frac_digits = 0;
  Units v = 0;
  while (i < n && s[i] >= '0' && s[i] <= '9') {
    const unsigned d = static_cast<unsigned>(s[i] - '0');
    if (v > (kU128Max - d) / 10) {
      why = "number too large";
      return false;
    }
    v = v * 10 + d;
    ++i;
  }
  if (i < n) {
    if (s[i] != '.') return false;
    ++i;
    const size_t frac_start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
      if (frac_digits < kScaleDigits) {
        if (v > (kU128Max - 9) / 10) {
          why = "number too large";
          return false;
        }
        v = v * 10 + static_cast<unsigned>(s[i] - '0');
        ++frac_digits;
      } else if (s[i] != '0') {
        why = "has more than 12 decimals";
        return false;
      }
      ++i;
    }
    if (i == frac_start || i != n) return false;
  }
  for (int k = frac_digits; k < kScaleDigits; ++k) {
    if (v > kU128Max / 10) {
      why = "number too large";
      return false;
    }
    v *= 10;
  }
  out = v;
  return true;
}

std::string u128_to_str(Units v) {
  if (v == 0) return "0";
  std::string s;
  while (v) {
    s.push_back(static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  std::reverse(s.begin(), s.end());
  return s;
}

std::string units_to_str(Units v) {
  std::string s = u128_to_str(v);
  if (s.size() <= static_cast<size_t>(kScaleDigits)) s.insert(0, kScaleDigits + 1 - s.size(), '0');
  std::string ip = s.substr(0, s.size() - kScaleDigits);
  std::string fp = s.substr(s.size() - kScaleDigits);
  while (!fp.empty() && fp.back() == '0') fp.pop_back();
  return fp.empty() ? ip : ip + "." + fp;
}

bool parse_u128(std::string_view s, Units& out) {
  if (s.empty()) return false;
  Units v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const unsigned d = static_cast<unsigned>(c - '0');
    if (v > (kU128Max - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

}  // namespace trader::feed
