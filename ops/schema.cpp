#include "ops/schema.h"

#include <array>

namespace cellgraph {

namespace {
const std::array<OpSchema, kOpCount>& schemas() {
  static const std::array<OpSchema, kOpCount> kTable = {
#define CELLGRAPH_OP_SCHEMA_ENTRY(name) schema_##name(),
      CELLGRAPH_OP_LIST(CELLGRAPH_OP_SCHEMA_ENTRY)
#undef CELLGRAPH_OP_SCHEMA_ENTRY
  };
  return kTable;
}
}  // namespace

const OpSchema& schema(OpKind kind) { return schemas()[static_cast<size_t>(kind)]; }

const char* op_name(OpKind kind) {
  static constexpr const char* kNames[] = {
#define CELLGRAPH_OP_NAME(name) #name,
      CELLGRAPH_OP_LIST(CELLGRAPH_OP_NAME)
#undef CELLGRAPH_OP_NAME
  };
  return kNames[static_cast<size_t>(kind)];
}

}  // namespace cellgraph
