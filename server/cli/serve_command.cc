// `muserve serve`: the gRPC server. Binds its ports first (health reports
// NOT_SERVING), loads and warms the model up (SERVING), then serves until
// SIGTERM or SIGINT: the first signal drains (health NOT_SERVING at once,
// new requests UNAVAILABLE, streams in flight run to completion for up to
// --drain-timeout) and exits 0; a second signal exits at once.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/internal/parse.h"
#include "absl/flags/reflection.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "engine/api/absl_string_view.h"
#include "engine/api/check.h"
#include "engine/model/make_model.h"
#include "server/cli/command.h"
#include "server/cli/config_file.h"
#include "server/cli/demo_model.h"
#include "server/cli/shared_flags.h"
#include "server/grpc/inference_server.h"
#include "server/observability/logging.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on");
ABSL_FLAG(int32_t, port, 50051, "gRPC port (0 picks a free one)");
ABSL_FLAG(int32_t, metrics_port, 9464, "Prometheus /metrics port (0 picks one, -1 disables)");
ABSL_FLAG(std::string, device, "cpu",
          "Backend: cpu, or cuda (one NVIDIA GPU) where built with CUDA");
ABSL_FLAG(int32_t, tensor_parallel_size, 1,
          "Ranks the model is split over (on --device cpu: threads of --threads each; on "
          "--device cuda: GPUs 0..N-1 of this host)");
ABSL_FLAG(int32_t, max_num_seqs, 64, "Sequences in one engine step");
ABSL_FLAG(int32_t, max_num_batched_tokens, 2048, "Tokens in one engine step");
ABSL_FLAG(int32_t, max_queue, 1024, "Waiting requests before RESOURCE_EXHAUSTED");
ABSL_FLAG(bool, enable_prefix_caching, true,
          "Reuse the KV of cached prompt prefixes (multi-turn conversations)");
ABSL_FLAG(std::string, kv_cache_memory, "1GiB", "KV cache memory (bytes, or with KiB/MiB/GiB)");
ABSL_FLAG(int64_t, max_request_bytes, 4 << 20, "Largest accepted request, in bytes");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(30),
          "On SIGTERM, how long streams in flight may run before they are cancelled");
ABSL_FLAG(absl::Duration, stream_stall_timeout, absl::Seconds(30),
          "Cancel a stream whose client has not read a response for this long");
ABSL_FLAG(absl::Duration, max_connection_age, absl::Minutes(5),
          "Close a client connection gracefully after this long, so that clients re-resolve the "
          "service name and find new replicas; 0 keeps connections open");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error or off");
ABSL_FLAG(std::string, log_format, "text", "text or json (one JSON object per line)");
ABSL_FLAG(std::string, config, "",
          "YAML file of serve flags (key: value, e.g. max-num-seqs: 64); flags given on the "
          "command line override it");
ABSL_FLAG(double, gpu_memory_utilization, 0.9,
          "On --device cuda: the fraction of the GPU's memory to use in all (weights, step "
          "buffers, CUDA graphs, and the KV cache, which gets the rest)");
ABSL_FLAG(bool, print_config, false,
          "Print the effective configuration as YAML and exit, without loading the model");

namespace muserve::cli {
namespace {

constexpr std::string_view kUsage = R"(Usage: muserve serve [--model DIR] [flags]

Serves muserve.v1.Inference, grpc.health.v1.Health and server reflection over
gRPC, and Prometheus metrics over HTTP. Without --model, serves the demo model
(created once in $MUSERVE_CACHE_DIR, else $XDG_CACHE_HOME/muserve, else
~/.cache/muserve).

Flags:
  --model DIR                   Hugging Face model directory (default: the demo model)
  --host ADDR                   address to listen on (default 0.0.0.0)
  --port N                      gRPC port (default 50051; 0 picks a free one)
  --metrics-port N              /metrics port (default 9464; 0 picks one; -1 disables)
  --device NAME                 backend: cpu (default), or cuda (one NVIDIA GPU; builds
                                with CUDA only)
  --threads N                   CPU threads of the forward pass, per rank (default 2)
  --tensor-parallel-size N      ranks the model is split over (default 1; on --device
                                cuda, GPUs 0..N-1)
  --max-num-seqs N              sequences in one engine step (default 64)
  --max-num-batched-tokens N    tokens in one engine step (default 2048)
  --max-queue N                 waiting requests before RESOURCE_EXHAUSTED (default 1024)
  --enable-prefix-caching=BOOL  reuse the KV of cached prompt prefixes (default true)
  --kv-cache-memory SIZE        KV cache memory per rank, e.g. 512MiB, 4GiB (default 1GiB;
                                capped at what max-num-seqs full contexts can use);
                                --device cpu only
  --gpu-memory-utilization F    on --device cuda: fraction of GPU memory to use in all;
                                the KV cache gets what weights and buffers leave (0.9)
  --block-size N                KV cache block size in tokens (default 16)
  --max-request-bytes N         largest accepted request (default 4194304)
  --chat-template FILE          Jinja chat template replacing tokenizer_config.json's
  --drain-timeout DURATION      on SIGTERM, time for streams in flight (default 30s)
  --stream-stall-timeout DUR    cancel a stream whose client stopped reading (default 30s)
  --max-connection-age DUR      close client connections gracefully after this long, so
                                that clients find new replicas (default 5m; 0: never)
  --log-level LEVEL             trace, debug, info (default), warn, error, off
  --log-format FORMAT           text (default) or json
  --config FILE                 YAML file of these flags (max-num-seqs: 64, log-format: json);
                                flags given on the command line override its values
  --print-config                print the effective configuration as YAML and exit
)";

// Integer flags' ranges, checked before anything starts.
struct IntegerRange {
  std::string_view flag;
  int64_t min;
  int64_t max;
};
constexpr IntegerRange kIntegerRanges[] = {
    {"port", 0, 65535},
    {"metrics_port", -1, 65535},
    {"threads", 1, 1024},
    {"max_num_seqs", 1, INT32_MAX},
    {"max_num_batched_tokens", 1, INT32_MAX},
    {"max_queue", 1, INT32_MAX},
    {"block_size", 1, INT32_MAX},
    {"tensor_parallel_size", 1, 1024},
    {"max_request_bytes", 1024, INT64_MAX},
};

// The --device values this build has a backend for.
#if MUSERVE_HAVE_CUDA
constexpr const char* kDevices[] = {"cpu", "cuda"};
constexpr std::string_view kDevicesNote = "the backends of this build";
#else
constexpr const char* kDevices[] = {"cpu"};
constexpr std::string_view kDevicesNote = "the backends of this build, made without CUDA";
#endif

// "4GiB", "512MiB", "1024" -> bytes.
absl::StatusOr<int64_t> ParseByteSize(std::string_view text) {
  struct Unit {
    std::string_view suffix;
    int64_t scale;
  };
  constexpr Unit kUnits[] = {{"GiB", int64_t{1} << 30}, {"MiB", int64_t{1} << 20},
                             {"KiB", int64_t{1} << 10}, {"G", int64_t{1} << 30},
                             {"M", int64_t{1} << 20},   {"K", int64_t{1} << 10}};
  int64_t scale = 1;
  std::string_view digits = text;
  for (const Unit& unit : kUnits) {
    if (text.ends_with(unit.suffix)) {
      scale = unit.scale;
      digits = text.substr(0, text.size() - unit.suffix.size());
      break;
    }
  }
  int64_t value = 0;
  if (!absl::SimpleAtoi(AsAbsl(digits), &value) || value <= 0 || value > INT64_MAX / scale) {
    return absl::InvalidArgumentError(
        absl::StrCat("must be a positive size like 512MiB or 4GiB, got '", AsAbsl(text), "'"));
  }
  return value * scale;
}

// Waits for SIGTERM/SIGINT on its own thread (the signals are blocked in
// every other thread). The first one is reported; the second exits at once.
class SignalWatcher {
 public:
  SignalWatcher() {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGTERM);
    sigaddset(&signals_, SIGINT);
    // Blocked before any other thread exists, so that all of them inherit it.
    pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
    thread_ = std::thread([this] { Run(); });
    thread_.detach();  // lives until the process exits
  }

  // Blocks until the first signal.
  int Wait() {
    std::unique_lock lock(mutex_);
    received_cv_.wait(lock, [this] { return received_ != 0; });
    return received_;
  }
  bool received() {
    std::lock_guard lock(mutex_);
    return received_ != 0;
  }

 private:
  void Run() {
    int count = 0;
    while (true) {
      int signal = 0;
      if (sigwait(&signals_, &signal) != 0) continue;
      if (++count > 1) {
        server::LogEvent(spdlog::level::warn, "second signal: exiting now",
                         {{"signal", int64_t{signal}}});
        server::FlushLogs();
        std::_Exit(128 + signal);
      }
      std::lock_guard lock(mutex_);
      received_ = signal;
      received_cv_.notify_all();
    }
  }

  sigset_t signals_;
  std::mutex mutex_;
  std::condition_variable received_cv_;
  int received_ = 0;
  std::thread thread_;
};

// Checks the values of serve's flags, whether they came from the command
// line, the configuration file or the defaults; every problem is reported,
// naming where the value came from (`sources`).
absl::Status CheckFlagValues(const FlagSources& sources) {
  std::vector<std::string> errors;
  auto fail = [&](std::string_view flag, absl::string_view problem) {
    errors.push_back(absl::StrCat(sources.Describe(flag), ": ", problem));
  };
  for (const IntegerRange& range : kIntegerRanges) {
    const std::string value = absl::FindCommandLineFlag(AsAbsl(range.flag))->CurrentValue();
    int64_t number = 0;
    if (!absl::SimpleAtoi(value, &number) || number < range.min || number > range.max) {
      fail(range.flag, absl::StrCat("must be in [", range.min, ", ", range.max, "], got ", value));
    }
  }
  if (auto kv_bytes = ParseByteSize(absl::GetFlag(FLAGS_kv_cache_memory)); !kv_bytes.ok()) {
    fail("kv_cache_memory", kv_bytes.status().message());
  }
  if (absl::GetFlag(FLAGS_drain_timeout) < absl::ZeroDuration()) {
    fail("drain_timeout", "must not be negative");
  }
  if (absl::GetFlag(FLAGS_stream_stall_timeout) <= absl::ZeroDuration()) {
    fail("stream_stall_timeout", "must be positive");
  }
  if (const absl::Duration age = absl::GetFlag(FLAGS_max_connection_age);
      age != absl::ZeroDuration() && (age < absl::Seconds(1) || age > absl::Hours(24 * 24))) {
    // gRPC takes the age as an int of milliseconds: at most about 24 days.
    fail("max_connection_age", "must be 0 (never close) or between 1s and 576h");
  }
  const std::string device = absl::GetFlag(FLAGS_device);
  if (std::find(std::begin(kDevices), std::end(kDevices), device) == std::end(kDevices)) {
    // The server would refuse it only after binding its ports; say it now.
    fail("device", absl::StrCat("must be one of ", absl::StrJoin(kDevices, ", "), " (",
                                AsAbsl(kDevicesNote), "), got '", device, "'"));
  }
  if (const double fraction = absl::GetFlag(FLAGS_gpu_memory_utilization);
      !(fraction > 0.0 && fraction <= 1.0)) {
    fail("gpu_memory_utilization", absl::StrCat("must be in (0, 1], got ", fraction));
  }
  if (const std::string model = absl::GetFlag(FLAGS_model); !model.empty()) {
    std::error_code error;
    if (!std::filesystem::is_directory(model, error)) {
      fail("model",
           absl::StrCat("'", model, "' is not a directory",
                        std::filesystem::exists(model, error) ? "" : " (it does not exist)"));
    }
  }
  if (const auto chat_template = absl::GetFlag(FLAGS_chat_template);
      chat_template.has_value() && !chat_template->empty()) {
    std::error_code error;
    if (!std::filesystem::is_regular_file(*chat_template, error) ||
        !std::ifstream(*chat_template).is_open()) {
      fail("chat_template",
           absl::StrCat("cannot read '", *chat_template, "' (not a readable file)"));
    }
  }
  if (absl::Status level = server::CheckLogLevel(absl::GetFlag(FLAGS_log_level)); !level.ok()) {
    fail("log_level", level.message());
  }
  if (absl::Status format = server::CheckLogFormat(absl::GetFlag(FLAGS_log_format)); !format.ok()) {
    fail("log_format", format.message());
  }
  if (errors.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
}

// Each line of a (possibly multi-line) configuration error, prefixed.
int ConfigError(const absl::Status& status) {
  for (absl::string_view line : absl::StrSplit(status.message(), '\n')) {
    std::fprintf(stderr, "muserve serve: %s\n", std::string(line).c_str());
  }
  return 2;
}

int Fail(std::string_view what, const absl::Status& status) {
  server::LogEvent(spdlog::level::err, what, {{"error", std::string(status.message())}});
  server::FlushLogs();
  return 1;
}

int RunServe(const std::vector<std::string_view>& args) {
  if (!args.empty()) {
    std::fprintf(stderr, "muserve serve: unexpected argument '%s'\n", std::string(args[0]).c_str());
    return 2;
  }
  // Every serve flag is a key of the file, but those that say what to do
  // with the file.
  const ConfigSchema schema(ServeCommand().flags, {"config", "print_config"});
  FlagSources sources;
  if (const std::string config = absl::GetFlag(FLAGS_config); !config.empty()) {
    // absl tells which flags the command line (or a --flagfile) gave.
    auto applied = schema.Apply(config, [](std::string_view flag) {
      return absl::flags_internal::WasPresentOnCommandLine(AsAbsl(flag));
    });
    if (!applied.ok()) return ConfigError(applied.status());
    sources = std::move(*applied);
  }
  if (absl::Status checked = CheckFlagValues(sources); !checked.ok()) return ConfigError(checked);
  if (absl::GetFlag(FLAGS_print_config)) {
    std::fputs(schema.PrintYaml().c_str(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
  }
  // First, before any thread exists (the log writer included), so that every
  // thread inherits the blocked signals and only the watcher receives them.
  SignalWatcher signals;
  if (absl::Status status =
          server::ConfigureLogging(absl::GetFlag(FLAGS_log_level), absl::GetFlag(FLAGS_log_format));
      !status.ok()) {
    std::fprintf(stderr, "muserve serve: %s\n", std::string(status.message()).c_str());
    return 2;
  }
  auto kv_bytes = ParseByteSize(absl::GetFlag(FLAGS_kv_cache_memory));
  MUSERVE_CHECK(kv_bytes.ok());  // CheckFlagValues
  server::ServerOptions options;
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.max_connection_age = absl::ToChronoMilliseconds(absl::GetFlag(FLAGS_max_connection_age));
  options.stream_stall_timeout =
      absl::ToChronoMilliseconds(absl::GetFlag(FLAGS_stream_stall_timeout));
  server::ServingModelOptions& model = options.model;
  model.device = absl::GetFlag(FLAGS_device);
  model.num_threads = absl::GetFlag(FLAGS_threads);
  model.tensor_parallel_size = absl::GetFlag(FLAGS_tensor_parallel_size);
  model.block_size = absl::GetFlag(FLAGS_block_size);
  model.kv_cache_bytes = *kv_bytes;
  model.gpu_memory_utilization = absl::GetFlag(FLAGS_gpu_memory_utilization);
  model.loop.max_num_seqs = absl::GetFlag(FLAGS_max_num_seqs);
  model.loop.max_num_batched_tokens = absl::GetFlag(FLAGS_max_num_batched_tokens);
  model.loop.max_queue = absl::GetFlag(FLAGS_max_queue);
  model.loop.enable_prefix_caching = absl::GetFlag(FLAGS_enable_prefix_caching);
  model.max_request_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_request_bytes));
  if (auto path = absl::GetFlag(FLAGS_chat_template)) model.chat_template = *path;
  model.model_dir = absl::GetFlag(FLAGS_model);
  if (model.model_dir.empty()) {
    auto demo = EnsureDemoModel();
    if (!demo.ok()) return Fail("cannot create the demo model", demo.status());
    model.model_dir = *demo;
  }

  auto server = server::InferenceServer::Start(options);
  if (!server.ok()) return Fail("cannot start the server", server.status());
  server::LogEvent(spdlog::level::info, "listening",
                   {{"grpc", absl::StrCat(options.host, ":", (*server)->port())},
                    {"metrics_port", int64_t{(*server)->metrics_port()}},
                    {"model_dir", model.model_dir.string()}});
  if (absl::Status loaded = (*server)->LoadModel(); !loaded.ok()) {
    return Fail("cannot load the model", loaded);
  }
  server::LogEvent(spdlog::level::info, "serving", {{"port", int64_t{(*server)->port()}}});

  const int signal = signals.Wait();
  const auto drain_timeout = absl::ToChronoMilliseconds(absl::GetFlag(FLAGS_drain_timeout));
  server::LogEvent(spdlog::level::info, "signal received: draining", {{"signal", int64_t{signal}}});
  const bool drained = (*server)->Drain(drain_timeout);
  if (!drained) {
    server::LogEvent(spdlog::level::warn, "drain timeout: cancelling the streams left",
                     {{"in_flight", static_cast<int64_t>((*server)->num_active())}});
  }
  (*server)->Shutdown();
  server::LogEvent(spdlog::level::info, "stopped", {});
  server::FlushLogs();
  return 0;
}

}  // namespace

const Command& ServeCommand() {
  static const Command command{
      "serve",
      "serve the model over gRPC (health, reflection, Prometheus metrics)",
      kUsage,
      {"model", "host", "port", "metrics_port", "device", "threads", "max_num_seqs",
       "max_num_batched_tokens", "max_queue", "enable_prefix_caching", "kv_cache_memory",
       "block_size", "max_request_bytes", "chat_template", "drain_timeout", "stream_stall_timeout",
       "max_connection_age", "log_level", "log_format", "tensor_parallel_size",
       "gpu_memory_utilization",
       // Flags not keys of the configuration file: see RunServe.
       "config", "print_config"},
      RunServe};
  return command;
}

}  // namespace muserve::cli
