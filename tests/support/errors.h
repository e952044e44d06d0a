// The message of the cellgraph::Error a call throws, for tests of user-facing errors.
#pragma once

#include <functional>
#include <string>

#include <doctest/doctest.h>

#include "engine/error.h"

namespace cellgraph::testing {

// Fails the test when `f` throws no cellgraph::Error.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("expected a cellgraph::Error");
  return {};
}

}  // namespace cellgraph::testing
