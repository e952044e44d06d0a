// Charts as inline SVG text for the run report (tools/cellgraph/report.cpp): line charts of
// metrics over steps and heatmaps of architecture weights. Written here rather than taken
// from a charting library because the report must be one self-contained HTML file with no
// script, and two chart kinds in plain SVG are a few hundred lines; no dependency to vendor
// or keep current.
//
// Missing and non-finite values (a diverged loss is `null` in metrics.jsonl) are gaps: a
// line chart breaks its line there, a heatmap draws the cell hatched grey.
#pragma once

#include <string>
#include <vector>

namespace cellgraph::viz {

struct Series {
  std::string name;          // legend
  std::string colour;        // any SVG colour
  std::vector<double> x, y;  // same length; a non-finite y is a gap
};

// A line chart of `series` with axes, ticks and a legend; `width` x `height` pixels.
std::string line_chart_svg(const std::string& title, const std::string& x_label,
                           const std::vector<Series>& series, int width = 460, int height = 240);

// A heatmap of `values` (rows x columns) coloured from white (`low`) to dark blue (`high`),
// each cell's value in its tooltip (<title>); row and column labels when `labels`.
std::string heatmap_svg(const std::string& title, const std::vector<std::string>& rows,
                        const std::vector<std::string>& columns,
                        const std::vector<std::vector<double>>& values, double low, double high,
                        bool labels);

// `text` with &, <, >, " and ' escaped for HTML and SVG text and attributes.
std::string xml_escaped(const std::string& text);

}  // namespace cellgraph::viz
