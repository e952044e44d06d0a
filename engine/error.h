// Two tiers of errors (see docs/architecture.md):
//  - cellgraph::Error: the user's input is wrong (spec, data file, checkpoint, flag).
//    Thrown anywhere, caught once in tools/. The message names the file, the place
//    (JSON pointer, line, node) and what was expected.
//  - CG_ASSERT: an internal invariant broke, i.e. a bug in cellgraph. Reports file:line
//    and aborts; never used for input validation.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace cellgraph {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const std::string& msg);

template <typename... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}
}  // namespace detail

// Builds a user error from streamable parts: throw error("file.idx: ", "expected ...").
template <typename... Parts>
Error error(Parts&&... parts) {
  return Error(detail::concat(std::forward<Parts>(parts)...));
}

}  // namespace cellgraph

#define CG_ASSERT(cond, ...)                                                                      \
  do {                                                                                            \
    if (!(cond))                                                                                  \
      ::cellgraph::detail::assert_fail(                                                           \
          #cond, __FILE__, __LINE__, ::cellgraph::detail::concat("" __VA_OPT__(, ) __VA_ARGS__)); \
  } while (0)
