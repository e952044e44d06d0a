#include "tools/cellgraph/text_data.h"

#include "engine/data/token_batches.h"

namespace cellgraph::tools {

bool is_language_model(const spec::Space& space) { return space.network.is_language_model(); }

int64_t sequence_length(const spec::Space& space) { return space.network.sequence_length; }

Corpus load_run_corpus(const std::string& data, int64_t train_tokens, int64_t test_tokens) {
  Corpus corpus = load_corpus(data);
  auto cut = [](std::vector<int32_t>& tokens, int64_t keep) {
    if (keep > 0 && keep < int64_t(tokens.size())) tokens.resize(size_t(keep));
  };
  cut(corpus.train, train_tokens);
  cut(corpus.test, test_tokens);
  return corpus;
}

std::unique_ptr<BatchSource> text_batches(const Corpus& corpus, CorpusSplit split, int64_t batch,
                                          int64_t steps) {
  return std::make_unique<TokenBatches>(corpus.tokens(split),
                                        TokenBatchOptions{.streams = batch, .steps = steps},
                                        corpus.split_label(split));
}

std::unique_ptr<BatchSource> test_batches(const Corpus& corpus, const spec::Space& space) {
  return text_batches(corpus, CorpusSplit::test, 1, sequence_length(space));
}

spec::JsonValue corpus_json(const Corpus& corpus) {
  spec::JsonValue j = spec::JsonValue::object();
  j.set("name", corpus.name);
  j.set("vocabulary", int64_t(corpus.vocabulary.size()));
  j.set("train_tokens", int64_t(corpus.train.size()));
  j.set("valid_tokens", int64_t(corpus.valid.size()));
  j.set("test_tokens", int64_t(corpus.test.size()));
  return j;
}

std::string corpus_summary(const Corpus& corpus) {
  return std::to_string(corpus.train.size()) + " training tokens of " + corpus.name +
         ", vocabulary " + std::to_string(corpus.vocabulary.size());
}

void use_rnn_search_defaults(const Args& args, algorithms::HyperValues& common) {
  const std::pair<const char*, double> defaults[] = {{"lr", 20},
                                                     {"lr-min", 20},
                                                     {"momentum", 0},
                                                     {"weight-decay", 5e-7},
                                                     {"grad-clip", 0.25},
                                                     {"arch-lr", 3e-3},
                                                     {"arch-beta1", 0.9},
                                                     {"arch-beta2", 0.999},
                                                     {"arch-weight-decay", 1e-3}};
  for (const auto& [flag, value] : defaults)
    if (!args.has(flag)) common.set_number(flag, value);
}

}  // namespace cellgraph::tools
