#include "bench/loadgen/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/status/status.h"
#include "engine/api/check.h"

namespace muserve::loadgen {

double Percentile(const std::vector<double>& sorted, double q) {
  MUSERVE_CHECK(!sorted.empty());
  const double rank = q / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lower = static_cast<size_t>(std::floor(rank));
  const size_t upper = std::min(lower + 1, sorted.size() - 1);
  const double fraction = rank - static_cast<double>(lower);
  return sorted[lower] + fraction * (sorted[upper] - sorted[lower]);
}

Summary Summarize(std::vector<double> values) {
  Summary summary;
  if (values.empty()) return summary;
  std::sort(values.begin(), values.end());
  summary.count = static_cast<int64_t>(values.size());
  summary.mean = std::accumulate(values.begin(), values.end(), 0.0) / values.size();
  summary.p50 = Percentile(values, 50);
  summary.p90 = Percentile(values, 90);
  summary.p99 = Percentile(values, 99);
  summary.max = values.back();
  return summary;
}

bool MeetsSlo(const RequestLatencies& latencies, const Slo& slo) {
  if (slo.ttft_ms && (!latencies.ttft_ms || *latencies.ttft_ms > *slo.ttft_ms)) return false;
  if (slo.tpot_ms && latencies.tpot_ms && *latencies.tpot_ms > *slo.tpot_ms) return false;
  return true;
}

RunFigures ComputeFigures(const std::vector<RequestRecord>& records, double duration_s,
                          const Slo& slo) {
  RunFigures figures;
  figures.duration_s = duration_s;
  std::vector<double> ttft, itl, tpot, e2e, send_lag;
  struct TurnAccumulator {
    std::vector<double> ttft;
    int64_t succeeded = 0;
    int64_t prompt = 0;
    int64_t cached = 0;
  };
  std::map<int32_t, TurnAccumulator> turns;
  std::map<int32_t, std::pair<TargetFigures, std::vector<double>>> targets;  // with TTFTs
  for (const RequestRecord& record : records) {
    ++figures.requests_sent;
    send_lag.push_back(static_cast<double>(record.start_ns - record.scheduled_ns) / 1e6);
    auto& [target, target_ttft] = targets[record.target];
    target.target = record.target;
    ++target.requests_sent;
    if (record.cancelled) {
      ++figures.cancelled;
      continue;
    }
    if (!record.succeeded()) {
      ++figures.failed;
      ++target.failed;
      const auto code = record.status_code == 0 ? absl::StatusCode::kInternal
                                                : static_cast<absl::StatusCode>(record.status_code);
      ++figures.errors_by_code[absl::StatusCodeToString(code)];
      continue;
    }
    ++figures.succeeded;
    ++target.succeeded;
    const RequestLatencies latencies = Measure(record);
    if (latencies.ttft_ms) target_ttft.push_back(*latencies.ttft_ms);
    figures.output_tokens += latencies.output_tokens;
    figures.prompt_tokens += record.prompt_tokens;
    figures.cached_prompt_tokens += record.cached_prompt_tokens;
    if (latencies.ttft_ms) ttft.push_back(*latencies.ttft_ms);
    if (latencies.tpot_ms) tpot.push_back(*latencies.tpot_ms);
    itl.insert(itl.end(), latencies.itl_ms.begin(), latencies.itl_ms.end());
    e2e.push_back(latencies.e2e_ms);
    if (MeetsSlo(latencies, slo)) ++figures.good_requests;
    TurnAccumulator& turn = turns[record.turn];
    if (latencies.ttft_ms) turn.ttft.push_back(*latencies.ttft_ms);
    ++turn.succeeded;
    turn.prompt += record.prompt_tokens;
    turn.cached += record.cached_prompt_tokens;
  }
  if (duration_s > 0) {
    figures.request_throughput = figures.succeeded / duration_s;
    figures.output_token_throughput = figures.output_tokens / duration_s;
    if (slo.ttft_ms || slo.tpot_ms) figures.goodput = figures.good_requests / duration_s;
  }
  figures.ttft_ms = Summarize(std::move(ttft));
  figures.itl_ms = Summarize(std::move(itl));
  figures.tpot_ms = Summarize(std::move(tpot));
  figures.e2e_ms = Summarize(std::move(e2e));
  figures.send_lag_ms = Summarize(std::move(send_lag));
  for (auto& [index, target] : targets) {
    target.first.ttft_ms = Summarize(std::move(target.second));
    figures.by_target.push_back(target.first);
  }
  for (auto& [index, turn] : turns) {
    TurnFigures out;
    out.turn = index;
    out.succeeded = turn.succeeded;
    out.ttft_ms = Summarize(std::move(turn.ttft));
    if (out.succeeded > 0) {
      out.mean_prompt_tokens = static_cast<double>(turn.prompt) / out.succeeded;
      out.mean_cached_prompt_tokens = static_cast<double>(turn.cached) / out.succeeded;
    }
    if (turn.prompt > 0) out.cached_fraction = static_cast<double>(turn.cached) / turn.prompt;
    figures.turns.push_back(out);
  }
  return figures;
}

}  // namespace muserve::loadgen
