#include "feed/binance_feed.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "feed/binance_lines.h"
#include "feed/gzip_reader.h"

namespace trader::feed {

using namespace detail;  // feed/binance_lines.h

namespace {

constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
constexpr uint64_t kMsToNs = 1000000;

}  // namespace

// ---- parsing -----------------------------------------------------------------------------------

BinanceParser::BinanceParser(BinanceOptions opt) : opt_(std::move(opt)) {}

void BinanceParser::fail(const std::string& msg, std::string hint) const {
  throw FeedError(file_, lineno_, msg, std::move(hint));
}

void BinanceParser::count_in(std::vector<std::pair<std::string, uint64_t>>& v, std::string_view key) {
  for (auto& kv : v) {
    if (kv.first == key) {
      ++kv.second;
      return;
    }
  }
  v.emplace_back(std::string(key), 1);
}

void BinanceParser::count(LineKind kind) {
  if (!line_counts_[kind]++) line_order_.push_back(kind);
}

bool BinanceParser::is_non_book(std::string_view kind) const {
  // kline_1m, ticker_1h, continuousKline_5m: the name before '@', then before its '_' suffix.
  std::string_view base = kind.substr(0, kind.find('@'));
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& s : opt_.non_book_streams) {
      if (base == s) return true;
    }
    const size_t us = base.rfind('_');
    if (us == std::string_view::npos) break;
    base = base.substr(0, us);
  }
  return false;
}

uint64_t BinanceParser::get_uint(const JNode& obj, const char* key, const char* what, const uint64_t* dflt) {
  const JNode* v = doc_.get(obj, key);
  if (!v && dflt) return *dflt;
  if (!v || v->type == JType::kNull) fail(std::string(what) + ": missing field '" + key + "'");
  if (v->type != JType::kInt) {
    fail(std::string(what) + ": field '" + key + "' must be a non-negative integer, got " +
         std::string(doc_.raw(*v).substr(0, 40)));
  }
  return v->u;
}

int64_t BinanceParser::get_ms(const JNode& obj, const char* key, const char* what, bool has_default) {
  const uint64_t zero = 0;
  const uint64_t v = get_uint(obj, key, what, has_default ? &zero : nullptr);
  if (v > kInt64Max / kMsToNs) {
    fail(std::string(what) + ": field '" + key + "' = " + std::to_string(v) +
         " ms is out of the int64 nanosecond range");
  }
  return static_cast<int64_t>(v * kMsToNs);
}

Units BinanceParser::get_num(const JNode& obj, const char* key, const char* what) {
  const JNode* v = doc_.get(obj, key);
  if (!v) fail(std::string(what) + ": missing field '" + key + "'");
  Units out = 0;
  const char* why = "expected a decimal string";
  if (v->type != JType::kString || !parse_units(doc_.str(*v), out, why)) {
    fail(std::string(what) + ": field '" + key + "': " + why + ", got " + std::string(doc_.raw(*v).substr(0, 40)));
  }
  return out;
}

void BinanceParser::levels(const JNode* v, const char* name, std::vector<Level>& out) {
  out.clear();
  if (!v || v->type != JType::kArray) fail(std::string("field '") + name + "': expected a list of [price, qty]");
  Units pg = price_gcd_, qg = qty_gcd_;
  uint32_t i = v->size ? v->first : 0;
  for (uint32_t k = 0; k < v->size; ++k) {
    const JNode& lv = doc_.node(i);
    i = lv.next;
    Level L{0, 0};
    const char* why = "expected [price, qty] decimal strings";
    bool ok = lv.type == JType::kArray && lv.size == 2;
    if (ok) {
      const JNode& p = doc_.node(lv.first);
      const JNode& q = doc_.node(p.next);
      ok = p.type == JType::kString && parse_units(doc_.str(p), L.price, why) && q.type == JType::kString &&
           parse_units(doc_.str(q), L.qty, why);
    }
    if (!ok) {
      fail(std::string("field '") + name + "': expected [price, qty] decimal strings, got " +
           std::string(doc_.raw(lv).substr(0, 80)) + " (" + why + ")");
    }
    if (L.price == 0) fail(std::string("field '") + name + "': price must be > 0");
    pg = gcd_units(pg, L.price);
    if (L.qty) qg = gcd_units(qg, L.qty);
    out.push_back(L);
  }
  price_gcd_ = pg;
  qty_gcd_ = qg;
}

// ---- lines -------------------------------------------------------------------------------------

void BinanceParser::begin_file(int file, std::optional<int64_t> until_ns) {
  file_ = static_cast<uint16_t>(file);
  lineno_ = 0;
  unit_len_ = 0;
  mult_ = 1;
  until_ = until_ns;
  stopped_ = false;
  lines_.reset();
}

bool BinanceParser::feed(const char* data, size_t n) {
  if (stopped_) return false;
  if (!lines_.feed(data, n, [this](const char* p, size_t k) { return line(p, k); })) stopped_ = true;
  return !stopped_;
}

bool BinanceParser::end_file() {
  if (!stopped_ && !lines_.end([this](const char* p, size_t k) { return line(p, k); })) stopped_ = true;
  return !stopped_;
}

bool BinanceParser::parse_file(int file, const std::string& path, std::optional<int64_t> until_ns,
                               const std::function<void(uint64_t, uint64_t)>& progress) {
  begin_file(file, until_ns);
  try {
    read_chunks(path, [this](const char* d, size_t n) { return feed(d, n); }, progress);
  } catch (const ReadError& e) {
    if (!e.corrupt) throw FeedError(file, 0, e.what());
    throw FeedError(file, lineno_ + 1,
                    "compressed data is truncated or corrupt after line " + std::to_string(lineno_) + " (" +
                        e.what() + ")");
  }
  return end_file();
}

bool BinanceParser::line(const char* p, size_t n) {
  ++lineno_;
  n = trimmed_length(p, n);
  if (!n) {
    count(kLineBlank);
    return true;
  }
  if (have_prev_line_ && n == prev_line_.size() && std::memcmp(p, prev_line_.data(), n) == 0) {
    count(kLineDuplicate);
    if (rep_.duplicate_lines.size() < kMaxPlaces) rep_.duplicate_lines.push_back({file_, lineno_});
    return true;
  }
  prev_line_.assign(p, n);
  have_prev_line_ = true;

  const std::string_view ts = split_line(p, n, doc_, [this](const std::string& m) { fail(m); });
  const JNode& msg = doc_.root();
  if (!unit_len_) {
    mult_ = static_cast<int64_t>(ts_multiplier(ts.size()));
    if (!mult_) fail(bad_unit(ts));
    unit_len_ = ts.size();
  } else if (ts.size() != unit_len_) {
    fail("local timestamp has " + std::to_string(ts.size()) + " digits where earlier lines had " +
         std::to_string(unit_len_) + ": mixed units");
  }
  const unsigned __int128 local_w = static_cast<unsigned __int128>(digits_value(ts)) * static_cast<uint64_t>(mult_);
  if (local_w > kInt64Max) fail("local timestamp " + std::string(ts) + " is out of the int64 nanosecond range");
  const auto local = static_cast<int64_t>(local_w);
  if (until_ && local >= *until_) return false;
  if (have_prev_local_ && local < prev_local_) {
    ++rep_.clock_back_count;
    rep_.clock_back_max_ns = std::max(rep_.clock_back_max_ns, prev_local_ - local);
    if (rep_.clock_back.size() < kMaxPlaces) rep_.clock_back.push_back({{file_, lineno_}, prev_local_, local});
  }
  prev_local_ = local;
  have_prev_local_ = true;

  if (doc_.has(msg, "lastUpdateId")) {
    count(kLineSnapshot);
    const uint64_t last_id = get_uint(msg, "lastUpdateId", "snapshot");
    if (const JNode* sym = doc_.get(msg, "symbol"); sym && sym->type != JType::kNull) {
      if (sym->type != JType::kString || doc_.str(*sym) != opt_.symbol) {
        fail("snapshot symbol " + std::string(doc_.raw(*sym).substr(0, 40)) + ", expected " + quoted(opt_.symbol));
      }
    }
    const int64_t exch = get_ms(msg, "E", "snapshot", true);
    levels(doc_.get(msg, "bids"), "bids", bids_);
    levels(doc_.get(msg, "asks"), "asks", asks_);
    on_snapshot(local, exch, last_id);
    return true;
  }
  const auto [name, data] = stream_and_data(doc_, msg, [this](const std::string& m) { fail(m); });
  if (!name.empty() && name[0] == '!') {  // an all-market stream (!ticker@arr, !bookTicker, ...)
    count(kLineNonBook);
    count_in(rep_.skipped_streams, name);
    return true;
  }
  const size_t at = name.find('@');
  if (at == std::string_view::npos || at == 0) fail("stream name " + quoted(name) + " is not '<symbol>@<kind>'");
  const std::string_view kind = name.substr(at + 1);
  for (const auto& s : opt_.ignore_streams) {
    if (kind == s) {
      count_in(rep_.ignored_streams, kind);
      count(kLineIgnored);
      return true;
    }
  }
  if (is_non_book(kind)) {
    count_in(rep_.skipped_streams, kind);
    count(kLineNonBook);
    return true;
  }
  const JNode* s = doc_.get(*data, "s");
  if (!s || s->type != JType::kString || doc_.str(*s) != opt_.symbol) {
    fail("message for symbol " + (s ? std::string(doc_.raw(*s).substr(0, 40)) : std::string("None")) + " in a " +
         quoted(opt_.symbol) + " sequence");
  }
  if (is_depth_kind(kind)) {
    count(kLineDepth);
    const char* what = "depth message";
    Diff d;
    d.file = file_;
    d.line = lineno_;
    d.local = local;
    d.U = get_uint(*data, "U", what);
    d.u = get_uint(*data, "u", what);
    if (d.u < d.U) fail("depth message: u=" + std::to_string(d.u) + " < U=" + std::to_string(d.U));
    const JNode* pu = doc_.get(*data, "pu");
    d.has_pu = pu && pu->type != JType::kNull;
    d.pu = d.has_pu ? get_uint(*data, "pu", what) : 0;
    d.exch = get_ms(*data, "E", what, false);
    levels(doc_.get(*data, "b"), "b", d.bids);
    levels(doc_.get(*data, "a"), "a", d.asks);
    if (d.bids.empty() && d.asks.empty()) count(kLineDepthEmpty);
    on_diff(d);
  } else if (kind == "bookTicker") {
    count(kLineTicker);
    const char* what = "bookTicker";
    const uint64_t u = get_uint(*data, "u", what);
    const int64_t exch = get_ms(*data, "E", what, true);
    const Units bp = get_num(*data, "b", what), bq = get_num(*data, "B", what);
    const Units ap = get_num(*data, "a", what), aq = get_num(*data, "A", what);
    if (bq) qty_gcd_ = gcd_units(qty_gcd_, bq);
    if (aq) qty_gcd_ = gcd_units(qty_gcd_, aq);
    if (bp) price_gcd_ = gcd_units(price_gcd_, bp);
    if (ap) price_gcd_ = gcd_units(price_gcd_, ap);
    emit(kBookTicker, kFlagBid, file_, lineno_, exch, local, bp, bq, u, 0, 0);
    emit(kBookTicker, kFlagAsk | kFlagEndOfMessage, file_, lineno_, exch, local, ap, aq, u, 0, 0);
  } else if (kind == "trade") {
    const char* what = "trade";
    const JNode* x = doc_.get(*data, "X");
    if (x && x->type != JType::kNull && !(x->type == JType::kString && doc_.str(*x) == "MARKET")) {
      count(kLineTradeExcluded);  // futures X: INSURANCE_FUND, ADL, ... are not market trades (data README)
      count_in(rep_.trades_excluded, x->type == JType::kString ? doc_.str(*x) : doc_.raw(*x));
      return true;
    }
    count(kLineTrade);
    const uint64_t t = get_uint(*data, "t", what);
    const int64_t exch = get_ms(*data, "T", what, false);
    const Units price = get_num(*data, "p", what), qty = get_num(*data, "q", what);
    const JNode* m = doc_.get(*data, "m");
    if (!m || (m->type != JType::kTrue && m->type != JType::kFalse)) {
      fail("trade: field 'm' must be true or false, got " + (m ? std::string(doc_.raw(*m).substr(0, 40)) : "None"));
    }
    if (price == 0 || qty == 0) fail("trade: price and qty must be > 0");
    price_gcd_ = gcd_units(price_gcd_, price);
    qty_gcd_ = gcd_units(qty_gcd_, qty);
    // m: the buyer is the maker, so the seller was the aggressor.
    emit(kTrade, (m->type == JType::kTrue ? kFlagAsk : kFlagBid) | kFlagEndOfMessage, file_, lineno_, exch, local,
         price, qty, t, 0, 0);
  } else {
    fail("unknown stream kind " + quoted(kind) + " (expected depth, bookTicker, trade or a known stream without "
         "book data)", "ignore_streams=" + std::string(kind));
  }
  return true;
}

// ---- sequencing --------------------------------------------------------------------------------

void BinanceParser::emit(uint8_t kind, uint8_t flags, uint16_t file, uint32_t line, int64_t exch, int64_t local,
                         Units price, Units qty, uint64_t u, uint64_t U, uint64_t pu) {
  if (deferred_) return;  // the result is an error: keep parsing for earlier-reported errors only
  Event e{};
  e.kind = kind;
  e.flags = flags;
  e.file = file;
  e.line = line;
  e.exch_ts = exch;
  e.local_ts = local;
  e.update_id = u;
  e.first_update_id = U;
  e.prev_update_id = pu;
  if (wide_.empty() && price <= kInt64Max && qty <= kInt64Max) {
    e.price = static_cast<int64_t>(price);
    e.qty = static_cast<int64_t>(qty);
  } else {
    if (wide_.empty()) {
      wide_.reserve(2 * events_.capacity());
      for (const Event& o : events_) {
        wide_.push_back(static_cast<Units>(o.price));
        wide_.push_back(static_cast<Units>(o.qty));
      }
    }
    wide_.push_back(price);
    wide_.push_back(qty);
  }
  events_.push_back(e);
}

void BinanceParser::emit_levels(const Diff& d, uint8_t kind, uint64_t u, uint64_t U, uint64_t pu,
                                const std::vector<Level>& bids, const std::vector<Level>& asks) {
  const size_t n = bids.size() + asks.size();
  size_t i = 0;
  for (const auto* side : {&bids, &asks}) {
    const uint8_t flag = side == &bids ? kFlagBid : kFlagAsk;
    for (const Level& L : *side) {
      ++i;
      emit(kind, flag | (i == n ? kFlagEndOfMessage : 0), d.file, d.line, d.exch, d.local, L.price, L.qty, u, U, pu);
    }
  }
}

void BinanceParser::on_snapshot(int64_t local, int64_t exch, uint64_t last_id) {
  snapshot_seen_ = true;
  if (deferred_) return;
  Diff s{file_, lineno_, local, exch, 0, last_id, last_id, true, {}, {}};
  const size_t n = bids_.size() + asks_.size();
  emit(kBookClear, n ? 0 : kFlagEndOfMessage, file_, lineno_, exch, local, 0, 0, last_id, 0, last_id);
  emit_levels(s, kBookSnapshot, last_id, 0, last_id, bids_, asks_);
  state_ = State::kSync;
  last_u_ = last_id;
  last_U_ = 0;
  std::vector<Diff> pending;
  pending.swap(buffer_);
  for (const Diff& d : pending) {
    if (state_ == State::kAwait) buffer_.push_back(d);  // a resync in this loop: wait for the next snapshot
    else take(d);
    if (deferred_) return;
  }
}

void BinanceParser::on_diff(Diff& d) {
  if (deferred_) return;
  if (opt_.futures && !d.has_pu) {
    deferred_.emplace(d.file, d.line, "futures depth message without field 'pu'");
    return;
  }
  if (state_ == State::kAwait) buffer_.push_back(std::move(d));
  else take(d);
}

void BinanceParser::gap(const Diff& d, const std::string& expected) {
  rep_.gaps.push_back({{d.file, d.line}, last_u_, d.U, d.u, d.pu, d.has_pu, expected});
  if (!opt_.resync) {
    std::string msg = "update-id gap: expected " + expected + " (previous u=" + std::to_string(last_u_) +
                      "), got U=" + std::to_string(d.U) + " u=" + std::to_string(d.u);
    if (d.has_pu) msg += " pu=" + std::to_string(d.pu);
    deferred_.emplace(d.file, d.line, msg, "on_gap=resync");
    return;
  }
  ++rep_.resyncs;
  emit(kBookClear, kFlagEndOfMessage, d.file, d.line, d.exch, d.local, 0, 0, d.u, 0, 0);
  state_ = State::kAwait;
  buffer_.clear();
  buffer_.push_back(d);
}

void BinanceParser::take(const Diff& d) {
  if (state_ == State::kSync) {
    if (d.u <= last_u_) {
      ++rep_.diffs_stale;
      return;
    }
    if (!opt_.futures && d.U > last_u_ + 1) return gap(d, "U <= lastUpdateId + 1 = " + std::to_string(last_u_ + 1));
  } else {
    if (d.u <= last_u_) {
      // Already in the book: the same message again, or an older one. Binance's procedure ignores
      // events with u below the local book's update id; both are counted with their places.
      const bool dup = d.U == last_U_ && d.u == last_u_;
      ++(dup ? rep_.diffs_duplicate : rep_.diffs_behind);
      auto& places = dup ? rep_.duplicate_diffs : rep_.behind_diffs;
      if (places.size() < kMaxPlaces) places.push_back({d.file, d.line});
      return;
    }
    if (opt_.futures) {
      if (d.pu != last_u_) return gap(d, "pu == " + std::to_string(last_u_));
    } else if (d.U != last_u_ + 1) {
      return gap(d, "U == " + std::to_string(last_u_ + 1));
    }
  }
  emit_levels(d, kBookDelta, d.u, d.U, d.has_pu ? d.pu : 0, d.bids, d.asks);
  ++rep_.diffs_applied;
  last_u_ = d.u;
  last_U_ = d.U;
  state_ = State::kLive;
}

// ---- events ------------------------------------------------------------------------------------

BinanceResult BinanceParser::finish(Units tick, Units lot) {
  if (!snapshot_seen_) {
    throw FeedError(0, 0, "no REST depth snapshot (lastUpdateId) in this sequence: the book cannot be built");
  }
  if (deferred_) throw *deferred_;
  static const char* const kNames[kNumLineKinds] = {"blank", "duplicate_line", "snapshot", "non_book_stream",
                                                     "ignored_stream", "depth", "depth_without_levels",
                                                     "bookTicker", "trade_excluded", "trade"};
  for (LineKind k : line_order_) rep_.lines.emplace_back(kNames[k], line_counts_[k]);
  rep_.diffs_unapplied += buffer_.size();
  buffer_.clear();
  BinanceResult r;
  r.tick = tick ? tick : (price_gcd_ ? price_gcd_ : kScale);
  r.lot = lot ? lot : (qty_gcd_ ? qty_gcd_ : kScale);
  const bool wide = !wide_.empty();
  for (size_t i = 0; i < events_.size(); ++i) {
    Event& e = events_[i];
    if (e.kind == kBookClear) continue;
    const bool ticker = e.kind == kBookTicker;
    const bool bid = e.flags & kFlagBid;
    const Units vals[2] = {wide ? wide_[2 * i] : static_cast<Units>(e.price),
                           wide ? wide_[2 * i + 1] : static_cast<Units>(e.qty)};
    int64_t out[2];
    for (int k = 0; k < 2; ++k) {
      const Units step = k == 0 ? r.tick : r.lot;
      const char* what = k == 0 ? (ticker ? (bid ? "bid" : "ask") : "price")
                                : (ticker ? (bid ? "bid qty" : "ask qty") : "qty");
      const Units q = vals[k] / step;
      if (vals[k] % step) {
        throw FeedError(e.file, e.line,
                        std::string(what) + " " + units_to_str(vals[k]) + " is not a multiple of the " +
                            (k == 0 ? "tick size " : "lot size ") + units_to_str(step));
      }
      if (q > kInt64Max) throw FeedError(e.file, e.line, std::string(what) + " " + u128_to_str(q) + " does not fit in 64 bits");
      out[k] = static_cast<int64_t>(q);
    }
    e.price = out[0];
    e.qty = out[1];
  }
  r.events = std::move(events_);
  events_ = {};
  wide_ = {};
  r.report = std::move(rep_);
  return r;
}

}  // namespace trader::feed
