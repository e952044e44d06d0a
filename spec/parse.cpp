// The spec API: read a file or a string, check it, validate it.
#include "spec/parse.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <sys/stat.h>

#include "engine/error.h"
#include "spec/detail.h"

namespace cellgraph::spec {

namespace {

// A spec is a few kilobytes; anything this big is the wrong file.
constexpr off_t kMaxSpecBytes = 16 << 20;

std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw error(path, ": cannot open: ", std::strerror(errno));
  std::string text;
  struct stat info {};
  int err = 0;
  if (::fstat(fd, &info) != 0) {
    err = errno;
  } else if (S_ISDIR(info.st_mode)) {
    err = EISDIR;
  } else if (info.st_size > kMaxSpecBytes) {
    ::close(fd);
    throw error(path, ": the file has ", info.st_size,
                " bytes; a spec is a small JSON file (at most ", kMaxSpecBytes, ")");
  } else {
    char buffer[65536];
    for (;;) {
      const ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) err = errno;
      if (n <= 0) break;
      text.append(buffer, static_cast<std::size_t>(n));
      if (text.size() > static_cast<std::size_t>(kMaxSpecBytes)) break;  // a growing file
    }
  }
  ::close(fd);
  if (err != 0) throw error(path, ": cannot open: ", std::strerror(err));
  return text;
}

}  // namespace

Space parse_string(const std::string& json, const std::string& file_label) {
  Space space = detail::read_space(json, file_label);
  detail::validate_space(space);
  return space;
}

Space parse_file(const std::string& path) { return parse_string(read_file(path), path); }

}  // namespace cellgraph::spec
