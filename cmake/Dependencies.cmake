# Every dependency comes from a Debian package (scripts/setup installs them).
find_package(dnnl CONFIG REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(ZLIB REQUIRED)
find_package(nlohmann_json 3 CONFIG REQUIRED)
find_package(Threads REQUIRED)
# ONNX export (exporters/onnx only): Debian's libonnx-dev links protobuf::libprotobuf, so
# Protobuf is found first.
find_package(Protobuf REQUIRED)
find_package(ONNX CONFIG REQUIRED)
if(CELLGRAPH_BUILD_TESTS)
  find_package(doctest CONFIG REQUIRED)
endif()
