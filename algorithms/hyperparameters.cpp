#include "algorithms/hyperparameters.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "engine/error.h"

namespace cellgraph::algorithms {

namespace {
// Tables write 1e30 (or more) for "no upper bound".
constexpr double kLargest = 1e30;

std::string range_text(const Hyperparameter& h) {
  std::ostringstream out;
  const char* what = h.type == Hyperparameter::Type::integer ? "an integer " : "a number ";
  out << what;
  if (h.max >= kLargest)
    out << ">= " << h.min;
  else
    out << "in [" << h.min << ", " << h.max << "]";
  return out.str();
}

std::string choices_text(const Hyperparameter& h) {
  std::string out;
  for (size_t i = 0; i < h.choices.size(); ++i)
    out += std::string(i == 0                      ? ""
                       : i + 1 == h.choices.size() ? " or "
                                                   : ", ") +
           "'" + h.choices[i] + "'";
  return out;
}

bool valid_number(const Hyperparameter& h, double v) {
  if (!std::isfinite(v) || v < h.min || v > h.max) return false;
  return h.type != Hyperparameter::Type::integer || v == std::floor(v);
}
}  // namespace

std::string Hyperparameter::config_key() const {
  std::string key = flag;
  for (char& c : key)
    if (c == '-') c = '_';
  return key;
}

std::string Hyperparameter::default_text() const {
  if (type == Type::choice) return choices.front();
  if (type == Type::text) return default_string;
  char text[32];
  std::snprintf(text, sizeof text, "%g", default_number);
  return text;
}

Hyperparameter number(std::string flag, double value, double min, double max, std::string help,
                      std::string reference) {
  return {.flag = std::move(flag),
          .type = Hyperparameter::Type::number,
          .default_number = value,
          .min = min,
          .max = max,
          .help = std::move(help),
          .reference = std::move(reference)};
}

Hyperparameter integer(std::string flag, int64_t value, int64_t min, int64_t max, std::string help,
                       std::string reference) {
  return {.flag = std::move(flag),
          .type = Hyperparameter::Type::integer,
          .default_number = double(value),
          .min = double(min),
          .max = double(max),
          .help = std::move(help),
          .reference = std::move(reference)};
}

Hyperparameter choice(std::string flag, std::vector<std::string> choices, std::string help,
                      std::string reference) {
  return {.flag = std::move(flag),
          .type = Hyperparameter::Type::choice,
          .choices = std::move(choices),
          .help = std::move(help),
          .reference = std::move(reference)};
}

Hyperparameter text(std::string flag, std::string value, std::string help, std::string reference) {
  return {.flag = std::move(flag),
          .type = Hyperparameter::Type::text,
          .default_string = std::move(value),
          .help = std::move(help),
          .reference = std::move(reference)};
}

HyperValues::HyperValues(std::vector<Hyperparameter> table) : table_(std::move(table)) {
  for (const Hyperparameter& h : table_) {
    CG_ASSERT(!has(h.flag) || numbers_.count(h.flag) + choices_.count(h.flag) == 0,
              "hyperparameter --", h.flag, " declared twice");
    if (h.type == Hyperparameter::Type::choice) {
      CG_ASSERT(!h.choices.empty(), "--", h.flag, " has no choices");
      choices_[h.flag] = h.choices.front();
    } else if (h.type == Hyperparameter::Type::text) {
      choices_[h.flag] = h.default_string;
    } else {
      CG_ASSERT(valid_number(h, h.default_number), "--", h.flag, ": default out of range");
      numbers_[h.flag] = h.default_number;
    }
  }
}

bool HyperValues::has(const std::string& flag) const {
  for (const Hyperparameter& h : table_)
    if (h.flag == flag) return true;
  return false;
}

const Hyperparameter& HyperValues::entry(const std::string& flag) const {
  for (const Hyperparameter& h : table_)
    if (h.flag == flag) return h;
  CG_ASSERT(false, "no hyperparameter --", flag);
}

namespace {
bool is_number(const Hyperparameter& h) {
  return h.type == Hyperparameter::Type::number || h.type == Hyperparameter::Type::integer;
}
}  // namespace

double HyperValues::number(const std::string& flag) const {
  CG_ASSERT(is_number(entry(flag)), "--", flag, " is not a number");
  return numbers_.at(flag);
}

int64_t HyperValues::integer(const std::string& flag) const {
  CG_ASSERT(entry(flag).type == Hyperparameter::Type::integer, "--", flag, " is not an integer");
  return int64_t(numbers_.at(flag));
}

const std::string& HyperValues::choice(const std::string& flag) const {
  CG_ASSERT(entry(flag).type == Hyperparameter::Type::choice, "--", flag, " is not a choice");
  return choices_.at(flag);
}

const std::string& HyperValues::text(const std::string& flag) const {
  CG_ASSERT(entry(flag).type == Hyperparameter::Type::text, "--", flag, " is not text");
  return choices_.at(flag);
}

void HyperValues::set_text(const std::string& flag, const std::string& text) {
  const Hyperparameter& h = entry(flag);
  if (h.type == Hyperparameter::Type::choice) {
    set_choice(flag, text);
    return;
  }
  if (h.type == Hyperparameter::Type::text) {
    choices_[flag] = text;
    return;
  }
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !valid_number(h, v))
    throw error("--", flag, ": expected ", range_text(h), ", got '", text, "'");
  numbers_[flag] = v;
}

void HyperValues::set_number(const std::string& flag, double value) {
  const Hyperparameter& h = entry(flag);
  CG_ASSERT(is_number(h), "--", flag, " is not a number");
  if (!valid_number(h, value))
    throw error("--", flag, ": expected ", range_text(h), ", got ", value);
  numbers_[flag] = value;
}

void HyperValues::set_choice(const std::string& flag, const std::string& value) {
  const Hyperparameter& h = entry(flag);
  CG_ASSERT(h.type == Hyperparameter::Type::choice, "--", flag, " is not a choice");
  for (const std::string& c : h.choices)
    if (c == value) {
      choices_[flag] = value;
      return;
    }
  throw error("--", flag, ": expected ", choices_text(h), ", got '", value, "'");
}

void HyperValues::write_json(spec::JsonValue& object) const {
  for (const Hyperparameter& h : table_) {
    if (h.type == Hyperparameter::Type::choice || h.type == Hyperparameter::Type::text)
      object.set(h.config_key(), choices_.at(h.flag));
    else if (h.type == Hyperparameter::Type::integer)
      object.set(h.config_key(), int64_t(numbers_.at(h.flag)));
    else
      object.set(h.config_key(), numbers_.at(h.flag));
  }
}

void HyperValues::read_json(const spec::JsonValue& object, const std::string& file) {
  for (const Hyperparameter& h : table_) {
    const std::string key = h.config_key();
    const spec::JsonValue* v = object.find(key);
    if (v == nullptr) {
      if (h.optional_in_config && !h.absent_value.empty()) set_text(h.flag, h.absent_value);
      if (h.optional_in_config) continue;
      throw error(file, ":/", key,
                  ": missing; the file was not written by this version of cellgraph");
    }
    if (h.type == Hyperparameter::Type::choice) {
      if (!v->is_string()) throw error(file, ":/", key, ": expected ", choices_text(h));
      try {
        set_choice(h.flag, v->as_string());
      } catch (const Error&) {
        throw error(file, ":/", key, ": expected ", choices_text(h), ", got '", v->as_string(),
                    "'");
      }
      continue;
    }
    if (h.type == Hyperparameter::Type::text) {
      if (!v->is_string()) throw error(file, ":/", key, ": expected a string");
      choices_[h.flag] = v->as_string();
      continue;
    }
    if (!v->is_number() || !valid_number(h, v->as_double()))
      throw error(file, ":/", key, ": expected ", range_text(h));
    numbers_[h.flag] = v->as_double();
  }
}

}  // namespace cellgraph::algorithms
