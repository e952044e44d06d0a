// NumPy .npy files: exact round trips, NumPy's own header layouts (v1.0 and v2.0), and a
// named error for every kind of malformed or unexpected file.
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

#include "engine/error.h"
#include "engine/io/npy.h"
#include "engine/tensor/random.h"
#include "tests/support/cli.h"

using namespace cellgraph;

namespace {
using testing::TempDir;

namespace fs = std::filesystem;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A file with the given version and header text (padded as NumPy pads) and float data.
std::string npy_file(int major, std::string header, const std::vector<float>& data) {
  const size_t len_size = major == 1 ? 2 : 4;
  const size_t prefix = 6 + 2 + len_size;
  while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += char(major);
  out += char(0);
  const uint32_t len = uint32_t(header.size());
  out.append(reinterpret_cast<const char*>(&len), len_size);
  out += header;
  out.append(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float));
  return out;
}

// Runs `read`, which must throw an Error containing the file name and every fragment.
template <typename Read>
void check_error(Read read, const std::string& path, std::initializer_list<const char*> parts) {
  try {
    read();
    FAIL("expected an error for ", path);
  } catch (const Error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find(path) != std::string::npos);
    for (const char* part : parts) CHECK(msg.find(part) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("npy: round trips are exact for every rank and keep NumPy's header layout") {
  TempDir dir;
  Rng rng(11);
  for (const Shape& shape : {Shape{7, 3, 5, 4}, Shape{7}, Shape{2, 3}, Shape{1, 10}}) {
    const Tensor t = normal_tensor(shape, 0.0f, 3.0f, rng);
    const std::string path = (dir / "a.npy");
    io::write_npy(path, t);
    const std::string bytes = read_bytes(path);
    // The data starts at a multiple of 64 bytes, the header ends in a newline.
    uint16_t header_len = 0;
    std::memcpy(&header_len, bytes.data() + 8, 2);
    CHECK((10 + header_len) % 64 == 0);
    CHECK(bytes[9 + header_len] == '\n');
    const Tensor back = io::read_npy(path);
    CHECK(back.shape() == shape);
    CHECK(back.to_vector() == t.to_vector());
  }
  // The tuple syntax of one extent is (7,); a 0-d array reads as one element.
  CHECK(io::encode_npy(Shape{7}, std::vector<float>(7)).find("'shape': (7,)") != std::string::npos);
  const std::string scalar = (dir / "scalar.npy");
  write_bytes(scalar, io::encode_npy(Shape{}, {2.5f}));
  CHECK(io::read_npy(scalar).shape() == Shape{1});
  CHECK(io::read_npy(scalar).to_vector() == std::vector<float>{2.5f});
  // No temporary is left beside the file.
  int files = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir.path)) ++files;
  CHECK(files == 2);
}

TEST_CASE("npy: version 2.0 headers and NumPy's spacing variants are read") {
  TempDir dir;
  const std::string v2 = (dir / "v2.npy");
  write_bytes(
      v2, npy_file(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", {1, 2, 3, 4}));
  CHECK(io::read_npy(v2).to_vector() == std::vector<float>{1, 2, 3, 4});
  const std::string terse = (dir / "terse.npy");
  write_bytes(terse,
              npy_file(1, "{\"shape\":(3,),\"fortran_order\":False,\"descr\":\"<f4\"}", {5, 6, 7}));
  CHECK(io::read_npy(terse).shape() == Shape{3});
}

TEST_CASE("npy: an expected shape accepts wildcards and names a mismatch") {
  TempDir dir;
  const std::string path = (dir / "x.npy");
  io::write_npy(path, Tensor::zeros({5, 3, 8, 8}));
  CHECK(io::read_npy(path, {-1, 3, 8, 8}, "input images").shape() == Shape{5, 3, 8, 8});
  check_error(
      [&] {
        io::read_npy(path, {-1, 1, 28, 28}, "input images");
      },
      path, {"input images: got shape [5, 3, 8, 8], expected [N, 1, 28, 28]"});
  check_error(
      [&] {
        io::read_npy(path, {-1, 3, 8}, "input images");
      },
      path, {"expected [N, 3, 8]"});
}

TEST_CASE("npy: malformed files are named errors") {
  TempDir dir;
  const std::string good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  const std::vector<float> six(6, 1.0f);
  struct Case {
    const char* name;
    std::string bytes;
    std::initializer_list<const char*> parts;
  };
  const std::string full = npy_file(1, good, six);
  const Case cases[] = {
      {"empty", "", {"not a .npy file", "\\x93NUMPY"}},
      {"bad_magic", "PK\x03\x04 not numpy at all", {"not a .npy file"}},
      {"short_preamble", std::string("\x93NUMPY\x01", 7), {"truncated in the .npy preamble"}},
      {"version_3", npy_file(3, good, six), {"unsupported .npy format version 3.0", "1.0 or 2.0"}},
      {"truncated_header", full.substr(0, 40), {"truncated in the .npy header"}},
      {"no_newline",
       [&] {
         std::string b = full;
         b[b.size() - 6 * sizeof(float) - 1] = ' ';  // the header's final newline
         return b;
       }(),
       {"does not end with a newline"}},
      {"not_a_dict", npy_file(1, "[1, 2]", six), {"malformed .npy header", "expected '{'"}},
      {"missing_shape",
       npy_file(1, "{'descr': '<f4', 'fortran_order': False}", six),
       {"malformed .npy header", "missing key 'shape'"}},
      {"unknown_key",
       npy_file(1,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), "
                "'extra': 1}",
                six),
       {"unknown key 'extra'"}},
      {"bad_bool",
       npy_file(1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (6,)}", six),
       {"expected True or False"}},
      {"bad_extent",
       npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-6,)}", six),
       {"expected a non-negative integer extent"}},
      {"float64",
       npy_file(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,)}", six),
       {"unsupported dtype '<f8'", "expected '<f4'"}},
      {"big_endian",
       npy_file(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (6,)}", six),
       {"unsupported dtype '>f4'"}},
      {"int32",
       npy_file(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (6,)}", six),
       {"unsupported dtype '<i4'"}},
      {"fortran",
       npy_file(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3)}", six),
       {"Fortran-order arrays are not supported", "C order"}},
      {"truncated_data",
       full.substr(0, full.size() - 5),
       {"truncated", "[2, 3] needs 24 data bytes, the file has 19"}},
      {"trailing", full + "xyz", {"3 unexpected bytes after the data of shape [2, 3]"}},
      {"empty_array",
       npy_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3)}", {}),
       {"has no elements"}},
  };
  for (const Case& c : cases) {
    const std::string name = c.name;
    CAPTURE(name);
    const std::string path = (dir / std::string(c.name) + ".npy");
    write_bytes(path, c.bytes);
    check_error([&] { io::read_npy(path); }, path, c.parts);
  }
  check_error([&] { io::read_npy((dir / "missing.npy")); }, (dir / "missing.npy"), {"cannot open"});
}

TEST_CASE("npy: a write that cannot happen names the file and leaves nothing behind") {
  TempDir dir;
  const std::string path = (dir / "no/such/dir/out.npy");
  check_error([&] { io::write_npy(path, Tensor::zeros({2})); }, path, {"cannot create"});
  CHECK_FALSE(fs::exists(path));
}
