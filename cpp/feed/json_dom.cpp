#include "feed/json_dom.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace trader::feed {
namespace {

constexpr int kMaxDepth = 1024;  // orjson refuses deeper nesting ("depth limit exceeded")

inline bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
inline void skip_ws(const char*& p, const char* end) {
  while (p < end && is_ws(*p)) ++p;
}
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex4(const char* p) {
  int v = 0;
  for (int i = 0; i < 4; ++i) {
    const char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  return v;
}

void put_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Length of the valid UTF-8 sequence at p (lead byte >= 0x80), 0 if invalid: no overlong forms,
// no surrogates, nothing above U+10FFFF (the Unicode standard's table 3-7).
size_t utf8_len(const unsigned char* p, const unsigned char* end) {
  const unsigned char c = p[0];
  auto cont = [&](size_t i, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return p + i < end && p[i] >= lo && p[i] <= hi;
  };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

}  // namespace

bool JsonDoc::fail(const char* p, const char* what) {
  error_ = std::string(what) + " at column " + std::to_string(p - text_ + 1);
  return false;
}

uint32_t JsonDoc::add() {
  nodes_.emplace_back();
  return static_cast<uint32_t>(nodes_.size() - 1);
}

bool JsonDoc::parse(const char* text, size_t n) {
  text_ = text;
  end_ = text + n;
  nodes_.clear();
  scratch_.clear();
  error_.clear();
  const char* p = text;
  skip_ws(p, end_);
  add();
  if (!value(p, 0, 0)) return false;
  skip_ws(p, end_);
  if (p != end_) return fail(p, "unexpected content after the document");
  return true;
}

bool JsonDoc::string(const char*& p, JNode& out) {
  // p is just past the opening quote.
  const char* start = p;
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  const auto* end = reinterpret_cast<const unsigned char*>(end_);
  // 8 bytes at a time while none is a quote, a backslash, a control character or non-ASCII
  // (the "has less than" / "has zero byte" bit tricks of Hacker's Delight, 6-1).
  constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  while (end - u >= 8) {
    uint64_t x;
    std::memcpy(&x, u, 8);
    const uint64_t q = x ^ (kOnes * '"'), b = x ^ (kOnes * '\\');
    const uint64_t special = ((x - kOnes * 0x20) | ((q - kOnes) & ~q) | ((b - kOnes) & ~b) | x) & kHigh;
    if (special) break;
    u += 8;
  }
  while (u < end && *u != '"' && *u != '\\') {
    if (*u < 0x20) return fail(reinterpret_cast<const char*>(u), "control character in string");
    if (*u < 0x80) {
      ++u;
    } else {
      const size_t k = utf8_len(u, end);
      if (!k) return fail(reinterpret_cast<const char*>(u), "string is not valid UTF-8");
      u += k;
    }
  }
  if (u >= end) return fail(start - 1, "unterminated string");
  if (*u == '"') {
    out.type = JType::kString;
    out.off = static_cast<uint32_t>(start - text_);
    out.len = static_cast<uint32_t>(reinterpret_cast<const char*>(u) - start);
    p = reinterpret_cast<const char*>(u) + 1;
    return true;
  }
  // Escapes: decode the whole string into scratch.
  const size_t off = scratch_.size();
  scratch_.append(start, reinterpret_cast<const char*>(u) - start);
  while (true) {
    if (u >= end) return fail(start - 1, "unterminated string");
    const unsigned char c = *u;
    if (c == '"') break;
    if (c < 0x20) return fail(reinterpret_cast<const char*>(u), "control character in string");
    if (c >= 0x80) {
      const size_t k = utf8_len(u, end);
      if (!k) return fail(reinterpret_cast<const char*>(u), "string is not valid UTF-8");
      scratch_.append(reinterpret_cast<const char*>(u), k);
      u += k;
      continue;
    }
    if (c != '\\') {
      scratch_.push_back(static_cast<char>(c));
      ++u;
      continue;
    }
    if (u + 1 >= end) return fail(reinterpret_cast<const char*>(u), "unterminated escape");
    const char e = static_cast<char>(u[1]);
    u += 2;
    switch (e) {
      case '"': scratch_.push_back('"'); break;
      case '\\': scratch_.push_back('\\'); break;
      case '/': scratch_.push_back('/'); break;
      case 'b': scratch_.push_back('\b'); break;
      case 'f': scratch_.push_back('\f'); break;
      case 'n': scratch_.push_back('\n'); break;
      case 'r': scratch_.push_back('\r'); break;
      case 't': scratch_.push_back('\t'); break;
      case 'u': {
        if (end - u < 4) return fail(reinterpret_cast<const char*>(u), "bad \\u escape");
        int cp = hex4(reinterpret_cast<const char*>(u));
        if (cp < 0) return fail(reinterpret_cast<const char*>(u), "bad \\u escape");
        u += 4;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(reinterpret_cast<const char*>(u), "lone low surrogate");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (end - u < 6 || u[0] != '\\' || u[1] != 'u') {
            return fail(reinterpret_cast<const char*>(u), "high surrogate without a low surrogate");
          }
          const int lo = hex4(reinterpret_cast<const char*>(u + 2));
          if (lo < 0xDC00 || lo > 0xDFFF) {
            return fail(reinterpret_cast<const char*>(u), "high surrogate without a low surrogate");
          }
          u += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        put_utf8(scratch_, static_cast<uint32_t>(cp));
        break;
      }
      default:
        return fail(reinterpret_cast<const char*>(u - 1), "bad escape");
    }
  }
  out.type = JType::kString;
  out.escaped = true;
  out.off = static_cast<uint32_t>(off);
  out.len = static_cast<uint32_t>(scratch_.size() - off);
  p = reinterpret_cast<const char*>(u) + 1;
  return true;
}

bool JsonDoc::number(const char*& p, JNode& out) {
  const char* start = p;
  bool neg = false;
  if (*p == '-') {
    neg = true;
    ++p;
  }
  if (p >= end_ || !is_digit(*p)) return fail(p, "expected a digit");
  const char* digits = p;
  if (*p == '0') {
    ++p;
    if (p < end_ && is_digit(*p)) return fail(p, "number with a leading zero");
  } else {
    while (p < end_ && is_digit(*p)) ++p;
  }
  const char* int_end = p;
  bool is_float = false;
  if (p < end_ && *p == '.') {
    ++p;
    if (p >= end_ || !is_digit(*p)) return fail(p, "no digit after the decimal point");
    while (p < end_ && is_digit(*p)) ++p;
    is_float = true;
  }
  if (p < end_ && (*p == 'e' || *p == 'E')) {
    ++p;
    if (p < end_ && (*p == '+' || *p == '-')) ++p;
    if (p >= end_ || !is_digit(*p)) return fail(p, "no digit in the exponent");
    while (p < end_ && is_digit(*p)) ++p;
    is_float = true;
  }
  out.raw = static_cast<uint32_t>(start - text_);
  out.len = static_cast<uint32_t>(p - start);
  if (!is_float) {
    // Integers that fit 64 bits stay integers (u64, or i64 when negative), as in orjson.
    const size_t nd = static_cast<size_t>(int_end - digits);
    if (nd <= 20) {
      unsigned __int128 v = 0;
      for (const char* d = digits; d < int_end; ++d) v = v * 10 + static_cast<unsigned>(*d - '0');
      const unsigned __int128 lim = neg ? (static_cast<unsigned __int128>(1) << 63) : ~uint64_t{0};
      if (v <= lim) {
        out.type = (neg && v != 0) ? JType::kNegInt : JType::kInt;
        out.u = static_cast<uint64_t>(v);
        return true;
      }
    }
  }
  // A float (or an integer too large for 64 bits, which orjson reads as a float): refused if infinite.
  std::string tok(start, p);
  errno = 0;
  const double d = std::strtod(tok.c_str(), nullptr);
  if (std::isinf(d)) return fail(start, "number is infinite as a double");
  out.type = JType::kFloat;
  return true;
}

bool JsonDoc::value(const char*& p, uint32_t idx, int depth) {
  if (p >= end_) return fail(p, "unexpected end of input");
  const char c = *p;
  nodes_[idx].raw = static_cast<uint32_t>(p - text_);
  switch (c) {
    case '{':
    case '[': {
      if (depth >= kMaxDepth) return fail(p, "nesting deeper than 1024");
      const bool obj = c == '{';
      const char close = obj ? '}' : ']';
      const char* open = p;
      ++p;
      skip_ws(p, end_);
      uint32_t count = 0;
      uint32_t prev = 0;
      uint32_t first = 0;
      if (p < end_ && *p == close) {
        ++p;
      } else {
        while (true) {
          if (obj) {
            if (p >= end_ || *p != '"') return fail(p, "expected a string key");
            const uint32_t k = add();
            if (prev) nodes_[prev].next = k;
            else first = k;
            nodes_[k].raw = static_cast<uint32_t>(p - text_);
            ++p;
            JNode key;
            if (!string(p, key)) return false;
            key.raw = nodes_[k].raw;
            nodes_[k] = key;
            prev = k;
            skip_ws(p, end_);
            if (p >= end_ || *p != ':') return fail(p, "expected ':'");
            ++p;
            skip_ws(p, end_);
          }
          const uint32_t v = add();
          if (prev) nodes_[prev].next = v;
          else first = v;
          if (!value(p, v, depth + 1)) return false;
          prev = v;
          ++count;
          skip_ws(p, end_);
          if (p < end_ && *p == ',') {
            ++p;
            skip_ws(p, end_);
            if (p < end_ && *p == close) return fail(p, "trailing comma");
            continue;
          }
          if (p < end_ && *p == close) {
            ++p;
            break;
          }
          return fail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
      }
      JNode& n = nodes_[idx];
      n.type = obj ? JType::kObject : JType::kArray;
      n.size = count;
      n.first = first;
      n.len = static_cast<uint32_t>(p - open);
      return true;
    }
    case '"': {
      ++p;
      JNode s;
      if (!string(p, s)) return false;
      JNode& n = nodes_[idx];
      const uint32_t raw = n.raw, next = n.next;
      n = s;
      n.raw = raw;
      n.next = next;
      return true;
    }
    case 't':
    case 'f':
    case 'n': {
      const char* word = c == 't' ? "true" : c == 'f' ? "false" : "null";
      const size_t len = std::strlen(word);
      if (static_cast<size_t>(end_ - p) < len || std::memcmp(p, word, len) != 0) return fail(p, "invalid literal");
      JNode& n = nodes_[idx];
      n.type = c == 't' ? JType::kTrue : c == 'f' ? JType::kFalse : JType::kNull;
      n.len = static_cast<uint32_t>(len);
      p += len;
      return true;
    }
    default: {
      if (c != '-' && !is_digit(c)) return fail(p, "unexpected character");
      JNode num;
      if (!number(p, num)) return false;
      JNode& n = nodes_[idx];
      const uint32_t next = n.next;
      n = num;
      n.next = next;
      return true;
    }
  }
}

const JNode* JsonDoc::get(const JNode& obj, std::string_view key) const {
  if (obj.type != JType::kObject) return nullptr;
  const JNode* found = nullptr;
  uint32_t k = obj.size ? obj.first : 0;
  for (uint32_t i = 0; i < obj.size; ++i) {
    const JNode& kn = nodes_[k];
    const JNode& vn = nodes_[kn.next];
    if (str(kn) == key) found = &vn;
    k = vn.next;
  }
  return found;
}

std::string_view JsonDoc::str(const JNode& s) const {
  if (s.escaped) return {scratch_.data() + s.off, s.len};
  return {text_ + s.off, s.len};
}

}  // namespace trader::feed
