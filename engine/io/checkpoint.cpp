#include "engine/io/checkpoint.h"

#include <zlib.h>

#include <bit>
#include <charconv>
#include <cstring>
#include <limits>
#include <optional>

#include "engine/error.h"
#include "engine/io/file.h"

namespace cellgraph::io {

static_assert(std::endian::native == std::endian::little,
              "checkpoints are little-endian; add byte swapping for this platform");

namespace {

constexpr char kMagic[] = {'C', 'G', 'C', 'K', 'P', 'T'};
constexpr size_t kMagicSize = sizeof kMagic;
constexpr size_t kHeaderSize = kMagicSize + 2 + 8 + 4 + 4;
constexpr uint32_t kMaxRank = 16;

template <typename T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

void put_string(std::string& out, const std::string& s) {
  put(out, uint32_t(s.size()));
  out += s;
}

uint32_t crc_of(const char* data, size_t size) {
  return uint32_t(crc32_z(crc32_z(0, nullptr, 0), reinterpret_cast<const Bytef*>(data), size));
}

std::string serialize(const Checkpoint& ckpt) {
  std::string out(kMagic, kMagicSize);
  put(out, kCheckpointVersion);
  put(out, uint64_t(0));  // file size, patched below
  put(out, uint32_t(ckpt.metadata().size()));
  put(out, uint32_t(ckpt.tensors().size()));
  for (const auto& [key, value] : ckpt.metadata()) {
    put_string(out, key);
    put_string(out, value);
  }
  for (const auto& [name, tensor] : ckpt.tensors()) {
    put_string(out, name);
    put(out, uint32_t(tensor.rank()));
    for (int64_t d : tensor.shape().dims()) put(out, d);
    const std::vector<float> data = tensor.to_vector();
    out.append(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float));
  }
  const uint64_t total = out.size() + sizeof(uint32_t);
  std::memcpy(out.data() + kMagicSize + 2, &total, sizeof total);
  put(out, crc_of(out.data(), out.size()));
  return out;
}

// Walks the entries. In `truncated` mode the file is known to be short and running out of
// bytes is reported as truncation at the entry being read; otherwise (size and checksum
// verified) it means the writer was broken and is reported as malformed.
class Parser {
 public:
  Parser(const std::string& path, const std::string& data, size_t end, bool truncated)
      : path_(path), data_(data), end_(end), truncated_(truncated) {}

  Checkpoint parse() {
    pos_ = kMagicSize + 2 + 8;
    const uint32_t meta_count = get<uint32_t>(), tensor_count = get<uint32_t>();
    Checkpoint ckpt;
    ckpt.set_source(path_);
    for (uint32_t i = 0; i < meta_count; ++i) {
      where_ = detail::concat("metadata entry ", i + 1, " of ", meta_count);
      const std::string key = get_string();
      where_.append(" ('").append(key).append("')");
      if (ckpt.has_meta(key)) fail("duplicate metadata key");
      ckpt.set_meta(key, get_string());
    }
    for (uint32_t i = 0; i < tensor_count; ++i) {
      where_ = detail::concat("tensor entry ", i + 1, " of ", tensor_count);
      const std::string name = get_string();
      where_.append(" ('").append(name).append("')");
      if (ckpt.find(name) != nullptr) fail("duplicate tensor name");
      const uint32_t rank = get<uint32_t>();
      if (rank > kMaxRank) fail(detail::concat("rank ", rank, " (at most ", kMaxRank, ")"));
      std::vector<int64_t> dims;
      for (uint32_t d = 0; d < rank; ++d) {
        const int64_t extent = get<int64_t>();
        if (extent < 0) fail(detail::concat("negative extent ", extent, " in dimension ", d));
        dims.push_back(extent);
      }
      // The span, not the element count: [0, 2^62, 2^62] has no elements but strides that
      // overflow. Bounded so that its byte count fits in int64_t too.
      const Shape shape(dims);
      const std::optional<int64_t> span = shape.span();
      if (!span || *span > std::numeric_limits<int64_t>::max() / int64_t(sizeof(float)))
        fail(detail::concat("shape ", shape.str(), " is too large: its nonzero extents multiply ",
                            "past 2^61 float32 elements"));
      const size_t bytes = size_t(shape.numel()) * sizeof(float);
      need(bytes, "data");
      Tensor t = Tensor::empty(shape);
      if (bytes > 0) std::memcpy(t.data(), data_.data() + pos_, bytes);
      pos_ += bytes;
      ckpt.add(name, t);
    }
    where_ = "the checksum";
    need(sizeof(uint32_t), "checksum");
    pos_ += sizeof(uint32_t);
    if (pos_ != end_) {
      where_.clear();
      fail(detail::concat(end_ - pos_, " bytes after the checksum"));
    }
    return ckpt;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw error(path_, ": malformed checkpoint", where_.empty() ? "" : " at " + where_, ": ", what);
  }
  void need(size_t bytes, const char* what) const {
    if (end_ - pos_ >= bytes) return;
    if (truncated_)
      throw error(path_, ": truncated at ", where_, ": the ", what, " needs ", bytes,
                  " bytes, the file ends ", end_ - pos_, " bytes later (", data_.size(),
                  " bytes in all)");
    fail(detail::concat("the ", what, " runs past the end of the file"));
  }
  template <typename T>
  T get() {
    need(sizeof(T), "header field");
    T value;
    std::memcpy(&value, data_.data() + pos_, sizeof value);
    pos_ += sizeof value;
    return value;
  }
  std::string get_string() {
    const uint32_t size = get<uint32_t>();
    need(size, "name");
    std::string s = data_.substr(pos_, size);
    pos_ += size;
    return s;
  }

  const std::string& path_;
  const std::string& data_;
  size_t end_;
  bool truncated_;
  size_t pos_ = 0;
  std::string where_;
};

}  // namespace

void Checkpoint::add(const std::string& name, const Tensor& tensor) {
  CG_ASSERT(find(name) == nullptr, "checkpoint entry '", name, "' added twice");
  tensors_.emplace_back(name, Tensor::from_vector(tensor.shape(), tensor.to_vector()));
}

void Checkpoint::set_meta(const std::string& key, std::string value) {
  metadata_[key] = std::move(value);
}

const Tensor* Checkpoint::find(const std::string& name) const {
  for (const auto& [n, t] : tensors_)
    if (n == name) return &t;
  return nullptr;
}

const Tensor& Checkpoint::tensor(const std::string& name, const Shape& expected) const {
  const Tensor* t = find(name);
  if (t == nullptr) throw error(source_, ": missing entry '", name, "'");
  if (t->shape() != expected)
    throw error(source_, ": entry '", name, "': shape mismatch: expected ", expected.str(),
                ", got ", t->shape().str());
  return *t;
}

const std::string& Checkpoint::meta(const std::string& key) const {
  const auto it = metadata_.find(key);
  if (it == metadata_.end()) throw error(source_, ": missing metadata '", key, "'");
  return it->second;
}

int64_t Checkpoint::meta_int(const std::string& key) const {
  const std::string& s = meta(key);
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size())
    throw error(source_, ": metadata '", key, "': expected an integer, got '", s, "'");
  return value;
}

double Checkpoint::meta_double(const std::string& key) const {
  const std::string& s = meta(key);
  double value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size())
    throw error(source_, ": metadata '", key, "': expected a number, got '", s, "'");
  return value;
}

std::string format_double(double value) {
  char buffer[64];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  CG_ASSERT(ec == std::errc(), "to_chars failed");
  return std::string(buffer, end);
}

void save_checkpoint(const Checkpoint& checkpoint, const std::string& path) {
  write_file_atomic(path, serialize(checkpoint));
}

Checkpoint load_checkpoint(const std::string& path) {
  const std::string data = read_file(path);
  const size_t magic_seen = std::min(data.size(), kMagicSize);
  if (std::memcmp(data.data(), kMagic, magic_seen) != 0 || data.empty())
    throw error(path,
                ": not a cellgraph checkpoint (bad magic; expected the file to start with "
                "'CGCKPT')");
  if (data.size() < kHeaderSize)
    throw error(path, ": truncated in the header: ", data.size(), " bytes, a header has ",
                kHeaderSize);
  uint16_t version = 0;
  uint64_t declared = 0;
  std::memcpy(&version, data.data() + kMagicSize, sizeof version);
  std::memcpy(&declared, data.data() + kMagicSize + 2, sizeof declared);
  if (version != kCheckpointVersion)
    throw error(path, ": unsupported checkpoint version ", version, " (this build reads ",
                kCheckpointVersion, ")");
  if (data.size() < declared) {
    Parser(path, data, data.size(), true).parse();  // throws where the data ends
    throw error(path, ": truncated: ", data.size(), " bytes, the header says ", declared);
  }
  if (data.size() > declared)
    throw error(path, ": ", data.size(), " bytes, the header says ", declared,
                "; the file has trailing data or a damaged header");
  uint32_t stored = 0;
  std::memcpy(&stored, data.data() + data.size() - sizeof stored, sizeof stored);
  if (crc_of(data.data(), data.size() - sizeof stored) != stored)
    throw error(path, ": checksum mismatch: the file is corrupted");
  return Parser(path, data, data.size(), false).parse();
}

}  // namespace cellgraph::io
