#include "feed/binance_scanner.h"

#include <algorithm>
#include <cstring>

#include "feed/binance_lines.h"
#include "feed/gzip_reader.h"

namespace trader::feed {

using namespace detail;  // feed/binance_lines.h

bool BinanceScanner::feed(const char* data, size_t n) {
  if (done_) return false;
  if (!lines_.feed(data, n, [this](const char* p, size_t k) { return line(p, k); })) done_ = true;
  return !done_;
}

void BinanceScanner::end() {
  if (!done_) lines_.end([this](const char* p, size_t k) { return line(p, k); });
}

bool BinanceScanner::line(const char* p, size_t n) {
  ++lineno_;
  auto fail = [this](const std::string& msg) { throw FeedError(0, lineno_, msg); };
  n = trimmed_length(p, n);
  if (!n) return true;
  ++r_.non_blank_lines;
  static constexpr char kSnap[] = "\"lastUpdateId\"";
  if (!r_.market.empty()) {
    if (memmem(p, std::min<size_t>(n, 64), kSnap, sizeof kSnap - 1)) r_.has_snapshot = true;
    return !r_.has_snapshot;  // both known: the rest of the file cannot change the answer
  }
  const std::string_view ts = split_line(p, n, doc_, fail);
  const JNode& msg = doc_.root();
  if (r_.ts_unit.empty()) {
    const uint64_t mult = ts_multiplier(ts.size());
    if (!mult) fail(bad_unit(ts));
    r_.ts_unit = mult == 1 ? "ns" : mult == 1000 ? "us" : "ms";
    r_.first_local_ns = digits_value(ts) * mult;
  }
  if (doc_.has(msg, "lastUpdateId")) {
    r_.has_snapshot = true;
    return true;
  }
  const auto [name, data] = stream_and_data(doc_, msg, fail);
  if (!name.empty() && name[0] == '!') return true;  // an all-market stream
  const size_t at = name.find('@');
  if (at == std::string_view::npos || at == 0) fail("stream name " + quoted(name) + " is not '<symbol>@<kind>'");
  if (!is_depth_kind(name.substr(at + 1))) return true;
  const JNode* s = doc_.get(*data, "s");
  if (!s || s->type != JType::kString) fail("depth message: missing field 's' (symbol)");
  r_.symbol = std::string(doc_.str(*s));
  // COIN-M diffs carry the pair "ps", futures diffs the previous update id "pu" (data README).
  r_.market = doc_.has(*data, "ps") ? "coinm" : doc_.has(*data, "pu") ? "usdm" : "spot";
  return !r_.has_snapshot;
}

ScanResult scan_binance_file(const std::string& path) {
  BinanceScanner sc;
  try {
    read_chunks(path, [&sc](const char* d, size_t n) { return sc.feed(d, n); });
  } catch (const ReadError& e) {
    if (!e.corrupt) throw FeedError(0, 0, e.what());
    throw FeedError(0, sc.lines_read() + 1,
                    "compressed data is truncated or corrupt after line " + std::to_string(sc.lines_read()) + " (" +
                        e.what() + ")");
  }
  sc.end();
  return sc.result();
}

}  // namespace trader::feed
