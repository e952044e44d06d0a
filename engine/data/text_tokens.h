// The text handling that the corpus readers (corpus.h) share: checking that a file is text,
// walking it line by line, and cutting raw English text into word and punctuation tokens.
// Kept apart from the readers so each reader says only what its format adds (PTB's
// sentences, a plain file's 80/10/10 split, fortune entries).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace cellgraph::text {

// Throws cellgraph::Error unless `bytes` (read from `path`) is non-empty UTF-8 text:
//   "PATH: the file is empty; expected text"
//   "PATH:LINE: a NUL byte at column C: binary data, not text"
//   "PATH:LINE: invalid UTF-8 at column C (byte 0xNN); expected UTF-8 text"
// Columns count bytes from 1. Overlong forms, surrogates and code points past U+10FFFF are
// invalid, as the Unicode standard says.
void check_text(const std::string& path, std::string_view bytes);

// Calls `visit(line_number, line)` for every line (numbered from 1), without its '\n' and
// without a '\r' before it. A last line without '\n' is a line; the empty piece after a
// final '\n' is not.
void for_each_line(std::string_view bytes,
                   const std::function<void(int64_t, std::string_view)>& visit);

// The whitespace-separated words of a line (ASCII space, tab, '\r', '\v', '\f'), as PTB's
// files are written.
std::vector<std::string_view> split_words(std::string_view line);

// Raw text to tokens, for corpora that are not tokenised already (a plain file, fortunes):
//  - ASCII letters are lower-cased; nothing else is changed;
//  - a word is a maximal run of ASCII letters, digits and non-ASCII bytes (the UTF-8
//    letters of other alphabets stay whole), with an apostrophe kept inside a word when a
//    word character follows it ("don't", "o'clock"; a quote around a word is punctuation);
//  - every other printable ASCII character is punctuation: a run of one repeated character
//    is one token ("--", "...", "!"), so rules and ellipses do not flood the corpus;
//  - whitespace and control characters (fortunes' backspace overstrikes, bells) separate;
//  - the markers "<unk>" and "<eos>" written in the text are kept as those tokens, so an
//    already tokenised corpus (PTB, WikiText) reads as it was written.
// Appends the tokens of `line` to `out`.
void tokenize_raw(std::string_view line, std::vector<std::string>& out);

}  // namespace cellgraph::text
