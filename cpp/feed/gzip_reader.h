// Streams the bytes of a gzip (any number of members) or plain file in chunks, through zlib, with
// the same verdicts as Python's gzip module: a truncated stream, a bad CRC or trailing bytes that
// are neither zero padding nor another gzip member are errors. bzip2 and xz are left to Python
// (python/trader/data/rawfile.py), which feeds their bytes to the parser itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

namespace trader::feed {

// Raised for unreadable or corrupt files; what() says why, without the path.
struct ReadError : std::runtime_error {
  ReadError(std::string msg, bool corrupt) : std::runtime_error(std::move(msg)), corrupt(corrupt) {}
  bool corrupt;  // true: compressed data truncated or corrupt; false: the file could not be opened/read
};

enum class Codec { kPlain, kGzip, kOther };

// By magic bytes, as rawfile.open_text: gzip, bzip2/xz (kOther) or plain.
Codec sniff_codec(const std::string& path);

// Calls `sink(data, n)` with consecutive chunks of the decompressed bytes until the file ends or
// sink returns false. `progress(read, total)` (compressed bytes) is called every few MB if given.
void read_chunks(const std::string& path, const std::function<bool(const char*, size_t)>& sink,
                 const std::function<void(uint64_t, uint64_t)>& progress = {});

}  // namespace trader::feed
