// Splits a stream of byte chunks into lines at '\n', as Python's binary file iteration does (a last
// line without a newline still counts). A line split across chunks is joined in a carry buffer.
#pragma once

#include <cstring>
#include <string>

namespace trader::feed {

class LineSplitter {
 public:
  void reset() { carry_.clear(); }

  // Calls on_line(ptr, len) for each complete line (without its '\n') until it returns false;
  // returns false then.
  template <class F>
  bool feed(const char* data, size_t n, F&& on_line) {
    const char* p = data;
    const char* end = data + n;
    if (!carry_.empty()) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
      if (!nl) {
        carry_.append(p, static_cast<size_t>(end - p));
        return true;
      }
      carry_.append(p, static_cast<size_t>(nl - p));
      std::string line;
      line.swap(carry_);
      if (!on_line(line.data(), line.size())) return false;
      p = nl + 1;
    }
    while (p < end) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
      if (!nl) {
        carry_.assign(p, static_cast<size_t>(end - p));
        break;
      }
      if (!on_line(p, static_cast<size_t>(nl - p))) return false;
      p = nl + 1;
    }
    return true;
  }

  // The last line, if the stream did not end with '\n'.
  template <class F>
  bool end(F&& on_line) {
    if (carry_.empty()) return true;
    std::string line;
    line.swap(carry_);
    return on_line(line.data(), line.size());
  }

 private:
  std::string carry_;
};

}  // namespace trader::feed
