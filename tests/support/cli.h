// Helpers for tests that run the `cellgraph` binary: scratch directories, capturing a
// command's output and exit status, reading files back.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>

namespace cellgraph::testing {

// A fresh directory under the system temp dir, removed with everything in it on scope exit.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "cellgraph_test") {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Result {
  int status = -1;  // exit status; -1 when killed by a signal
  std::string out, err;
};

// Runs `command` through the shell; stdout and stderr are captured in files under `dir`.
inline Result run_shell(const std::string& command, const TempDir& dir) {
  static int counter = 0;
  const std::string base = dir / ("cmd" + std::to_string(counter++));
  const int rc = std::system((command + " >" + base + ".out 2>" + base + ".err").c_str());
  Result r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  r.out = read_text(base + ".out");
  r.err = read_text(base + ".err");
  return r;
}

// Runs `cellgraph ARGS` (ARGS already shell-quoted where needed).
inline Result run_cli(const std::string& args, const TempDir& dir) {
  return run_shell(std::string(CELLGRAPH_CLI_PATH) + " " + args, dir);
}

// Starts `cellgraph ARGS...` in the background, stdout to /dev/null and stderr to
// `stderr_path`; returns its pid (-1 when it cannot start). The caller waits for it.
inline pid_t spawn_cli(std::vector<std::string> args, const std::string& stderr_path) {
  args.insert(args.begin(), CELLGRAPH_CLI_PATH);
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

inline bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

inline bool have_fashion_mnist() {
  const std::filesystem::path dir(CELLGRAPH_FASHION_MNIST_DIR);
  return std::filesystem::exists(dir / "train-images-idx3-ubyte.gz") ||
         std::filesystem::exists(dir / "train-images-idx3-ubyte");
}

// Returns from the test case, with a message, when the data package is not installed.
#define SKIP_WITHOUT_FASHION_MNIST()                   \
  do {                                                 \
    if (!::cellgraph::testing::have_fashion_mnist()) { \
      MESSAGE("Fashion-MNIST not installed; skipped"); \
      return;                                          \
    }                                                  \
  } while (0)

// The Debian package fortunes (the default language-model corpus, engine/data/corpus.h).
inline bool have_fortunes() { return std::filesystem::exists("/usr/share/games/fortunes/cookie"); }

// Returns from the test case, with a message, when the package fortunes is not installed.
#define SKIP_WITHOUT_FORTUNES()                                  \
  do {                                                           \
    if (!::cellgraph::testing::have_fortunes()) {                \
      MESSAGE("Debian package fortunes not installed; skipped"); \
      return;                                                    \
    }                                                            \
  } while (0)

}  // namespace cellgraph::testing
