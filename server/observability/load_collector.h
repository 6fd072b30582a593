// LoadCollector: a prometheus::Collectable that reads the engine's
// LoadSnapshot at each scrape and renders it as metric families, so the
// engine's gauges and counters are never stale and cost nothing between
// scrapes. Registered next to the Registry on the same /metrics endpoint
// (see MetricsEndpoint); its family names never collide with the registry's.
//
// Families (no labels):
//   muserve_running_requests        gauge    requests in the running batch
//   muserve_waiting_requests        gauge    requests queued for the engine
//   muserve_kv_cache_blocks         gauge    KV cache blocks in all
//   muserve_kv_cache_used_blocks    gauge    blocks not free (total - free)
//   muserve_kv_cache_usage_ratio    gauge    used / total in [0, 1]; 0 when total is 0
//   muserve_preemptions_total       counter  preemptions since start
//   muserve_engine_steps_total      counter  engine steps since start
//   muserve_engine_step_seconds_total     counter  wall time in steps
//   muserve_engine_forward_seconds_total  counter  of which Backend::Forward
//   muserve_engine_sample_seconds_total   counter  of which sampling
//
// Thread safety: Collect runs on the exposer's threads; Detach on any thread.
// After Detach returns, `load` is never called again (Collect returns no
// families), so the owner may then destroy what `load` reads.
#pragma once

#include <functional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "scheduler/engine_loop.h"

namespace muserve::server {

class LoadCollector final : public prometheus::Collectable {
 public:
  // `load` may be empty: then no families are collected.
  explicit LoadCollector(std::function<LoadSnapshot()> load);

  std::vector<prometheus::MetricFamily> Collect() const override;

  // Stops calling `load`; waits for a Collect in progress to finish.
  void Detach();

  // The families for one snapshot; exposed for tests.
  static std::vector<prometheus::MetricFamily> ToFamilies(const LoadSnapshot& load);

 private:
  mutable absl::Mutex mutex_;
  std::function<LoadSnapshot()> load_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace muserve::server
