// cellgraph export RUN_DIR_OR_SPEC --onnx OUT.onnx: a fixed network (a train run's trained
// weights, or a spec's seeded initial weights) as an ONNX model, or one of its cells.
// Also the network loading that `cellgraph infer` shares (load_fixed_network).
#include "exporters/onnx/export.h"

#include <cstdint>
#include <filesystem>
#include <iostream>
#include <limits>
#include <utility>

#include "algorithms/algorithm.h"
#include "algorithms/data_shape.h"
#include "algorithms/derive.h"
#include "algorithms/train_session.h"
#include "engine/data/corpus.h"
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/io/file.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tools/cellgraph/commands.h"
#include "tools/cellgraph/run_dir.h"

namespace cellgraph::tools {

FixedNetwork load_run_network(const std::string& dir, const std::string& command) {
  const ConfigReader config(dir);
  const std::string kind = config.string("command");
  // A search whose algorithm trains the network while searching leaves it in its
  // checkpoint; any other search leaves only an architecture.
  const algorithms::Algorithm* searched =
      kind == "search" ? &algorithms::find_algorithm(config.string("algo")) : nullptr;
  const bool trained_search = searched != nullptr && searched->trains_network();
  if (searched != nullptr && !trained_search)
    throw error(dir, ": a search run; ", command,
                " takes a fixed network: train the derived network first (`cellgraph train ", dir,
                "/derived.json`) and give its run directory, or ", command, " ", dir,
                "/derived.json as a spec (initial weights)");
  if (kind != "train" && !trained_search) {
    std::string training;  // the algorithms whose searches train their network
    for (const algorithms::Algorithm* a : algorithms::algorithms())
      if (a->trains_network()) training += (training.empty() ? "" : ", ") + a->name();
    throw error(dir, ": a '", kind, "' run; ", command,
                " takes the directory of a train run, of a search that trains its network (",
                training, "), or a fixed spec");
  }
  // The network exactly as trained: the spec fitted to the run's data shape.
  spec::Space space = config.space();
  algorithms::fit_space_to_data(space, shape_from_config(config));
  const std::string ckpt_path = checkpoint_path(dir);
  const io::Checkpoint ckpt = io::load_checkpoint(ckpt_path);
  const int64_t step = ckpt.meta_int("step");
  if (trained_search) {
    algorithms::TrainedNetwork net = searched->trained_network(space, ckpt);
    return FixedNetwork{std::move(net.space), std::move(net.graph), std::move(net.params),
                        ckpt_path + " (" + searched->name() + " search at step " +
                            std::to_string(step) + ", " + net.how + ")",
                        step};
  }
  if (ckpt.meta("kind") != "train")
    throw error(ckpt_path, ": a '", ckpt.meta("kind"), "' checkpoint, not a train run's");
  ir::Graph graph = spec::compile(space);
  ir::ParameterStore params(graph, 0);
  algorithms::restore_parameters(graph, params, ckpt);
  return FixedNetwork{std::move(space), std::move(graph), std::move(params),
                      ckpt_path + " (step " + std::to_string(step) + ")", step};
}

FixedNetwork load_fixed_network(const Args& args, bool fixed_only) {
  const std::string& target = args.positional(0);
  const uint64_t seed = uint64_t(args.get_int("seed", 0, 0, std::numeric_limits<int64_t>::max()));
  std::error_code ec;
  if (std::filesystem::is_directory(target, ec)) {
    if (args.has("data"))
      throw error(
          "--data applies to a spec only; a run's network keeps the input and "
          "classes it was trained with (",
          config_path(target), ")");
    return load_run_network(target, args.command().name);
  }
  spec::Space space = spec::parse_file(target);
  if (fixed_only && !space.is_fixed())
    throw error(target, ": a search space (some edges have several candidate ops); ",
                args.command().name,
                " takes a fixed network: derive one with `cellgraph derive RUN_DIR` or use "
                "the derived.json of a search run");
  if (args.has("data") && space.network.is_language_model()) {
    // A language model's classes are the corpus' vocabulary.
    const Corpus corpus = load_corpus(args.get("data"));
    note(algorithms::fit_space_to_data(space,
                                       algorithms::vocabulary_shape(corpus.vocabulary.size())));
  } else if (args.has("data")) {
    // Only the shape matters: the (smaller) test split tells it.
    const Dataset data = load_dataset(args.get("data"), Split::test);
    note(algorithms::fit_space_to_data(space, algorithms::data_shape(data)));
  }
  ir::Graph graph = spec::compile(space);
  ir::ParameterStore params(graph, seed);
  return FixedNetwork{std::move(space), std::move(graph), std::move(params),
                      "initial weights (seed " + std::to_string(seed) + ")", 0};
}

namespace {

// Reads one protobuf varint at `pos`; false when the bytes end first.
bool read_varint(const std::string& bytes, size_t& pos, uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64 && pos < bytes.size(); shift += 7) {
    const auto b = uint8_t(bytes[pos++]);
    value |= uint64_t(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

// Calls `visit(field, payload)` for each length-delimited field of the message in
// bytes[begin, end); skips the others. False on malformed wire data.
template <typename Visit>
bool for_each_field(const std::string& bytes, size_t begin, size_t end, Visit visit) {
  size_t pos = begin;
  while (pos < end) {
    uint64_t key = 0, value = 0;
    if (!read_varint(bytes, pos, key)) return false;
    switch (key & 7) {
      case 0:
        if (!read_varint(bytes, pos, value)) return false;
        break;
      case 1:
        pos += 8;
        break;
      case 2:
        if (!read_varint(bytes, pos, value) || value > end - pos) return false;
        visit(key >> 3, pos, pos + value);
        pos += value;
        break;
      case 5:
        pos += 4;
        break;
      default:
        return false;
    }
  }
  return pos == end;
}

// The nodes of the GraphProto in bytes[begin, end) (GraphProto.node = 1), those of its
// subgraphs included (NodeProto.attribute = 5, AttributeProto.g = 6 and graphs = 11: a
// language model's Scan body). False on malformed wire data.
bool count_graph_nodes(const std::string& bytes, size_t begin, size_t end, int64_t& nodes) {
  bool ok = true;
  ok &= for_each_field(bytes, begin, end, [&](uint64_t field, size_t nb, size_t ne) {
    if (field != 1) return;
    ++nodes;
    ok &= for_each_field(bytes, nb, ne, [&](uint64_t nf, size_t ab, size_t ae) {
      if (nf != 5) return;
      ok &= for_each_field(bytes, ab, ae, [&](uint64_t af, size_t gb, size_t ge) {
        if (af == 6 || af == 11) ok &= count_graph_nodes(bytes, gb, ge, nodes);
      });
    });
  });
  return ok;
}

// The number of nodes in the written model (ModelProto.graph = 7), read from the protobuf
// wire format: the runner does not link the ONNX headers.
int64_t count_onnx_nodes(const std::string& bytes) {
  int64_t nodes = 0;
  bool ok = true;
  ok &= for_each_field(bytes, 0, bytes.size(), [&](uint64_t field, size_t b, size_t e) {
    if (field == 7) ok &= count_graph_nodes(bytes, b, e, nodes);
  });
  return ok ? nodes : -1;
}

int run_export(const Args& args) {
  const std::string& target = args.positional(0);
  apply_threads(args);
  if (!args.has("onnx")) throw error("--onnx OUT.onnx is required: where to write the model");
  const std::string out = args.get("onnx");
  onnx_export::ExportOptions options;
  options.fold_batch_norm = args.has("fold-bn");
  options.opset = int(args.get_int("opset", 13, 13, 1000));
  // A search space still loads: the exporter then names its first mixed edge.
  const FixedNetwork net = load_fixed_network(args, false);
  if (!net.space.name.empty()) options.graph_name = net.space.name;
  if (net.space.is_fixed()) {
    options.metadata["genotype"] = algorithms::genotype_string(net.space);
    options.metadata["spec"] = spec::to_json(net.space);
  }
  // Errors of the spec-level lookup name the spec already; the exporter's do not.
  const int instance =
      args.has("cell") ? onnx_export::find_cell_instance(net.space, args.get("cell")) : -1;
  try {
    if (instance >= 0)
      onnx_export::export_cell_onnx(net.graph, net.params, instance, out, options);
    else
      onnx_export::export_onnx(net.graph, net.params, out, options);
  } catch (const Error& e) {
    throw error(target, ": ", e.what());
  }
  const std::string what =
      instance >= 0 ? "cell '" + args.get("cell") + "' (cells." + std::to_string(instance) +
                          (net.space.network.is_language_model() ? ", one time step)" : ")")
      : net.space.network.is_language_model()
          ? "language model (a Scan over any T; the spec's T is " +
                std::to_string(net.space.network.sequence_length) + ")"
          : std::string("network");
  const std::string bytes = io::read_file(out);
  const int64_t nodes = count_onnx_nodes(bytes);
  std::cout << "wrote " << out << ": " << what << " of " << target << ", " << bytes.size()
            << " bytes, ONNX opset " << options.opset << ", "
            << (nodes >= 0 ? std::to_string(nodes) : std::string("?")) << " nodes"
            << (options.fold_batch_norm ? ", BN folded" : "") << "; " << net.weights_from << "\n";
  return 0;
}

}  // namespace

const Command& export_command() {
  static const Command kCommand{
      .name = "export",
      .summary = "write a fixed network (or one of its cells) as an ONNX model",
      .positionals = {"RUN_DIR_OR_SPEC"},
      .flags = {{"onnx", "OUT.onnx", "where to write the model (required)", ""},
                {"fold-bn", "", "fold each batch norm after a conv into the conv", ""},
                {"cell", "NAME",
                 "export only the first instance of cell type NAME (inputs c_km2, c_km1)", ""},
                {"opset", "V", "ONNX opset version (13 up to the linked ONNX's newest)", "13"},
                {"seed", "S", "seed of the initial weights (spec only)", "0"},
                {"data", "DATA", "fit a spec's input and classes to DATA (spec only)",
                 "the spec's"},
                threads_flag()},
      .details =
          "A train run directory is exported with its checkpoint's weights, its network as\n"
          "trained; a fixed spec with its seeded initial weights (the same as `cellgraph\n"
          "infer SPEC --seed S`). BN is in eval form (running statistics). The model has\n"
          "input \"images\" [N, C, H, W] and output \"logits\" [N, classes]; metadata\n"
          "\"genotype\" and \"spec\". It passes the ONNX checker before it is written.\n"
          "A language model has inputs \"tokens\" [N, T] (int64) and \"h0\" [N, H], outputs\n"
          "\"logits\" [N, T, V] and \"h_final\" [N, H], any T (an ONNX Scan over the time\n"
          "step); its --cell is one step: \"x_t\" [N, H] (embedded), \"h_prev\" -> \"h_t\".",
      .run = run_export};
  return kCommand;
}

}  // namespace cellgraph::tools
