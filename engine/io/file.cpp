#include "engine/io/file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <sys/stat.h>

#include "engine/error.h"

namespace cellgraph::io {

namespace {
// Writes all of `data` to `fd`, retrying short writes; false with errno set on failure.
bool write_all(int fd, std::string_view data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += size_t(n);
  }
  return true;
}

// Makes a rename inside `path`'s directory durable. Best effort: some filesystems refuse
// fsync on a directory, and the file itself is already complete on disk by then.
void sync_directory_of(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}
}  // namespace

std::string read_file(const std::string& path, const ReadLimit& limit) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw error(path, ": cannot open: ", std::strerror(errno));
  const auto fail = [&](auto&&... parts) {
    ::close(fd);
    throw error(path, ": ", parts...);
  };
  struct stat info {};
  if (::fstat(fd, &info) != 0) fail("cannot open: ", std::strerror(errno));
  if (S_ISDIR(info.st_mode)) fail("cannot open: ", std::strerror(EISDIR));
  const bool bounded = limit.max_bytes >= 0;
  if (bounded && info.st_size > limit.max_bytes)
    fail("the file has ", info.st_size, " bytes; ", limit.what, " (at most ", limit.max_bytes, ")");
  std::string bytes;
  if (S_ISREG(info.st_mode)) bytes.reserve(size_t(info.st_size));
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("cannot read: ", std::strerror(errno));
    if (n == 0) break;
    bytes.append(buffer, size_t(n));
    // A file that grows, or a device with no size, past the bound.
    if (bounded && bytes.size() > size_t(limit.max_bytes))
      fail("more than ", limit.max_bytes, " bytes; ", limit.what);
  }
  ::close(fd);
  return bytes;
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw error(tmp, ": cannot create: ", std::strerror(errno));
  // fsync before rename: otherwise a crash can leave the new name pointing at empty blocks.
  if (!write_all(fd, bytes) || ::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw error(tmp, ": cannot write: ", std::strerror(err));
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw error(tmp, ": cannot write: ", std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw error(path, ": cannot replace with ", tmp, ": ", std::strerror(err));
  }
  sync_directory_of(path);
}

}  // namespace cellgraph::io
