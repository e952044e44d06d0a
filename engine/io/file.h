// Whole files in and out: every file cellgraph reads whole (specs, checkpoints, .npy
// arrays, run configs) comes through read_file, and every file it writes whole
// (checkpoints, .npy, .onnx, config.json, derived specs and genotypes) through
// write_file_atomic, so all of them fail the same way and with the same messages.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cellgraph::io {

// A bound on what read_file accepts, for inputs that are small by nature (a spec): a larger
// file is the wrong file, and a device or pipe that never ends must not be read forever.
struct ReadLimit {
  int64_t max_bytes = -1;  // -1: no bound
  std::string what;        // why, e.g. "a spec is a small JSON file"
};

// The bytes of the file at `path`. Throws Error "PATH: cannot open: REASON" (a directory
// gives "Is a directory"), "PATH: cannot read: REASON", or, past the limit, "PATH: the
// file has N bytes; WHAT (at most MAX)" ("more than MAX bytes" when its size is unknown).
std::string read_file(const std::string& path, const ReadLimit& limit = {});

// Replaces `path` with `bytes` atomically: they are written to PATH.tmp, which is fsync'ed
// and renamed over PATH, and then the directory is fsync'ed, so after a crash PATH holds
// the old bytes or the new ones, never a mix or an empty file, and once this returns the
// new file survives a power loss. Throws Error naming PATH.tmp ("cannot create",
// "cannot write") or both names ("cannot replace with"); PATH.tmp is removed then and
// PATH is left as it was.
void write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace cellgraph::io
