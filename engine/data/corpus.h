// Language-model corpora: a vocabulary and the token ids of a train, a valid and a test
// split, read from the Penn Treebank files, from any plain-text file, or from the fortune
// cookies of Debian's `fortunes` package (the embedded default: nothing is downloaded at
// run time). token_batches.h cuts a split into the [N, T] windows a language model trains
// on. Everything here is plain host data; ids are int32 like Dataset's labels.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cellgraph {

// Words and their ids, 0..size()-1 in the order they were added.
class Vocabulary {
 public:
  static constexpr std::string_view kUnknown = "<unk>";        // a word outside the vocabulary
  static constexpr std::string_view kEndOfSentence = "<eos>";  // the end of a line or entry

  // The id of `word`, added with the next id when it is new.
  int32_t add(std::string_view word);
  // The id of `word`, or nullopt when it is not in the vocabulary.
  std::optional<int32_t> find(std::string_view word) const;
  // The word of `id`; CG_ASSERTs that id is in [0, size()).
  const std::string& word(int32_t id) const;
  int32_t size() const { return static_cast<int32_t>(words_.size()); }
  const std::vector<std::string>& words() const { return words_; }

 private:
  // Hashes string_view and string alike, so find() looks a word up without copying it.
  struct Hash {
    using is_transparent = void;  // NOLINT(readability-identifier-naming): the standard name
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<std::string> words_;
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> ids_;
};

enum class CorpusSplit { train, valid, test };
const char* split_name(CorpusSplit split);  // "train", "valid", "test"

struct Corpus {
  std::string name;  // the spec it was loaded from: "ptb:DIR", "text:FILE", "fortunes"
  Vocabulary vocabulary;
  std::vector<int32_t> train, valid, test;  // token ids in [0, vocabulary.size())

  const std::vector<int32_t>& tokens(CorpusSplit split) const;
  // "NAME/SPLIT", the prefix of messages about one split (e.g. "fortunes/valid").
  std::string split_label(CorpusSplit split) const;
};

struct CorpusOptions {
  // The largest vocabulary of a corpus whose vocabulary cellgraph chooses (text, fortunes),
  // <unk> and <eos> included: the most frequent words of the train split are kept, the rest
  // read as <unk>. 10000 is Penn Treebank's size. PTB's own vocabulary is its train file's.
  int32_t max_vocabulary = 10000;
};

// Where the Debian packages fortunes and fortunes-min install the fortune files.
inline constexpr const char* kFortunesDir = "/usr/share/games/fortunes";

// The fortune files of the default corpus, in reading order: every text file the two
// packages install, in name order, except `ascii-art` (pictures, not language). A fixed list,
// so the default corpus is the same wherever the packages are, whatever else is installed
// beside them (fortunes-bofh-excuses and others add files to the same folder).
const std::vector<std::string>& default_fortune_files();

// The Penn Treebank in `dir`: ptb.train.txt, ptb.valid.txt, ptb.test.txt, one sentence a
// line, words separated by spaces, <unk> already in place. <eos> follows each line (an empty
// line is a lone <eos>). The vocabulary is the train file's words in order of first
// appearance (each line's <eos> after its words), as the standard PTB loader builds it:
// 10000 words for the real files. Throws cellgraph::Error naming the file and line for a
// word of valid/test that the train file lacks (PTB files write such words as <unk>), and
// for every error of text::check_text (empty, binary, invalid UTF-8) or of reading.
Corpus load_ptb(const std::string& dir);

// Any plain UTF-8 text file, tokenised by text::tokenize_raw, one <eos> after each line that
// has tokens (blank lines are skipped). Split by lines: of the n non-blank lines, the first
// floor(0.8 n) are train, the next floor(0.9 n) - floor(0.8 n) valid, the rest test, in file
// order (a contiguous split, as PTB's sections are, so valid and test are text the model has
// not seen nearby). Throws cellgraph::Error when a split would be empty (fewer than 10 lines)
// or max_vocabulary < 3, and for malformed files as load_ptb.
Corpus load_text_corpus(const std::string& path, const CorpusOptions& options = {});

// Fortune files (entries separated by lines holding only '%'), read in the order given, each
// entry tokenised by text::tokenize_raw and followed by one <eos>; entries without tokens
// are skipped. Entries are dealt to the splits by their index k over all files: k % 10 == 8
// to valid, k % 10 == 9 to test, the rest to train, so every split samples every file (the
// files are topics; a contiguous split would test on topics never trained on). Throws
// cellgraph::Error for a missing file (with the advice to install `fortunes`), an empty list,
// an empty split, and malformed files as load_ptb. `name` names the corpus.
Corpus load_fortunes(const std::string& dir, const std::vector<std::string>& files,
                     const std::string& name, const CorpusOptions& options = {});

// The fortune files of `dir`: its regular files that are not symbolic links, not .dat
// indexes and not .u8 names, in byte order of name. Throws cellgraph::Error when `dir` is not
// a readable folder or holds none.
std::vector<std::string> fortune_files_in(const std::string& dir);

// The corpora a command line can name:
//   fortunes          default_fortune_files() from kFortunesDir (the embedded default)
//   fortunes:DIR      every fortune file of DIR (fortune_files_in)
//   ptb:DIR           Penn Treebank text files in DIR (load_ptb)
//   text:FILE         a plain-text file split 80/10/10 by lines (load_text_corpus)
// DIR and FILE may contain ':'. Throws cellgraph::Error listing these forms for an unknown
// name or a missing or empty path, and every error of the reader.
Corpus load_corpus(const std::string& spec, const CorpusOptions& options = {});

// The forms above in one line, for messages of callers that reject a corpus spec.
std::string corpus_forms();

}  // namespace cellgraph
