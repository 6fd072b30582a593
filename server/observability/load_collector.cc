#include "server/observability/load_collector.h"

#include <string>
#include <utility>

#include "prometheus/client_metric.h"
#include "prometheus/metric_type.h"

namespace muserve::server {
namespace {

prometheus::MetricFamily Family(std::string name, std::string help, prometheus::MetricType type,
                                double value) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

prometheus::MetricFamily Gauge(std::string name, std::string help, double value) {
  return Family(std::move(name), std::move(help), prometheus::MetricType::Gauge, value);
}

prometheus::MetricFamily Counter(std::string name, std::string help, double value) {
  return Family(std::move(name), std::move(help), prometheus::MetricType::Counter, value);
}

}  // namespace

LoadCollector::LoadCollector(std::function<LoadSnapshot()> load) : load_(std::move(load)) {}

std::vector<prometheus::MetricFamily> LoadCollector::Collect() const {
  // Holding the mutex across load_() is what lets Detach guarantee that no
  // call is in flight once it returns; GetLoad is cheap, so scrapes do not
  // hold it for long.
  absl::MutexLock lock(&mutex_);
  if (!load_) return {};
  return ToFamilies(load_());
}

void LoadCollector::Detach() {
  absl::MutexLock lock(&mutex_);
  load_ = nullptr;
}

std::vector<prometheus::MetricFamily> LoadCollector::ToFamilies(const LoadSnapshot& load) {
  const int32_t used_blocks = load.kv_blocks_total - load.kv_blocks_free;
  const double usage_ratio =
      load.kv_blocks_total > 0 ? static_cast<double>(used_blocks) / load.kv_blocks_total : 0.0;
  constexpr double kSecondsPerNs = 1e-9;
  std::vector<prometheus::MetricFamily> families;
  families.push_back(
      Gauge("muserve_running_requests", "Requests in the engine's running batch.", load.running));
  families.push_back(Gauge("muserve_waiting_requests",
                           "Requests waiting for the engine to schedule them.", load.waiting));
  families.push_back(
      Gauge("muserve_kv_cache_blocks", "KV cache blocks in all.", load.kv_blocks_total));
  families.push_back(Gauge("muserve_kv_cache_used_blocks",
                           "KV cache blocks held by requests (cached blocks nobody holds are "
                           "evictable, and count as free).",
                           used_blocks));
  families.push_back(Gauge("muserve_kv_cache_usage_ratio",
                           "Fraction of KV cache blocks in use, 0 to 1.", usage_ratio));
  families.push_back(Gauge("muserve_prefix_cache_blocks",
                           "KV cache blocks whose contents the prefix cache indexes (held or not).",
                           load.kv_blocks_cached));
  families.push_back(Gauge("muserve_prefix_cache_evictable_blocks",
                           "Cached KV cache blocks nobody holds: reusable until evicted.",
                           load.kv_blocks_evictable));
  families.push_back(Counter("muserve_prefix_cache_queries_tokens_total",
                             "Prompt tokens of new requests looked up in the prefix cache.",
                             static_cast<double>(load.prefix_cache_query_tokens)));
  families.push_back(Counter("muserve_prefix_cache_hits_tokens_total",
                             "Of those, prompt tokens found cached (their KV was reused).",
                             static_cast<double>(load.prefix_cache_hit_tokens)));
  families.push_back(Counter("muserve_preemptions_total",
                             "Requests preempted to free KV cache blocks, since start.",
                             static_cast<double>(load.num_preemptions)));
  families.push_back(Counter("muserve_engine_steps_total", "Engine steps run, since start.",
                             static_cast<double>(load.num_steps)));
  families.push_back(Counter("muserve_engine_step_seconds_total",
                             "Wall time spent in engine steps, since start.",
                             static_cast<double>(load.step_time_ns) * kSecondsPerNs));
  families.push_back(Counter("muserve_engine_forward_seconds_total",
                             "Of the step time, time spent in the backend's forward pass.",
                             static_cast<double>(load.forward_time_ns) * kSecondsPerNs));
  families.push_back(Counter("muserve_engine_sample_seconds_total",
                             "Of the step time, time spent sampling tokens.",
                             static_cast<double>(load.sample_time_ns) * kSecondsPerNs));
  return families;
}

}  // namespace muserve::server
