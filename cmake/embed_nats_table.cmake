# Script mode (cmake -DINPUT=CSV -DOUTPUT=CPP -P embed_nats_table.cmake): turns the shipped
# NATS-Bench table (data/nats_bench_tss.csv: '#' comment lines, a header, then
# "index,arch,cifar10,cifar100,imagenet16_120" rows) into the C++ definition that
# algorithms/nats_bench_table.h declares. The numbers are copied as written, so the
# compiler rounds them exactly as a CSV reader would. Rows must be in index order; the
# library checks that on first use, and tests/test_nats_bench.cpp checks every row.
if(NOT INPUT OR NOT OUTPUT)
  message(FATAL_ERROR "usage: cmake -DINPUT=table.csv -DOUTPUT=table.cpp -P ${CMAKE_CURRENT_LIST_FILE}")
endif()
file(STRINGS "${INPUT}" lines)
list(FILTER lines EXCLUDE REGEX "^#")
list(POP_FRONT lines header)
if(NOT header STREQUAL "index,arch,cifar10,cifar100,imagenet16_120")
  message(FATAL_ERROR "${INPUT}: expected the header 'index,arch,cifar10,cifar100,imagenet16_120' "
                      "after the comment lines, got '${header}'")
endif()
# CMake's regular expressions have no non-capturing groups and at most 9 captures.
set(number "[0-9]+\\.?[0-9]*")
set(row "^([0-9]+),\\|[a-z0-9_~|+]+\\|,(${number}),(${number}),(${number})$")
set(bad ${lines})
list(FILTER bad EXCLUDE REGEX "${row}")
if(bad)
  list(GET bad 0 first_bad)
  message(FATAL_ERROR "${INPUT}: expected rows 'index,arch,cifar10,cifar100,imagenet16_120' "
                      "(an integer, the arch string, three numbers), got '${first_bad}'")
endif()
list(LENGTH lines count)
list(TRANSFORM lines REPLACE "${row}" "    {\\1, \\2, \\3, \\4},")
list(JOIN lines "\n" rows)
file(WRITE "${OUTPUT}"
"// Generated from ${INPUT} by cmake/embed_nats_table.cmake; do not edit.
// NATS-Bench figures: X. Dong et al., NATS-Bench (IEEE TPAMI 2021), MIT licence; see the CSV.
#include \"algorithms/nats_bench_table.h\"

namespace cellgraph::algorithms::detail {

extern const NatsTableRow kNatsTable[] = {
${rows}
};
extern const int64_t kNatsTableRows = ${count};

}  // namespace cellgraph::algorithms::detail
")
