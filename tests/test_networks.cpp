// The fixed networks of examples/networks: ResNet-20/56 as the ResNet paper builds them for
// CIFAR (shapes per stage, weight counts of its Table 6), HBNet's heavy-ball block with its
// momentum, and AGDNet's h from Nesterov's theta recursion (the numbers in the files, and
// what the network computes with them).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include <doctest/doctest.h>

#include "engine/ir/parameter_store.h"
#include "engine/sched/executor.h"
#include "engine/tensor/random.h"
#include "spec/compile.h"
#include "spec/parse.h"

using namespace cellgraph;
namespace fs = std::filesystem;

namespace {

spec::Space network(const std::string& file) {
  return spec::parse_file((fs::path(CELLGRAPH_SOURCE_DIR) / "examples/networks" / file).string());
}

ir::ValueId output_of(const ir::Graph& g, const std::string& label) {
  for (const ir::Node& n : g.nodes)
    if (n.label == label) return n.outputs[0];
  FAIL("no node ", label);
  return {};
}

// The value `v` takes for `images`: the same graph with its logits moved there. Training
// mode (batch statistics) keeps activations near unit scale; at initial running statistics
// eval-mode BN is the identity and each conv-ReLU shrinks them about sixfold.
std::vector<float> value_at(const ir::Graph& graph, const ir::ParameterStore& params, ir::ValueId v,
                            const Tensor& images) {
  ir::Graph g = graph;
  g.logits = v;
  NoGradGuard no_grad;
  return sched::run(g, params, sched::make_plan(g, {}), Var(images), {.training = true})
      .value()
      .to_vector();
}

// The ResNet paper's CIFAR network with n blocks per stage and option-A shortcuts: its
// weights are the plain network's (3x3 convs without bias, BN gamma and beta, the classifier).
int64_t resnet_weights(int64_t n, int64_t classes) {
  int64_t total = 3 * 16 * 9 + 2 * 16;  // first conv and its BN
  int64_t in = 16;
  for (int64_t c : {16, 32, 64}) {
    total += in * c * 9 + (2 * n - 1) * c * c * 9 + 2 * n * 2 * c;
    in = c;
  }
  return total + 64 * classes + classes;
}

// Nesterov's accelerated gradient with step 1: theta_0 = 1, (1 - theta_k) / theta_k^2 =
// 1 / theta_{k-1}^2, y_k = (1 - theta_k) x_k + theta_k v_k, x_{k+1} = y_k - g(y_k),
// v_{k+1} = v_k - g(y_k) / theta_k. Writing y_k = y_0 - sum_{j<k} c[k][j] g(y_j):
// c[k][j] = (1 - theta_k)(c[k-1][j] + [j = k-1]) + theta_k / theta_j, and
// h[k+1][j] = c[k+1][j] - c[k][j] gives y_{k+1} = y_k - sum_{j<=k} h[k+1][j] g(y_j).
std::vector<std::vector<double>> nesterov_h(int steps) {
  std::vector<double> theta{1.0};
  for (int k = 1; k <= steps; ++k) {
    const double a = 1.0 / (theta.back() * theta.back());  // a t^2 + t - 1 = 0
    theta.push_back((-1.0 + std::sqrt(1.0 + 4.0 * a)) / (2.0 * a));
  }
  std::vector<std::vector<double>> c(size_t(steps) + 1);
  for (int k = 1; k <= steps; ++k)
    for (int j = 0; j < k; ++j) {
      const double before = (j < k - 1 ? c[size_t(k - 1)][size_t(j)] : 0.0) + (j == k - 1);
      c[size_t(k)].push_back((1 - theta[size_t(k)]) * before + theta[size_t(k)] / theta[size_t(j)]);
    }
  std::vector<std::vector<double>> h(size_t(steps) + 1);
  for (int k = 0; k < steps; ++k)
    for (int j = 0; j <= k; ++j)
      h[size_t(k) + 1].push_back(c[size_t(k) + 1][size_t(j)] -
                                 (j < k ? c[size_t(k)][size_t(j)] : 0.0));
  return h;
}

}  // namespace

TEST_CASE("networks: ResNet-20 and -56 have the paper's shapes per stage and weight counts") {
  // Table 6 of the ResNet paper: 0.27M weights for ResNet-20, 0.85M for ResNet-56. Each
  // stage strides in its first block only: 32x32, 16x16, 8x8.
  for (const auto& resnet :
       {std::tuple{"resnet20.json", 3, 0.27}, std::tuple{"resnet56.json", 9, 0.85}}) {
    const char* const file = std::get<0>(resnet);
    const int n = std::get<1>(resnet);
    const double millions = std::get<2>(resnet);
    CAPTURE(file);
    const spec::Space s = network(file);
    const ir::Graph g = spec::compile(s);
    const int64_t expected = resnet_weights(n, s.network.classes);
    CHECK(g.weight_count() == expected);
    CHECK(std::round(double(g.weight_count()) / 1e4) / 100 == doctest::Approx(millions));
    const Shape stages[] = {{1, 16, 32, 32}, {1, 32, 16, 16}, {1, 64, 8, 8}};
    for (int b = 0; b < 3 * n; ++b) {
      CAPTURE(b);
      CHECK(g.value(output_of(g, "cells." + std::to_string(b) + ".relu")).shape == stages[b / n]);
    }
    // 6n + 2 weighted layers: 6n + 1 convs and the classifier.
    int convs = 0;
    for (const ir::Node& node : g.nodes) convs += node.op == OpKind::conv2d;
    CHECK(convs == 6 * n + 1);
  }
}

TEST_CASE("networks: a basic block is ReLU(BN(conv(ReLU(BN(conv x)))) + x), option-A shortcut") {
  // Block 3 of ResNet-20 strides and doubles the channels: its shortcut is x[:, :, ::2, ::2]
  // with 16 zero channels after x's 16; block 4 adds x itself.
  const spec::Space s = network("resnet20.json");
  const ir::Graph g = spec::compile(s);
  const ir::ParameterStore params(g, 7);
  Rng rng(3);
  const Tensor images = normal_tensor({2, 3, 32, 32}, 0, 1, rng);
  for (int block : {3, 4}) {
    CAPTURE(block);
    const std::string b = "cells." + std::to_string(block);
    const std::vector<float> x =
        value_at(g, params, output_of(g, "cells." + std::to_string(block - 1) + ".relu"), images);
    const std::vector<float> branch = value_at(g, params, output_of(g, b + ".conv_b.bn"), images);
    const std::vector<float> out = value_at(g, params, output_of(g, b + ".relu"), images);
    const int64_t c_in = block == 3 ? 16 : 32, side_in = block == 3 ? 32 : 16,
                  step = block == 3 ? 2 : 1;
    REQUIRE(out.size() == size_t(2 * 32 * 16 * 16));
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t c = 0; c < 32; ++c)
        for (int64_t i = 0; i < 16; ++i)
          for (int64_t j = 0; j < 16; ++j) {
            const size_t at = size_t(((n * 32 + c) * 16 + i) * 16 + j);
            const float shortcut =
                c < c_in ? x[size_t(((n * c_in + c) * side_in + i * step) * side_in + j * step)]
                         : 0.0f;
            REQUIRE(out[at] == std::max(branch[at] + shortcut, 0.0f));
          }
  }
}

TEST_CASE("networks: HBNet's block is F(x_k) + beta (x_k - x_(k-1)), beta from the spec") {
  // At beta = 0.5: block 0 has no x_(k-1) (F(x_0) alone); blocks 1 and 2 add 0.5 (x_k -
  // x_(k-1)); block 3 strides, so both states reach 32 x 16 x 16 by the option-A shortcut;
  // block 4's x_(k-1) is block 3's input, at 32x32.
  spec::Space s = network("hbnet20.json");
  for (spec::Stage& stage : s.network.body) stage.momentum = 0.5;
  s.network.in_height = s.network.in_width = 16;  // 16 -> 8 -> 4: small and still strided
  const ir::Graph g = spec::compile(s);
  const ir::ParameterStore params(g, 9);
  Rng rng(5);
  const Tensor images = normal_tensor({2, 3, 16, 16}, 0, 1, rng);
  auto state = [&](int k) {  // x_k: the stem's output for k = 0, else block k-1's output
    const std::string label = k == 0   ? "stem.2.relu"
                              : k == 1 ? "cells.0.conv_b.relu"
                                       : "cells." + std::to_string(k - 1) + ".add";
    return value_at(g, params, output_of(g, label), images);
  };
  CHECK(value_at(g, params, g.logits, images).size() == 2 * 10);
  // Block 0: F(x_0), no momentum node.
  for (const ir::Node& n : g.nodes) CHECK(n.label != "cells.0.add");
  struct Case {
    int block;
    int64_t c_now, side_now, c_before, side_before;
  };
  for (const Case& c : {Case{1, 16, 16, 16, 16}, Case{2, 16, 16, 16, 16}, Case{3, 16, 16, 16, 16},
                        Case{4, 32, 8, 16, 16}}) {
    CAPTURE(c.block);
    const std::string b = "cells." + std::to_string(c.block);
    const std::vector<float> x = state(c.block), x_prev = state(c.block - 1);
    const std::vector<float> f = value_at(g, params, output_of(g, b + ".conv_b.relu"), images);
    const std::vector<float> out = value_at(g, params, output_of(g, b + ".add"), images);
    const int64_t channels = c.block >= 3 ? 32 : 16, side = c.block >= 3 ? 8 : 16;
    REQUIRE(out.size() == size_t(2 * channels * side * side));
    auto projected = [&](const std::vector<float>& v, int64_t cv, int64_t sv, int64_t n, int64_t ch,
                         int64_t i, int64_t j) {
      const int64_t step = sv / side;
      return ch < cv ? v[size_t(((n * cv + ch) * sv + i * step) * sv + j * step)] : 0.0f;
    };
    double worst = 0;
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t ch = 0; ch < channels; ++ch)
        for (int64_t i = 0; i < side; ++i)
          for (int64_t j = 0; j < side; ++j) {
            const size_t at = size_t(((n * channels + ch) * side + i) * side + j);
            const float want =
                f[at] + 0.5f * (projected(x, c.c_now, c.side_now, n, ch, i, j) -
                                projected(x_prev, c.c_before, c.side_before, n, ch, i, j));
            worst = std::max(worst, double(std::abs(out[at] - want)));
          }
    CHECK(worst == 0.0);
  }
}

TEST_CASE(
    "networks: AGDNet's h are Nesterov's, and its stage computes z_k + sum h (F(z_j) - z_j)") {
  // The recursion's h reproduce Nesterov's iterates on a quadratic (g(y) = M y - q).
  const int steps = 9;
  const std::vector<std::vector<double>> h = nesterov_h(steps);
  CHECK(h[1][0] == 1.0);
  for (int k = 2; k <= steps; ++k) CHECK(std::abs(h[size_t(k)][0]) < 1e-15);
  {
    Rng rng(2);
    const int d = 5;
    std::vector<double> m(d * d), q(d), y0(d);
    for (int i = 0; i < d * d; ++i) m[size_t(i)] = 0.3 * rng.normal() + (i % (d + 1) == 0);
    for (int i = 0; i < d; ++i) q[size_t(i)] = rng.normal(), y0[size_t(i)] = rng.normal();
    auto grad = [&](const std::vector<double>& y) {
      std::vector<double> out(d);
      for (int i = 0; i < d; ++i) {
        out[size_t(i)] = -q[size_t(i)];
        for (int j = 0; j < d; ++j) out[size_t(i)] += m[size_t(i) * d + size_t(j)] * y[size_t(j)];
      }
      return out;
    };
    std::vector<double> x = y0, v = y0, theta{1.0};
    std::vector<std::vector<double>> ys, zs{y0}, gs;
    for (int k = 0; k <= steps; ++k) {
      if (k > 0) {
        const double a = 1.0 / (theta.back() * theta.back());
        theta.push_back((-1.0 + std::sqrt(1.0 + 4.0 * a)) / (2.0 * a));
      }
      std::vector<double> y(d);
      for (int i = 0; i < d; ++i)
        y[size_t(i)] = (1 - theta[size_t(k)]) * x[size_t(i)] + theta[size_t(k)] * v[size_t(i)];
      const std::vector<double> g = grad(y);
      for (int i = 0; i < d; ++i) {
        x[size_t(i)] = y[size_t(i)] - g[size_t(i)];
        v[size_t(i)] -= g[size_t(i)] / theta[size_t(k)];
      }
      ys.push_back(y);
    }
    for (int k = 0; k < steps; ++k) {
      gs.push_back(grad(zs[size_t(k)]));
      std::vector<double> z = zs[size_t(k)];
      for (int j = 0; j <= k; ++j)
        for (int i = 0; i < d; ++i)
          z[size_t(i)] -= h[size_t(k) + 1][size_t(j)] * gs[size_t(j)][size_t(i)];
      zs.push_back(z);
    }
    for (int k = 0; k <= steps; ++k)
      for (int i = 0; i < d; ++i)
        CHECK(zs[size_t(k)][size_t(i)] == doctest::Approx(ys[size_t(k)][size_t(i)]).epsilon(1e-12));
  }
  // Every AGDNet file: the edge from d_j into z_(k+1) carries h_(k+1,j) (12 digits), fixed or
  // as a trainable weight's initial value; z_(k+1) reads z_k with coefficient 1.
  for (const char* file : {"agdnet20.json", "agdnet56.json", "agdnet20_trainable.json"}) {
    CAPTURE(file);
    const spec::Space s = network(file);
    int checked = 0;
    for (const spec::Cell& cell : s.cells)
      for (const spec::Node& node : cell.nodes) {
        if (node.name[0] != 'z' || node.name == "z1") continue;
        const int next = std::stoi(node.name.substr(1));
        for (const spec::Edge& e : node.edges) {
          if (e.from == "z" + std::to_string(next - 1)) {
            CHECK_FALSE(e.coefficient.has_value());
            continue;
          }
          REQUIRE(e.from[0] == 'd');
          REQUIRE(e.coefficient.has_value());
          CHECK(e.coefficient->trainable == (std::string(file) == "agdnet20_trainable.json"));
          const int j = std::stoi(e.from.substr(1));
          CHECK(e.coefficient->value == doctest::Approx(h[size_t(next)][size_t(j)]).epsilon(1e-11));
          ++checked;
        }
      }
    const int per_stage = std::string(file) == "agdnet56.json" ? 9 * 8 / 2 : 3 * 2 / 2;
    CHECK(checked == 2 * per_stage);  // two cell definitions
  }
}

TEST_CASE("networks: an AGDNet stage computes z_(k+1) = z_k + sum_j h (F(z_j) - z_j)") {
  const spec::Space s = network("agdnet20.json");
  const ir::Graph g = spec::compile(s);
  const ir::ParameterStore params(g, 4);
  Rng rng(8);
  const Tensor images = normal_tensor({2, 3, 32, 32}, 0, 1, rng);
  const std::vector<std::vector<double>> h = nesterov_h(3);
  // cells.1 strides: its z_j are 32 x 16 x 16, and z_1 = F(z_0).
  // A node with one edge is that edge's op; one with several, their sum.
  auto at = [&](const std::string& node) {
    const std::string sum = "cells.1." + node + ".sum",
                      op = "cells.1." + node + ".e0.conv_bn_relu_3x3.relu";
    for (const ir::Node& n : g.nodes)
      if (n.label == sum || n.label == op) return value_at(g, params, n.outputs[0], images);
    FAIL("no value for node ", node);
    return std::vector<float>{};
  };
  const std::vector<float> z1 = at("z1"), z2 = at("z2"), z3 = at("z3"), f1 = at("f1"),
                           f2 = at("f2");
  REQUIRE(z1.size() == size_t(2 * 32 * 16 * 16));
  double worst = 0, scale = 0;
  for (size_t i = 0; i < z1.size(); ++i) {
    const double d1 = double(f1[i]) - z1[i], want2 = z1[i] + h[2][1] * d1;
    const double d2 = double(f2[i]) - z2[i];
    const double want3 = z2[i] + h[3][1] * d1 + h[3][2] * d2;
    worst = std::max({worst, std::abs(double(z2[i]) - want2), std::abs(double(z3[i]) - want3)});
    scale = std::max(scale, std::abs(want3));
  }
  CHECK(scale > 0.1);
  CHECK(worst <= 1e-6 * scale);  // float sums of the same terms
}

TEST_CASE("networks: every weight of ResNet-20, HBNet-20 and AGDNet-20 gets a gradient") {
  // AGDNet's trainable h included; HBNet's momentum and AGDNet's fixed h are buffers.
  for (const char* file : {"resnet20.json", "hbnet20.json", "agdnet20_trainable.json"}) {
    CAPTURE(file);
    spec::Space s = network(file);
    s.network.in_height = s.network.in_width = 8;
    const ir::Graph g = spec::compile(s);
    const ir::ParameterStore params(g, 2);
    Rng rng(6);
    const Var logits = sched::run(g, params, sched::make_plan(g, {}),
                                  Var(normal_tensor({2, 3, 8, 8}, 0, 1, rng)), {.training = true});
    logits.backward(normal_tensor({2, 10}, 0, 1, rng));
    int trainable_h = 0;
    for (size_t i = 0; i < g.params.size(); ++i) {
      const Var& w = params.all()[i];
      CAPTURE(g.params[i].name);
      CHECK(w.requires_grad() != g.params[i].is_buffer);
      if (w.requires_grad()) CHECK(w.has_grad());
      trainable_h += g.params[i].name.ends_with(".coefficient") && w.requires_grad();
    }
    CHECK(trainable_h == (std::string(file) == "agdnet20_trainable.json" ? 9 : 0));
  }
}
