// The spec API: read a file or a string, check it, validate it.
#include "spec/parse.h"

#include <cstdint>
#include <string>

#include "engine/io/file.h"
#include "spec/detail.h"

namespace cellgraph::spec {

namespace {
// A spec is a few kilobytes; anything this big is the wrong file.
constexpr int64_t kMaxSpecBytes = 16 << 20;
}  // namespace

Space parse_string(const std::string& json, const std::string& file_label) {
  Space space = detail::read_space(json, file_label);
  detail::validate_space(space);
  return space;
}

Space parse_file(const std::string& path) {
  return parse_string(io::read_file(path, {kMaxSpecBytes, "a spec is a small JSON file"}), path);
}

}  // namespace cellgraph::spec
