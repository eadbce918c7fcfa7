#include "events/npy_events.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>

namespace trader {

const char* const kEventNpyDescr =
    "[('kind', '|u1'), ('flags', '|u1'), ('file', '<u2'), ('line', '<u4'), ('exch_ts', '<i8'), "
    "('local_ts', '<i8'), ('price', '<i8'), ('qty', '<i8'), ('update_id', '<u8'), "
    "('first_update_id', '<u8'), ('prev_update_id', '<u8')]";

namespace {
[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

// Bytes from the read position to the end of the file; the position is kept.
uint64_t bytes_left(std::ifstream& in, const std::string& path) {
  const std::streampos here = in.tellg();
  in.seekg(0, std::ios::end);
  const std::streampos end = in.tellg();
  in.seekg(here);
  if (here < 0 || end < here || !in) fail(path, "cannot determine the file size");
  return static_cast<uint64_t>(end - here);
}
}  // namespace

std::vector<Event> read_events_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) {
    fail(path, "not a .npy file (expected the \\x93NUMPY magic)");
  }
  const int major = static_cast<unsigned char>(magic[6]);
  uint32_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    if (!in.read(reinterpret_cast<char*>(b), 2)) fail(path, "truncated header length");
    header_len = b[0] | (b[1] << 8);
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    if (!in.read(reinterpret_cast<char*>(b), 4)) fail(path, "truncated header length");
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  } else {
    fail(path, "unsupported .npy version " + std::to_string(major));
  }
  // A corrupt length must not allocate gigabytes: the header has to fit in the file.
  if (header_len > bytes_left(in, path)) fail(path, "truncated header");
  std::string header(header_len, '\0');
  if (!in.read(header.data(), header_len)) fail(path, "truncated header");
  if (header.find(std::string("'descr': ") + kEventNpyDescr) == std::string::npos) {
    fail(path, "dtype is not the trader event record; expected descr " + std::string(kEventNpyDescr));
  }
  if (header.find("'fortran_order': False") == std::string::npos) {
    fail(path, "expected 'fortran_order': False");
  }
  const size_t sp = header.find("'shape': (");
  if (sp == std::string::npos) fail(path, "header has no shape");
  // The count is parsed by hand and checked against the bytes left in the file before allocating:
  // a corrupt shape must be this error, not std::invalid_argument / out_of_range or bad_alloc.
  size_t pos = sp + 10;
  while (pos < header.size() && header[pos] == ' ') ++pos;
  uint64_t n = 0;
  size_t digits = 0;
  for (; pos < header.size() && header[pos] >= '0' && header[pos] <= '9'; ++pos, ++digits) {
    const uint64_t d = static_cast<uint64_t>(header[pos] - '0');
    if (n > (UINT64_MAX - d) / 10) fail(path, "shape is too large");
    n = n * 10 + d;
  }
  if (digits == 0) fail(path, "header shape is not a 1-D (n,) count");
  const uint64_t avail = bytes_left(in, path);
  if (n > avail / sizeof(Event)) {
    fail(path, "truncated data: header promises " + std::to_string(n) + " events of 64 bytes, the file holds " +
                   std::to_string(avail / sizeof(Event)));
  }
  std::vector<Event> events(static_cast<size_t>(n));
  if (n && !in.read(reinterpret_cast<char*>(events.data()), static_cast<std::streamsize>(n * sizeof(Event)))) {
    fail(path, "truncated data: header promises " + std::to_string(n) + " events of 64 bytes");
  }
  return events;
}

}  // namespace trader
