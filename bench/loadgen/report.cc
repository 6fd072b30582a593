#include "bench/loadgen/report.h"

#include <cmath>
#include <fstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/loadgen/plots.h"

namespace muserve::loadgen {
namespace {

using nlohmann::json;

json Number(double value) {
  if (std::isinf(value)) return "inf";
  return value;
}

// Without samples the statistics are null, not 0 ms.
json SummaryJson(const Summary& s) {
  const auto stat = [&s](double value) -> json {
    if (s.count == 0) return nullptr;
    return value;
  };
  return {{"count", s.count},   {"mean", stat(s.mean)}, {"p50", stat(s.p50)},
          {"p90", stat(s.p90)}, {"p99", stat(s.p99)},   {"max", stat(s.max)}};
}

// A statistic in a table column of `width`: "-" without samples.
std::string Cell(const Summary& s, double Summary::*field, int width) {
  if (s.count == 0) return absl::StrFormat("%*s", width, "-");
  return absl::StrFormat("%*.2f", width, s.*field);
}

json ConfigJson(const BenchConfig& c) {
  json load_values = json::array();
  for (double value : c.load_values) load_values.push_back(Number(value));
  auto optional_ms = [](const auto& value) -> json {
    if (!value) return nullptr;
    return static_cast<double>(value->count());
  };
  return {
      {"targets", c.targets},
      {"server", c.server},
      {"dataset", c.dataset ? json(c.dataset->string()) : json(nullptr)},
      {"input_len", c.input_len.ToString()},
      {"output_len", c.output_len.ToString()},
      {"turns", c.turns},
      {"conversations", c.conversations ? json(*c.conversations) : json(nullptr)},
      {"think_time_ms", c.think_time.count()},
      {"mode", c.mode == LoadSpec::Mode::kConcurrency ? "concurrency" : "request_rate"},
      {"load_values", load_values},
      {"burstiness", c.burstiness},
      {"num_requests", c.num_requests ? json(*c.num_requests) : json(nullptr)},
      {"duration_s",
       c.duration ? json(std::chrono::duration<double>(*c.duration).count()) : json(nullptr)},
      {"warmup_requests", c.warmup_requests},
      {"timeout_ms", optional_ms(c.timeout)},
      {"slo_ttft_ms", c.slo.ttft_ms ? json(*c.slo.ttft_ms) : json(nullptr)},
      {"slo_tpot_ms", c.slo.tpot_ms ? json(*c.slo.tpot_ms) : json(nullptr)},
      {"seed", c.seed},
      {"in_process", c.in_process ? json{{"model", c.in_process->model},
                                         {"threads", c.in_process->threads},
                                         {"max_num_seqs", c.in_process->max_num_seqs},
                                         {"max_queue", c.in_process->max_queue},
                                         {"block_size", c.in_process->block_size}}
                                  : json(nullptr)},
  };
}

json ModelJson(const v1::ModelInfo& m) {
  return {{"model", m.model()},
          {"architecture", m.architecture()},
          {"max_context_length", m.max_context_length()},
          {"vocab_size", m.vocab_size()},
          {"dtype", m.dtype()},
          {"device", m.device()},
          {"tensor_parallel_size", m.tensor_parallel_size()},
          {"max_batch_size", m.max_batch_size()},
          {"max_batched_tokens", m.max_batched_tokens()},
          {"max_queue", m.max_queue()},
          {"kv_block_size", m.kv_block_size()},
          {"kv_num_blocks", m.kv_num_blocks()},
          {"prefix_caching", m.prefix_caching()}};
}

// `targets` names the indices; by_target only with several targets.
json FiguresJson(const RunFigures& f, const std::vector<std::string>& targets) {
  json turns = json::array();
  for (const TurnFigures& t : f.turns) {
    turns.push_back({{"turn", t.turn},
                     {"succeeded", t.succeeded},
                     {"ttft_ms", SummaryJson(t.ttft_ms)},
                     {"mean_prompt_tokens", t.mean_prompt_tokens},
                     {"mean_cached_prompt_tokens", t.mean_cached_prompt_tokens},
                     {"cached_fraction", t.cached_fraction}});
  }
  json figures = {{"requests_sent", f.requests_sent},
                  {"succeeded", f.succeeded},
                  {"failed", f.failed},
                  {"cancelled", f.cancelled},
                  {"errors_by_code", f.errors_by_code},
                  {"duration_s", f.duration_s},
                  {"prompt_tokens", f.prompt_tokens},
                  {"output_tokens", f.output_tokens},
                  {"cached_prompt_tokens", f.cached_prompt_tokens},
                  {"request_throughput", f.request_throughput},
                  {"output_token_throughput", f.output_token_throughput},
                  {"goodput", f.goodput ? json(*f.goodput) : json(nullptr)},
                  {"good_requests", f.good_requests},
                  {"ttft_ms", SummaryJson(f.ttft_ms)},
                  {"itl_ms", SummaryJson(f.itl_ms)},
                  {"tpot_ms", SummaryJson(f.tpot_ms)},
                  {"e2e_ms", SummaryJson(f.e2e_ms)},
                  {"send_lag_ms", SummaryJson(f.send_lag_ms)},
                  {"turns", turns}};
  if (targets.size() > 1) {
    json by_target = json::array();
    for (const TargetFigures& t : f.by_target) {
      by_target.push_back({{"target", targets.at(t.target)},
                           {"requests_sent", t.requests_sent},
                           {"succeeded", t.succeeded},
                           {"failed", t.failed},
                           {"ttft_ms", SummaryJson(t.ttft_ms)}});
    }
    figures["by_target"] = by_target;
  }
  return figures;
}

std::string LatencyRow(const char* name, const Summary& s) {
  if (s.count == 0) return absl::StrFormat("  %-6s %10s\n", name, "-");
  return absl::StrFormat("  %-6s %10.2f %10.2f %10.2f %10.2f %10.2f %8d\n", name, s.mean, s.p50,
                         s.p90, s.p99, s.max, s.count);
}

std::string SloText(const Slo& slo) {
  std::string text;
  if (slo.ttft_ms) absl::StrAppend(&text, "TTFT <= ", *slo.ttft_ms, " ms");
  if (slo.tpot_ms)
    absl::StrAppend(&text, text.empty() ? "" : ", ", "TPOT <= ", *slo.tpot_ms, " ms");
  return text;
}

std::string PointReport(const PointResult& point, const Slo& slo,
                        const std::vector<std::string>& targets) {
  const RunFigures& f = point.figures;
  std::string out = absl::StrFormat(
      "== %s: %d requests (%d succeeded, %d failed%s) in %.2f s ==\n", point.load.Label(),
      f.requests_sent, f.succeeded, f.failed,
      f.cancelled > 0 ? absl::StrCat(", ", f.cancelled, " cancelled at the end") : std::string(),
      f.duration_s);
  absl::StrAppendFormat(&out, "  requests/s %.3f, output tokens/s %.1f", f.request_throughput,
                        f.output_token_throughput);
  if (f.goodput) {
    absl::StrAppendFormat(&out, ", goodput %.3f requests/s (%d of %d meet %s)", *f.goodput,
                          f.good_requests, f.succeeded, SloText(slo));
  }
  absl::StrAppendFormat(&out, "\n  prompt tokens %d (%d cached), output tokens %d\n",
                        f.prompt_tokens, f.cached_prompt_tokens, f.output_tokens);
  absl::StrAppendFormat(&out, "  %-6s %10s %10s %10s %10s %10s %8s\n", "ms", "mean", "p50", "p90",
                        "p99", "max", "samples");
  out += LatencyRow("TTFT", f.ttft_ms);
  out += LatencyRow("ITL", f.itl_ms);
  out += LatencyRow("TPOT", f.tpot_ms);
  out += LatencyRow("E2E", f.e2e_ms);
  if (f.send_lag_ms.count > 0) {
    absl::StrAppendFormat(&out,
                          "  send lag (client behind schedule): p50 %.2f, p99 %.2f, max %.2f ms\n",
                          f.send_lag_ms.p50, f.send_lag_ms.p99, f.send_lag_ms.max);
  }
  if (!f.errors_by_code.empty()) {
    out += "  errors:";
    for (const auto& [code, count] : f.errors_by_code) absl::StrAppend(&out, " ", code, " ", count);
    out += "\n";
  }
  if (targets.size() > 1) {
    absl::StrAppendFormat(&out, "  %-24s %9s %9s %7s %10s %10s\n", "target", "requests",
                          "succeeded", "failed", "TTFT p50", "TTFT p99");
    for (const TargetFigures& t : f.by_target) {
      absl::StrAppendFormat(&out, "  %-24s %9d %9d %7d %s %s\n", targets.at(t.target),
                            t.requests_sent, t.succeeded, t.failed,
                            Cell(t.ttft_ms, &Summary::p50, 10), Cell(t.ttft_ms, &Summary::p99, 10));
    }
  }
  if (f.turns.size() > 1) {
    absl::StrAppendFormat(&out, "  %-5s %9s %10s %10s %12s %12s %8s\n", "turn", "requests",
                          "TTFT p50", "TTFT p90", "prompt tok", "cached tok", "cached");
    for (const TurnFigures& t : f.turns) {
      absl::StrAppendFormat(&out, "  %-5d %9d %s %s %12.1f %12.1f %7.1f%%\n", t.turn + 1,
                            t.succeeded, Cell(t.ttft_ms, &Summary::p50, 10),
                            Cell(t.ttft_ms, &Summary::p90, 10), t.mean_prompt_tokens,
                            t.mean_cached_prompt_tokens, 100 * t.cached_fraction);
    }
  }
  return out;
}

}  // namespace

std::string FormatReport(const BenchResult& result) {
  const v1::ModelInfo& m = result.model_info;
  std::string out =
      absl::StrFormat("muserve bench: %s, model %s (%s, %s) on %s\n", result.config.server,
                      m.model(), m.dtype(), m.device(), absl::StrJoin(result.config.targets, ", "));
  absl::StrAppendFormat(&out, "workload: %s\n\n", result.workload);
  for (const PointResult& point : result.points) {
    out += PointReport(point, result.config.slo, result.config.targets);
    out += "\n";
  }
  if (result.points.size() > 1) {
    absl::StrAppendFormat(&out, "%-18s %9s %10s %10s %10s %10s %10s %7s\n", "sweep", "req/s",
                          "out tok/s", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "failed");
    for (const PointResult& point : result.points) {
      const RunFigures& f = point.figures;
      absl::StrAppendFormat(&out, "%-18s %9.3f %10.1f %s %s %s %s %7d\n", point.load.Label(),
                            f.request_throughput, f.output_token_throughput,
                            Cell(f.ttft_ms, &Summary::p50, 10), Cell(f.ttft_ms, &Summary::p99, 10),
                            Cell(f.tpot_ms, &Summary::p50, 10), Cell(f.tpot_ms, &Summary::p99, 10),
                            f.failed);
    }
  }
  return out;
}

json ResultJson(const BenchResult& result) {
  json points = json::array();
  for (const PointResult& point : result.points) {
    points.push_back({{"load",
                       {{"mode", point.load.mode == LoadSpec::Mode::kConcurrency ? "concurrency"
                                                                                 : "request_rate"},
                        {"value", Number(point.load.value)},
                        {"label", point.load.Label()}}},
                      {"figures", FiguresJson(point.figures, result.config.targets)}});
  }
  return {{"format", "muserve-bench/1"},         {"started_at", result.started_at},
          {"config", ConfigJson(result.config)}, {"model", ModelJson(result.model_info)},
          {"workload", result.workload},         {"points", points},
          {"interrupted", result.interrupted}};
}

absl::StatusOr<std::vector<std::filesystem::path>> WriteResultFiles(
    const BenchResult& result, const std::filesystem::path& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::PermissionDeniedError(
        absl::StrCat("--result-dir: cannot create ", dir.string(), ": ", error.message()));
  }
  std::vector<std::pair<std::filesystem::path, std::string>> files;
  files.emplace_back(dir / "bench.json", ResultJson(result).dump(2) + "\n");
  for (auto& [name, svg] : RenderPlots(result)) files.emplace_back(dir / name, std::move(svg));
  std::vector<std::filesystem::path> written;
  for (const auto& [path, text] : files) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) return absl::DataLossError(absl::StrCat("cannot write ", path.string()));
    written.push_back(path);
  }
  return written;
}

}  // namespace muserve::loadgen
