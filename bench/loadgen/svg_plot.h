// Line plots as standalone SVG text: axes with ticks and labels, one
// polyline with markers per series, an optional label beside each point of
// the first series, and a legend. Both axes start at 0 when every value is
// non-negative, so that ratios between points can be read off the plot.
#pragma once

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
};

// Round tick values (1, 2 or 5 times a power of ten apart, about `target`
// of them) covering [lo, hi]: the first tick <= lo, the last >= hi.
std::vector<double> NiceTicks(double lo, double hi, int target = 5);

std::string RenderSvg(const Plot& plot);

}  // namespace muserve::loadgen
