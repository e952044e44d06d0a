#include "tools/cellgraph/cli.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <sstream>

#include "engine/error.h"

namespace cellgraph::tools {

namespace {

// Edit distance with adjacent transpositions, ignoring case.
size_t typo_distance(const std::string& a, const std::string& b) {
  auto lower = [](char c) { return char(std::tolower(static_cast<unsigned char>(c))); };
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
          lower(a[i - 2]) == lower(b[j - 1]))
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

const Flag* find_flag(const Command& command, const std::string& name) {
  for (const Flag& f : command.flags)
    if (f.name == name) return &f;
  return nullptr;
}

std::string flag_names(const Command& command) {
  std::string out;
  for (const Flag& f : command.flags) out += (out.empty() ? "--" : ", --") + f.name;
  return out;
}

std::string usage_line(const Command& command) {
  std::string out = "cellgraph " + command.name;
  for (const std::string& p : command.positionals) out.append(" ").append(p);
  if (!command.flags.empty()) out += " [options]";
  return out;
}

}  // namespace

std::string did_you_mean(const std::string& name, const std::vector<std::string>& known) {
  std::string best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (const std::string& k : known) {
    const size_t d = typo_distance(name, k);
    if (d < best_distance) best = k, best_distance = d;
  }
  // A plausible typo: a couple of edits, fewer than half the letters; or a prefix.
  const bool close = best_distance <= std::max<size_t>(1, std::min<size_t>(2, name.size() / 2));
  const bool prefix = !name.empty() && best_distance != 0 &&
                      std::any_of(known.begin(), known.end(), [&](const std::string& k) {
                        if (k.rfind(name, 0) == 0) return best = k, true;
                        return false;
                      });
  if (best.empty() || !(close || prefix)) return "";
  return "; did you mean '" + best + "'?";
}

Args::Args(const Command& command, const std::vector<std::string>& argv) : command_(&command) {
  const std::string where = "cellgraph " + command.name;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "-h" || a == "--help") {
      help_ = true;
      continue;
    }
    if (a.size() < 2 || a[0] != '-' || (a[1] != '-' && std::isdigit((unsigned char)a[1]))) {
      positionals_.push_back(a);
      continue;
    }
    if (a == "--") {  // everything after is positional
      positionals_.insert(positionals_.end(), argv.begin() + long(i) + 1, argv.end());
      break;
    }
    const size_t eq = a.find('=');
    const size_t start = a[1] == '-' ? 2 : 1;
    const std::string name = a.substr(start, eq == std::string::npos ? eq : eq - start);
    const Flag* flag = a[1] == '-' ? find_flag(command, name) : nullptr;
    if (flag == nullptr) {
      std::vector<std::string> known;
      for (const Flag& f : command.flags) known.push_back("--" + f.name);
      std::string hint = did_you_mean("--" + name, known);
      if (hint.empty() && !known.empty()) hint = "; expected one of: " + flag_names(command);
      throw error(where, ": unknown flag '", a.substr(0, eq), "'", hint);
    }
    std::string value;
    if (flag->value.empty()) {
      if (eq != std::string::npos) throw error("--", name, ": takes no value, got '", a, "'");
    } else if (eq != std::string::npos) {
      value = a.substr(eq + 1);
    } else {
      if (i + 1 >= argv.size() || argv[i + 1].rfind("--", 0) == 0)
        throw error("--", name, ": missing value; expected --", name, " ", flag->value);
      value = argv[++i];
    }
    if (!values_.emplace(name, value).second) throw error("--", name, ": given twice");
    order_.push_back(name);
  }
  if (help_) return;
  const bool none_ok = command.positionals_optional && positionals_.empty();
  if (positionals_.size() < command.positionals.size() && !none_ok)
    throw error(where, ": missing ", command.positionals[positionals_.size()],
                "; usage: ", usage_line(command));
  if (positionals_.size() > command.positionals.size())
    throw error(where, ": unexpected argument '", positionals_[command.positionals.size()],
                "'; usage: ", usage_line(command));
}

std::string Args::get(const std::string& flag, const std::string& fallback) const {
  const auto it = values_.find(flag);
  return it == values_.end() ? fallback : it->second;
}

int64_t Args::get_int(const std::string& flag, int64_t fallback, int64_t min, int64_t max) const {
  const auto it = values_.find(flag);
  if (it == values_.end()) return fallback;
  const std::string& s = it->second;
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  const bool ok = !s.empty() && ec == std::errc() && end == s.data() + s.size();
  if (!ok || v < min || v > max) {
    if (max == std::numeric_limits<int64_t>::max())
      throw error("--", flag, ": expected an integer >= ", min, ", got '", s, "'");
    throw error("--", flag, ": expected an integer in [", min, ", ", max, "], got '", s, "'");
  }
  return v;
}

double Args::get_double(const std::string& flag, double fallback, double min, double max) const {
  const auto it = values_.find(flag);
  if (it == values_.end()) return fallback;
  const std::string& s = it->second;
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  const bool ok = !s.empty() && ec == std::errc() && end == s.data() + s.size() && std::isfinite(v);
  if (!ok || v < min || v > max) {
    std::ostringstream range;
    range << (max == std::numeric_limits<double>::max() ? ">= " : "in [") << min;
    if (max != std::numeric_limits<double>::max()) range << ", " << max << "]";
    throw error("--", flag, ": expected a number ", range.str(), ", got '", s, "'");
  }
  return v;
}

float Args::get_float(const std::string& flag, float fallback, double min, double max) const {
  max = std::min(max, double(std::numeric_limits<float>::max()));
  return float(get_double(flag, double(fallback), min, max));
}

std::string command_help(const Command& command) {
  std::ostringstream out;
  out << "usage: " << usage_line(command) << "\n\n" << command.summary << "\n";
  if (!command.flags.empty()) {
    out << "\noptions:\n";
    size_t width = 0;
    std::vector<std::string> left;
    for (const Flag& f : command.flags) {
      left.push_back("--" + f.name + (f.value.empty() ? "" : " " + f.value));
      width = std::max(width, left.back().size());
    }
    for (size_t i = 0; i < command.flags.size(); ++i) {
      const Flag& f = command.flags[i];
      out << "  " << left[i] << std::string(width - left[i].size() + 2, ' ') << f.help;
      if (!f.default_text.empty()) out << " (default: " << f.default_text << ")";
      out << "\n";
    }
    out << "  -h, --help" << std::string(width > 8 ? width - 8 : 2, ' ') << "show this help\n";
  }
  if (!command.details.empty()) out << "\n" << command.details << "\n";
  return out.str();
}

std::string program_help(const std::vector<const Command*>& commands) {
  std::ostringstream out;
  out << "usage: cellgraph COMMAND [ARGS] [options]\n\n"
         "cellgraph: neural architecture search on cell-based search spaces.\n\ncommands:\n";
  for (const Command* c : commands)
    out << "  " << c->name << std::string(c->name.size() < 10 ? 10 - c->name.size() : 1, ' ')
        << c->summary << "\n";
  out << "\n  --help     show this help; `cellgraph COMMAND --help` for a command's options\n"
         "  --version  print the version\n\n"
         "exit status: 0 success, 1 error (message on stderr), 130 interrupted (Ctrl-C)\n"
         "docs: docs/cli.md\n";
  return out.str();
}

}  // namespace cellgraph::tools
