#include "viz/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace cellgraph::viz {

namespace {

std::string num(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.4g", v);
  return buffer;
}

std::string px(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f", v);
  return buffer;
}

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return lo > hi; }
  // A non-degenerate range for an axis.
  Range padded() const {
    if (empty()) return Range{0, 1};
    if (hi - lo < 1e-12) return Range{lo - 0.5, hi + 0.5};
    return *this;
  }
};

// Four to six round tick values covering [lo, hi].
std::vector<double> ticks(double lo, double hi) {
  const double span = hi - lo;
  const double raw = span / 5;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * magnitude) {
      step = m * magnitude;
      break;
    }
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step)
    out.push_back(std::fabs(t) < step * 1e-9 ? 0.0 : t);
  return out;
}

// White to dark blue, through the report's blue.
std::string heat_colour(double t) {
  t = std::clamp(t, 0.0, 1.0);
  const int r = int(std::lround(255 + (31 - 255) * t));
  const int g = int(std::lround(255 + (78 - 255) * t));
  const int b = int(std::lround(255 + (121 - 255) * t));
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "#%02x%02x%02x", r, g, b);
  return buffer;
}

}  // namespace

std::string xml_escaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string line_chart_svg(const std::string& title, const std::string& x_label,
                           const std::vector<Series>& series, int width, int height) {
  const double left = 56, right = 12, top = 26, bottom = 40;
  const double plot_w = width - left - right, plot_h = height - top - bottom;
  Range xs, ys;
  for (const Series& s : series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.y[i])) {
        xs.add(s.x[i]);
        ys.add(s.y[i]);
      }
  const bool no_data = ys.empty();
  xs = xs.padded();
  ys = ys.padded();
  auto sx = [&](double x) { return left + (x - xs.lo) / (xs.hi - xs.lo) * plot_w; };
  auto sy = [&](double y) { return top + (ys.hi - y) / (ys.hi - ys.lo) * plot_h; };

  std::ostringstream out;
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"" << width
      << "\" height=\"" << height << "\" viewBox=\"0 0 " << width << " " << height
      << "\" font-family=\"sans-serif\" font-size=\"11\">\n"
      << "<text x=\"" << left << "\" y=\"16\" font-size=\"13\" font-weight=\"bold\">"
      << xml_escaped(title) << "</text>\n"
      << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << px(plot_w) << "\" height=\""
      << px(plot_h) << "\" fill=\"none\" stroke=\"#999\"/>\n";
  if (no_data) {
    out << "<text x=\"" << px(left + plot_w / 2) << "\" y=\"" << px(top + plot_h / 2)
        << "\" text-anchor=\"middle\" fill=\"#777\">no values yet</text>\n</svg>\n";
    return out.str();
  }
  for (double t : ticks(ys.lo, ys.hi)) {
    out << "<line x1=\"" << left << "\" x2=\"" << px(left + plot_w) << "\" y1=\"" << px(sy(t))
        << "\" y2=\"" << px(sy(t)) << "\" stroke=\"#eee\"/>"
        << "<text x=\"" << (left - 4) << "\" y=\"" << px(sy(t) + 4) << "\" text-anchor=\"end\">"
        << num(t) << "</text>\n";
  }
  for (double t : ticks(xs.lo, xs.hi))
    out << "<text x=\"" << px(sx(t)) << "\" y=\"" << px(top + plot_h + 14)
        << "\" text-anchor=\"middle\">" << num(t) << "</text>\n";
  out << "<text x=\"" << px(left + plot_w / 2) << "\" y=\"" << (height - 6)
      << "\" text-anchor=\"middle\" fill=\"#555\">" << xml_escaped(x_label) << "</text>\n";
  // The legend follows the title on its line, clear of the plot.
  double legend_x = left + 12 + 7.5 * double(title.size());
  for (const Series& s : series) {
    // One path; a gap (non-finite y) ends a segment, the next finite point starts one.
    std::string d;
    bool pen_down = false;
    int points = 0;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i])) {
        pen_down = false;
        continue;
      }
      d += (pen_down ? " L" : (d.empty() ? "M" : " M")) + px(sx(s.x[i])) + " " + px(sy(s.y[i]));
      pen_down = true;
      ++points;
    }
    if (points == 0) continue;
    out << "<path class=\"series\" data-name=\"" << xml_escaped(s.name) << "\" d=\"" << d
        << "\" fill=\"none\" stroke=\"" << s.colour << "\" stroke-width=\"1.6\"/>\n";
    if (points == 1) {  // a lone point has no line: mark it
      out << "<circle cx=\"" << d.substr(1, d.find(' ') - 1) << "\" cy=\""
          << d.substr(d.find(' ') + 1) << "\" r=\"2.5\" fill=\"" << s.colour << "\"/>\n";
    }
    out << "<rect x=\"" << px(legend_x) << "\" y=\"10\" width=\"10\" height=\"3\" fill=\""
        << s.colour << "\"/><text x=\"" << px(legend_x + 14) << "\" y=\"15\">"
        << xml_escaped(s.name) << "</text>\n";
    legend_x += 22 + 6.5 * double(s.name.size());
  }
  out << "</svg>\n";
  return out.str();
}

std::string heatmap_svg(const std::string& title, const std::vector<std::string>& rows,
                        const std::vector<std::string>& columns,
                        const std::vector<std::vector<double>>& values, double low, double high,
                        bool labels) {
  const double cell = labels ? 16 : 9;
  const double left = labels ? 110 : 4, top = labels ? 96 : 20;
  // Room on the right for the last column labels, which lean right.
  const double width = left + cell * double(columns.size()) + (labels ? 64 : 6);
  const double height = top + cell * double(rows.size()) + 6;
  std::ostringstream out;
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"heatmap\" width=\"" << px(width)
      << "\" height=\"" << px(height) << "\" font-family=\"sans-serif\" font-size=\"10\">\n"
      << "<text x=\"4\" y=\"13\" font-size=\"11\" font-weight=\"bold\">" << xml_escaped(title)
      << "</text>\n"
      << "<defs><pattern id=\"gap\" width=\"4\" height=\"4\" patternUnits=\"userSpaceOnUse\">"
         "<rect width=\"4\" height=\"4\" fill=\"#ddd\"/><path d=\"M0 4 L4 0\" stroke=\"#999\"/>"
         "</pattern></defs>\n";
  if (labels) {
    for (size_t c = 0; c < columns.size(); ++c) {
      const double x = left + cell * (double(c) + 0.6);
      out << "<text transform=\"translate(" << px(x) << "," << px(top - 4) << ") rotate(-60)\">"
          << xml_escaped(columns[c]) << "</text>\n";
    }
    for (size_t r = 0; r < rows.size(); ++r)
      out << "<text x=\"" << px(left - 4) << "\" y=\"" << px(top + cell * (double(r) + 0.75))
          << "\" text-anchor=\"end\">" << xml_escaped(rows[r]) << "</text>\n";
  }
  const double span = high > low ? high - low : 1;
  for (size_t r = 0; r < rows.size(); ++r)
    for (size_t c = 0; c < columns.size(); ++c) {
      const bool present = r < values.size() && c < values[r].size();
      const double v = present ? values[r][c] : std::numeric_limits<double>::quiet_NaN();
      const std::string fill = std::isfinite(v) ? heat_colour((v - low) / span) : "url(#gap)";
      out << "<rect class=\"cell\" x=\"" << px(left + cell * double(c)) << "\" y=\""
          << px(top + cell * double(r)) << "\" width=\"" << px(cell) << "\" height=\"" << px(cell)
          << "\" fill=\"" << fill << "\"><title>" << xml_escaped(rows[r]) << " "
          << xml_escaped(columns[c]) << ": " << (std::isfinite(v) ? num(v) : "missing")
          << "</title></rect>\n";
    }
  out << "</svg>\n";
  return out.str();
}

}  // namespace cellgraph::viz
