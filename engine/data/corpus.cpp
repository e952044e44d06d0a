// The vocabulary, the Penn Treebank reader and the corpus spec parser. The raw-text readers
// (text:FILE, fortunes), which choose their own vocabulary, are in raw_corpus.cpp.
#include "engine/data/corpus.h"

#include <filesystem>

#include "engine/data/text_tokens.h"
#include "engine/error.h"
#include "engine/io/file.h"

namespace cellgraph {

int32_t Vocabulary::add(std::string_view word) {
  if (auto id = find(word)) return *id;
  const auto id = static_cast<int32_t>(words_.size());
  words_.emplace_back(word);
  ids_.emplace(words_.back(), id);
  return id;
}

std::optional<int32_t> Vocabulary::find(std::string_view word) const {
  const auto it = ids_.find(word);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

const std::string& Vocabulary::word(int32_t id) const {
  CG_ASSERT(id >= 0 && id < size(), "word id ", id, " outside a vocabulary of ", size());
  return words_[static_cast<size_t>(id)];
}

const char* split_name(CorpusSplit split) {
  switch (split) {
    case CorpusSplit::train:
      return "train";
    case CorpusSplit::valid:
      return "valid";
    case CorpusSplit::test:
      return "test";
  }
  CG_ASSERT(false, "unknown corpus split");
  return "";
}

const std::vector<int32_t>& Corpus::tokens(CorpusSplit split) const {
  switch (split) {
    case CorpusSplit::train:
      return train;
    case CorpusSplit::valid:
      return valid;
    case CorpusSplit::test:
      return test;
  }
  CG_ASSERT(false, "unknown corpus split");
  return train;
}

std::string Corpus::split_label(CorpusSplit split) const { return name + "/" + split_name(split); }

namespace {

// The checked text of one PTB file; a missing file is named with the folder's layout.
std::string read_ptb_file(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path))
    throw error(path.string(),
                ": no such file; a ptb:DIR folder holds ptb.train.txt, ptb.valid.txt and "
                "ptb.test.txt");
  std::string bytes = io::read_file(path.string());
  text::check_text(path.string(), bytes);
  return bytes;
}

// One PTB file's token ids. The train file adds its words to `vocabulary`; valid and test
// only look theirs up, so a word the train file lacks is an error.
std::vector<int32_t> read_ptb_split(const std::filesystem::path& path, Vocabulary& vocabulary,
                                    bool grow) {
  const std::string bytes = read_ptb_file(path);
  std::vector<int32_t> ids;
  text::for_each_line(bytes, [&](int64_t line, std::string_view content) {
    for (std::string_view word : text::split_words(content)) {
      if (grow) {
        ids.push_back(vocabulary.add(word));
        continue;
      }
      const auto id = vocabulary.find(word);
      if (!id)
        throw error(path.string(), ":", line, ": the word '", word,
                    "' is not in the vocabulary of ptb.train.txt; PTB files write such words "
                    "as <unk>");
      ids.push_back(*id);
    }
    ids.push_back(vocabulary.add(Vocabulary::kEndOfSentence));
  });
  return ids;
}

}  // namespace

Corpus load_ptb(const std::string& dir) {
  const std::filesystem::path folder(dir);
  Corpus corpus;
  corpus.name = "ptb:" + dir;
  corpus.train = read_ptb_split(folder / "ptb.train.txt", corpus.vocabulary, true);
  corpus.valid = read_ptb_split(folder / "ptb.valid.txt", corpus.vocabulary, false);
  corpus.test = read_ptb_split(folder / "ptb.test.txt", corpus.vocabulary, false);
  return corpus;
}

std::string corpus_forms() {
  return "expected fortunes, fortunes:DIR, ptb:DIR (ptb.train.txt, ptb.valid.txt, "
         "ptb.test.txt) or text:FILE (a plain-text file, split 80/10/10 by lines)";
}

Corpus load_corpus(const std::string& spec, const CorpusOptions& options) {
  const size_t colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  const bool has_path = colon != std::string::npos;
  const std::string path = has_path ? spec.substr(colon + 1) : std::string();
  if (has_path && path.empty())
    throw error("corpus '", spec, "': the path after ':' is empty; ", corpus_forms());
  if (name == "fortunes") {
    if (!has_path) return load_fortunes(kFortunesDir, default_fortune_files(), name, options);
    return load_fortunes(path, fortune_files_in(path), spec, options);
  }
  if (name != "ptb" && name != "text")
    throw error("corpus '", spec, "': unknown corpus '", name, "'; ", corpus_forms());
  if (!has_path)
    throw error("corpus '", spec, "': no ", name == "ptb" ? "folder" : "file", "; write ", name,
                name == "ptb" ? ":DIR (" : ":FILE (", corpus_forms(), ")");
  if (name == "ptb") return load_ptb(path);
  return load_text_corpus(path, options);
}

}  // namespace cellgraph
