// The readers of untokenised text (text:FILE and the fortunes): both cut their text into
// units (lines, fortune entries), deal the units to train/valid/test, and then choose a
// vocabulary of at most max_vocabulary words from the train split's counts.
#include <algorithm>
#include <filesystem>
#include <unordered_map>
#include <utility>

#include "engine/data/corpus.h"
#include "engine/data/text_tokens.h"
#include "engine/error.h"
#include "engine/io/file.h"

namespace cellgraph {

namespace {

// Token strings per split, each unit's tokens followed by "<eos>".
struct TokenSplits {
  std::vector<std::string> train, valid, test;
};

void check_vocabulary_cap(const std::string& name, int32_t cap) {
  if (cap < 3)
    throw error(name, ": vocabulary cap ", cap, "; expected at least 3 (<unk>, <eos> and a word)");
}

// The vocabulary: <unk> (id 0), <eos> (id 1), then the train split's words by count, most
// frequent first, equal counts in byte order of the word (so the choice does not depend on
// hashing or on where a word first appears), cut at `cap` words in all. Every split's
// tokens are mapped through it, words outside it to <unk>.
Corpus build_corpus(std::string name, const TokenSplits& splits, int32_t cap) {
  for (const auto* split : {&splits.train, &splits.valid, &splits.test}) {
    if (split->empty()) {
      const char* which = split == &splits.train   ? "train"
                          : split == &splits.valid ? "valid"
                                                   : "test";
      throw error(name, ": the ", which, " split is empty; the corpus is too small to split");
    }
  }
  std::unordered_map<std::string_view, int64_t> counts;
  for (const std::string& token : splits.train)
    if (token != Vocabulary::kUnknown && token != Vocabulary::kEndOfSentence) ++counts[token];
  std::vector<std::pair<std::string_view, int64_t>> ranked(counts.begin(), counts.end());
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });

  Corpus corpus;
  corpus.name = std::move(name);
  const int32_t unk = corpus.vocabulary.add(Vocabulary::kUnknown);
  corpus.vocabulary.add(Vocabulary::kEndOfSentence);
  for (const auto& [word, count] : ranked) {
    if (corpus.vocabulary.size() >= cap) break;
    corpus.vocabulary.add(word);
  }
  const auto map = [&](const std::vector<std::string>& tokens, std::vector<int32_t>& ids) {
    ids.reserve(tokens.size());
    for (const std::string& token : tokens)
      ids.push_back(corpus.vocabulary.find(token).value_or(unk));
  };
  map(splits.train, corpus.train);
  map(splits.valid, corpus.valid);
  map(splits.test, corpus.test);
  return corpus;
}

std::string read_text_file(const std::string& path) {
  std::string bytes = io::read_file(path);
  text::check_text(path, bytes);
  return bytes;
}

void append_unit(std::vector<std::string>& split, std::vector<std::string>& unit) {
  for (std::string& token : unit) split.push_back(std::move(token));
  split.emplace_back(Vocabulary::kEndOfSentence);
  unit.clear();
}

}  // namespace

Corpus load_text_corpus(const std::string& path, const CorpusOptions& options) {
  const std::string name = "text:" + path;
  check_vocabulary_cap(name, options.max_vocabulary);
  const std::string bytes = read_text_file(path);
  std::vector<std::vector<std::string>> lines;
  text::for_each_line(bytes, [&](int64_t, std::string_view line) {
    std::vector<std::string> tokens;
    text::tokenize_raw(line, tokens);
    if (!tokens.empty()) lines.push_back(std::move(tokens));
  });
  const size_t n = lines.size();
  if (n < 10)
    throw error(path, ": ", n, " line", n == 1 ? "" : "s",
                " with words; expected at least 10 to split 80/10/10 by lines");
  const size_t train_end = n * 8 / 10, valid_end = n * 9 / 10;
  TokenSplits splits;
  for (size_t i = 0; i < n; ++i) {
    auto& split = i < train_end ? splits.train : i < valid_end ? splits.valid : splits.test;
    append_unit(split, lines[i]);
  }
  return build_corpus(name, splits, options.max_vocabulary);
}

const std::vector<std::string>& default_fortune_files() {
  static const std::vector<std::string> kFiles = {
      "art",        "computers", "cookie",       "debian",   "definitions", "disclaimer",
      "drugs",      "education", "ethnic",       "food",     "fortunes",    "goedel",
      "humorists",  "kids",      "knghtbrd",     "law",      "linux",       "linuxcookie",
      "literature", "love",      "magic",        "medicine", "men-women",   "miscellaneous",
      "news",       "paradoxum", "people",       "perl",     "pets",        "platitudes",
      "politics",   "pratchett", "riddles",      "science",  "songs-poems", "sports",
      "startrek",   "tao",       "translate-me", "wisdom",   "work",        "zippy"};
  return kFiles;
}

std::vector<std::string> fortune_files_in(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw error(dir, ": not a folder; fortunes:DIR reads the fortune files of a folder");
  std::vector<std::string> files;
  fs::directory_iterator it(dir, ec);
  if (ec) throw error(dir, ": cannot list: ", ec.message());
  for (const fs::directory_entry& entry : it) {
    const fs::path& path = entry.path();
    const std::string ext = path.extension().string();
    if (entry.is_symlink() || !entry.is_regular_file() || ext == ".dat" || ext == ".u8") continue;
    files.push_back(path.filename().string());
  }
  if (files.empty())
    throw error(dir, ": no fortune files (text files besides .dat indexes and .u8 links)");
  std::sort(files.begin(), files.end());
  return files;
}

Corpus load_fortunes(const std::string& dir, const std::vector<std::string>& files,
                     const std::string& name, const CorpusOptions& options) {
  check_vocabulary_cap(name, options.max_vocabulary);
  if (files.empty()) throw error(name, ": no fortune files to read");
  TokenSplits splits;
  int64_t entry = 0;  // index of the next entry with tokens, over all files
  std::vector<std::string> tokens;
  const auto finish_entry = [&] {
    if (tokens.empty()) return;
    const int64_t slot = entry++ % 10;
    append_unit(slot == 8 ? splits.valid : slot == 9 ? splits.test : splits.train, tokens);
  };
  for (const std::string& file : files) {
    const std::string path = (std::filesystem::path(dir) / file).string();
    if (!std::filesystem::exists(path))
      throw error(path, ": no such file; the corpus '", name,
                  "' reads the fortune files of the Debian package fortunes (scripts/setup "
                  "installs it: apt-get install fortunes)");
    const std::string bytes = read_text_file(path);
    text::for_each_line(bytes, [&](int64_t, std::string_view line) {
      if (line == "%") {
        finish_entry();
      } else {
        text::tokenize_raw(line, tokens);
      }
    });
    finish_entry();  // a file's last entry needs no '%' after it
  }
  return build_corpus(name, splits, options.max_vocabulary);
}

}  // namespace cellgraph
