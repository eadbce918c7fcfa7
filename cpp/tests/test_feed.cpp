// Tests of the feed parsers (cpp/feed): the JSON reader against orjson's verdicts, exact decimal
// units, the gzip reader's verdicts on damaged files, the Binance parser's errors, and the real
// shared recordings (counts from ../shared/data/README.md, book == bookTicker at equal update id).
//
// Usage: test_feed <shared data folder>   (the real-data part is skipped if the folder is absent)
// Prints failing checks as file:line: expression, then "N passed, M failed"; exits 1 on failure.
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "book/replay.h"
#include "feed/binance_feed.h"
#include "feed/binance_scanner.h"
#include "feed/decimal.h"
#include "feed/gzip_reader.h"
#include "feed/json_dom.h"

using namespace trader;
using namespace trader::feed;
namespace fs = std::filesystem;

namespace {

uint64_t g_passed = 0, g_failed = 0;

void failure(const char* file, int line, const std::string& what) {
  if (g_failed < 50) std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, what.c_str());
  ++g_failed;
}

#define CHECK(expr) ((expr) ? void(++g_passed) : failure(__FILE__, __LINE__, #expr))
#define CHECK_EQ(a, b)                                                       \
  do {                                                                       \
    const auto va_ = (a);                                                    \
    const auto vb_ = (b);                                                    \
    if (va_ == vb_) {                                                        \
      ++g_passed;                                                            \
    } else {                                                                 \
      std::ostringstream os_;                                                \
      os_ << #a " == " #b " (" << va_ << " vs " << vb_ << ")";               \
      failure(__FILE__, __LINE__, os_.str());                                \
    }                                                                        \
  } while (0)

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("trader_test_feed_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string gzip_bytes(const std::string& text) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, text.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string read_all(const std::string& path) {
  std::string out;
  read_chunks(path, [&](const char* d, size_t n) {
    out.append(d, n);
    return true;
  });
  return out;
}

// ---- JSON ----------------------------------------------------------------------------------------

void test_json() {
  JsonDoc doc;
  // Accepted and refused exactly as orjson does (checked with orjson 3.x by hand).
  const char* ok[] = {"{}", " {\"a\":1} \r", "{\"a\":18446744073709551615}", "{\"a\":-0}", "{\"a\":\"\\ud800\\udc00\"}",
                      "{\"a\":\"\\u0000\"}", "{\"a\":1E5}", "{\"a\":1e-400}", "{\"a\" : [ 1 , 2 ] }", "[true,false,null]",
                      "{\"a\":\"\xc3\xa9\"}"};
  for (const char* s : ok) CHECK(doc.parse(s, std::strlen(s)));
  const char* bad[] = {"{\"a\":1}\x0b", "{\"a\":01}", "{\"a\":1.}", "{\"a\":1e400}", "{\"a\":\"x\ty\"}",
                       "\xef\xbb\xbf{}", "{\"a\":[1,]}", "{,}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}",
                       "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xc0\x80\"}", "{\"a\":\"\xf4\x90\x80\x80\"}", "\"\xff\"",
                       "{\"a\":tru}", "{\"a\"", "", "{\"a\":1}}", "{\"a\":\"\\x\"}"};
  for (const char* s : bad) CHECK(!doc.parse(s, std::strlen(s)));
  std::string deep(1024, '['), deeper(1025, '[');
  deep += std::string(1024, ']');
  deeper += std::string(1025, ']');
  CHECK(doc.parse(deep.data(), deep.size()));
  CHECK(!doc.parse(deeper.data(), deeper.size()));

  const std::string s = R"({"k":1,"s":"a\"b\u00e9","k":[2,3],"n":-5,"f":1.5,"big":18446744073709551616})";
  CHECK(doc.parse(s.data(), s.size()));
  const JNode* k = doc.get(doc.root(), "k");  // the last of a repeated key, as orjson
  CHECK(k && k->type == JType::kArray && k->size == 2);
  CHECK(doc.str(*doc.get(doc.root(), "s")) == "a\"b\xc3\xa9");
  CHECK(doc.get(doc.root(), "n")->type == JType::kNegInt);
  CHECK(doc.get(doc.root(), "f")->type == JType::kFloat);
  CHECK(doc.get(doc.root(), "big")->type == JType::kFloat);  // beyond 64 bits: a float in orjson
  CHECK(doc.get(doc.root(), "missing") == nullptr);
}

// ---- decimals ------------------------------------------------------------------------------------

void test_decimal() {
  Units v = 0;
  const char* why = nullptr;
  CHECK(parse_units("61837.63000000", v, why) && v == static_cast<Units>(61837630000000000ULL));
  CHECK(parse_units("0.000000000001", v, why) && v == 1);
  CHECK(parse_units("1.0000000000000000", v, why) && v == kScale);  // zeros past the 12th decimal
  CHECK(!parse_units("1.0000000000001", v, why));
  CHECK(parse_units("123456789012345678901234.5", v, why));  // beyond 64 bits: the 128-bit path
  CHECK_EQ(units_to_str(v), std::string("123456789012345678901234.5"));
  CHECK(!parse_units("340282366920938463463374607431768211456", v, why));  // beyond 128 bits
  for (const char* s : {"", ".5", "1.", "-1", "1e5", "1,5", " 1", "0x10"}) CHECK(!parse_units(s, v, why));
  CHECK_EQ(units_to_str(10000000000ULL), std::string("0.01"));
  CHECK_EQ(units_to_str(100 * kScale), std::string("100"));
  CHECK_EQ(u128_to_str(gcd_units(static_cast<Units>(6183763) * 10000000000ULL, 61837640000000000ULL)),
           std::string("10000000000"));
}

// ---- gzip ----------------------------------------------------------------------------------------

void test_gzip(const TempDir& tmp) {
  const std::string text = "line one\nline two\n";
  write_bytes(tmp.file("two.gz"), gzip_bytes("line one\n") + gzip_bytes("line two\n"));
  CHECK_EQ(read_all(tmp.file("two.gz")), text);  // several members, as Python's gzip
  write_bytes(tmp.file("pad.gz"), gzip_bytes(text) + std::string(7, '\0'));
  CHECK_EQ(read_all(tmp.file("pad.gz")), text);  // zero padding after the last member is allowed
  write_bytes(tmp.file("plain.txt"), text);
  CHECK_EQ(read_all(tmp.file("plain.txt")), text);
  const std::string gz = gzip_bytes(std::string(100000, 'x'));
  auto refused = [&](const std::string& bytes, const char* name) {
    write_bytes(tmp.file(name), bytes);
    try {
      read_all(tmp.file(name));
    } catch (const ReadError& e) {
      return e.corrupt;
    }
    return false;
  };
  CHECK(refused(gz.substr(0, gz.size() / 2), "cut.gz"));
  CHECK(refused(gz.substr(0, gz.size() - 4), "cut_trailer.gz"));
  std::string crc = gz;
  crc[crc.size() - 6] ^= 1;
  CHECK(refused(crc, "crc.gz"));
  CHECK(refused(gz + "garbage", "garbage.gz"));
  bool open_error = false;
  try {
    read_all(tmp.file("does_not_exist.gz"));
  } catch (const ReadError& e) {
    open_error = !e.corrupt;
  }
  CHECK(open_error);
}

// ---- the Binance parser on small hand-made feeds -------------------------------------------------

const char* kSnap = R"({"lastUpdateId":100,"bids":[["10.00","1.5"],["9.99","2"]],"asks":[["10.01","1"]]})";

std::string depth(uint64_t U, uint64_t u, const char* bids = R"([["10.00","1.0"]])") {
  return std::string(R"({"stream":"abc@depth@100ms","data":{"e":"depthUpdate","E":1700000000000,"s":"ABC","U":)") +
         std::to_string(U) + ",\"u\":" + std::to_string(u) + ",\"b\":" + bids + ",\"a\":[]}}";
}

BinanceOptions spot_options() {
  BinanceOptions o;
  o.symbol = "ABC";
  o.non_book_streams = {"markPrice", "aggTrade", "kline"};
  return o;
}

BinanceResult parse_text(const std::string& text, BinanceOptions o = spot_options()) {
  BinanceParser p(std::move(o));
  p.begin_file(0, std::nullopt);
  p.feed(text.data(), text.size());
  p.end_file();
  return p.finish(0, 0);
}

// The line of the FeedError that parsing `text` raises, or 0 if none.
uint32_t error_line(const std::string& text, std::string* msg = nullptr, BinanceOptions o = spot_options()) {
  try {
    parse_text(text, std::move(o));
  } catch (const FeedError& e) {
    if (msg) *msg = e.what();
    return e.line ? e.line : ~0u;
  }
  return 0;
}

void test_binance_small() {
  const std::string ts = "1700000000000000000 ";
  std::string feed = ts + depth(90, 99) + "\n" + ts + depth(100, 101) + "\n" + ts + kSnap + "\n" + ts + depth(102, 103) +
                     "\n" + ts + depth(102, 103) + "\n" + ts +
                     R"({"stream":"abc@markPrice@1s","data":{"s":"ABC"}})" + "\n\n" + ts + depth(104, 104, "[]");
  BinanceResult r = parse_text(feed);
  // snapshot: clear + 3 levels; diffs 100-101 (buffered) and 102-103 applied; 90-99 stale
  CHECK_EQ(r.events.size(), size_t{6});
  CHECK_EQ(r.report.diffs_applied, uint64_t{3});
  CHECK_EQ(r.report.diffs_stale, uint64_t{1});
  CHECK_EQ(r.report.diffs_duplicate, uint64_t{0});  // the repeated line is a duplicate line instead
  CHECK_EQ(r.report.duplicate_lines.size(), size_t{1});
  CHECK_EQ(r.report.skipped_streams.size(), size_t{1});
  CHECK_EQ(u128_to_str(r.tick), std::string("10000000000"));  // gcd of 10.00, 9.99, 10.01
  CHECK_EQ(r.events[0].kind, uint8_t{kBookClear});
  CHECK_EQ(r.events[1].price, int64_t{1000});
  CHECK(r.events[3].flags & kFlagEndOfMessage);

  std::string msg;
  // a gap: U=105 after u=103 (the 104-104 diff is dropped here)
  std::string gap = ts + kSnap + "\n" + ts + depth(101, 103) + "\n" + ts + depth(105, 106) + "\n";
  CHECK_EQ(error_line(gap, &msg), 3u);
  CHECK(msg.find("update-id gap") != std::string::npos);
  BinanceOptions resync = spot_options();
  resync.resync = true;
  CHECK_EQ(parse_text(gap, resync).report.resyncs, uint64_t{1});
  // a malformed line after the gap is reported first: every line is parsed before sequencing errors
  CHECK_EQ(error_line(gap + ts + "{\"stream\":", &msg), 4u);
  CHECK(msg.find("malformed JSON") != std::string::npos);
  CHECK_EQ(error_line(ts + kSnap + "\n" + ts + R"({"stream":"abc@foo","data":{"s":"ABC"}})", &msg), 2u);
  CHECK(msg.find("unknown stream kind 'foo'") != std::string::npos);
  CHECK_EQ(error_line(ts + depth(1, 2), &msg), ~0u);  // no snapshot
  CHECK_EQ(error_line(ts + kSnap + "\n170000000000000000 " + kSnap, &msg), 2u);  // 18 digits among 19
  CHECK_EQ(error_line(std::string("x ") + kSnap), 1u);
  CHECK_EQ(error_line(ts + R"({"lastUpdateId":1,"bids":[["0","1"]],"asks":[]})"), 1u);  // price 0
  CHECK_EQ(error_line(ts + R"({"lastUpdateId":-1,"bids":[],"asks":[]})"), 1u);
  // 10 s back in local time: reported, not refused
  const std::string later = "1700000010000000000 ";
  BinanceResult back = parse_text(later + kSnap + "\n" + ts + depth(101, 101));
  CHECK_EQ(back.report.clock_back_count, uint64_t{1});
  CHECK_EQ(back.report.clock_back_max_ns, int64_t{10000000000});
}

// ---- the real recordings -------------------------------------------------------------------------

void test_binance_real(const fs::path& data) {
  const fs::path dir = data / "binance_hftbacktest_raw_feed" / "spot";
  if (!fs::exists(dir / "btcusdt_20240808.gz")) {
    std::printf("  (skipped: %s not found)\n", dir.string().c_str());
    return;
  }
  const ScanResult s0 = scan_binance_file((dir / "btcusdt_20240808.gz").string());
  const ScanResult s1 = scan_binance_file((dir / "btcusdt_20240809.gz").string());
  CHECK(s0.has_snapshot && !s1.has_snapshot);
  CHECK_EQ(s0.market, std::string("spot"));
  CHECK_EQ(s0.symbol, std::string("BTCUSDT"));
  CHECK_EQ(s0.ts_unit, std::string("ns"));
  BinanceOptions o = spot_options();
  o.symbol = "BTCUSDT";
  BinanceParser p(o);
  CHECK(p.parse_file(0, (dir / "btcusdt_20240808.gz").string(), std::nullopt));
  CHECK_EQ(p.lines_read(), 41249u);  // data README
  CHECK(p.parse_file(1, (dir / "btcusdt_20240809.gz").string(), std::nullopt));
  BinanceResult r = p.finish(0, 0);
  CHECK(r.report.gaps.empty());
  const TickerCheck c = check_tickers(r.events.data(), r.events.size());
  CHECK_EQ(c.compared, uint64_t{1072});  // data README: 1,072 of 1,072 matched
  CHECK_EQ(c.matched, uint64_t{1072});
  CHECK_EQ(c.replay.crossed, uint64_t{0});
  // until_ns stops at the first line received at or after it
  BinanceParser q(o);
  CHECK(!q.parse_file(0, (dir / "btcusdt_20240808.gz").string(), static_cast<int64_t>(s0.first_local_ns) + 1000000000));
  CHECK(q.lines_read() < 41249u);
}

void run(const char* name, const std::function<void()>& fn) {
  const uint64_t before = g_failed;
  std::printf("[ RUN  ] %s\n", name);
  try {
    fn();
  } catch (const std::exception& e) {
    failure(__FILE__, __LINE__, std::string(name) + " threw: " + e.what());
  }
  std::printf("[ %s ] %s\n", g_failed == before ? " OK " : "FAIL", name);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <shared data folder>\n", argv[0]);
    return 2;
  }
  TempDir tmp;
  run("json", test_json);
  run("decimal", test_decimal);
  run("gzip", [&] { test_gzip(tmp); });
  run("binance_small", test_binance_small);
  run("binance_real", [&] { test_binance_real(argv[1]); });
  std::printf("%llu passed, %llu failed\n", static_cast<unsigned long long>(g_passed),
              static_cast<unsigned long long>(g_failed));
  return g_failed == 0 ? 0 : 1;
}
