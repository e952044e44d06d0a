// Small shared helpers of the spec code: JSON pointers, error formatting and the
// "did you mean" suggestions for misspelt names.
#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "engine/error.h"
#include "spec/detail.h"

namespace cellgraph::spec::detail {

std::string escape_pointer_token(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  for (char c : token) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

std::string child(const std::string& pointer, std::string_view key) {
  return pointer + "/" + escape_pointer_token(key);
}

std::string child(const std::string& pointer, std::size_t index) {
  return pointer + "/" + std::to_string(index);
}

void fail(const std::string& file, const std::string& pointer, const std::string& what) {
  if (pointer.empty()) throw error(file, ": ", what);
  throw error(file, ":", pointer, ": ", what);
}

std::string in_quotes(std::string_view text) {
  // Names come from the user's file; a pasted paragraph should not flood the message.
  constexpr std::size_t kMaxChars = 60;
  std::size_t cut = text.size();
  if (cut > kMaxChars) {
    cut = kMaxChars;
    // Do not split a UTF-8 sequence: back up over continuation bytes.
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  }
  // Appended piecewise: GCC 12 warns (-Wrestrict, falsely) on "'" + std::string(...).
  std::string out(1, '\'');
  out.append(text.substr(0, cut));
  if (cut < text.size()) out.append("...");
  out.push_back('\'');
  return out;
}

bool is_identifier(std::string_view name) {
  if (name.empty() || !std::isalpha(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 128 && std::isalnum(u)) || c == '_' || c == '-';
  });
}

namespace {

// Optimal string alignment distance (edits + adjacent transpositions), ignoring case,
// so that 'reductoin' is one edit from 'reduction' and 'Sep_Conv_3x3' zero from the op.
std::size_t typo_distance(std::string_view a, std::string_view b) {
  auto lower = [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  };
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
          lower(a[i - 2]) == lower(b[j - 1]))
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

}  // namespace

std::string closest(std::string_view name, const std::vector<std::string>& known) {
  // Long garbage is nobody's typo, and the distance table is quadratic.
  if (name.empty() || name.size() > 64) return "";
  // Short names tolerate fewer edits, or every two-letter name would match every other.
  const std::size_t limit = name.size() <= 3 ? 1 : name.size() <= 6 ? 2 : 3;
  std::string best;
  std::size_t best_distance = limit + 1;
  for (const std::string& candidate : known) {
    if (candidate.size() > name.size() + limit || name.size() > candidate.size() + limit) continue;
    const std::size_t distance = typo_distance(name, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

std::string join(const std::vector<std::string>& names, std::string_view separator) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += separator;
    out += names[i];
  }
  return out;
}

std::string unknown_hint(std::string_view name, const std::vector<std::string>& known,
                         const std::string& fallback) {
  const std::string best = closest(name, known);
  if (!best.empty()) return "; did you mean " + in_quotes(best) + "?";
  if (known.empty() || known.size() > 16) return fallback;
  return "; expected one of: " + join(known);
}

std::vector<std::string> op_names(CellForm form) {
  std::vector<std::string> names;
  for (const CandidateInfo& info : candidate_ops())
    if (info.form == form) names.emplace_back(info.name);
  return names;
}

}  // namespace cellgraph::spec::detail
