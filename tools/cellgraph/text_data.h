// Language models on the command line: which specs are language models, the corpus a
// --data names (the fortunes corpus by default), its batch streams, what config.json
// records about it, and the DARTS RNN defaults that replace the CNN ones for such a spec.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "algorithms/hyperparameters.h"
#include "engine/data/batch_source.h"
#include "engine/data/corpus.h"
#include "spec/json_value.h"
#include "spec/space.h"
#include "tools/cellgraph/cli.h"

namespace cellgraph::tools {

// The --data of a language model when none is given: Debian's fortune cookies.
inline constexpr const char* kDefaultCorpus = "fortunes";
inline constexpr const char* kCorpusForms = "fortunes[:DIR], ptb:DIR or text:FILE";

// True when the spec's network is a language model (its body a recurrent cell).
bool is_language_model(const spec::Space& space);
// Tokens per sample (the BPTT length T) of a language model's spec.
int64_t sequence_length(const spec::Space& space);

// The corpus DATA names, its train text cut to the first `train_tokens` tokens and its test
// text to the first `test_tokens` (0: all; --subset and --test-subset).
Corpus load_run_corpus(const std::string& data, int64_t train_tokens, int64_t test_tokens = 0);

// The windows of one split, `batch` streams of `steps` tokens, in order.
std::unique_ptr<BatchSource> text_batches(const Corpus& corpus, CorpusSplit split, int64_t batch,
                                          int64_t steps);

// The test split as DARTS evaluates a language model: one stream (batch 1), windows of the
// spec's length.
std::unique_ptr<BatchSource> test_batches(const Corpus& corpus, const spec::Space& space);

// config.json's "corpus": its name, vocabulary size and tokens per split.
spec::JsonValue corpus_json(const Corpus& corpus);
// "N training tokens, vocabulary V" for the start line of a run.
std::string corpus_summary(const Corpus& corpus);

// Search options a language model takes from DARTS' RNN search (lr 20 constant, no momentum,
// weight decay 5e-7, clip 0.25; Adam lr 3e-3, betas (0.9, 0.999), weight decay 1e-3), each
// unless its flag was given.
void use_rnn_search_defaults(const Args& args, algorithms::HyperValues& common);

}  // namespace cellgraph::tools
