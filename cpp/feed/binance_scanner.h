// A quick look at one Binance raw feed file (the format of cpp/feed/binance_feed.h), for grouping
// files into sequences before they are parsed: lines are read only until the answer is known.
#pragma once

#include <cstdint>
#include <string>

#include "feed/feed_error.h"
#include "feed/json_dom.h"
#include "feed/line_splitter.h"

namespace trader::feed {

// What a file holds, read without decoding every message: the instrument (from the first depth
// diff), the first local timestamp, and whether a REST snapshot is in it (which starts a sequence).
struct ScanResult {
  std::string symbol, market;  // market: spot, usdm or coinm; empty if there is no depth diff
  uint64_t first_local_ns = 0;
  std::string ts_unit;         // ns, us or ms
  bool has_snapshot = false;
  uint64_t non_blank_lines = 0;
};

class BinanceScanner {
 public:
  bool feed(const char* data, size_t n);  // false: nothing more to learn, stop reading
  void end();
  uint32_t lines_read() const { return lineno_; }
  const ScanResult& result() const { return r_; }

 private:
  bool line(const char* p, size_t n);
  LineSplitter lines_;
  JsonDoc doc_;
  ScanResult r_;
  uint32_t lineno_ = 0;
  bool done_ = false;
};

// Scans a gzip or plain file; FeedError (file 0) on malformed lines before the first depth diff.
ScanResult scan_binance_file(const std::string& path);

}  // namespace trader::feed
