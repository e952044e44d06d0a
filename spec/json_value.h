// A plain JSON value for code outside spec/ (the runner's config.json, metrics.jsonl and
// --json outputs): null, bool, number, string, array or object with keys in insertion
// order. nlohmann_json stays inside spec/*.cpp; this header is std-only.
//
// Numbers keep an exact int64 when the text (or the constructor) gave an integer that fits,
// else a double. Dumping writes integers as integers and doubles in the shortest form that
// reads back to the same double; non-finite doubles (JSON has none) are written as null.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cellgraph::spec {

class JsonValue {
 public:
  enum class Type { null, boolean, number, string, array, object };
  using Members = std::vector<std::pair<std::string, JsonValue>>;

  JsonValue() = default;                                 // null
  JsonValue(bool b) : type_(Type::boolean), bool_(b) {}  // NOLINT: implicit on purpose
  JsonValue(int v) : JsonValue(int64_t{v}) {}            // NOLINT
  JsonValue(int64_t v)  // NOLINT: implicit on purpose, as the other numbers
      : type_(Type::number), is_integer_(true), integer_(v), number_(double(v)) {}
  JsonValue(uint64_t v)  // NOLINT: sizes and counts; beyond int64 it becomes a double
      : type_(Type::number),
        is_integer_(v <= uint64_t(INT64_MAX)),
        integer_(int64_t(v)),
        number_(double(v)) {}
  JsonValue(double v) : type_(Type::number), number_(v) {}                  // NOLINT
  JsonValue(const char* s) : type_(Type::string), string_(s) {}             // NOLINT
  JsonValue(std::string s) : type_(Type::string), string_(std::move(s)) {}  // NOLINT

  static JsonValue array() { return JsonValue(Type::array); }
  static JsonValue object() { return JsonValue(Type::object); }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::null; }
  bool is_bool() const { return type_ == Type::boolean; }
  bool is_number() const { return type_ == Type::number; }
  bool is_integer() const { return type_ == Type::number && is_integer_; }
  bool is_string() const { return type_ == Type::string; }
  bool is_array() const { return type_ == Type::array; }
  bool is_object() const { return type_ == Type::object; }

  // Accessors CG_ASSERT the type: check it first (callers report user errors themselves,
  // with the file and JSON pointer they know).
  bool as_bool() const;
  double as_double() const;    // any number
  int64_t as_integer() const;  // integers only
  const std::string& as_string() const;

  // Arrays.
  const std::vector<JsonValue>& items() const;
  void push_back(JsonValue value);
  size_t size() const;  // array items or object members

  // Objects. set() replaces an existing key in place or appends a new one.
  const Members& members() const;
  void set(const std::string& key, JsonValue value);
  const JsonValue* find(const std::string& key) const;  // null when absent
  bool contains(const std::string& key) const { return find(key) != nullptr; }

 private:
  explicit JsonValue(Type type) : type_(type) {}

  Type type_ = Type::null;
  bool bool_ = false;
  bool is_integer_ = false;
  int64_t integer_ = 0;
  double number_ = 0;
  std::string string_;
  std::vector<JsonValue> items_;
  Members members_;
};

// Reads a JSON file. Errors are cellgraph::Error "FILE: cannot open: ...",
// "FILE:line L, column C: ..." (syntax) or "FILE:POINTER: duplicate key ...".
JsonValue parse_json_file(const std::string& path);
// The same on text in memory; `label` stands for the file in messages.
JsonValue parse_json_string(const std::string& text, const std::string& label);

// indent < 0: one line (the form for JSON Lines); otherwise pretty with that many spaces.
std::string dump(const JsonValue& value, int indent = -1);

}  // namespace cellgraph::spec
