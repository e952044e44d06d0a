#include "tools/cellgraph/tensorboard.h"

#include <cmath>
#include <functional>

namespace cellgraph::tools {

std::vector<std::pair<std::string, float>> tensorboard_scalars(const spec::JsonValue& line) {
  std::vector<std::pair<std::string, float>> out;
  const spec::JsonValue* kind = line.find("kind");
  const std::string prefix = kind != nullptr && kind->is_string() ? kind->as_string() : "line";
  // Numbers, and the numbers inside objects (nats_bench, skip_ratio, sparse_codes).
  std::function<void(const std::string&, const spec::JsonValue&)> add =
      [&](const std::string& tag, const spec::JsonValue& v) {
        if (v.is_number() && std::isfinite(v.as_double()))
          out.emplace_back(tag, float(v.as_double()));
        if (v.is_object())
          for (const auto& [key, inner] : v.members()) add((tag + "/").append(key), inner);
      };
  for (const auto& [key, value] : line.members())
    if (key != "epoch" && key != "step" && key != "arch_weights")
      add((prefix + "/").append(key), value);
  const spec::JsonValue* arch = line.find("arch_weights");
  if (prefix != "epoch" || arch == nullptr || !arch->is_object()) return out;
  for (const auto& [group, g] : arch->members()) {
    const spec::JsonValue *rows = g.find("rows"), *columns = g.find("columns"),
                          *values = g.find("values");
    if (rows == nullptr || columns == nullptr || values == nullptr) continue;
    for (size_t r = 0; r < rows->size() && r < values->size(); ++r)
      for (size_t c = 0; c < columns->size() && c < values->items()[r].size(); ++c)
        add("arch/" + group + "/" + rows->items()[r].as_string() + "/" +
                columns->items()[c].as_string(),
            values->items()[r].items()[c]);
  }
  return out;
}

}  // namespace cellgraph::tools
