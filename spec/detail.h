// Helpers shared by the spec reader, validator and writer. Internal to spec/: std types
// only, so that nlohmann_json stays inside spec/*.cpp.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "ops/candidates.h"
#include "spec/space.h"

namespace cellgraph::spec::detail {

// Deepest nesting of arrays/objects a spec may have; real specs use about 6 levels, and
// the bound keeps recursive code (printing, destruction) far from the stack limit.
inline constexpr int kMaxJsonDepth = 64;

// RFC 6901: "~" -> "~0", "/" -> "~1".
std::string escape_pointer_token(std::string_view token);
std::string child(const std::string& pointer, std::string_view key);
std::string child(const std::string& pointer, std::size_t index);

// Throws Error("FILE:POINTER: what"), or "FILE: what" for the root pointer "".
[[noreturn]] void fail(const std::string& file, const std::string& pointer,
                       const std::string& what);

// 'text' in single quotes, cut to a readable length.
std::string in_quotes(std::string_view text);

// Letters, digits, '_' and '-', starting with a letter (docs/spec.md, Reference).
bool is_identifier(std::string_view name);

// The closest of `known` to `name` when it is a plausible typo, else "".
std::string closest(std::string_view name, const std::vector<std::string>& known);
// "; did you mean 'x'?" when a close name exists, else "; expected one of: a, b, c"
// (or `fallback` when `known` is empty or long).
std::string unknown_hint(std::string_view name, const std::vector<std::string>& known,
                         const std::string& fallback = "");
std::string join(const std::vector<std::string>& names, std::string_view separator = ", ");

// The candidate op names of one cell form, in registry order.
std::vector<std::string> op_names(CellForm form);

// Semantic checks on a read space (names, graph, network walk); throws Error.
void validate_space(const Space& space);

// JSON text -> Space with every type, field and range checked (json_reader.cpp).
Space read_space(const std::string& text, const std::string& file);

}  // namespace cellgraph::spec::detail
