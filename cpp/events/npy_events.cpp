#include "events/npy_events.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace trader {

const char* const kEventNpyDescr =
    "[('kind', '|u1'), ('flags', '|u1'), ('file', '<u2'), ('line', '<u4'), ('exch_ts', '<i8'), "
    "('local_ts', '<i8'), ('price', '<i8'), ('qty', '<i8'), ('update_id', '<u8'), "
    "('first_update_id', '<u8'), ('prev_update_id', '<u8')]";

namespace {
[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
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
  const size_t n = std::stoull(header.substr(sp + 10));
  std::vector<Event> events(n);
  if (n && !in.read(reinterpret_cast<char*>(events.data()), static_cast<std::streamsize>(n * sizeof(Event)))) {
    fail(path, "truncated data: header promises " + std::to_string(n) + " events of 64 bytes");
  }
  return events;
}

}  // namespace trader
