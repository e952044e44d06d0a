// The run report in a real browser: headless Chromium (Debian's `chromium`, which
// scripts/setup installs; skipped with a message without it) loads the report of a tiny
// search from a file, takes a screenshot, which must not be one flat colour, and dumps its
// DOM, which must hold the charts, heatmaps and cell drawing the page was written with:
// inline SVG that the HTML parser turned into elements, not text.
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "tests/support/cli.h"
#include "tests/support/run_files.h"
#include "viz/graphviz/render.h"

using namespace cellgraph;

namespace {
using testing::has;
using testing::TempDir;

int occurrences(const std::string& text, const std::string& part) {
  int n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

uint32_t big_endian(const std::string& s, size_t at) {
  return uint32_t(uint8_t(s[at])) << 24 | uint32_t(uint8_t(s[at + 1])) << 16 |
         uint32_t(uint8_t(s[at + 2])) << 8 | uint32_t(uint8_t(s[at + 3]));
}

struct Image {
  uint32_t width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;  // rows of width * channels bytes
};

// An 8-bit RGB or RGBA, non-interlaced PNG (what Chromium's screenshots are): the IDAT
// stream inflated and each row's filter undone.
Image decode_png(const std::string& png) {
  Image image;
  REQUIRE(png.size() > 8);
  REQUIRE(png.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
  std::string compressed;
  for (size_t at = 8; at + 8 <= png.size();) {
    const uint32_t length = big_endian(png, at);
    const std::string type = png.substr(at + 4, 4);
    REQUIRE(at + 12 + length <= png.size());
    if (type == "IHDR") {
      image.width = big_endian(png, at + 8);
      image.height = big_endian(png, at + 12);
      REQUIRE(uint8_t(png[at + 16]) == 8);  // bit depth
      const uint8_t colour = uint8_t(png[at + 17]);
      REQUIRE((colour == 2 || colour == 6));
      image.channels = colour == 2 ? 3 : 4;
      REQUIRE(uint8_t(png[at + 20]) == 0);  // not interlaced
    } else if (type == "IDAT") {
      compressed += png.substr(at + 8, length);
    }
    at += 12 + length;
  }
  const size_t stride = size_t(image.width) * image.channels;
  std::vector<uint8_t> raw((stride + 1) * image.height);
  uLongf size = raw.size();
  REQUIRE(uncompress(raw.data(), &size, reinterpret_cast<const Bytef*>(compressed.data()),
                     compressed.size()) == Z_OK);
  REQUIRE(size == raw.size());
  image.pixels.resize(stride * image.height);
  const size_t bpp = image.channels;
  for (size_t y = 0; y < image.height; ++y) {
    const uint8_t filter = raw[y * (stride + 1)];
    const uint8_t* in = &raw[y * (stride + 1) + 1];
    uint8_t* out = &image.pixels[y * stride];
    const uint8_t* up = y > 0 ? &image.pixels[(y - 1) * stride] : nullptr;
    for (size_t x = 0; x < stride; ++x) {
      const int a = x >= bpp ? out[x - bpp] : 0, b = up ? up[x] : 0,
                c = (up && x >= bpp) ? up[x - bpp] : 0;
      int predicted = 0;
      switch (filter) {
        case 0:
          predicted = 0;
          break;
        case 1:
          predicted = a;
          break;
        case 2:
          predicted = b;
          break;
        case 3:
          predicted = (a + b) / 2;
          break;
        case 4: {
          const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          predicted = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
          break;
        }
        default:
          FAIL("PNG row ", y, " has filter ", int(filter));
      }
      out[x] = uint8_t(in[x] + predicted);
    }
  }
  return image;
}

// Debian's chromium, run as root (as setup and CI do) only without its sandbox.
std::string chromium_command(const TempDir& dir) {
  const std::string profile = dir / "profile";
  return "timeout 180 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars "
         "--no-first-run --user-data-dir=" +
         profile + " --window-size=1200,1600";
}
}  // namespace

TEST_CASE("report: a tiny search's report renders in headless Chromium") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  if (testing::run_shell("command -v chromium", dir).status != 0) {
    MESSAGE("chromium is not installed (scripts/setup installs Debian's chromium); skipped");
    return;
  }
  const std::string run = dir / "run";
  testing::Result r =
      testing::run_cli("search " + testing::write_tiny_space(dir) + " --out " + run +
                           " --data fashion-mnist:" + CELLGRAPH_FASHION_MNIST_DIR +
                           " --subset 64 --batch 8 --epochs 2 --log-every 1 --threads 1 --seed 3",
                       dir);
  REQUIRE(r.status == 0);
  r = testing::run_cli("report " + run, dir);
  REQUIRE(r.status == 0);
  const std::string page = run + "/report.html", url = "file://" + page;
  const std::string html = testing::read_text(page);

  const std::string shot = dir / "shot.png";
  r = testing::run_shell(chromium_command(dir) + " --screenshot=" + shot + " " + url, dir);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const Image image = decode_png(testing::read_text(shot));
  CHECK(image.width == 1200);
  CHECK(image.height == 1600);
  // Not blank: many colours (text, lines, the heatmaps' blues), not one background.
  std::set<uint32_t> colours;
  for (size_t i = 0; i + 2 < image.pixels.size(); i += image.channels)
    colours.insert(uint32_t(image.pixels[i]) << 16 | uint32_t(image.pixels[i + 1]) << 8 |
                   image.pixels[i + 2]);
  CHECK(colours.size() > 16);

  r = testing::run_shell(chromium_command(dir) + " --dump-dom " + url, dir);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const std::string dom = r.out;
  // The browser's DOM has every chart, heatmap and drawing of the file, as SVG elements.
  const int charts = occurrences(html, "class=\"chart\""),
            heatmaps = occurrences(html, "class=\"heatmap\"");
  CHECK(charts == 5);    // loss, accuracy, lr, step time, skip ratio
  CHECK(heatmaps == 2);  // one group at 2 epochs
  const std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=";
  CHECK(occurrences(dom, svg + "\"chart\"") == charts);
  CHECK(occurrences(dom, svg + "\"heatmap\"") == heatmaps);
  CHECK(occurrences(dom, "<path class=\"series\"") == occurrences(html, "<path class=\"series\""));
  CHECK(occurrences(dom, "<rect class=\"cell\"") == 2 * 5 * 4);
  if (viz::graphviz_available()) {
    const size_t drawing = dom.find("<div class=\"drawing\"><svg");
    REQUIRE(drawing != std::string::npos);
    CHECK(has(dom.substr(drawing), "class=\"node\""));  // graphviz's node groups
  }
  CHECK(has(dom, "<h2>Cells</h2>"));
}
