#include "bench/loadgen/svg_plot.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace muserve::loadgen {
namespace {

constexpr double kWidth = 760;
constexpr double kHeight = 480;
constexpr double kLeft = 80;
constexpr double kRight = 190;  // room for the legend
constexpr double kTop = 50;
constexpr double kBottom = 60;
constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                   "#9467bd", "#8c564b", "#e377c2", "#17becf"};

std::string Escape(const std::string& text) {
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
      default:
        out += c;
    }
  }
  return out;
}

std::string TickText(double value) {
  if (value == 0) return "0";
  return absl::StrFormat("%g", value);
}

struct Axis {
  std::vector<double> ticks;
  double lo = 0;
  double hi = 1;
};

Axis MakeAxis(const std::vector<double>& values, std::optional<double> min, double min_step) {
  double lo = values.empty() ? 0 : *std::min_element(values.begin(), values.end());
  double hi = values.empty() ? 1 : *std::max_element(values.begin(), values.end());
  if (min) {
    lo = std::min(lo, *min);
  } else if (lo >= 0) {
    lo = 0;
  }
  if (hi <= lo) hi = lo + 1;
  Axis axis;
  axis.ticks = NiceTicks(lo, hi, 5, min_step);
  axis.lo = axis.ticks.front();
  axis.hi = axis.ticks.back();
  return axis;
}

}  // namespace

std::vector<double> NiceTicks(double lo, double hi, int target, double min_step) {
  if (!(hi > lo)) hi = lo + 1;
  const double raw = (hi - lo) / std::max(1, target);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double factor : {1.0, 2.0, 5.0, 10.0}) {
    step = factor * magnitude;
    if (step >= raw) break;
  }
  step = std::max(step, min_step);
  std::vector<double> ticks;
  const double first = std::floor(lo / step + 1e-9) * step;
  for (int k = 0; ticks.empty() || ticks.back() < hi - 1e-9 * step; ++k) {
    const double tick = first + k * step;  // not accumulated: no drift
    ticks.push_back(std::abs(tick) < 1e-9 * step ? 0.0 : tick);
  }
  return ticks;
}

std::string RenderSvg(const Plot& plot) {
  std::vector<double> xs, ys;
  for (const PlotSeries& s : plot.series) {
    xs.insert(xs.end(), s.x.begin(), s.x.end());
    ys.insert(ys.end(), s.y.begin(), s.y.end());
  }
  const Axis x_axis = MakeAxis(xs, plot.x_min, plot.x_integer_ticks ? 1 : 0);
  const Axis y_axis = MakeAxis(ys, std::nullopt, 0);
  const double plot_w = kWidth - kLeft - kRight;
  const double plot_h = kHeight - kTop - kBottom;
  const auto px = [&](double x) {
    return kLeft + (x - x_axis.lo) / (x_axis.hi - x_axis.lo) * plot_w;
  };
  const auto py = [&](double y) {
    return kTop + plot_h - (y - y_axis.lo) / (y_axis.hi - y_axis.lo) * plot_h;
  };

  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n",
      kWidth, kHeight, kWidth, kHeight);
  absl::StrAppendFormat(&svg, "<rect width=\"%g\" height=\"%g\" fill=\"white\"/>\n", kWidth,
                        kHeight);
  absl::StrAppendFormat(
      &svg, "<text x=\"%g\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">%s</text>\n",
      kLeft + plot_w / 2, Escape(plot.title));
  // Grid and ticks.
  for (double tick : x_axis.ticks) {
    const double x = px(tick);
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#e0e0e0\"/>\n"
                          "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%s</text>\n",
                          x, kTop, x, kTop + plot_h, x, kTop + plot_h + 18, TickText(tick));
  }
  for (double tick : y_axis.ticks) {
    const double y = py(tick);
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n"
                          "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                          kLeft, y, kLeft + plot_w, y, kLeft - 6, y + 4, TickText(tick));
  }
  absl::StrAppendFormat(&svg,
                        "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" "
                        "stroke=\"black\"/>\n",
                        kLeft, kTop, plot_w, plot_h);
  absl::StrAppendFormat(&svg, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%s</text>\n",
                        kLeft + plot_w / 2, kHeight - 15, Escape(plot.x_label));
  absl::StrAppendFormat(&svg,
                        "<text x=\"18\" y=\"%g\" text-anchor=\"middle\" "
                        "transform=\"rotate(-90 18 %g)\">%s</text>\n",
                        kTop + plot_h / 2, kTop + plot_h / 2, Escape(plot.y_label));
  // Series.
  for (size_t i = 0; i < plot.series.size(); ++i) {
    const PlotSeries& s = plot.series[i];
    const char* color = kColors[i % std::size(kColors)];
    std::string points;
    for (size_t j = 0; j < s.x.size(); ++j) {
      absl::StrAppendFormat(&points, "%s%.1f,%.1f", j == 0 ? "" : " ", px(s.x[j]), py(s.y[j]));
    }
    if (s.x.size() > 1) {
      absl::StrAppendFormat(&svg,
                            "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" "
                            "stroke-width=\"2\"/>\n",
                            points, color);
    }
    for (size_t j = 0; j < s.x.size(); ++j) {
      absl::StrAppendFormat(&svg, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n",
                            px(s.x[j]), py(s.y[j]), color);
      if (i == 0 && j < s.point_labels.size()) {
        absl::StrAppendFormat(
            &svg, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#555\">%s</text>\n",
            px(s.x[j]) + 6, py(s.y[j]) + 14, Escape(s.point_labels[j]));
      }
    }
    // Legend entry.
    const double ly = kTop + 10 + 20 * static_cast<double>(i);
    const double lx = kLeft + plot_w + 20;
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" "
                          "stroke-width=\"2\"/>\n<circle cx=\"%g\" cy=\"%g\" r=\"3.5\" "
                          "fill=\"%s\"/>\n<text x=\"%g\" y=\"%g\">%s</text>\n",
                          lx, ly, lx + 24, ly, color, lx + 12, ly, color, lx + 30, ly + 4,
                          Escape(s.name));
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace muserve::loadgen
