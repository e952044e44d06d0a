// Hyperparameters as tables: each algorithm (and the search loop itself) declares its own
// once, and everything else derives from the table — the runner's flags and --help, range
// and choice validation, config.json, and the defaults a resumed run falls back on.
//
// Why a table and not a struct per algorithm read by hand: the runner would otherwise have
// to name every algorithm's options one by one (flags, help, config keys, resume), which is
// what kept algorithm-specific code in tools/. A value is a double (numbers, integers) or a
// string (choices, and free text such as a file path); passes read theirs by flag name once
// per step, which costs nothing next to a forward pass.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "spec/json_value.h"

namespace cellgraph::algorithms {

struct Hyperparameter {
  // text: any string, kept as written (a file path: RARTS' --latency TABLE.json).
  enum class Type { number, integer, choice, text };
  std::string flag;  // "nasp-eta": the runner's --nasp-eta, config.json's "nasp_eta"
  Type type = Type::number;
  double default_number = 0;         // number, integer
  double min = 0, max = 0;           // inclusive range (number, integer)
  std::vector<std::string> choices;  // choice: the allowed values, the first is the default
  std::string default_string;        // text
  std::string help;                  // one line
  std::string reference;             // where the default comes from ("DARTS", "paper Eq. 7")
  // Added after the first runs were written: a config.json without the key resumes with
  // `absent_value` when given (what runs before the option ran with, when a later default
  // differs), else the default. Keys present from the start must be there.
  bool optional_in_config = false;
  std::string absent_value;  // as set_text reads it; empty: the default

  std::string config_key() const;    // "nasp_eta"
  std::string default_text() const;  // "0.025", "sgd", "" (text)
};

// Shorthands for the tables.
Hyperparameter number(std::string flag, double value, double min, double max, std::string help,
                      std::string reference = "");
Hyperparameter integer(std::string flag, int64_t value, int64_t min, int64_t max, std::string help,
                       std::string reference = "");
Hyperparameter choice(std::string flag, std::vector<std::string> choices, std::string help,
                      std::string reference = "");
Hyperparameter text(std::string flag, std::string value, std::string help,
                    std::string reference = "");

// Values for one table, defaults until set.
class HyperValues {
 public:
  HyperValues() = default;
  explicit HyperValues(std::vector<Hyperparameter> table);

  const std::vector<Hyperparameter>& table() const { return table_; }
  bool has(const std::string& flag) const;

  // Reads: CG_ASSERT that the flag is in the table with that type (a bug otherwise).
  double number(const std::string& flag) const;  // number or integer
  int64_t integer(const std::string& flag) const;
  const std::string& choice(const std::string& flag) const;
  const std::string& text(const std::string& flag) const;

  // Sets from text as a user wrote it; throws Error "--FLAG: expected ..., got 'TEXT'"
  // (numbers must parse completely and lie in the range, integers be whole, choices listed;
  // text is taken as it is).
  void set_text(const std::string& flag, const std::string& text);
  // Sets a number programmatically (tests, derived defaults); range-checked like set_text.
  void set_number(const std::string& flag, double value);
  void set_choice(const std::string& flag, const std::string& value);

  // Every value under its config key (numbers as the user wrote them, so 0.025 stays 0.025).
  void write_json(spec::JsonValue& object) const;
  // Reads every key back; a missing key is an error "FILE:/key: missing ..." unless the
  // entry is optional_in_config (then the default stays). Wrong types and out-of-range
  // values are errors naming FILE and the key.
  void read_json(const spec::JsonValue& object, const std::string& file);

 private:
  const Hyperparameter& entry(const std::string& flag) const;
  std::vector<Hyperparameter> table_;
  std::map<std::string, double> numbers_;
  std::map<std::string, std::string> choices_;  // choices and text
};

}  // namespace cellgraph::algorithms
