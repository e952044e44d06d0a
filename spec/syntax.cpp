// The JSON text layer of the spec reader: text -> nlohmann::json, with syntax errors as
// "FILE:line L, column C: ...", duplicate keys and absurd nesting refused.
#include <algorithm>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "spec/detail.h"

namespace cellgraph::spec::detail {

using Json = nlohmann::json;

namespace {

// "line L, column C" of the byte at `offset` (0-based), both 1-based, columns in bytes.
std::string line_column(const std::string& text, std::size_t offset) {
  offset = std::min(offset, text.size());
  std::size_t line = 1, line_start = 0;
  for (std::size_t i = 0; i < offset; ++i)
    if (text[i] == '\n') ++line, line_start = i + 1;
  return "line " + std::to_string(line) + ", column " + std::to_string(offset - line_start + 1);
}

// nlohmann's message without its "[json.exception...] parse error at line..: " prefix (we
// compute the position ourselves) and with a long "last read" token shortened: after an
// unterminated string it is the rest of the file.
std::string syntax_message(std::string what) {
  if (const auto p = what.find("] "); what.rfind("[json.exception", 0) == 0 && p != what.npos)
    what.erase(0, p + 2);
  if (what.rfind("parse error", 0) == 0)
    if (const auto p = what.find(": "); p != what.npos) what.erase(0, p + 2);
  const std::string marker = "last read: '";
  if (const auto start = what.find(marker); start != what.npos) {
    const std::size_t from = start + marker.size();
    std::size_t end = what.find("'; expected", from);
    if (end == what.npos) end = what.size() - 1;
    if (end > from + 40) what.replace(from + 40, end - from - 40, "...");
  }
  return what;
}

// Byte offset of the bracket that opens level kMaxJsonDepth + 1 (the text up to it is
// valid JSON, since the parser got there, so counting brackets outside strings is exact).
std::size_t too_deep_offset(const std::string& text) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return i;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return text.size();
}

// Builds the document like nlohmann's own DOM parser, but stops on duplicate keys (which
// nlohmann would silently overwrite) and on absurd nesting.
class DomBuilder final : public nlohmann::json_sax<Json> {
 public:
  // clang-tidy sees a throw deep inside nlohmann's noexcept null constructor; there is none.
  DomBuilder() = default;                  // NOLINT(bugprone-exception-escape)
  DomBuilder(const DomBuilder&) = delete;  // stack_ points into root
  DomBuilder& operator=(const DomBuilder&) = delete;
  enum class Stop { none, syntax, duplicate, too_deep };
  Json root;
  Stop stop = Stop::none;
  std::size_t error_byte = 0;
  std::string error_what, duplicate_pointer, duplicate_key;

  bool null() override { return add(Json(nullptr)); }
  bool boolean(bool v) override { return add(Json(v)); }
  bool number_integer(number_integer_t v) override { return add(Json(v)); }
  bool number_unsigned(number_unsigned_t v) override { return add(Json(v)); }
  bool number_float(number_float_t v, const string_t&) override { return add(Json(v)); }
  bool string(string_t& v) override { return add(Json(std::move(v))); }
  bool binary(binary_t&) override { return add(Json()); }  // never produced by JSON text
  bool start_object(std::size_t) override { return open(Json::object()); }
  bool start_array(std::size_t) override { return open(Json::array()); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool key(string_t& k) override {
    Json& object = *stack_.back();
    if (object.contains(k)) {
      stop = Stop::duplicate;
      duplicate_pointer = open_pointer();  // the object's, as for unknown fields
      duplicate_key = k;
      return false;
    }
    keys_.back() = k;
    pending_ = &object[k];
    return true;
  }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    stop = Stop::syntax;
    error_byte = position;
    error_what = ex.what();
    return false;
  }

 private:
  // Where the next value goes: the root, the end of the open array, or the pending key.
  Json* place(Json value) {
    if (stack_.empty()) {
      root = std::move(value);
      return &root;
    }
    Json& top = *stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(value));
      return &top.back();
    }
    *pending_ = std::move(value);
    return pending_;
  }
  bool add(Json value) {
    place(std::move(value));
    return true;
  }
  bool open(Json container) {
    if (stack_.size() >= static_cast<std::size_t>(kMaxJsonDepth)) {
      stop = Stop::too_deep;
      return false;
    }
    stack_.push_back(place(std::move(container)));
    keys_.emplace_back();
    return true;
  }
  bool close() {
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }
  std::string open_pointer() const {  // JSON pointer of the innermost open container
    std::string pointer;
    for (std::size_t i = 1; i < stack_.size(); ++i) {
      const Json& parent = *stack_[i - 1];
      pointer =
          parent.is_array() ? child(pointer, parent.size() - 1) : child(pointer, keys_[i - 1]);
    }
    return pointer;
  }

  std::vector<Json*> stack_;  // open containers; each is the last child of the one before
  std::vector<std::string> keys_;
  Json* pending_ = nullptr;
};

}  // namespace

// Declared in json_reader.cpp, its only user.
Json parse_json(const std::string& text, const std::string& file) {
  DomBuilder builder;
  try {
    Json::sax_parse(text, &builder);
  } catch (const Json::exception& ex) {  // the SAX interface should report everything
    builder.stop = DomBuilder::Stop::syntax;
    builder.error_what = ex.what();
  }
  switch (builder.stop) {
    case DomBuilder::Stop::none:
      return std::move(builder.root);
    case DomBuilder::Stop::syntax: {
      const std::size_t offset = builder.error_byte == 0 ? 0 : builder.error_byte - 1;
      // nlohmann says "invalid literal"; the likely cause deserves a word. It stops on the
      // first bad byte: the 'I' of Infinity, the 'N' of NaN but the 'a' of nan (null?).
      const std::size_t from = offset == 0 ? 0 : offset - 1;
      const std::string around = from < text.size() ? text.substr(from, 4) : "";
      const bool literal = builder.error_what.find("invalid literal") != std::string::npos ||
                           builder.error_what.find("invalid number") != std::string::npos;
      const bool non_finite =
          literal && std::ranges::any_of(std::vector<std::string>{"NaN", "nan", "Inf", "inf"},
                                         [&](const std::string& word) {
                                           return around.find(word) != std::string::npos;
                                         });
      throw error(file, ":", line_column(text, offset), ": ", syntax_message(builder.error_what),
                  non_finite ? " (JSON has no NaN or Infinity; numbers must be finite)" : "");
    }
    case DomBuilder::Stop::duplicate:
      fail(file, builder.duplicate_pointer,
           "duplicate key " + in_quotes(builder.duplicate_key) + "; each field may appear once");
    case DomBuilder::Stop::too_deep:
      break;
  }
  throw error(file, ":", line_column(text, too_deep_offset(text)), ": JSON nested deeper than ",
              kMaxJsonDepth, " levels; a spec needs about 6");
}

}  // namespace cellgraph::spec::detail
