// Checkpoints: named float32 tensors plus a small key -> string metadata map in one binary
// file, written atomically and validated completely on load.
//
// File layout (little-endian):
//   "CGCKPT"            6 bytes, the magic
//   u16 version         kCheckpointVersion
//   u64 file size       of the whole file, checksum included
//   u32 metadata count, u32 tensor count
//   metadata entries    u32 key length, key bytes, u32 value length, value bytes
//   tensor entries      u32 name length, name bytes, u32 rank, rank x i64 dims,
//                       numel x f32 data (row-major)
//   u32 CRC-32          (zlib's) of every byte before it
//
// Loading checks, in order: the magic, the version, the size against the header (a short
// file is reported as truncated in the entry where the data ends), the checksum, then the
// entries. Every problem is a cellgraph::Error naming the file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor/tensor.h"

namespace cellgraph::io {

inline constexpr uint16_t kCheckpointVersion = 1;

class Checkpoint {
 public:
  // Adds a copy of `tensor` (any device, any strides); names must be unique (asserted).
  void add(const std::string& name, const Tensor& tensor);
  void set_meta(const std::string& key, std::string value);

  const std::vector<std::pair<std::string, Tensor>>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Lookups by name; null / absent when missing.
  const Tensor* find(const std::string& name) const;
  bool has_meta(const std::string& key) const { return metadata_.count(key) != 0; }

  // The tensor `name`, which must have shape `expected`. Throws Error "SOURCE: missing
  // entry 'NAME'" or "SOURCE: entry 'NAME': shape mismatch: expected [..], got [..]".
  const Tensor& tensor(const std::string& name, const Shape& expected) const;
  // Metadata values; throw Error "SOURCE: missing metadata 'KEY'" or naming a malformed value.
  const std::string& meta(const std::string& key) const;
  int64_t meta_int(const std::string& key) const;
  // Doubles travel as their shortest exact decimal form (format_double), so they come back
  // bit-identical.
  double meta_double(const std::string& key) const;

  // The file it was loaded from (or "checkpoint"), for messages.
  const std::string& source() const { return source_; }
  void set_source(std::string source) { source_ = std::move(source); }

 private:
  std::vector<std::pair<std::string, Tensor>> tensors_;
  std::map<std::string, std::string> metadata_;
  std::string source_ = "checkpoint";
};

// The shortest decimal text that parses back to exactly `value` (std::to_chars).
std::string format_double(double value);

// Writes `path` atomically (io::write_file_atomic: PATH.tmp, fsync, rename, fsync of the
// directory), so a crash or failure leaves either the old file or the new one. Throws Error
// naming the file when any step fails (PATH.tmp is removed then, PATH left as it was).
void save_checkpoint(const Checkpoint& checkpoint, const std::string& path);

// Reads and validates a checkpoint (see the layout above). Errors, each prefixed "PATH: ":
// "cannot open: ...", "not a cellgraph checkpoint (bad magic)", "unsupported checkpoint
// version V (this build reads 1)", "truncated at tensor entry N of M ('NAME'): ...",
// "checksum mismatch: the file is corrupted", and malformed entries.
Checkpoint load_checkpoint(const std::string& path);

}  // namespace cellgraph::io
