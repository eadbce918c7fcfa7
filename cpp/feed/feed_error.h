// The error for bad input data that the feed parsers throw (cpp/feed/binance_feed.h,
// cpp/feed/binance_scanner.h); the bindings turn it into trader._core.FeedParseError.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace trader::feed {

// Bad input: `file` indexes the sequence's files, `line` is 1-based (0: the file as a whole).
// `hint` names an option that gets past it ("on_gap=resync"), or is empty.
struct FeedError : std::runtime_error {
  FeedError(int file, uint32_t line, const std::string& msg, std::string hint = {})
      : std::runtime_error(msg), file(file), line(line), hint(std::move(hint)) {}
  int file;
  uint32_t line;
  std::string hint;
};

}  // namespace trader::feed
