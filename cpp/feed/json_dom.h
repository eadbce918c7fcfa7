// A small JSON reader for one line of a recorded feed: it builds a flat array of nodes and accepts
// exactly what orjson (the Python reference parser's JSON library) accepts, so that the C++ and
// Python converters agree on which lines are malformed: RFC 8259 grammar, strict UTF-8, no
// lone surrogates, nesting depth at most 1024, duplicate keys resolved to the last value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace trader::feed {

enum class JType : uint8_t { kNull, kFalse, kTrue, kInt, kNegInt, kFloat, kString, kArray, kObject };

struct JNode {
  JType type = JType::kNull;
  bool escaped = false;  // string: decoded text lives in the document's scratch buffer
  uint32_t size = 0;     // array: elements; object: key/value pairs
  uint32_t first = 0;    // array/object: index of the first child (object: key, value, key, ...)
  uint32_t next = 0;     // index of the next sibling; 0 = none (node 0 is the root)
  uint32_t off = 0;      // string: offset of the text (in the input, or in scratch if escaped)
  uint32_t len = 0;      // string: length of the text; others: length of the raw token
  uint32_t raw = 0;      // offset of the raw token in the input
  uint64_t u = 0;        // kInt: the value; kNegInt: its magnitude
};

class JsonDoc {
 public:
  // Parses `text` as one JSON document. On failure returns false; error() says why and where.
  bool parse(const char* text, size_t n);
  const std::string& error() const { return error_; }

  const JNode& root() const { return nodes_[0]; }
  const JNode& node(uint32_t i) const { return nodes_[i]; }
  // The value of `key` in an object (the last one if the key repeats), or nullptr.
  const JNode* get(const JNode& obj, std::string_view key) const;
  bool has(const JNode& obj, std::string_view key) const { return get(obj, key) != nullptr; }
  std::string_view str(const JNode& s) const;
  std::string_view raw(const JNode& n) const { return {text_ + n.raw, n.len}; }

 private:
  bool fail(const char* p, const char* what);
  bool value(const char*& p, uint32_t idx, int depth);
  bool string(const char*& p, JNode& out);
  bool number(const char*& p, JNode& out);
  uint32_t add();

  const char* text_ = nullptr;
  const char* end_ = nullptr;
  std::vector<JNode> nodes_;
  std::string scratch_;
  std::string error_;
};

}  // namespace trader::feed
