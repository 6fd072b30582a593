// ServerMetrics: the gRPC server's Prometheus metrics. The service reports
// each request once, when it ends (RecordFinished) or is refused before the
// engine (RecordRefused), plus output-token timing while it streams
// (RecordInterTokenLatency); the engine's load is read at scrape time by a
// LoadCollector (see load_collector.h for those families).
//
// Families in the registry (names follow Prometheus conventions: base units,
// `_total` counters):
//   muserve_requests_total{rpc, finish_reason, code}       counter
//     rpc: "Generate" | "Chat" (as reported by the service).
//     finish_reason: "stop" | "length" | "cancelled" | "deadline" for requests the
//       engine ran; "none" for refused requests and for requests that ended
//       before the engine ran them (RequestRecord::finish_reason empty).
//     code: the absl/gRPC status code name, e.g. "OK", "INVALID_ARGUMENT",
//       "RESOURCE_EXHAUSTED", "UNAVAILABLE", "CANCELLED", "DEADLINE_EXCEEDED".
//   muserve_time_to_first_token_seconds        histogram  requests with a token
//   muserve_inter_token_latency_seconds        histogram  once per output token after the first
//   muserve_time_per_output_token_seconds      histogram  (e2e - ttft) / (completion_tokens - 1),
//                                                         requests with >= 2 tokens
//   muserve_e2e_request_latency_seconds        histogram  every finished request
//   muserve_request_queue_time_seconds         histogram  requests that were scheduled
//   muserve_request_prompt_tokens              histogram  every finished request
//   muserve_request_generation_tokens          histogram  every finished request
//   muserve_prompt_tokens_total                counter
//   muserve_generation_tokens_total            counter
//   muserve_cached_prompt_tokens_total         counter    prompt tokens served from the prefix
//   cache muserve_serving                            gauge      1 serving, 0 loading or draining
// Refused requests count only in muserve_requests_total.
//
// Thread safety: every method may be called from any thread concurrently
// (prometheus-cpp metrics are internally synchronized).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "scheduler/engine_loop.h"
#include "server/observability/request_record.h"

namespace muserve::server {

class LoadCollector;

// Bucket boundaries, after vLLM's, widened for CPU serving (ms) and long
// generations (tens of minutes). Exposed for tests.
struct MetricBuckets {
  static const prometheus::Histogram::BucketBoundaries& TimeToFirstTokenSeconds();
  static const prometheus::Histogram::BucketBoundaries& TokenLatencySeconds();
  static const prometheus::Histogram::BucketBoundaries& RequestLatencySeconds();
  static const prometheus::Histogram::BucketBoundaries& TokenCounts();
};

class ServerMetrics {
 public:
  // Registers every metric family in `registry` (shared: the registry is also
  // served by the MetricsEndpoint and may hold other components' metrics).
  // `load` is called at each scrape (from the exposer's thread) to fill the
  // engine gauges; it must be thread-safe and cheap (EngineLoop::GetLoad is).
  // It may be empty (no engine): then the load families are absent.
  ServerMetrics(std::shared_ptr<prometheus::Registry> registry, std::function<LoadSnapshot()> load);
  // Stops calling `load` (waiting for a scrape in progress), so what `load`
  // reads may be destroyed right after ServerMetrics, even if the endpoint
  // still serves.
  ~ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // A request refused before reaching the engine (bad field, queue full, draining, ...).
  void RecordRefused(std::string_view rpc, absl::StatusCode code);
  // A request that reached the engine and ended (any reason, any status).
  void RecordFinished(const RequestRecord& record);
  // `num_tokens` output tokens arrived `seconds` after the previous ones of the
  // same request: observes seconds / num_tokens once per token. No-op when
  // num_tokens <= 0; negative `seconds` count as 0.
  void RecordInterTokenLatency(double seconds, int32_t num_tokens);
  // Serving state for a gauge (1 serving, 0 loading/draining). Starts at 0.
  void SetServing(bool serving);

  // What /metrics must serve: the registry and the load collector. Pass to
  // MetricsEndpoint::Start.
  std::vector<std::shared_ptr<prometheus::Collectable>> Collectables() const;

 private:
  void CountRequest(std::string_view rpc, std::string_view finish_reason, absl::StatusCode code);

  const std::shared_ptr<prometheus::Registry> registry_;
  // Shared with the endpoint's exposer, which holds it weakly and may be
  // collecting when we are destroyed; see ~ServerMetrics.
  const std::shared_ptr<LoadCollector> load_collector_;

  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Histogram& time_to_first_token_;
  prometheus::Histogram& inter_token_latency_;
  prometheus::Histogram& time_per_output_token_;
  prometheus::Histogram& e2e_request_latency_;
  prometheus::Histogram& request_queue_time_;
  prometheus::Histogram& request_prompt_tokens_;
  prometheus::Histogram& request_generation_tokens_;
  prometheus::Counter& prompt_tokens_;
  prometheus::Counter& generation_tokens_;
  prometheus::Counter& cached_prompt_tokens_;
  prometheus::Gauge& serving_;
};

}  // namespace muserve::server
