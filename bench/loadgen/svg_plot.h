// Line plots as standalone SVG text: axes with ticks and labels, one
// polyline with markers per series, an optional label beside each point of
// the first series, and a legend. Both axes start at 0 when every value is
// non-negative (unless Plot::x_min says otherwise), so that ratios between points can be read off
// the plot.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace muserve::loadgen {

struct PlotSeries {
  std::string name;
  std::vector<double> x;
  std::vector<double> y;                  // same size as x
  std::vector<std::string> point_labels;  // empty, or one per point
};

struct Plot {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<PlotSeries> series;
  // Start the x axis here instead of at 0 (turn numbers start at 1).
  std::optional<double> x_min;
  // Ticks only at whole numbers on the x axis (turns).
  bool x_integer_ticks = false;
};

// Round tick values (1, 2 or 5 times a power of ten apart, about `target`
// of them, at least `min_step` apart) covering [lo, hi]: the first tick
// <= lo, the last >= hi.
std::vector<double> NiceTicks(double lo, double hi, int target = 5, double min_step = 0);

std::string RenderSvg(const Plot& plot);

}  // namespace muserve::loadgen
