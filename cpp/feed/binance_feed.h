// The Binance raw websocket feed (hftbacktest collector format: "<local_receive_ts> <json>" a line)
// to event records, streaming: lines are parsed as they are decompressed and only the events (and
// the diffs waiting for a snapshot) are kept.
//
// python/trader/data/binance_reference.py is the readable reference of every rule here (line
// kinds, checks, Binance's sequencing procedure, duplicate and clock reports); tests and
// benchmarks/bench_replay.py check that both produce identical event arrays on every shared file.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "events/event.h"
#include "feed/decimal.h"
#include "feed/feed_error.h"
#include "feed/json_dom.h"
#include "feed/line_splitter.h"

namespace trader::feed {

struct BinanceOptions {
  std::string symbol;        // upper case, as the data's "s"
  bool futures = false;      // sequencing: futures chain pu == previous u, spot U == previous u + 1
  bool resync = false;       // on an update-id gap: false = error, true = clear the book and resync
  std::vector<std::string> ignore_streams;    // stream kinds the user skips (counted)
  std::vector<std::string> non_book_streams;  // stream kinds without book data, skipped by default
};

struct Place {
  uint16_t file = 0;
  uint32_t line = 0;
};

struct Gap {
  Place at;
  uint64_t prev_u, U, u, pu;
  bool has_pu;
  std::string expected;
};

struct ClockStep {  // a local timestamp below the previous line's
  Place at;
  int64_t from_ns, to_ns;
};

constexpr size_t kMaxPlaces = 10;  // places kept per kind of report entry (the count is complete)

struct BinanceReport {
  std::vector<std::pair<std::string, uint64_t>> lines;  // line kind -> count, in first-seen order
  uint64_t diffs_applied = 0, diffs_stale = 0, diffs_unapplied = 0, diffs_duplicate = 0, diffs_behind = 0;
  std::vector<std::pair<std::string, uint64_t>> trades_excluded, ignored_streams, skipped_streams;
  std::vector<Gap> gaps;
  uint64_t resyncs = 0;
  std::vector<Place> duplicate_lines, duplicate_diffs, behind_diffs;  // first kMaxPlaces
  uint64_t clock_back_count = 0;
  int64_t clock_back_max_ns = 0;
  std::vector<ClockStep> clock_back;  // first kMaxPlaces
};

struct BinanceResult {
  std::vector<Event> events;
  BinanceReport report;
  Units tick = 0, lot = 0;
};

class BinanceParser {
 public:
  explicit BinanceParser(BinanceOptions opt);

  // Reads a gzip or plain file whole. Returns false if it stopped at a line received at or after
  // `until_ns` (the caller then reads no further file).
  bool parse_file(int file, const std::string& path, std::optional<int64_t> until_ns,
                  const std::function<void(uint64_t, uint64_t)>& progress = {});
  // The same, for bytes decompressed elsewhere: begin, feed chunks while it returns true, end.
  void begin_file(int file, std::optional<int64_t> until_ns);
  bool feed(const char* data, size_t n);
  bool end_file();
  uint32_t lines_read() const { return lineno_; }

  // Tick and lot in 1e-12 units; 0 = the gcd of the data. Throws FeedError for a sequence without
  // a snapshot, the first update-id gap (on_gap error), or a value off the tick/lot grid.
  BinanceResult finish(Units tick, Units lot);
  Units price_gcd() const { return price_gcd_; }
  Units qty_gcd() const { return qty_gcd_; }

 private:
  struct Level {
    Units price, qty;
  };
  struct Diff {
    uint16_t file;
    uint32_t line;
    int64_t local, exch;
    uint64_t U, u, pu;
    bool has_pu;
    std::vector<Level> bids, asks;
  };

  bool line(const char* p, size_t n);  // false: stop (until_ns reached)
  [[noreturn]] void fail(const std::string& msg, std::string hint = {}) const;
  enum LineKind { kLineBlank, kLineDuplicate, kLineSnapshot, kLineNonBook, kLineIgnored, kLineDepth, kLineDepthEmpty,
                  kLineTicker, kLineTradeExcluded, kLineTrade, kNumLineKinds };
  void count(LineKind kind);
  void count_in(std::vector<std::pair<std::string, uint64_t>>& v, std::string_view key);
  uint64_t get_uint(const JNode& obj, const char* key, const char* what, const uint64_t* dflt = nullptr);
  int64_t get_ms(const JNode& obj, const char* key, const char* what, bool has_default);
  Units get_num(const JNode& obj, const char* key, const char* what);
  void levels(const JNode* v, const char* name, std::vector<Level>& out);
  bool is_non_book(std::string_view kind) const;

  void on_snapshot(int64_t local, int64_t exch, uint64_t last_id);
  void on_diff(Diff& d);
  void take(const Diff& d);
  void gap(const Diff& d, const std::string& expected);
  void emit(uint8_t kind, uint8_t flags, uint16_t file, uint32_t line, int64_t exch, int64_t local, Units price,
            Units qty, uint64_t u, uint64_t U, uint64_t pu);
  void emit_levels(const Diff& d, uint8_t kind, uint64_t u, uint64_t U, uint64_t pu, const std::vector<Level>& bids,
                   const std::vector<Level>& asks);

  BinanceOptions opt_;
  JsonDoc doc_;
  BinanceReport rep_;
  uint64_t line_counts_[kNumLineKinds] = {};
  std::vector<LineKind> line_order_;  // kinds in first-seen order, for the report
  Units price_gcd_ = 0, qty_gcd_ = 0;

  // current file
  uint16_t file_ = 0;
  uint32_t lineno_ = 0;
  size_t unit_len_ = 0;
  int64_t mult_ = 1;
  std::optional<int64_t> until_;
  bool stopped_ = false;
  LineSplitter lines_;

  // across the sequence
  std::string prev_line_;
  bool have_prev_line_ = false;
  bool have_prev_local_ = false;
  int64_t prev_local_ = 0;
  bool snapshot_seen_ = false;

  // sequencing (Binance's "How to manage a local order book correctly")
  enum class State { kAwait, kSync, kLive } state_ = State::kAwait;
  uint64_t last_u_ = 0, last_U_ = 0;
  std::vector<Diff> buffer_;
  std::optional<FeedError> deferred_;  // the first sequencing error; raised after every line parsed

  // output: prices and sizes in units until finish() divides them by the tick and lot
  std::vector<Event> events_;
  std::vector<Units> wide_;  // (price, qty) per event once some value exceeds int64; else empty
  std::vector<Level> bids_, asks_;
};

}  // namespace trader::feed
