#include "engine/data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "engine/error.h"

namespace cellgraph {

namespace {

// Reads come in slices so a header that claims far more data than the file holds never
// makes us allocate it up front.
constexpr size_t kReadChunk = size_t{1} << 20;
constexpr int64_t kMaxBytes = int64_t{1} << 40;

class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    // gzopen reads raw files transparently; peeking at the magic is only for messages.
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr)
      throw error(path, ": cannot open (", std::strerror(errno), "); expected an IDX file");
    unsigned char magic[2] = {0, 0};
    gzip_ = std::fread(magic, 1, 2, f) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    std::fclose(f);
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr)
      throw error(path, ": cannot open (", std::strerror(errno), "); expected an IDX file");
  }
  ~GzReader() { gzclose(file_); }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  bool gzip() const { return gzip_; }
  bool cut_short() const { return cut_short_; }

  // Reads up to `n` bytes; fewer only at the end of the data. Throws on read errors.
  size_t read(uint8_t* dst, size_t n) {
    size_t got = 0;
    while (got < n) {
      const unsigned want = static_cast<unsigned>(std::min(n - got, kReadChunk));
      const int r = gzread(file_, dst + got, want);
      if (r < 0) fail();
      got += static_cast<size_t>(r);
      if (static_cast<unsigned>(r) < want) {
        int code = Z_OK;
        gzerror(file_, &code);
        // zlib reports a gzip stream that stops mid-way as Z_BUF_ERROR with a short read.
        cut_short_ = code == Z_BUF_ERROR;
        break;
      }
    }
    return got;
  }

 private:
  [[noreturn]] void fail() {
    int code = Z_OK;
    const char* message = gzerror(file_, &code);
    if (code == Z_ERRNO)
      throw error(path_, ": read failed (", std::strerror(errno), "); expected an IDX file");
    throw error(path_, ": corrupt gzip stream (zlib: ", message,
                "); expected a valid gzip-compressed IDX file");
  }

  std::string path_;
  gzFile file_ = nullptr;
  bool gzip_ = false;
  bool cut_short_ = false;
};

std::string_view type_name(uint8_t type) {
  switch (type) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return "unknown";
  }
}

std::string hex(uint8_t b) {
  char s[8];
  std::snprintf(s, sizeof s, "0x%02x", b);
  return s;
}

std::string dims_str(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

}  // namespace

IdxArray read_idx(const std::string& path, int expected_rank, std::string_view what) {
  std::error_code ec;  // the non-throwing overload: a stat failure is reported by fopen below
  if (std::filesystem::is_directory(path, ec))
    throw error(path, ": is a directory; expected an IDX file");
  GzReader in(path);
  const char* container = in.gzip() ? " (gzip)" : "";
  uint8_t header[4];
  const size_t got_header = in.read(header, 4);
  if (got_header < 4)
    throw error(path, container, ": file holds ", got_header,
                " bytes; expected a 4-byte IDX header (00 00 type rank)");
  if (header[0] != 0 || header[1] != 0)
    throw error(path, container, ": bad magic bytes ", hex(header[0]), " ", hex(header[1]), " ",
                hex(header[2]), " ", hex(header[3]),
                "; expected an IDX header starting 0x00 0x00 (a ",
                in.gzip() ? "gzip-compressed" : "raw or gzip", " IDX file)");
  if (header[2] != 0x08)
    throw error(path, container, ": element type ", hex(header[2]), " (", type_name(header[2]),
                ") is not supported; expected 0x08 (unsigned byte)");
  const int rank = header[3];
  IdxArray out;
  uint8_t extents[4 * 255];
  const size_t extent_bytes = 4 * static_cast<size_t>(rank);
  const size_t got_extents = in.read(extents, extent_bytes);
  if (got_extents < extent_bytes)
    throw error(path, container, ": header ends after ", 4 + got_extents, " bytes; expected ",
                4 + extent_bytes, " (", rank, " big-endian uint32 extents)");
  int64_t total = 1;
  for (int d = 0; d < rank; ++d) {
    const uint8_t* b = extents + 4 * d;
    const int64_t extent =
        (int64_t{b[0]} << 24) | (int64_t{b[1]} << 16) | (int64_t{b[2]} << 8) | int64_t{b[3]};
    out.dims.push_back(extent);
    total = extent == 0 || total <= kMaxBytes / extent ? total * extent : kMaxBytes + 1;
  }
  if (expected_rank >= 0 && rank != expected_rank)
    throw error(path, container, ": IDX rank ", rank, " (extents ", dims_str(out.dims),
                "); expected rank ", expected_rank, " for ", what, " data");
  if (total > kMaxBytes)
    throw error(path, container, ": header extents ", dims_str(out.dims),
                " describe more than 2^40 bytes; expected a real IDX file");
  const size_t expected = static_cast<size_t>(total);
  out.data.reserve(std::min(expected, size_t{64} << 20));
  size_t have = 0;
  while (have < expected) {
    const size_t want = std::min(expected - have, size_t{16} << 20);
    out.data.resize(have + want);
    const size_t got = in.read(out.data.data() + have, want);
    have += got;
    if (got < want) break;
  }
  if (have < expected)
    throw error(path, container, ": expected ", expected, " bytes of ", what, " data, found ", have,
                " (header extents ", dims_str(out.dims), ")",
                in.cut_short() ? "; the gzip stream is cut short" : "");
  uint8_t rest[4096];
  size_t trailing = 0;
  for (size_t n; (n = in.read(rest, sizeof rest)) > 0;) trailing += n;
  if (trailing > 0)
    throw error(path, container, ": ", trailing, " bytes of trailing data after the ", expected,
                " bytes of ", what, " data; expected the file to end there");
  return out;
}

void write_idx(const std::string& path, const std::vector<int64_t>& dims,
               const std::vector<uint8_t>& data, bool gzip) {
  CG_ASSERT(dims.size() <= 255, "write_idx: rank ", dims.size());
  int64_t total = 1;
  std::vector<uint8_t> bytes = {0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (int64_t d : dims) {
    CG_ASSERT(d >= 0 && d <= 0xFFFFFFFFll, "write_idx: extent ", d);
    total *= d;
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<uint8_t>(d >> shift));
  }
  CG_ASSERT(static_cast<int64_t>(data.size()) == total, "write_idx: ", data.size(),
            " bytes for extents ", dims_str(dims));
  bytes.insert(bytes.end(), data.begin(), data.end());
  bool ok = false;
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    if (f != nullptr) {
      ok = true;
      for (size_t at = 0; ok && at < bytes.size(); at += kReadChunk) {
        const unsigned n = static_cast<unsigned>(std::min(kReadChunk, bytes.size() - at));
        ok = gzwrite(f, bytes.data() + at, n) == static_cast<int>(n);
      }
      ok = gzclose(f) == Z_OK && ok;
    }
  } else if (std::FILE* f = std::fopen(path.c_str(), "wb")) {
    ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    ok = std::fclose(f) == 0 && ok;
  }
  if (!ok)
    throw error(path, ": cannot write (", std::strerror(errno), "); expected a writable path");
}

}  // namespace cellgraph
