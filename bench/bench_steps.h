// engine_bench's whole-model runs: decode and prefill against the limits.
#pragma once

#include <filesystem>

namespace muserve::bench {

// Loads `model_dir` and reports decode (batch 1 and 8) and 512-token prefill
// against `bandwidth` (bytes/s) and `peak` (FLOP/s). Returns a process exit code.
int RunModel(const std::filesystem::path& model_dir, int threads, double bandwidth, double peak);

}  // namespace muserve::bench
