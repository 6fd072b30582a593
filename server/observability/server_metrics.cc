#include "server/observability/server_metrics.h"

#include <algorithm>
#include <string>
#include <utility>

#include "server/observability/load_collector.h"

namespace muserve::server {
namespace {

using Buckets = prometheus::Histogram::BucketBoundaries;

prometheus::Histogram& AddHistogram(prometheus::Registry& registry, const std::string& name,
                                    const std::string& help, const Buckets& buckets) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry).Add({}, buckets);
}

prometheus::Counter& AddCounter(prometheus::Registry& registry, const std::string& name,
                                const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

std::string CodeName(absl::StatusCode code) { return absl::StatusCodeToString(code); }

}  // namespace

const Buckets& MetricBuckets::TimeToFirstTokenSeconds() {
  static const Buckets kBuckets = {0.001, 0.005, 0.01, 0.02,  0.04,  0.06,  0.08, 0.1,
                                   0.25,  0.5,   0.75, 1.0,   2.5,   5.0,   7.5,  10.0,
                                   20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
  return kBuckets;
}

const Buckets& MetricBuckets::TokenLatencySeconds() {
  static const Buckets kBuckets = {0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03,
                                   0.04,  0.05,   0.075, 0.1,    0.15, 0.2,   0.3,  0.4,   0.5,
                                   0.75,  1.0,    2.5,   5.0,    10.0, 20.0,  40.0, 80.0};
  return kBuckets;
}

const Buckets& MetricBuckets::RequestLatencySeconds() {
  static const Buckets kBuckets = {0.01, 0.025, 0.05,  0.1,   0.3,   0.5,    0.8,   1.0,  1.5,
                                   2.0,  2.5,   5.0,   10.0,  15.0,  20.0,   30.0,  40.0, 50.0,
                                   60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
  return kBuckets;
}

const Buckets& MetricBuckets::TokenCounts() {
  // Powers of two: context lengths are usually one, so a full context lands
  // exactly on a boundary.
  static const Buckets kBuckets = {1,   2,   4,    8,    16,   32,   64,    128,
                                   256, 512, 1024, 2048, 4096, 8192, 16384, 32768};
  return kBuckets;
}

ServerMetrics::ServerMetrics(std::shared_ptr<prometheus::Registry> registry,
                             std::function<LoadSnapshot()> load)
    : registry_(std::move(registry)),
      load_collector_(std::make_shared<LoadCollector>(std::move(load))),
      requests_(prometheus::BuildCounter()
                    .Name("muserve_requests_total")
                    .Help("Requests ended, by RPC, finish reason (none: refused or never run) "
                          "and status code.")
                    .Register(*registry_)),
      time_to_first_token_(AddHistogram(*registry_, "muserve_time_to_first_token_seconds",
                                        "Time from arrival to the first output token.",
                                        MetricBuckets::TimeToFirstTokenSeconds())),
      inter_token_latency_(AddHistogram(*registry_, "muserve_inter_token_latency_seconds",
                                        "Time between consecutive output tokens.",
                                        MetricBuckets::TokenLatencySeconds())),
      time_per_output_token_(
          AddHistogram(*registry_, "muserve_time_per_output_token_seconds",
                       "Per request, (e2e - time to first token) / (output tokens - 1).",
                       MetricBuckets::TokenLatencySeconds())),
      e2e_request_latency_(AddHistogram(*registry_, "muserve_e2e_request_latency_seconds",
                                        "Time from arrival to the end of the request.",
                                        MetricBuckets::RequestLatencySeconds())),
      request_queue_time_(AddHistogram(*registry_, "muserve_request_queue_time_seconds",
                                       "Time from arrival to first being scheduled.",
                                       MetricBuckets::RequestLatencySeconds())),
      request_prompt_tokens_(AddHistogram(*registry_, "muserve_request_prompt_tokens",
                                          "Prompt tokens per request.",
                                          MetricBuckets::TokenCounts())),
      request_generation_tokens_(AddHistogram(*registry_, "muserve_request_generation_tokens",
                                              "Output tokens per request.",
                                              MetricBuckets::TokenCounts())),
      prompt_tokens_(AddCounter(*registry_, "muserve_prompt_tokens_total",
                                "Prompt tokens of finished requests.")),
      generation_tokens_(AddCounter(*registry_, "muserve_generation_tokens_total",
                                    "Output tokens of finished requests.")),
      cached_prompt_tokens_(AddCounter(*registry_, "muserve_cached_prompt_tokens_total",
                                       "Prompt tokens served from the prefix cache.")),
      serving_(prometheus::BuildGauge()
                   .Name("muserve_serving")
                   .Help("1 while the server accepts requests, 0 while loading or draining.")
                   .Register(*registry_)
                   .Add({})) {}

ServerMetrics::~ServerMetrics() { load_collector_->Detach(); }

void ServerMetrics::CountRequest(std::string_view rpc, std::string_view finish_reason,
                                 absl::StatusCode code) {
  requests_
      .Add({{"rpc", std::string(rpc)},
            {"finish_reason", finish_reason.empty() ? "none" : std::string(finish_reason)},
            {"code", CodeName(code)}})
      .Increment();
}

void ServerMetrics::RecordRefused(std::string_view rpc, absl::StatusCode code) {
  CountRequest(rpc, "", code);
}

void ServerMetrics::RecordFinished(const RequestRecord& record) {
  CountRequest(record.rpc, record.finish_reason, record.code);
  if (record.queue_seconds.has_value()) request_queue_time_.Observe(*record.queue_seconds);
  if (record.time_to_first_token_seconds.has_value()) {
    const double ttft = *record.time_to_first_token_seconds;
    time_to_first_token_.Observe(ttft);
    if (record.completion_tokens >= 2) {
      time_per_output_token_.Observe(std::max(0.0, record.e2e_seconds - ttft) /
                                     (record.completion_tokens - 1));
    }
  }
  e2e_request_latency_.Observe(record.e2e_seconds);
  request_prompt_tokens_.Observe(record.prompt_tokens);
  request_generation_tokens_.Observe(record.completion_tokens);
  prompt_tokens_.Increment(std::max(0, record.prompt_tokens));
  generation_tokens_.Increment(std::max(0, record.completion_tokens));
  cached_prompt_tokens_.Increment(std::max(0, record.cached_prompt_tokens));
}

void ServerMetrics::RecordInterTokenLatency(double seconds, int32_t num_tokens) {
  if (num_tokens <= 0) return;
  seconds = std::max(0.0, seconds);
  const double per_token = seconds / num_tokens;
  // One locked update for all `num_tokens` observations: they share a bucket.
  // Bucket i holds values <= boundary i (the last one is +Inf), as Observe does.
  const Buckets& boundaries = MetricBuckets::TokenLatencySeconds();
  const auto bucket = static_cast<size_t>(
      std::lower_bound(boundaries.begin(), boundaries.end(), per_token) - boundaries.begin());
  std::vector<double> increments(boundaries.size() + 1, 0.0);
  increments[bucket] = num_tokens;
  inter_token_latency_.ObserveMultiple(increments, seconds);
}

void ServerMetrics::SetServing(bool serving) { serving_.Set(serving ? 1 : 0); }

std::vector<std::shared_ptr<prometheus::Collectable>> ServerMetrics::Collectables() const {
  return {registry_, load_collector_};
}

}  // namespace muserve::server
