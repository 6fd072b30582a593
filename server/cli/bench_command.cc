// `muserve bench`: the load generator. Drives a running server (--target,
// several to spread load over replicas) or a server it starts in-process on
// the demo model, over the gRPC API; prints a table and writes a JSON result
// and plots. `muserve bench compare A.json B.json` prints two runs' ratios.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "bench/loadgen/compare.h"
#include "bench/loadgen/report.h"
#include "bench/loadgen/runner.h"
#include "engine/api/absl_string_view.h"
#include "server/cli/command.h"
#include "server/cli/demo_model.h"
#include "server/cli/shared_flags.h"
#include "server/grpc/inference_server.h"
#include "server/observability/logging.h"

ABSL_FLAG(bool, in_process, false, "bench: start a server in-process instead of using --target");
ABSL_FLAG(std::string, dataset, "", "bench: JSONL (or JSON array) of prompts or conversations");
ABSL_FLAG(std::string, input_len, "128",
          "bench: prompt tokens per turn (N, uniform:A:B, normal:M:S)");
ABSL_FLAG(std::string, output_len, "128",
          "bench: output tokens per turn (N, uniform:A:B, normal:M:S)");
ABSL_FLAG(int32_t, turns, 1, "bench: turns per synthetic conversation");
ABSL_FLAG(std::optional<int64_t>, conversations, std::nullopt,
          "bench: synthetic conversations to generate (default: enough for --num-requests, "
          "at most 10000)");
ABSL_FLAG(int32_t, think_time_ms, 0, "bench: pause between a reply and the next turn");
ABSL_FLAG(std::string, concurrency, "",
          "bench: closed loop, conversations in flight (a,b,c sweeps)");
ABSL_FLAG(std::string, request_rate, "",
          "bench: open loop, new conversations/s (a,b,c sweeps; inf)");
ABSL_FLAG(double, burstiness, 1.0, "bench: gamma shape of inter-arrival times (1 = Poisson)");
ABSL_FLAG(int64_t, num_requests, 100,
          "bench: requests per load point (with --duration: unbounded unless given)");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(),
          "bench: time bound per load point (0: none)");
ABSL_FLAG(int64_t, warmup_requests, 2, "bench: requests before measuring, excluded from figures");
ABSL_FLAG(std::optional<double>, slo_ttft_ms, std::nullopt, "bench: TTFT objective for goodput");
ABSL_FLAG(std::optional<double>, slo_tpot_ms, std::nullopt, "bench: TPOT objective for goodput");
ABSL_FLAG(std::string, result_dir, "", "bench: directory for bench.json and the plots");

// The in-process server's settings (defined with `muserve serve`).
ABSL_DECLARE_FLAG(int32_t, max_num_seqs);
ABSL_DECLARE_FLAG(int32_t, max_queue);

namespace muserve::cli {
namespace {

// Set by SIGINT: the bench stops and reports what it measured.
std::atomic<bool> stop_requested = false;

extern "C" void RequestStop(int) { stop_requested.store(true); }

// SA_RESETHAND: a second Ctrl-C gets the default action, ending the process.
void InstallStopHandler() {
  struct sigaction action {};
  action.sa_handler = RequestStop;
  action.sa_flags = SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
}

constexpr std::string_view kUsage = R"(Usage: muserve bench [flags]
       muserve bench compare A.json B.json

Load-tests a server over the gRPC API and reports, per load point: time to
first token (TTFT), inter-token latency (ITL), time per output token (TPOT:
last token's arrival - first token's, over output tokens - 1) and end-to-end latency (mean, p50, p90, p99, max); requests/s and output
tokens/s; goodput under --slo-*; errors by gRPC status code; and, for
conversations, TTFT and cached prompt tokens per turn. Times are taken at the
client with a monotonic clock as each response arrives. Requests are greedy
with ignore_eos, so each reply has exactly its max_tokens.

Server (one of):
  --target HOST:PORT[,...]      running servers (default localhost:50051); with
                                several, conversations go round-robin over them
  --in-process                  start a server in this process (127.0.0.1, a free port):
    --model DIR                 model directory (default: the demo model)
    --threads N                 CPU threads of the forward pass (default 2)
    --max-num-seqs N            sequences in one engine step (default 64)
    --max-queue N               waiting requests before RESOURCE_EXHAUSTED (default 1024)
    --block-size N              KV cache block size (default 16)

Workload (synthetic unless --dataset):
  --input-len DIST              prompt tokens per turn (default 128)
  --output-len DIST             output tokens per turn (default 128)
                                DIST: N | fixed:N | uniform:MIN:MAX | normal:MEAN:STDDEV
  --turns M                     turns per conversation (default 1); each turn sends
                                the whole history (token ids) plus --input-len new tokens
  --conversations N             distinct conversations (default: enough for --num-requests,
                                at most 10000; conversation k plays number k modulo N)
  --think-time-ms MS            pause between a reply and the next turn (default 0)
  --dataset FILE                JSON Lines (or one JSON array) of {"prompt": ...,
                                "max_tokens": N}, {"messages": [{"role", "content"}...]}
                                or ShareGPT {"conversations": [{"from", "value"}...]};
                                conversations go through Chat, a recorded reply's
                                length (server tokenizer) is the turn's max_tokens
  --seed N                      workload seed (default 0)

Load (one of; a comma-separated list runs a sweep, one phase per value):
  --concurrency C[,C...]        closed loop: C conversations in flight (default 1)
  --request-rate R[,R...]       open loop: new conversations per second, "inf" for all
                                at once; arrivals are Poisson unless --burstiness
  --burstiness B                gamma shape of inter-arrival times: < 1 burstier (default 1)
  --num-requests N              requests per load point (default 100; with --duration,
                                none: the duration alone bounds the point)
  --duration DURATION           stop starting requests after this, e.g. 60s (default: none)
  --warmup-requests N           sent first at the first load, excluded (default 2)
  --timeout-ms N                deadline of each request (default 600000): a server
                                that stops answering fails requests DEADLINE_EXCEEDED
  With --duration, requests still in flight at its end get a grace period as long
  as --duration (at most 30 s), then are cancelled and counted as cancelled, apart
  from failures. Ctrl-C ends the running point the same way at once and keeps the
  points measured; a second Ctrl-C kills the process.
  A closed loop backs off (10 ms doubling to 1 s) after each UNAVAILABLE in a row.

Exit status: 0; 1 when a load point had no successful request (a dead or
refusing target; the point and targets are named on stderr, the report and
bench.json are still written) or on an error; 2 on bad flags.

Figures and output:
  --slo-ttft-ms MS              goodput: requests/s with TTFT <= MS ...
  --slo-tpot-ms MS              ... and TPOT <= MS (those set)
  --result-dir DIR              write DIR/bench.json after every load point (every figure and the whole
                                configuration) and SVG plots: ttft_vs_throughput.svg,
                                tpot_vs_throughput.svg, e2e_vs_throughput.svg and, for
                                conversations, ttft_per_turn.svg
A progress bar is drawn on stderr when it is a terminal and $CI is not set.

compare A.json B.json           prints every figure of two runs with the ratio B/A,
                                load point by load point, and the settings that differ
)";

int Usage(std::string_view message) {
  std::fprintf(stderr, "muserve bench: %.*s\n", static_cast<int>(message.size()), message.data());
  return 2;
}

// Whether `flag` holds other than its default (a flag given its default
// value explicitly is not told apart, which is harmless for the checks here).
bool Changed(std::string_view flag) {
  const absl::CommandLineFlag* found = absl::FindCommandLineFlag(AsAbsl(flag));
  return found != nullptr && found->CurrentValue() != found->DefaultValue();
}

// "1,4,16" -> {1, 4, 16}; "inf" allowed where `allow_inf`.
absl::StatusOr<std::vector<double>> ParseList(std::string_view flag, const std::string& text,
                                              bool allow_inf) {
  std::vector<double> values;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    double value = 0;
    if (allow_inf && (part == "inf" || part == "infinity")) {
      value = INFINITY;
    } else if (!absl::SimpleAtod(part, &value) || !std::isfinite(value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", AsAbsl(flag), ": '", part, "' is not a number"));
    }
    values.push_back(value);
  }
  return values;
}

absl::StatusOr<loadgen::BenchConfig> ConfigFromFlags() {
  loadgen::BenchConfig config;
  auto input = loadgen::LengthDistribution::Parse("input-len", absl::GetFlag(FLAGS_input_len));
  if (!input.ok()) return input.status();
  auto output = loadgen::LengthDistribution::Parse("output-len", absl::GetFlag(FLAGS_output_len));
  if (!output.ok()) return output.status();
  config.input_len = *input;
  config.output_len = *output;
  if (const std::string dataset = absl::GetFlag(FLAGS_dataset); !dataset.empty()) {
    config.dataset = dataset;
  }
  config.turns = absl::GetFlag(FLAGS_turns);
  config.conversations = absl::GetFlag(FLAGS_conversations);
  config.think_time = std::chrono::milliseconds(absl::GetFlag(FLAGS_think_time_ms));
  const std::string concurrency = absl::GetFlag(FLAGS_concurrency);
  const std::string rate = absl::GetFlag(FLAGS_request_rate);
  if (!concurrency.empty() && !rate.empty()) {
    return absl::InvalidArgumentError("give --concurrency or --request-rate, not both");
  }
  if (!rate.empty()) {
    config.mode = loadgen::LoadSpec::Mode::kRequestRate;
    auto values = ParseList("request-rate", rate, /*allow_inf=*/true);
    if (!values.ok()) return values.status();
    config.load_values = *values;
  } else {
    auto values = ParseList("concurrency", concurrency.empty() ? "1" : concurrency, false);
    if (!values.ok()) return values.status();
    config.load_values = *values;
  }
  config.burstiness = absl::GetFlag(FLAGS_burstiness);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  if (duration < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--duration must not be negative");
  }
  if (duration > absl::ZeroDuration()) config.duration = absl::ToChronoNanoseconds(duration);
  // --duration alone bounds a point by time; --num-requests given too bounds
  // it by both.
  if (Changed("num_requests") || !config.duration) {
    config.num_requests = absl::GetFlag(FLAGS_num_requests);
  } else {
    config.num_requests = std::nullopt;
  }
  config.warmup_requests = absl::GetFlag(FLAGS_warmup_requests);
  if (auto timeout = absl::GetFlag(FLAGS_timeout_ms)) {
    config.timeout = std::chrono::milliseconds(*timeout);
  }
  config.slo.ttft_ms = absl::GetFlag(FLAGS_slo_ttft_ms);
  config.slo.tpot_ms = absl::GetFlag(FLAGS_slo_tpot_ms);
  config.seed = absl::GetFlag(FLAGS_seed).value_or(0);
  config.progress_bar = isatty(STDERR_FILENO) != 0 && std::getenv("CI") == nullptr;
  return config;
}

// The in-process server, serving once this returns; `model_dir` gets the
// model directory it loaded.
absl::StatusOr<std::unique_ptr<server::InferenceServer>> StartInProcessServer(
    std::string* model_dir) {
  server::ServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.metrics_port = -1;
  server::ServingModelOptions& model = options.model;
  model.num_threads = absl::GetFlag(FLAGS_threads);
  model.block_size = absl::GetFlag(FLAGS_block_size);
  model.loop.max_num_seqs = absl::GetFlag(FLAGS_max_num_seqs);
  model.loop.max_queue = absl::GetFlag(FLAGS_max_queue);
  model.model_dir = absl::GetFlag(FLAGS_model);
  if (model.model_dir.empty()) {
    auto demo = EnsureDemoModel();
    if (!demo.ok()) return demo.status();
    model.model_dir = *demo;
  }
  *model_dir = model.model_dir.string();
  auto server = server::InferenceServer::Start(options);
  if (!server.ok()) return server.status();
  if (absl::Status loaded = (*server)->LoadModel(); !loaded.ok()) return loaded;
  return server;
}

int RunCompare(const std::vector<std::string_view>& args) {
  if (args.size() != 3) return Usage("compare takes two result files: compare A.json B.json");
  auto text = loadgen::CompareResultFiles(std::string(args[1]), std::string(args[2]));
  if (!text.ok()) {
    std::fprintf(stderr, "muserve bench compare: %s\n",
                 std::string(text.status().message()).c_str());
    return 1;
  }
  std::fputs(text->c_str(), stdout);
  return 0;
}

int RunBench(const std::vector<std::string_view>& args) {
  if (!args.empty() && args[0] == "compare") return RunCompare(args);
  if (!args.empty()) return Usage(absl::StrCat("unexpected argument '", AsAbsl(args[0]), "'"));
  auto config = ConfigFromFlags();
  if (!config.ok()) return Usage(std::string(config.status().message()));

  std::unique_ptr<server::InferenceServer> in_process;
  if (!absl::GetFlag(FLAGS_in_process)) {
    for (const char* flag : {"model", "threads", "max_num_seqs", "max_queue", "block_size"}) {
      if (Changed(flag)) {
        std::string dashed = flag;
        std::replace(dashed.begin(), dashed.end(), '_', '-');
        return Usage(
            absl::StrCat("--", dashed, " sets up the in-process server: add --in-process"));
      }
    }
    for (absl::string_view target : absl::StrSplit(absl::GetFlag(FLAGS_target), ',')) {
      if (target.empty()) return Usage("--target: empty entry");
      config->targets.emplace_back(target);
    }
    config->server = "running server";
  } else {
    if (Changed("target")) return Usage("--target and --in-process exclude each other");
    // Only errors: the server's per-request logs would interleave with the report.
    if (absl::Status logging = server::ConfigureLogging("error", "text"); !logging.ok()) {
      return Usage(std::string(logging.message()));
    }
    std::string model_dir;
    auto started = StartInProcessServer(&model_dir);
    if (!started.ok()) {
      std::fprintf(stderr, "muserve bench: cannot start the in-process server: %s\n",
                   std::string(started.status().message()).c_str());
      return 1;
    }
    in_process = std::move(*started);
    config->targets = {absl::StrCat("127.0.0.1:", in_process->port())};
    config->server = "in-process server";
    config->in_process =
        loadgen::BenchConfig::InProcessServer{.model = model_dir,
                                              .threads = absl::GetFlag(FLAGS_threads),
                                              .max_num_seqs = absl::GetFlag(FLAGS_max_num_seqs),
                                              .max_queue = absl::GetFlag(FLAGS_max_queue),
                                              .block_size = absl::GetFlag(FLAGS_block_size)};
  }
  if (absl::Status valid = config->Validate(); !valid.ok())
    return Usage(std::string(valid.message()));

  const std::string dir = absl::GetFlag(FLAGS_result_dir);
  absl::Status write_status;
  std::vector<std::filesystem::path> written;
  // After every point: a later hang or failure keeps the points measured.
  const auto write = [&](const loadgen::BenchResult& partial) {
    if (dir.empty() || !write_status.ok()) return;
    auto files = loadgen::WriteResultFiles(partial, dir);
    if (files.ok()) {
      written = std::move(*files);
    } else {
      write_status = files.status();
    }
  };
  InstallStopHandler();
  auto result = loadgen::RunBench(*config, write, &stop_requested);
  signal(SIGINT, SIG_DFL);
  if (!result.ok()) {
    std::fprintf(stderr, "muserve bench: %s\n", std::string(result.status().message()).c_str());
    return 1;
  }
  if (stop_requested)
    std::fputs("muserve bench: interrupted; reporting the points measured\n", stderr);
  std::fputs(loadgen::FormatReport(*result).c_str(), stdout);
  write(*result);  // the whole result even when no point ended (interrupted in the warm-up)
  if (!write_status.ok()) {
    std::fprintf(stderr, "muserve bench: %s\n", std::string(write_status.message()).c_str());
    return 1;
  }
  if (!written.empty()) {
    std::fputs("\nwrote:", stdout);
    for (const auto& path : written) std::fprintf(stdout, " %s", path.c_str());
    std::fputs("\n", stdout);
  }
  std::fflush(stdout);
  if (in_process) in_process->Shutdown();
  // A point where nothing succeeded measured nothing: a dead or refusing
  // target must not pass for a benchmark in scripts.
  int exit_code = 0;
  for (const loadgen::PointResult& point : result->points) {
    if (point.figures.succeeded > 0) continue;
    std::string errors;
    for (const auto& [code, count] : point.figures.errors_by_code) {
      absl::StrAppend(&errors, " ", code, " ", count);
    }
    if (point.figures.cancelled > 0)
      absl::StrAppend(&errors, " cancelled ", point.figures.cancelled);
    std::fprintf(stderr, "muserve bench: %s: no request succeeded on %s (%d sent;%s)\n",
                 point.load.Label().c_str(), absl::StrJoin(config->targets, ", ").c_str(),
                 static_cast<int>(point.figures.requests_sent), errors.c_str());
    exit_code = 1;
  }
  return exit_code;
}

}  // namespace

const Command& BenchCommand() {
  static const Command command{
      "bench",
      "load-test a server over gRPC: latency percentiles, throughput, goodput, plots",
      kUsage,
      {"target",        "in_process",  "model",           "threads",
       "max_num_seqs",  "max_queue",   "block_size",      "dataset",
       "input_len",     "output_len",  "turns",           "conversations",
       "think_time_ms", "concurrency", "request_rate",    "burstiness",
       "num_requests",  "duration",    "warmup_requests", "timeout_ms",
       "slo_ttft_ms",   "slo_tpot_ms", "result_dir",      "seed"},
      RunBench};
  return command;
}

}  // namespace muserve::cli
