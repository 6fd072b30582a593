// A benchmark's result for people (tables) and for programs (JSON with every
// figure and the whole configuration; `muserve bench compare` reads it).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/loadgen/runner.h"
#include "nlohmann/json.hpp"

namespace muserve::loadgen {

// Per load point: counts, throughputs, a latency table (mean, p50, p90, p99,
// max of TTFT, ITL, TPOT, end-to-end), errors by code and, for
// conversations, TTFT and cached prompt tokens per turn; then a summary line
// per point when there are several.
std::string FormatReport(const BenchResult& result);

// Infinite rates are written as the string "inf" (JSON has no infinity).
nlohmann::json ResultJson(const BenchResult& result);

// Writes `dir`/bench.json and the plots (see plots.h) into `dir`, creating
// it. Returns the files written.
absl::StatusOr<std::vector<std::filesystem::path>> WriteResultFiles(
    const BenchResult& result, const std::filesystem::path& dir);

}  // namespace muserve::loadgen
