#include "viz/event_file.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "engine/error.h"

namespace cellgraph::viz {

namespace {

// Protobuf wire format: a field's key is (number << 3) | wire type.
constexpr uint8_t kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5;

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += char(uint8_t(v) | 0x80);
    v >>= 7;
  }
  out += char(uint8_t(v));
}

void put_key(std::string& out, int field, uint8_t wire_type) {
  put_varint(out, uint64_t(field) << 3 | wire_type);
}

template <typename T>
void put_little_endian(std::string& out, T value) {
  static_assert(std::is_trivially_copyable_v<T>);
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // x86-64 and aarch64 are little endian
  out.append(bytes, sizeof(T));
}

void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out += bytes;
}

double wall_time() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

// Event fields: 1 wall_time (double), 2 step (int64).
std::string event_header(int64_t step) {
  std::string e;
  put_key(e, 1, kFixed64);
  put_little_endian(e, wall_time());
  put_key(e, 2, kVarint);
  put_varint(e, uint64_t(step));
  return e;
}

std::array<uint32_t, 256> crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    table[i] = c;
  }
  return table;
}

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size) {
  static const std::array<uint32_t, 256> kTable = crc32c_table();
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < size; ++i) c = kTable[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t c = crc32c(data, size);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

EventFileWriter::EventFileWriter(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw error(dir, ": cannot create the TensorBoard directory: ", ec.message());
  const auto seconds = int64_t(wall_time());
  // Two writers started in one second (a quick resume) must not share a file.
  for (int attempt = 0;; ++attempt) {
    path_ = (std::filesystem::path(dir) /
             ("events.out.tfevents." + std::to_string(seconds) + "." + host_name() + ".cellgraph" +
              (attempt > 0 ? "." + std::to_string(attempt) : "")))
                .string();
    if (!std::filesystem::exists(path_)) break;
  }
  file_ = std::fopen(path_.c_str(), "wb");
  if (file_ == nullptr) throw error(path_, ": cannot create: ", std::strerror(errno));
  std::string e = event_header(0);
  put_bytes(e, 3, "brain.Event:2");  // file_version
  write_event(e);
}

EventFileWriter::~EventFileWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

void EventFileWriter::scalars(int64_t step,
                              const std::vector<std::pair<std::string, float>>& values) {
  // Summary { repeated Value value = 1 }, Value { string tag = 1; float simple_value = 2 }.
  std::string summary;
  for (const auto& [tag, value] : values) {
    std::string v;
    put_bytes(v, 1, tag);
    put_key(v, 2, kFixed32);
    put_little_endian(v, value);
    put_bytes(summary, 1, v);
  }
  std::string e = event_header(step);
  put_bytes(e, 5, summary);
  write_event(e);
}

void EventFileWriter::session_start(int64_t step) {
  std::string log;  // SessionLog { SessionStatus status = 1 }, START = 1
  put_key(log, 1, kVarint);
  put_varint(log, 1);
  std::string e = event_header(step);
  put_bytes(e, 6, log);
  write_event(e);
}

void EventFileWriter::write_event(const std::string& event) {
  std::string record;
  const uint64_t length = event.size();
  put_little_endian(record, length);
  put_little_endian(record, masked_crc32c(record.data(), sizeof length));
  record += event;
  put_little_endian(record, masked_crc32c(event.data(), event.size()));
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size() ||
      std::fflush(file_) != 0)
    throw error(path_, ": write failed: ", std::strerror(errno));
}

}  // namespace cellgraph::viz
