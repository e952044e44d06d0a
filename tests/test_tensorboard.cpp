// TensorBoard event files (viz/event_file.h, `--tensorboard DIR`), read back by a reader
// written here from the format's description (TFRecord framing, tensorflow.Event fields), with
// its own bitwise CRC-32C, so that the writer's encoding is checked rather than trusted; and
// by tensorboard's own reader (the Python package in the test venv), the one users run.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "spec/json_value.h"
#include "tests/support/cli.h"
#include "tests/support/run_files.h"
#include "viz/event_file.h"

using namespace cellgraph;

namespace {
using testing::has;
using testing::TempDir;
namespace fs = std::filesystem;

uint32_t crc32c_bitwise(const uint8_t* p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
  }
  return ~c;
}

uint32_t masked(const uint8_t* p, size_t n) {
  const uint32_t c = crc32c_bitwise(p, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

struct Event {
  double wall_time = 0;
  int64_t step = -1;
  std::string file_version;
  std::vector<std::pair<std::string, float>> scalars;
  int session_status = 0;
};

// A protobuf message's fields: number -> (wire type, varint value or bytes).
struct Field {
  int number = 0, wire = 0;
  uint64_t varint = 0;
  std::string bytes;
};

std::vector<Field> fields(const std::string& m) {
  std::vector<Field> out;
  size_t at = 0;
  auto varint = [&]() {
    uint64_t v = 0;
    for (int shift = 0; at < m.size(); shift += 7) {
      const auto b = uint8_t(m[at++]);
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) break;
    }
    return v;
  };
  while (at < m.size()) {
    const uint64_t key = varint();
    Field f{int(key >> 3), int(key & 7), 0, {}};
    if (f.wire == 0) {
      f.varint = varint();
    } else if (f.wire == 1 || f.wire == 5) {
      const size_t n = f.wire == 1 ? 8 : 4;
      REQUIRE(at + n <= m.size());
      f.bytes = m.substr(at, n);
      at += n;
    } else {
      REQUIRE(f.wire == 2);
      const uint64_t n = varint();
      REQUIRE(at + n <= m.size());
      f.bytes = m.substr(at, n);
      at += n;
    }
    out.push_back(f);
  }
  return out;
}

template <typename T>
T from_bytes(const std::string& b) {
  T v{};
  REQUIRE(b.size() == sizeof(T));
  std::memcpy(&v, b.data(), sizeof(T));
  return v;
}

std::vector<Event> read_events(const std::string& path) {
  const std::string data = testing::read_text(path);
  std::vector<Event> events;
  size_t at = 0;
  while (at < data.size()) {
    REQUIRE(at + 12 <= data.size());
    const auto* p = reinterpret_cast<const uint8_t*>(data.data() + at);
    const auto length = from_bytes<uint64_t>(data.substr(at, 8));
    CHECK(from_bytes<uint32_t>(data.substr(at + 8, 4)) == masked(p, 8));
    REQUIRE(at + 12 + length + 4 <= data.size());
    const std::string message = data.substr(at + 12, length);
    CHECK(from_bytes<uint32_t>(data.substr(at + 12 + length, 4)) == masked(p + 12, size_t(length)));
    at += 12 + length + 4;
    Event e;
    for (const Field& f : fields(message)) {
      if (f.number == 1) e.wall_time = from_bytes<double>(f.bytes);
      if (f.number == 2) e.step = int64_t(f.varint);
      if (f.number == 3) e.file_version = f.bytes;
      if (f.number == 6)
        for (const Field& s : fields(f.bytes))
          if (s.number == 1) e.session_status = int(s.varint);
      if (f.number == 5)
        for (const Field& value : fields(f.bytes)) {
          REQUIRE(value.number == 1);
          std::string tag;
          float v = 0;
          for (const Field& vf : fields(value.bytes)) {
            if (vf.number == 1) tag = vf.bytes;
            if (vf.number == 2) v = from_bytes<float>(vf.bytes);
          }
          e.scalars.emplace_back(tag, v);
        }
    }
    events.push_back(e);
  }
  return events;
}

std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const fs::directory_entry& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0)
      out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::map<std::string, float> scalar_map(const Event& e) {
  std::map<std::string, float> m;
  for (const auto& [tag, v] : e.scalars) m[tag] = v;
  return m;
}
}  // namespace

TEST_CASE("tensorboard: CRC-32C matches its check value and a bitwise reference") {
  CHECK(viz::crc32c("123456789", 9) == 0xe3069283u);
  std::string bytes(1000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = char(i * 31 + 7);
  CHECK(viz::crc32c(bytes.data(), bytes.size()) ==
        crc32c_bitwise(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

TEST_CASE("tensorboard: events read back with their steps, tags, values and a resume mark") {
  TempDir dir;
  std::string path;
  {
    viz::EventFileWriter w(dir / "tb");
    path = w.path();
    w.scalars(7, {{"epoch/train_loss", 1.5f}, {"arch/normal/n0/e0<-c_k-2/none", -0.25f}});
    w.session_start(9);
  }
  CHECK(fs::path(path).filename().string().rfind("events.out.tfevents.", 0) == 0);
  const std::vector<Event> events = read_events(path);
  REQUIRE(events.size() == 3);
  CHECK(events[0].file_version == "brain.Event:2");
  CHECK(events[0].wall_time > 1.6e9);  // seconds since 1970, after 2020
  CHECK(events[1].step == 7);
  REQUIRE(events[1].scalars.size() == 2);
  CHECK(events[1].scalars[0] == std::pair<std::string, float>("epoch/train_loss", 1.5f));
  CHECK(events[1].scalars[1] ==
        std::pair<std::string, float>("arch/normal/n0/e0<-c_k-2/none", -0.25f));
  CHECK(events[2].step == 9);
  CHECK(events[2].session_status == 1);  // START
  // A second writer in the same second gets its own file.
  const viz::EventFileWriter again(dir / "tb");
  CHECK(again.path() != path);
}

TEST_CASE(
    "tensorboard: search --tensorboard logs every metrics line, and a resume marks its step") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string spec = testing::write_tiny_space(dir);
  const std::string run = dir / "run", tb = dir / "tb";
  const std::string search = "search " + spec + " --out " + run +
                             " --data fashion-mnist:" + CELLGRAPH_FASHION_MNIST_DIR +
                             " --subset 64 --batch 8 --epochs 2 --log-every 1 --threads 1 "
                             "--seed 3 --tensorboard " +
                             tb;
  testing::Result r = testing::run_cli(search + " --max-steps 3", dir);
  REQUIRE(r.status == 0);
  CHECK(has(r.err, "TensorBoard events in " + tb));
  r = testing::run_cli("search --resume " + run + " --max-steps 0 --threads 1", dir);
  REQUIRE(r.status == 0);
  const std::vector<std::string> files = event_files(tb);
  REQUIRE(files.size() == 2);
  const std::vector<Event> first = read_events(files[0]), second = read_events(files[1]);
  REQUIRE(second.size() >= 2);
  CHECK(second[1].session_status == 1);
  CHECK(second[1].step == 3);

  // Every metrics line has its event, value for value (as floats).
  std::vector<Event> events = first;
  events.insert(events.end(), second.begin(), second.end());
  std::vector<Event> logged;
  for (const Event& e : events)
    if (!e.scalars.empty()) logged.push_back(e);
  std::istringstream metrics(testing::read_text(run + "/metrics.jsonl"));
  std::string line;
  size_t i = 0, arch_tags = 0;
  while (std::getline(metrics, line)) {
    const spec::JsonValue j = spec::parse_json_string(line, "metrics.jsonl");
    CAPTURE(line.substr(0, 60));
    REQUIRE(i < logged.size());
    const std::string kind = j.find("kind")->as_string();
    CHECK(logged[i].step == j.find("step")->as_integer());
    const std::map<std::string, float> s = scalar_map(logged[i]);
    for (const char* key : {"train_loss", "train_acc", "val_loss", "val_acc", "lr"}) {
      CAPTURE(key);
      REQUIRE(s.count(kind + "/" + key) == 1);
      CHECK(s.at(kind + "/" + key) == float(j.find(key)->as_double()));
    }
    if (kind == "epoch") {
      const spec::JsonValue& normal = *j.find("arch_weights")->find("normal");
      const std::string tag = "arch/normal/" + normal.find("rows")->items()[1].as_string() + "/" +
                              normal.find("columns")->items()[2].as_string();
      REQUIRE(s.count(tag) == 1);
      CHECK(s.at(tag) == float(normal.find("values")->items()[1].items()[2].as_double()));
      for (const auto& [t, v] : s) arch_tags += t.rfind("arch/normal/", 0) == 0;
      // Numbers inside objects by their path: the derived cell's skip ratio.
      REQUIRE(s.count("epoch/skip_ratio/ratio") == 1);
      CHECK(s.at("epoch/skip_ratio/ratio") ==
            float(j.find("skip_ratio")->find("ratio")->as_double()));
    }
    ++i;
  }
  CHECK(i == 8 + 2);  // 8 log lines, 2 epoch lines
  CHECK(logged.size() == i);
  CHECK(arch_tags == 2 * 5 * 4);
}

// tensorboard's own reader (the Python package from requirements-test.txt, in the project
// venv) loads the event files of a search, every metrics value at its step and tag.
TEST_CASE("tensorboard: tensorboard's event reader reads a search's scalars back") {
  SKIP_WITHOUT_FASHION_MNIST();
  const std::string python = CELLGRAPH_TEST_PYTHON;
  const std::string reader = CELLGRAPH_SOURCE_DIR "/tests/tensorboard/read_scalars.py";
  TempDir dir;
  if (!fs::exists(python) ||
      testing::run_shell(python + " -c 'import tensorboard'", dir).status != 0) {
    MESSAGE("tensorboard is not importable from " << python
                                                  << " (run scripts/setup to install "
                                                     "requirements-test.txt); skipped");
    return;
  }
  const std::string run = dir / "run", tb = dir / "tb";
  testing::Result r = testing::run_cli(
      "search " + testing::write_tiny_space(dir) + " --out " + run +
          " --data fashion-mnist:" + CELLGRAPH_FASHION_MNIST_DIR +
          " --subset 64 --batch 8 --epochs 2 --log-every 2 --threads 1 --seed 3 --tensorboard " +
          tb,
      dir);
  REQUIRE(r.status == 0);
  r = testing::run_shell(python + " " + reader + " " + tb, dir);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  // (tag, step) -> value as tensorboard read it.
  std::map<std::pair<std::string, int64_t>, float> read;
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t tab1 = line.find('\t'), tab2 = line.rfind('\t');
    REQUIRE(tab1 != tab2);
    const auto key = std::make_pair(line.substr(tab1 + 1, tab2 - tab1 - 1),
                                    int64_t(std::stoll(line.substr(0, tab1))));
    CHECK(read.count(key) == 0);
    read[key] = float(std::stod(line.substr(tab2 + 1)));
  }
  std::istringstream metrics(testing::read_text(run + "/metrics.jsonl"));
  size_t expected = 0, lines_read = 0;
  while (std::getline(metrics, line)) {
    const spec::JsonValue j = spec::parse_json_string(line, "metrics.jsonl");
    const std::string kind = j.find("kind")->as_string();
    const int64_t step = j.find("step")->as_integer();
    CAPTURE(line.substr(0, 60));
    ++lines_read;
    for (const char* key : {"train_loss", "train_acc", "val_loss", "val_acc", "lr"}) {
      CAPTURE(key);
      const auto at = read.find({kind + "/" + key, step});
      REQUIRE(at != read.end());
      CHECK(at->second == float(j.find(key)->as_double()));
      ++expected;
    }
    if (kind != "epoch") continue;
    const spec::JsonValue& normal = *j.find("arch_weights")->find("normal");
    for (size_t row = 0; row < normal.find("rows")->size(); ++row)
      for (size_t col = 0; col < normal.find("columns")->size(); ++col) {
        const std::string tag = "arch/normal/" + normal.find("rows")->items()[row].as_string() +
                                "/" + normal.find("columns")->items()[col].as_string();
        CAPTURE(tag);
        const auto at = read.find({tag, step});
        REQUIRE(at != read.end());
        CHECK(at->second == float(normal.find("values")->items()[row].items()[col].as_double()));
      }
  }
  CHECK(lines_read == 4 + 2);  // 4 log lines (every 2 of 8 steps), 2 epoch lines
  CHECK(expected == 5 * lines_read);
}
