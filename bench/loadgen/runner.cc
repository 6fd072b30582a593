#include "bench/loadgen/runner.h"

#include <cmath>
#include <limits>
#include <memory>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/loadgen/dataset.h"
#include "bench/loadgen/progress_bar.h"
#include "bench/loadgen/workload.h"
#include "grpcpp/grpcpp.h"
#include "server/client/inference_client.h"

namespace muserve::loadgen {
namespace {

constexpr auto kConnectTimeout = std::chrono::seconds(10);
// Keepalive pings find a peer that went away without closing the connection
// (a dead host, a partition): unanswered within the timeout, the calls on the
// connection fail UNAVAILABLE. The interval is just over gRPC servers'
// default minimum between pings on a connection without data (5 min), so a
// server that is slow to send its first token never takes them as abuse.
constexpr int kKeepaliveTimeMs = 310'000;
constexpr int kKeepaliveTimeoutMs = 20'000;

struct Target {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Inference::Stub> stub;
  std::unique_ptr<client::InferenceClient> client;  // unary calls while setting up
};

absl::StatusOr<Target> Connect(const std::string& address) {
  Target target;
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveTimeMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);  // keep pinging a silent server
  // A name resolving to several replicas gets calls spread over all of them
  // (gRPC's default, pick_first, would use one). No retry policy, unlike
  // muserve's own clients: every refusal is counted as it happened.
  args.SetServiceConfigJSON(R"({"loadBalancingConfig": [{"round_robin": {}}]})");
  target.channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  if (!target.channel->WaitForConnected(std::chrono::system_clock::now() + kConnectTimeout)) {
    return absl::UnavailableError(absl::StrCat("cannot connect to --target ", address, " within ",
                                               kConnectTimeout.count(),
                                               " s (start a server there, or use --in-process)"));
  }
  target.stub = v1::Inference::NewStub(target.channel);
  target.client = std::make_unique<client::InferenceClient>(target.channel);
  return target;
}

absl::StatusOr<Workload> MakeWorkload(const BenchConfig& config, const v1::ModelInfo& info,
                                      client::InferenceClient& client) {
  const int64_t needed = std::min(
      std::max(config.num_requests.value_or(kMaxConversationsUpFront), config.warmup_requests),
      kMaxConversationsUpFront * config.turns);
  if (config.dataset) {
    DatasetOptions options;
    options.path = *config.dataset;
    options.output_len = config.output_len;
    options.max_entries = std::max<int64_t>(needed, 1);
    options.max_context = info.max_context_length();
    options.seed = config.seed;
    const TokenCounter count = [&client](const std::string& text) -> absl::StatusOr<int32_t> {
      v1::TokenizeRequest request;
      request.set_text(text);
      request.set_add_special_tokens(false);
      auto response = client.Tokenize(request);
      if (!response.ok()) return response.status();
      return response->token_ids_size();
    };
    return LoadDataset(options, count);
  }
  SyntheticOptions options;
  options.input_len = config.input_len;
  options.output_len = config.output_len;
  options.turns = config.turns;
  options.conversations = config.conversations.value_or((needed + config.turns - 1) / config.turns);
  options.vocab_size = info.vocab_size();
  options.max_context = info.max_context_length();
  options.eos_token_ids.assign(info.eos_token_ids().begin(), info.eos_token_ids().end());
  options.seed = config.seed;
  return SyntheticWorkload(options);
}

LoadSpec Load(const BenchConfig& config, double value) {
  LoadSpec load;
  load.mode = config.mode;
  load.value = value;
  load.burstiness = config.burstiness;
  return load;
}

PhaseResult RunWithProgress(const std::vector<v1::Inference::Stub*>& stubs,
                            const Workload& workload, const PhaseOptions& options,
                            const std::string& label, bool show) {
  PhaseProgress progress;
  std::unique_ptr<ProgressBar> bar;
  if (show) bar = std::make_unique<ProgressBar>(label, options.max_requests, &progress);
  return RunPhase(stubs, workload, options, &progress);
}

}  // namespace

absl::Status BenchConfig::Validate() const {
  if (targets.empty()) return absl::InvalidArgumentError("--target: no target given");
  if (turns < 1) return absl::InvalidArgumentError("--turns must be >= 1");
  if (conversations && *conversations < 1) {
    return absl::InvalidArgumentError("--conversations must be >= 1");
  }
  if (think_time.count() < 0) return absl::InvalidArgumentError("--think-time-ms must be >= 0");
  if (load_values.empty()) {
    return absl::InvalidArgumentError("--concurrency / --request-rate: no value given");
  }
  for (double value : load_values) {
    if (mode == LoadSpec::Mode::kConcurrency &&
        (value < 1 || value != std::floor(value) || std::isinf(value))) {
      return absl::InvalidArgumentError(
          absl::StrCat("--concurrency values must be integers >= 1, got ", value));
    }
    if (mode == LoadSpec::Mode::kRequestRate && !(value > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--request-rate values must be > 0 (or inf), got ", value));
    }
  }
  if (!(burstiness > 0) || std::isinf(burstiness)) {
    return absl::InvalidArgumentError(absl::StrCat("--burstiness must be > 0, got ", burstiness));
  }
  if (num_requests && *num_requests < 1) {
    return absl::InvalidArgumentError("--num-requests must be >= 1");
  }
  if (!num_requests && !duration) {
    return absl::InvalidArgumentError("--num-requests: needed without --duration");
  }
  if (duration && duration->count() <= 0) {
    return absl::InvalidArgumentError("--duration must be positive");
  }
  if (warmup_requests < 0) return absl::InvalidArgumentError("--warmup-requests must be >= 0");
  if (timeout && timeout->count() <= 0) {
    return absl::InvalidArgumentError("--timeout-ms must be positive");
  }
  if (slo.ttft_ms && !(*slo.ttft_ms > 0)) {
    return absl::InvalidArgumentError("--slo-ttft-ms must be positive");
  }
  if (slo.tpot_ms && !(*slo.tpot_ms > 0)) {
    return absl::InvalidArgumentError("--slo-tpot-ms must be positive");
  }
  return absl::OkStatus();
}

absl::StatusOr<BenchResult> RunBench(const BenchConfig& config,
                                     const std::function<void(const BenchResult&)>& on_point,
                                     const std::atomic<bool>* stop) {
  if (absl::Status valid = config.Validate(); !valid.ok()) return valid;
  BenchResult result;
  result.config = config;
  result.started_at = absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone());

  std::vector<Target> targets;
  std::vector<v1::Inference::Stub*> stubs;
  for (const std::string& address : config.targets) {
    auto target = Connect(address);
    if (!target.ok()) return target.status();
    targets.push_back(std::move(*target));
    stubs.push_back(targets.back().stub.get());
  }
  auto info = targets[0].client->GetModelInfo();
  if (!info.ok()) {
    return absl::Status(info.status().code(), absl::StrCat("GetModelInfo on ", config.targets[0],
                                                           ": ", info.status().message()));
  }
  result.model_info = *info;
  auto workload = MakeWorkload(config, *info, *targets[0].client);
  if (!workload.ok()) return workload.status();
  result.workload = workload->description;

  // A fresh salt per run: nothing cached by an earlier run (or the warm-up)
  // is reused; within a conversation, turns share the cache as they would.
  const uint64_t nonce = std::random_device()() ^ (config.seed << 1);
  PhaseOptions options;
  options.think_time = config.think_time;
  options.timeout = config.timeout;
  options.seed = config.seed;
  options.stop = stop;
  if (config.warmup_requests > 0) {
    options.load = Load(config, config.load_values[0]);
    options.max_requests = config.warmup_requests;
    options.salt_prefix = absl::StrCat("bench-", nonce, "-warmup-");
    RunWithProgress(stubs, *workload, options, "warm-up", config.progress_bar);
  }
  for (size_t i = 0; i < config.load_values.size(); ++i) {
    if (stop != nullptr && stop->load()) break;
    options.load = Load(config, config.load_values[i]);
    options.max_requests = config.num_requests.value_or(std::numeric_limits<int64_t>::max());
    options.max_duration = config.duration;
    options.salt_prefix = absl::StrCat("bench-", nonce, "-", i, "-");
    const PhaseResult phase =
        RunWithProgress(stubs, *workload, options, options.load.Label(), config.progress_bar);
    result.points.push_back(
        {options.load, ComputeFigures(phase.records, phase.duration_s, config.slo)});
    result.interrupted = stop != nullptr && stop->load();
    if (on_point) on_point(result);
  }
  result.interrupted = stop != nullptr && stop->load();
  return result;
}

}  // namespace muserve::loadgen
