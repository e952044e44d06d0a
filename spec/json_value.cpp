// spec::JsonValue <-> JSON text through nlohmann_json, which must not leave spec/.
#include "spec/json_value.h"

#include <cstdint>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/io/file.h"

namespace cellgraph::spec {

namespace detail {
// syntax.cpp: checks the text (syntax with line and column, duplicate keys, nesting) the
// way spec files are checked. Its result is an unordered object; we only want the checks.
nlohmann::json parse_json(const std::string& text, const std::string& file);
}  // namespace detail

namespace {

using OJson = nlohmann::ordered_json;

JsonValue from_nlohmann(const OJson& j) {
  switch (j.type()) {
    case OJson::value_t::null:
      return JsonValue();
    case OJson::value_t::boolean:
      return JsonValue(j.get<bool>());
    case OJson::value_t::number_integer:
      return JsonValue(j.get<int64_t>());
    case OJson::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u <= uint64_t(std::numeric_limits<int64_t>::max())) return JsonValue(int64_t(u));
      return JsonValue(double(u));
    }
    case OJson::value_t::number_float:
      return JsonValue(j.get<double>());
    case OJson::value_t::string:
      return JsonValue(j.get<std::string>());
    case OJson::value_t::array: {
      JsonValue out = JsonValue::array();
      for (const OJson& item : j) out.push_back(from_nlohmann(item));
      return out;
    }
    case OJson::value_t::object: {
      JsonValue out = JsonValue::object();
      for (const auto& item : j.items()) out.set(item.key(), from_nlohmann(item.value()));
      return out;
    }
    default:
      return JsonValue();  // binary and discarded never come from JSON text
  }
}

OJson to_nlohmann(const JsonValue& v) {
  switch (v.type()) {
    case JsonValue::Type::null:
      return OJson(nullptr);
    case JsonValue::Type::boolean:
      return OJson(v.as_bool());
    case JsonValue::Type::number:
      return v.is_integer() ? OJson(v.as_integer()) : OJson(v.as_double());
    case JsonValue::Type::string:
      return OJson(v.as_string());
    case JsonValue::Type::array: {
      OJson out = OJson::array();
      for (const JsonValue& item : v.items()) out.push_back(to_nlohmann(item));
      return out;
    }
    case JsonValue::Type::object: {
      OJson out = OJson::object();
      for (const auto& [key, value] : v.members()) out[key] = to_nlohmann(value);
      return out;
    }
  }
  return OJson(nullptr);
}

}  // namespace

bool JsonValue::as_bool() const {
  CG_ASSERT(is_bool(), "JSON value is not a bool");
  return bool_;
}

double JsonValue::as_double() const {
  CG_ASSERT(is_number(), "JSON value is not a number");
  return number_;
}

int64_t JsonValue::as_integer() const {
  CG_ASSERT(is_integer(), "JSON value is not an integer");
  return integer_;
}

const std::string& JsonValue::as_string() const {
  CG_ASSERT(is_string(), "JSON value is not a string");
  return string_;
}

const std::vector<JsonValue>& JsonValue::items() const {
  CG_ASSERT(is_array(), "JSON value is not an array");
  return items_;
}

void JsonValue::push_back(JsonValue value) {
  CG_ASSERT(is_array(), "JSON value is not an array");
  items_.push_back(std::move(value));
}

size_t JsonValue::size() const {
  if (is_array()) return items_.size();
  if (is_object()) return members_.size();
  return 0;
}

const JsonValue::Members& JsonValue::members() const {
  CG_ASSERT(is_object(), "JSON value is not an object");
  return members_;
}

void JsonValue::set(const std::string& key, JsonValue value) {
  CG_ASSERT(is_object(), "JSON value is not an object");
  for (auto& [k, v] : members_)
    if (k == key) {
      v = std::move(value);
      return;
    }
  members_.emplace_back(key, std::move(value));
}

const JsonValue* JsonValue::find(const std::string& key) const {
  if (!is_object()) return nullptr;
  for (const auto& [k, v] : members_)
    if (k == key) return &v;
  return nullptr;
}

JsonValue parse_json_string(const std::string& text, const std::string& label) {
  detail::parse_json(text, label);  // throws the positioned errors
  // Parsed again for the key order, which the checking parse does not keep.
  return from_nlohmann(OJson::parse(text));
}

JsonValue parse_json_file(const std::string& path) {
  return parse_json_string(io::read_file(path), path);
}

std::string dump(const JsonValue& value, int indent) {
  // Replace, not throw, on invalid UTF-8: paths on the command line may hold any bytes.
  return to_nlohmann(value).dump(indent, ' ', false, OJson::error_handler_t::replace);
}

}  // namespace cellgraph::spec
