// Language-model corpora (engine/data/corpus.h): the PTB reader on a generated folder, the
// raw-text tokenizer, the text reader's split and vocabulary cap, fortune files, the spec
// forms, malformed files, and the embedded fortunes default when the package is installed.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "engine/data/corpus.h"
#include "engine/data/text_tokens.h"
#include "engine/error.h"
#include "tests/support/cli.h"
#include "tests/support/errors.h"

using namespace cellgraph;
namespace fs = std::filesystem;

namespace {
using testing::error_of;
using testing::has;
using testing::TempDir;

void write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// The words of `ids`, for readable comparisons.
std::vector<std::string> words_of(const Corpus& corpus, const std::vector<int32_t>& ids) {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (int32_t id : ids) out.push_back(corpus.vocabulary.word(id));
  return out;
}

std::vector<std::string> tokens_of(const std::string& line) {
  std::vector<std::string> out;
  text::tokenize_raw(line, out);
  return out;
}

// A PTB-format folder in the layout of the real files (a leading space on each line).
void write_ptb(const TempDir& dir, const std::string& valid = " the cat ran\n") {
  write(dir / "ptb.train.txt", " the cat sat \n the <unk> ran \n");
  write(dir / "ptb.valid.txt", valid);
  write(dir / "ptb.test.txt", "\n<unk> sat");  // an empty line; a last line without '\n'
}

}  // namespace

TEST_CASE("ptb: vocabulary in order of first appearance, <eos> after every line") {
  TempDir dir;
  write_ptb(dir);
  const Corpus corpus = load_ptb(dir.path.string());
  CHECK(corpus.name == "ptb:" + dir.path.string());
  const std::vector<std::string> vocabulary = {"the", "cat", "sat", "<eos>", "<unk>", "ran"};
  CHECK(corpus.vocabulary.words() == vocabulary);
  CHECK(corpus.train == std::vector<int32_t>{0, 1, 2, 3, 0, 4, 5, 3});
  CHECK(corpus.valid == std::vector<int32_t>{0, 1, 5, 3});
  CHECK(corpus.test == std::vector<int32_t>{3, 4, 2, 3});
  CHECK(corpus.tokens(CorpusSplit::valid) == corpus.valid);
  CHECK(corpus.split_label(CorpusSplit::test) == corpus.name + "/test");
  CHECK(corpus.vocabulary.find("<eos>") == 3);
  CHECK_FALSE(corpus.vocabulary.find("dog").has_value());
  // The same folder through the spec form.
  CHECK(load_corpus("ptb:" + dir.path.string()).train == corpus.train);
}

TEST_CASE("ptb: a valid or test word missing from the train vocabulary names file:line") {
  TempDir dir;
  write_ptb(dir, " the cat\n the dog sat\n");
  const std::string message = error_of([&] { load_ptb(dir.path.string()); });
  CHECK(has(message, (dir.path / "ptb.valid.txt").string() + ":2:"));
  CHECK(has(message, "'dog'"));
  CHECK(has(message, "<unk>"));
}

TEST_CASE("ptb: a missing file is named with the folder's layout") {
  TempDir dir;
  write_ptb(dir);
  fs::remove(dir.path / "ptb.test.txt");
  const std::string message = error_of([&] { load_ptb(dir.path.string()); });
  CHECK(has(message, (dir.path / "ptb.test.txt").string() + ": no such file"));
  CHECK(has(message, "ptb.train.txt, ptb.valid.txt and ptb.test.txt"));
}

TEST_CASE("corpus files: empty, binary and invalid UTF-8 files are errors naming file and line") {
  TempDir dir;
  write_ptb(dir);
  const std::string train = (dir.path / "ptb.train.txt").string();
  const auto message_for = [&](const std::string& bytes) {
    write(train, bytes);
    return error_of([&] { load_ptb(dir.path.string()); });
  };
  CHECK(has(message_for(""), train + ": the file is empty"));
  CHECK(has(message_for(std::string("the cat\nsa\0t\n", 13)),
            train + ":2: a NUL byte at column 3: binary data"));
  CHECK(has(message_for("a\nb\nthe \xFF cat\n"),
            train + ":3: invalid UTF-8 at column 5 (byte 0xFF)"));
  // Overlong '/', a UTF-16 surrogate, past U+10FFFF, a truncated sequence at the end.
  CHECK(has(message_for("x \xC0\xAF\n"), train + ":1: invalid UTF-8 at column 3 (byte 0xC0)"));
  CHECK(has(message_for("\xED\xA0\x80\n"), train + ":1: invalid UTF-8 at column 1 (byte 0xED)"));
  CHECK(has(message_for("\xF4\x90\x80\x80\n"), train + ":1: invalid UTF-8"));
  CHECK(has(message_for("ok\n\xE2\x82"), train + ":2: invalid UTF-8 at column 1 (byte 0xE2)"));
  // Two-, three- and four-byte characters are text.
  write(train, " na\xC3\xAFve \xE6\x97\xA5 \xF0\x9F\x98\x80 the cat sat ran <unk>\n");
  const Corpus corpus = load_ptb(dir.path.string());
  CHECK(corpus.vocabulary.word(0) == "na\xC3\xAFve");
  CHECK(corpus.vocabulary.word(2) == "\xF0\x9F\x98\x80");
}

TEST_CASE("tokenize_raw: lower-case words, apostrophes inside words, punctuation runs, markers") {
  const std::vector<std::string> expected = {
      "don't", "panic",         "--",    "it's",  "3",   ".", "14",  "...",
      "'",     "quoted",        "'",     "<unk>", "end", ".", "tab", "__",
      "x",     "k\xC3\x84rger", "<eos>", "<",     "b",   ">"};
  CHECK(tokens_of(
            "Don't PANIC -- it's 3.14... 'quoted' <unk> END.\tTab__\bX K\xC3\x84rger<eos><b>") ==
        expected);
  CHECK(tokens_of(" \t\r ").empty());
  CHECK(tokens_of("dogs' ") == std::vector<std::string>{"dogs", "'"});
}

TEST_CASE("text: lines split 80/10/10 in order, the vocabulary capped by train counts") {
  TempDir dir;
  // 20 lines with words, blank lines between some: train = lines 0..15, valid 16..17, test
  // 18..19. Train counts: a 16, b 8 (even lines), c 8 (odd lines), d 4 (lines 0, 4, 8, 12).
  std::string text;
  for (int i = 0; i < 20; ++i) {
    text += "A ";
    text += i % 2 == 0 ? "b" : "c";
    if (i % 4 == 0) text += " d";
    if (i >= 16) text += " line" + std::to_string(i);
    text += i % 3 == 0 ? "\n\n" : "\n";
  }
  write(dir / "corpus.txt", text);
  const std::string spec = "text:" + (dir / "corpus.txt");

  const Corpus full = load_corpus(spec);
  CHECK(full.name == spec);
  // <unk>, <eos>, then by count; b and c tie at 8 and go in byte order.
  CHECK(full.vocabulary.words() == std::vector<std::string>{"<unk>", "<eos>", "a", "b", "c", "d"});
  const std::vector<std::string> train = words_of(full, full.train);
  CHECK(std::vector<std::string>(train.begin(), train.begin() + 7) ==
        std::vector<std::string>{"a", "b", "d", "<eos>", "a", "c", "<eos>"});
  const int64_t train_eos = std::count(full.train.begin(), full.train.end(), 1);
  CHECK(train_eos == 16);
  // The words of lines 16..19 appear only outside train, so they read as <unk>.
  CHECK(words_of(full, full.valid) ==
        std::vector<std::string>{"a", "b", "d", "<unk>", "<eos>", "a", "c", "<unk>", "<eos>"});
  CHECK(words_of(full, full.test) ==
        std::vector<std::string>{"a", "b", "<unk>", "<eos>", "a", "c", "<unk>", "<eos>"});

  const Corpus capped = load_corpus(spec, {.max_vocabulary = 4});
  CHECK(capped.vocabulary.words() == std::vector<std::string>{"<unk>", "<eos>", "a", "b"});
  CHECK(words_of(capped, capped.train)[5] == "<unk>");  // c is beyond the cap
  CHECK(words_of(capped, capped.train)[2] == "<unk>");  // and so is d

  CHECK(has(error_of([&] { load_corpus(spec, {.max_vocabulary = 2}); }), "vocabulary cap 2"));
}

TEST_CASE("text: fewer than 10 lines with words cannot be split") {
  TempDir dir;
  write(dir / "short.txt", "one\n\ntwo\nthree\n");
  const std::string message = error_of([&] { load_corpus("text:" + (dir / "short.txt")); });
  CHECK(has(message, dir / "short.txt"));
  CHECK(has(message, "3 lines with words; expected at least 10"));
  CHECK(has(error_of([&] { load_corpus("text:" + (dir / "absent.txt")); }), "cannot open"));
}

TEST_CASE("fortunes:DIR: entries dealt to the splits by index, files in name order") {
  TempDir dir;
  // File "a" holds entries 0..11, "b" entries 12..19; an entry without words is skipped.
  std::string a, b;
  for (int k = 0; k < 12; ++k) a += "Entry w" + std::to_string(k) + "\n\t-- Someone\n%\n";
  a += "   \n%\n";
  for (int k = 12; k < 20; ++k) b += (k > 12 ? "%\n" : "") + ("entry w" + std::to_string(k) + "\n");
  write(dir / "b", b);
  write(dir / "a", a);
  write(dir / "a.dat", std::string("\0\0\0\2", 4));  // an index: binary, must be ignored
  fs::create_symlink("a", dir.path / "a.u8");
  fs::create_directory(dir.path / "off");

  CHECK(fortune_files_in(dir.path.string()) == std::vector<std::string>{"a", "b"});
  const std::string spec = "fortunes:" + dir.path.string();
  const Corpus corpus = load_corpus(spec, {.max_vocabulary = 100});
  CHECK(corpus.name == spec);
  // valid: entries 8 and 18; test: 9 and 19; train: the other 16.
  CHECK(words_of(corpus, corpus.valid) == std::vector<std::string>{"entry", "<unk>", "--",
                                                                   "someone", "<eos>", "entry",
                                                                   "<unk>", "<eos>"});
  CHECK(words_of(corpus, corpus.test) == std::vector<std::string>{"entry", "<unk>", "--", "someone",
                                                                  "<eos>", "entry", "<unk>",
                                                                  "<eos>"});
  CHECK(std::count(corpus.train.begin(), corpus.train.end(), 1) == 16);
  CHECK(corpus.vocabulary.find("w8") == std::nullopt);
  CHECK(corpus.vocabulary.find("w17").has_value());
  CHECK(words_of(corpus, corpus.train)[1] == "w0");

  CHECK(has(error_of([&] { fortune_files_in((dir / "off")); }), "no fortune files"));
  CHECK(has(error_of([&] {
              load_fortunes(dir.path.string(), {"a", "missing"}, "x");
            }),
            (dir.path / "missing").string() + ": no such file"));
}

TEST_CASE("load_corpus: unknown names and missing paths list the forms") {
  for (const std::string spec : {"nope", "ptb", "ptb:", "text", "fortunes:", "wikitext:dir"}) {
    CAPTURE(spec);
    const std::string message = error_of([&] { load_corpus(spec); });
    CHECK(has(message, "corpus '" + spec + "'"));
    CHECK(has(message, "fortunes:DIR"));
    CHECK(has(message, "text:FILE"));
  }
  CHECK(has(error_of([] { load_corpus("fortunes:/nonexistent/dir"); }), "not a folder"));
}

TEST_CASE("fortunes: the embedded default corpus") {
  SKIP_WITHOUT_FORTUNES();
  const Corpus corpus = load_corpus("fortunes");
  CHECK(corpus.name == "fortunes");
  CHECK(corpus.vocabulary.size() == 10000);
  CHECK(corpus.vocabulary.word(0) == "<unk>");
  CHECK(corpus.vocabulary.word(1) == "<eos>");
  for (const CorpusSplit split : {CorpusSplit::train, CorpusSplit::valid, CorpusSplit::test}) {
    const auto& tokens = corpus.tokens(split);
    CHECK(tokens.back() == 1);
    CHECK(*std::max_element(tokens.begin(), tokens.end()) < corpus.vocabulary.size());
  }
  // Roughly 8:1:1 (entries, not tokens, are dealt), and large enough to train on.
  CHECK(corpus.train.size() > 300000);
  CHECK(corpus.valid.size() * 6 < corpus.train.size());
  CHECK(corpus.valid.size() * 10 > corpus.train.size());
  CHECK(corpus.test.size() * 6 < corpus.train.size());
  CHECK(corpus.test.size() * 10 > corpus.train.size());
  MESSAGE("fortunes: train ", corpus.train.size(), ", valid ", corpus.valid.size(), ", test ",
          corpus.test.size(), " tokens, vocabulary ", corpus.vocabulary.size());
}
