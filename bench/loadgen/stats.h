// The figures of one run phase, computed from its request records.
//
// Percentiles use linear interpolation between closest ranks, as numpy's
// default (method "linear"): for n sorted values v[0..n-1] the q-th
// percentile is v[i] + f * (v[i+1] - v[i]) with i + f = q / 100 * (n - 1).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bench/loadgen/timeline.h"

namespace muserve::loadgen {

// `sorted` ascending and non-empty; q in [0, 100].
double Percentile(const std::vector<double>& sorted, double q);

struct Summary {
  int64_t count = 0;  // every other field is 0 when count is 0
  double mean = 0;
  double p50 = 0;
  double p90 = 0;
  double p99 = 0;
  double max = 0;
};

Summary Summarize(std::vector<double> values);

// Latency objectives for goodput: a succeeded request is good when it meets
// every objective that is set. TPOT applies only to requests with >= 2
// output tokens.
struct Slo {
  std::optional<double> ttft_ms;
  std::optional<double> tpot_ms;
};

bool MeetsSlo(const RequestLatencies& latencies, const Slo& slo);

// TTFT and prefix-cache use of the n-th turn of every conversation.
struct TurnFigures {
  int32_t turn = 0;  // 0-based
  int64_t succeeded = 0;
  Summary ttft_ms;
  double mean_prompt_tokens = 0;
  double mean_cached_prompt_tokens = 0;
  // cached / prompt tokens over the turn's requests (0 without prompt tokens).
  double cached_fraction = 0;
};

// Requests one target (replica) got, when load spreads over several.
struct TargetFigures {
  int32_t target = 0;  // index into the run's targets
  int64_t requests_sent = 0;
  int64_t succeeded = 0;
  int64_t failed = 0;  // cancelled ones are neither
  Summary ttft_ms;
};

struct RunFigures {
  int64_t requests_sent = 0;  // = succeeded + failed + cancelled
  int64_t succeeded = 0;
  int64_t failed = 0;     // ended by the server (or the deadline) with an error
  int64_t cancelled = 0;  // still in flight when the phase ended (RequestRecord::cancelled)
  std::map<std::string, int64_t> errors_by_code;  // "RESOURCE_EXHAUSTED" -> count
  double duration_s = 0;
  int64_t prompt_tokens = 0;  // of succeeded requests, as the server counted them
  int64_t output_tokens = 0;  // of succeeded requests, token ids received
  int64_t cached_prompt_tokens = 0;
  double request_throughput = 0;       // succeeded / duration_s
  double output_token_throughput = 0;  // output_tokens / duration_s
  std::optional<double> goodput;       // good requests / duration_s, when an SLO is set
  int64_t good_requests = 0;
  Summary ttft_ms;
  Summary itl_ms;
  Summary tpot_ms;
  Summary e2e_ms;
  // start - scheduled of every request sent (RequestRecord::scheduled_ns).
  Summary send_lag_ms;
  std::vector<TurnFigures> turns;        // one per turn index that occurred
  std::vector<TargetFigures> by_target;  // one per target index that occurred
};

// Latencies come from succeeded requests only; failed ones are counted by
// their status code (a stream that ended OK without a Finished event counts
// as "INTERNAL"). `duration_s` is the phase's wall time.
RunFigures ComputeFigures(const std::vector<RequestRecord>& records, double duration_s,
                          const Slo& slo);

}  // namespace muserve::loadgen
