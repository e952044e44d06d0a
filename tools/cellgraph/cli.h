// Command-line parsing for the runner: each subcommand declares its positionals and flags
// once (a Command); the same table parses argv, checks values and prints --help. Every
// problem is a cellgraph::Error naming the flag: unknown flags (with "did you mean"),
// missing values, values that are not numbers or are out of range, repeated flags.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cellgraph::tools {

class Args;

struct Flag {
  std::string name;          // without the dashes: "epochs" is --epochs
  std::string value;         // placeholder shown in help ("E"); empty: a switch (no value)
  std::string help;          // one line
  std::string default_text;  // shown as "(default: ...)" when not empty
};

struct Command {
  std::string name;                      // "search"
  std::string summary;                   // one line for the overall --help
  std::vector<std::string> positionals;  // names of the positionals: {"SPEC"}
  bool positionals_optional = false;     // true: 0 or all of them (e.g. with --resume)
  std::vector<Flag> flags;
  std::string details;                     // extra paragraphs for the command's --help
  int (*run)(const Args& args) = nullptr;  // returns the exit status
};

// The parsed command line of one command. Flags may be written --name VALUE or
// --name=VALUE; -h / --help anywhere asks for help.
class Args {
 public:
  Args(const Command& command, const std::vector<std::string>& argv);

  const Command& command() const { return *command_; }
  bool help_requested() const { return help_; }
  size_t positional_count() const { return positionals_.size(); }
  const std::string& positional(size_t i) const { return positionals_[i]; }
  bool has(const std::string& flag) const { return values_.count(flag) != 0; }
  // The flags given, in the order given.
  const std::vector<std::string>& given() const { return order_; }

  std::string get(const std::string& flag, const std::string& fallback = "") const;
  // Integers and numbers: the value must parse completely and lie in [min, max]; errors
  // read "--epochs: expected an integer >= 1, got '0'".
  int64_t get_int(const std::string& flag, int64_t fallback, int64_t min, int64_t max) const;
  double get_double(const std::string& flag, double fallback, double min, double max) const;
  // A float flag: a double in range that is also finite as a float.
  float get_float(const std::string& flag, float fallback, double min, double max) const;

 private:
  const Command* command_;
  bool help_ = false;
  std::vector<std::string> positionals_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> order_;
};

// The --help text of a command and of the whole program.
std::string command_help(const Command& command);
std::string program_help(const std::vector<const Command*>& commands);

// "; did you mean 'x'?" when one of `known` is a plausible typo of `name`, else "".
std::string did_you_mean(const std::string& name, const std::vector<std::string>& known);

}  // namespace cellgraph::tools
