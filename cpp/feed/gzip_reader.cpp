#include "feed/gzip_reader.h"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

namespace trader::feed {
namespace {

constexpr size_t kInChunk = 1 << 18;
constexpr size_t kOutChunk = 1 << 20;
constexpr uint64_t kProgressEvery = 16ULL << 20;

struct File {
  std::FILE* f = nullptr;
  explicit File(const std::string& path) : f(std::fopen(path.c_str(), "rb")) {
    if (!f) throw ReadError(std::string("cannot open: ") + std::strerror(errno), false);
  }
  ~File() { std::fclose(f); }
  size_t read(unsigned char* buf, size_t n) {
    const size_t got = std::fread(buf, 1, n, f);
    if (got < n && std::ferror(f)) throw ReadError(std::string("read error: ") + std::strerror(errno), false);
    return got;
  }
  uint64_t size() {
    std::fseek(f, 0, SEEK_END);
    const long s = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    return s < 0 ? 0 : static_cast<uint64_t>(s);
  }
};

struct Inflater {
  z_stream z{};
  Inflater() {
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) throw ReadError("zlib: cannot initialise", false);
  }
  ~Inflater() { inflateEnd(&z); }
};

}  // namespace

Codec sniff_codec(const std::string& path) {
  File f(path);
  unsigned char head[6] = {0};
  const size_t n = f.read(head, sizeof head);
  if (n >= 2 && head[0] == 0x1f && head[1] == 0x8b) return Codec::kGzip;
  if (n >= 3 && std::memcmp(head, "BZh", 3) == 0) return Codec::kOther;
  if (n >= 6 && std::memcmp(head, "\xfd" "7zXZ\0", 6) == 0) return Codec::kOther;
  return Codec::kPlain;
}

void read_chunks(const std::string& path, const std::function<bool(const char*, size_t)>& sink,
                 const std::function<void(uint64_t, uint64_t)>& progress) {
  const Codec codec = sniff_codec(path);
  if (codec == Codec::kOther) throw ReadError("bzip2/xz files are read through Python", false);
  File f(path);
  const uint64_t total = progress ? f.size() : 0;
  uint64_t done = 0, next_report = kProgressEvery;
  std::vector<unsigned char> in(kInChunk);
  auto tick = [&](size_t got) {
    done += got;
    if (progress && done >= next_report) {
      progress(done, total);
      next_report = done + kProgressEvery;
    }
  };
  if (codec == Codec::kPlain) {
    while (true) {
      const size_t got = f.read(in.data(), in.size());
      if (!got) return;
      tick(got);
      if (!sink(reinterpret_cast<const char*>(in.data()), got)) return;
    }
  }
  std::vector<unsigned char> out(kOutChunk);
  Inflater inf;
  z_stream& z = inf.z;
  bool member_done = false;  // between members: only zero padding or a new gzip header may follow
  bool out_full = false;     // the last inflate filled the output: it may hold more without new input
  while (true) {
    if (z.avail_in == 0 && !out_full) {
      const size_t got = f.read(in.data(), in.size());
      if (!got) {
        if (!member_done) throw ReadError("compressed file ended before the end-of-stream marker", true);
        return;
      }
      tick(got);
      z.next_in = in.data();
      z.avail_in = static_cast<uInt>(got);
    }
    if (member_done) {
      // Python's gzip skips zero bytes after a member, then wants another member's magic.
      while (z.avail_in && *z.next_in == 0) {
        ++z.next_in;
        --z.avail_in;
      }
      if (!z.avail_in) continue;
      if (z.next_in[0] != 0x1f) throw ReadError("not a gzip member after the end of the previous one", true);
      if (z.avail_in < 2) {  // the magic's second byte is in the next chunk
        const unsigned char first = z.next_in[0];
        in[0] = first;
        const size_t got = f.read(in.data() + 1, in.size() - 1);
        tick(got);
        z.next_in = in.data();
        z.avail_in = static_cast<uInt>(got + 1);
        if (got == 0) throw ReadError("not a gzip member after the end of the previous one", true);
      }
      if (z.next_in[1] != 0x8b) throw ReadError("not a gzip member after the end of the previous one", true);
      inflateReset(&z);
      member_done = false;
    }
    z.next_out = out.data();
    z.avail_out = static_cast<uInt>(out.size());
    const int rc = inflate(&z, Z_NO_FLUSH);
    const size_t produced = out.size() - z.avail_out;
    out_full = z.avail_out == 0;
    if (produced && !sink(reinterpret_cast<const char*>(out.data()), produced)) return;
    if (rc == Z_STREAM_END) {
      member_done = true;
      out_full = false;
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      throw ReadError(std::string("zlib: ") + (z.msg ? z.msg : "corrupt data"), true);
    }
  }
}

}  // namespace trader::feed
