#include "bench/loadgen/plots.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "bench/loadgen/svg_plot.h"

namespace muserve::loadgen {
namespace {

std::string ShortLabel(const LoadSpec& load) {
  if (load.mode == LoadSpec::Mode::kConcurrency) return absl::StrCat("c=", load.value);
  return std::isinf(load.value) ? "inf/s" : absl::StrCat(load.value, "/s");
}

Plot LatencyVsThroughput(const BenchResult& result, const char* name, Summary RunFigures::*metric) {
  Plot plot;
  plot.title = absl::StrCat(name, " against throughput (", result.model_info.model(), ")");
  plot.x_label = "output tokens/s";
  plot.y_label = absl::StrCat(name, " (ms)");
  struct Line {
    const char* suffix;
    double Summary::*field;
  };
  for (const Line line :
       {Line{"p50", &Summary::p50}, Line{"p90", &Summary::p90}, Line{"p99", &Summary::p99}}) {
    PlotSeries series;
    series.name = absl::StrCat(name, " ", line.suffix);
    for (const PointResult& point : result.points) {
      const Summary& summary = point.figures.*metric;
      if (summary.count == 0) continue;
      series.x.push_back(point.figures.output_token_throughput);
      series.y.push_back(summary.*line.field);
      series.point_labels.push_back(ShortLabel(point.load));
    }
    plot.series.push_back(std::move(series));
  }
  return plot;
}

PlotSeries TurnSeries(const std::string& name, const RunFigures& figures, double Summary::*field) {
  PlotSeries series;
  series.name = name;
  for (const TurnFigures& turn : figures.turns) {
    if (turn.ttft_ms.count == 0) continue;
    series.x.push_back(turn.turn + 1);
    series.y.push_back(turn.ttft_ms.*field);
  }
  return series;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> RenderPlots(const BenchResult& result) {
  std::vector<std::pair<std::string, std::string>> files;
  files.emplace_back("ttft_vs_throughput.svg",
                     RenderSvg(LatencyVsThroughput(result, "TTFT", &RunFigures::ttft_ms)));
  files.emplace_back("tpot_vs_throughput.svg",
                     RenderSvg(LatencyVsThroughput(result, "TPOT", &RunFigures::tpot_ms)));
  files.emplace_back("e2e_vs_throughput.svg",
                     RenderSvg(LatencyVsThroughput(result, "E2E latency", &RunFigures::e2e_ms)));
  if (result.config.turns > 1 || result.config.dataset) {
    bool multi_turn = false;
    for (const PointResult& point : result.points) multi_turn |= point.figures.turns.size() > 1;
    if (multi_turn) {
      Plot plot;
      plot.title = absl::StrCat("TTFT per conversation turn (", result.model_info.model(), ")");
      plot.x_label = "turn";
      plot.x_min = 1;
      plot.x_integer_ticks = true;
      plot.y_label = "TTFT (ms)";
      if (result.points.size() == 1) {
        const RunFigures& figures = result.points[0].figures;
        plot.series.push_back(TurnSeries("p50", figures, &Summary::p50));
        plot.series.push_back(TurnSeries("p90", figures, &Summary::p90));
        plot.series.push_back(TurnSeries("p99", figures, &Summary::p99));
      } else {
        for (const PointResult& point : result.points) {
          plot.series.push_back(TurnSeries(absl::StrCat(ShortLabel(point.load), " p50"),
                                           point.figures, &Summary::p50));
        }
      }
      files.emplace_back("ttft_per_turn.svg", RenderSvg(plot));
    }
  }
  return files;
}

}  // namespace muserve::loadgen
