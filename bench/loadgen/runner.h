// A whole benchmark: connect to the targets, build the workload, warm up,
// then one measured phase per load value of the sweep.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/loadgen/distribution.h"
#include "bench/loadgen/driver.h"
#include "bench/loadgen/stats.h"
#include "muserve/v1/inference.pb.h"

namespace muserve::loadgen {

// Every field is reported in the result's JSON, so that two runs can be
// compared knowing what differed.
struct BenchConfig {
  std::vector<std::string> targets;  // host:port, non-empty; load spreads over them
  std::string server;                // how the server was reached, for the report
  // The in-process server's settings (--in-process), for the report.
  struct InProcessServer {
    std::string model;  // the model directory
    int32_t threads = 0;
    int32_t max_num_seqs = 0;
    int32_t max_queue = 0;
    int32_t block_size = 0;
  };
  std::optional<InProcessServer> in_process;

  // Workload: a dataset file, else synthetic conversations.
  std::optional<std::filesystem::path> dataset;
  LengthDistribution input_len = LengthDistribution::Fixed(128);
  LengthDistribution output_len = LengthDistribution::Fixed(128);
  int32_t turns = 1;
  // Synthetic conversations to generate (default: enough for num_requests,
  // at most kMaxConversationsUpFront; instances cycle over them).
  std::optional<int64_t> conversations;
  std::chrono::milliseconds think_time{0};

  // Load: one phase per value in `load_values` (the sweep).
  LoadSpec::Mode mode = LoadSpec::Mode::kConcurrency;
  std::vector<double> load_values = {1};
  double burstiness = 1;
  // Per phase; none: bounded by `duration` alone (which must then be set).
  std::optional<int64_t> num_requests = 100;
  std::optional<std::chrono::nanoseconds> duration;  // per phase
  int64_t warmup_requests = 2;                       // once, before the first phase, at its load
  // Per request; a server that stops answering fails its requests with
  // DEADLINE_EXCEEDED after this instead of holding the bench.
  std::optional<std::chrono::milliseconds> timeout = std::chrono::minutes(10);
  Slo slo;
  uint64_t seed = 0;

  bool progress_bar = false;

  // INVALID_ARGUMENT naming the flag at fault.
  absl::Status Validate() const;
};

// Conversations (synthetic or dataset entries) built before the run when
// nothing asks for more: instances cycle over them, so a long or
// duration-bound run does not hold a conversation per request in memory.
inline constexpr int64_t kMaxConversationsUpFront = 10'000;

struct PointResult {
  LoadSpec load;
  RunFigures figures;
};

struct BenchResult {
  BenchConfig config;
  v1::ModelInfo model_info;  // of the first target
  std::string workload;      // the workload's description
  std::string started_at;    // UTC, RFC 3339
  std::vector<PointResult> points;
  // `stop` was set: the last point (if any) was cut short.
  bool interrupted = false;
};

// Errors: a target that does not answer (UNAVAILABLE naming it), a workload
// that does not fit the model (INVALID_ARGUMENT naming the flag). Failed
// requests are figures, not errors.
//
// `on_point` (may be empty) sees the result after every load point, so that
// the points measured so far survive a later failure. Once `stop` (may be
// null; a signal handler may set it) is set, the phase running ends at once,
// its calls cancelled, and no further phase starts.
absl::StatusOr<BenchResult> RunBench(const BenchConfig& config,
                                     const std::function<void(const BenchResult&)>& on_point = {},
                                     const std::atomic<bool>* stop = nullptr);

}  // namespace muserve::loadgen
