// Reading and writing spec files (docs/spec.md, format 1). Every problem in the input is
// reported as a cellgraph::Error "FILE:POINTER: what is wrong; what was expected" (POINTER
// an RFC 6901 JSON pointer), or "FILE:line L, column C: ..." for JSON syntax errors.
#pragma once

#include <string>

#include "spec/space.h"

namespace cellgraph::spec {

// Reads, checks and validates the spec at `path`; errors name the file as `path`.
Space parse_file(const std::string& path);

// The same rules on JSON text already in memory; errors name the file as `file_label`.
Space parse_string(const std::string& json, const std::string& file_label);

// Writes `space` as pretty format-1 JSON with a stable field order that parse_string reads
// back to an equal Space. Fixed edges are written with "op"; nodes whose edges share their
// candidates and have no `init` are written in the compact `from` + `ops`/`op` form.
std::string to_json(const Space& space);

}  // namespace cellgraph::spec
