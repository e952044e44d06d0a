#include "ops/candidates.h"

namespace cellgraph {

namespace {
// Recurrent candidates carry an "rnn_" prefix in C++ only, to keep one enum.
constexpr std::string_view spelled(std::string_view id, CellForm form) {
  return form == CellForm::recurrent ? id.substr(4) : id;
}
}  // namespace

const std::vector<CandidateInfo>& candidate_ops() {
  static const std::vector<CandidateInfo> kList = {
#define CELLGRAPH_CANDIDATE_INFO(name, form) \
  {Candidate::name, spelled(#name, CellForm::form), CellForm::form},
      CELLGRAPH_CANDIDATE_LIST(CELLGRAPH_CANDIDATE_INFO)
#undef CELLGRAPH_CANDIDATE_INFO
  };
  return kList;
}

const CandidateInfo* find_candidate(std::string_view name, CellForm form) {
  for (const CandidateInfo& info : candidate_ops())
    if (info.form == form && info.name == name) return &info;
  return nullptr;
}

}  // namespace cellgraph
