#include "spec/evaluation_network.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace cellgraph::spec {

Space evaluation_network(const Space& space, int cells, int64_t channels) {
  if (cells < 3)
    throw error("an evaluation network needs at least 3 cells (two reductions), got ", cells);
  if (channels < 1) throw error("an evaluation network needs C >= 1, got ", channels);
  const Stage* normal = nullptr;
  const Stage* reduce = nullptr;
  for (const Stage& stage : space.network.body) {
    if (!stage.block.empty())
      throw error(space.file, ":", stage.pointer, ": a fixed '", stage.block,
                  "' block; an evaluation network is built of a normal and a reduction cell "
                  "only (DARTS-style specs)");
    const Cell* cell = space.find_cell(stage.cell);
    if (cell == nullptr)
      throw error(space.file, ":", stage.pointer, ": unknown cell '", stage.cell, "'");
    const Stage*& slot = cell->reduction ? reduce : normal;
    if (slot == nullptr) slot = &stage;
  }
  if (normal == nullptr || reduce == nullptr)
    throw error(space.file, ": the body has no ", normal == nullptr ? "normal" : "reduction",
                " cell; an evaluation network needs one of each");

  Space out = space;
  // The stem keeps its width relative to the first cell's C (DARTS: 3C).
  const double ratio = double(channels) / double(space.network.body.front().channels);
  for (Layer& layer : out.network.stem)
    if (layer.channels > 0)
      layer.channels = std::max<int64_t>(1, std::llround(double(layer.channels) * ratio));

  std::vector<Stage>& body = out.network.body;
  body.clear();
  int64_t c = channels;
  for (int i = 0; i < cells; ++i) {
    const bool reduction = i == cells / 3 || i == 2 * cells / 3;
    if (reduction) c *= 2;
    const Stage& like = reduction ? *reduce : *normal;
    // Consecutive normal cells form one stage with a repeat count, as a spec writes them.
    if (!reduction && !body.empty() && body.back().cell == like.cell && body.back().channels == c) {
      ++body.back().repeat;
      continue;
    }
    body.push_back(Stage{.cell = like.cell, .channels = c, .repeat = 1, .pointer = like.pointer});
  }
  return out;
}

}  // namespace cellgraph::spec
