// The plots of a benchmark result, as (file name, SVG text):
//   ttft_vs_throughput.svg, tpot_vs_throughput.svg, e2e_vs_throughput.svg:
//     p50, p90 and p99 latency against output-token throughput, one point
//     per load of the sweep (labelled with the load);
//   ttft_per_turn.svg (conversations of more than one turn only): TTFT per
//     turn, p50/p90/p99 for a single load, the p50 of each load for a sweep.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "bench/loadgen/runner.h"

namespace muserve::loadgen {

std::vector<std::pair<std::string, std::string>> RenderPlots(const BenchResult& result);

}  // namespace muserve::loadgen
