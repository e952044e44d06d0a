#include "engine/data/text_tokens.h"

#include <cstdio>

#include "engine/error.h"

namespace cellgraph::text {

namespace {

std::string hex_byte(unsigned char byte) {
  char out[8];
  std::snprintf(out, sizeof out, "0x%02X", static_cast<unsigned>(byte));
  return out;
}

// The length of the UTF-8 sequence starting at bytes[at] (a non-ASCII lead byte), or 0
// when it is not a valid sequence. Follows the Unicode standard's table of well-formed
// byte sequences (its Table 3-7): the second byte's range depends on the lead byte, which
// is what rules out overlong forms, surrogates and code points past U+10FFFF.
size_t utf8_sequence_length(std::string_view bytes, size_t at) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(bytes[i]); };
  const unsigned char lead = byte(at);
  size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // the second byte's range
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (at + length > bytes.size()) return 0;
  if (byte(at + 1) < low || byte(at + 1) > high) return 0;
  for (size_t i = 2; i < length; ++i)
    if (byte(at + i) < 0x80 || byte(at + i) > 0xBF) return 0;
  return length;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

bool is_word_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || u >= 0x80;
}

bool is_punctuation(char c) { return c > ' ' && c < 0x7F && !is_word_byte(c); }

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

void check_text(const std::string& path, std::string_view bytes) {
  if (bytes.empty()) throw error(path, ": the file is empty; expected text");
  int64_t line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < bytes.size();) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    const size_t column = i - line_start + 1;
    if (c == '\n') {
      ++line;
      line_start = ++i;
    } else if (c == 0) {
      throw error(path, ":", line, ": a NUL byte at column ", column, ": binary data, not text");
    } else if (c < 0x80) {
      ++i;
    } else {
      const size_t length = utf8_sequence_length(bytes, i);
      if (length == 0)
        throw error(path, ":", line, ": invalid UTF-8 at column ", column, " (byte ", hex_byte(c),
                    "); expected UTF-8 text");
      i += length;
    }
  }
}

void for_each_line(std::string_view bytes,
                   const std::function<void(int64_t, std::string_view)>& visit) {
  int64_t number = 1;
  size_t start = 0;
  while (start < bytes.size()) {
    size_t end = bytes.find('\n', start);
    const size_t next = end == std::string_view::npos ? bytes.size() : end + 1;
    if (end == std::string_view::npos) end = bytes.size();
    std::string_view line = bytes.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    visit(number++, line);
    start = next;
  }
}

std::vector<std::string_view> split_words(std::string_view line) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    const size_t start = i;
    while (i < line.size() && !is_space(line[i])) ++i;
    if (i > start) words.push_back(line.substr(start, i - start));
  }
  return words;
}

void tokenize_raw(std::string_view line, std::vector<std::string>& out) {
  size_t i = 0;
  while (i < line.size()) {
    const char c = line[i];
    if (line.substr(i, 5) == "<unk>" || line.substr(i, 5) == "<eos>") {
      out.emplace_back(line.substr(i, 5));
      i += 5;
    } else if (is_word_byte(c)) {
      std::string word;
      while (i < line.size()) {
        if (is_word_byte(line[i])) {
          word += lower(line[i++]);
        } else if (line[i] == '\'' && i + 1 < line.size() && is_word_byte(line[i + 1])) {
          word += line[i++];
        } else {
          break;
        }
      }
      out.push_back(std::move(word));
    } else if (is_punctuation(c)) {
      size_t end = i;
      while (end < line.size() && line[end] == c) ++end;
      out.emplace_back(line.substr(i, end - i));
      i = end;
    } else {
      ++i;  // whitespace or a control character
    }
  }
}

}  // namespace cellgraph::text
