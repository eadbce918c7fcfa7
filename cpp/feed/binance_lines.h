// Internal to cpp/feed: the line-level helpers that the Binance scanner (binance_scanner.cpp) and
// parser (binance_feed.cpp) share, so that both read a raw feed line ("<local_receive_ts> <json>")
// with the same checks and the same error messages.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "feed/json_dom.h"

namespace trader::feed::detail {

inline bool is_depth_kind(std::string_view k) {
  return k == "depth" || k == "depth@0ms" || k == "depth@100ms" || k == "depth@250ms" || k == "depth@500ms" ||
         k == "depth@1000ms";
}

inline std::string quoted(std::string_view s, size_t max = 200) {
  std::string out = "'";
  out.append(s.substr(0, max));
  out += "'";
  return out;
}

// The line without its trailing '\r' / '\n'; n = 0 if it holds only whitespace (Python's bytes.strip).
inline size_t trimmed_length(const char* p, size_t n) {
  while (n && (p[n - 1] == '\r' || p[n - 1] == '\n')) --n;
  for (size_t i = 0; i < n; ++i) {
    const char c = p[i];
    if (!(c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')) return n;
  }
  return 0;
}

// "<digits> <JSON object>": parses the JSON into `doc` and returns the timestamp digits; `fail`
// throws with the message.
template <class Fail>
std::string_view split_line(const char* p, size_t n, JsonDoc& doc, Fail&& fail) {
  const char* sp = static_cast<const char*>(std::memchr(p, ' ', n));
  if (!sp || sp == p) fail("expected '<local_receive_ts> <json>' (no space found)");
  const std::string_view ts(p, static_cast<size_t>(sp - p));
  for (char c : ts) {
    if (c < '0' || c > '9') fail("local timestamp must be an integer, got " + quoted(ts, 40));
  }
  if (!doc.parse(sp + 1, static_cast<size_t>(p + n - sp - 1))) fail("malformed JSON (" + doc.error() + ")");
  if (doc.root().type != JType::kObject) fail("expected a JSON object");
  return ts;
}

// A combined-stream message ({"stream": "<symbol>@<kind>", "data": {...}}): its stream name and data object;
// `fail` throws when the message is neither that nor a REST snapshot (which the caller has ruled out).
template <class Fail>
std::pair<std::string_view, const JNode*> stream_and_data(const JsonDoc& doc, const JNode& msg, Fail&& fail) {
  const JNode* stream = doc.get(msg, "stream");
  const JNode* data = doc.get(msg, "data");
  if (!stream || stream->type != JType::kString || !data || data->type != JType::kObject) {
    fail("expected a REST snapshot (lastUpdateId) or a combined-stream message with 'stream' and 'data'");
  }
  return {doc.str(*stream), data};
}

// Nanoseconds per unit of a local timestamp with this many digits: 19 ns, 16 us, 13 ms; 0 otherwise.
inline uint64_t ts_multiplier(size_t digits) {
  return digits == 19 ? 1 : digits == 16 ? 1000 : digits == 13 ? 1000000 : 0;
}

inline std::string bad_unit(std::string_view ts) {
  return "local timestamp " + quoted(ts) + " has " + std::to_string(ts.size()) +
         " digits; expected 19 (ns), 16 (us) or 13 (ms)";
}

inline uint64_t digits_value(std::string_view ts) {
  uint64_t v = 0;
  for (char c : ts) v = v * 10 + static_cast<uint64_t>(c - '0');
  return v;
}

}  // namespace trader::feed::detail
