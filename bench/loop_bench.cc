// loop_bench: continuous batching end to end. Pushes N requests (prompt P
// tokens, output O tokens, ignore_eos, greedy) through the EngineLoop over
// the CPU backend on a make-model preset, at several max_num_seqs, and
// reports output tokens/s and the scheduler's own share of each step
// (everything the loop does besides Backend::Forward: draining the inbox,
// planning, sampling, detokenizing, stop checks, emitting deltas).
//
//   loop_bench [--preset small] [--threads 2] [--requests 128] [--prompt 128]
//              [--output 128] [--seqs 1,8,32,128]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/bench_model.h"
#include "engine/api/absl_string_view.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/make_model.h"
#include "engine/model/weights.h"
#include "scheduler/engine_loop.h"

namespace muserve::bench {
namespace {

struct Flags {
  std::string preset = "small";
  int32_t threads = 2;
  int32_t requests = 128;
  int32_t prompt = 128;
  int32_t output = 128;
  std::vector<int32_t> seqs = {1, 8, 32, 128};
};

bool ParseFlags(int argc, char** argv, Flags& flags) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string name = argv[i];
    const std::string value = argv[i + 1];
    auto as_int = [&](int32_t& out) { return absl::SimpleAtoi(AsAbsl(value), &out); };
    bool ok = true;
    if (name == "--preset") {
      flags.preset = value;
    } else if (name == "--threads") {
      ok = as_int(flags.threads);
    } else if (name == "--requests") {
      ok = as_int(flags.requests);
    } else if (name == "--prompt") {
      ok = as_int(flags.prompt);
    } else if (name == "--output") {
      ok = as_int(flags.output);
    } else if (name == "--seqs") {
      flags.seqs.clear();
      for (absl::string_view part : absl::StrSplit(AsAbsl(value), ',')) {
        int32_t n = 0;
        ok = ok && absl::SimpleAtoi(part, &n) && n >= 1;
        flags.seqs.push_back(n);
      }
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "bad flag %s %s\n", name.c_str(), value.c_str());
      return false;
    }
  }
  if ((argc - 1) % 2 != 0) {
    std::fprintf(stderr, "flags come in pairs: --name value\n");
    return false;
  }
  return true;
}

struct Result {
  double seconds = 0;
  int64_t output_tokens = 0;
  LoadSnapshot load;
};

absl::StatusOr<Result> RunOnce(const std::filesystem::path& dir, const Flags& flags,
                               int32_t max_num_seqs, const Tokenizer& tokenizer) {
  absl::StatusOr<LoadedModel> model = LoadModel(dir);
  if (!model.ok()) return model.status();
  std::vector<TokenId> eos;
  for (int64_t id : model->config.eos_token_ids) eos.push_back(static_cast<TokenId>(id));
  const int32_t vocab = static_cast<int32_t>(model->config.vocab_size);
  constexpr int32_t kBlockSize = 16;
  constexpr int32_t kBatchedTokens = 2048;
  // Room for every request at once: no preemption in this benchmark.
  const int32_t blocks_per_request = (flags.prompt + flags.output + kBlockSize - 1) / kBlockSize;
  absl::StatusOr<std::unique_ptr<CpuBackend>> backend =
      CpuBackend::Create(std::move(*model), {.num_threads = flags.threads,
                                             .block_size = kBlockSize,
                                             .num_blocks = blocks_per_request * flags.requests + 16,
                                             .max_num_batched_tokens = kBatchedTokens});
  if (!backend.ok()) return backend.status();
  absl::StatusOr<std::unique_ptr<EngineLoop>> loop =
      EngineLoop::Create(**backend, tokenizer, eos,
                         {.max_num_seqs = max_num_seqs,
                          .max_num_batched_tokens = kBatchedTokens,
                          .max_queue = flags.requests});
  if (!loop.ok()) return loop.status();
  (*loop)->Start();

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (int32_t r = 0; r < flags.requests; ++r) {
    Request request;
    for (int32_t i = 0; i < flags.prompt; ++i) {
      request.prompt_tokens.push_back((r * 131 + i * 17 + 3) % vocab);
    }
    request.sampling.temperature = 0;
    request.stop.max_tokens = flags.output;
    request.stop.ignore_eos = true;
    absl::StatusOr<std::shared_ptr<RequestHandle>> handle = (*loop)->Submit(std::move(request));
    if (!handle.ok()) return handle.status();
    handles.push_back(*handle);
  }
  Result result;
  for (auto& handle : handles) {
    while (true) {
      RequestHandle::Event event = handle->Next();
      if (const auto* finished = std::get_if<Finished>(&event)) {
        result.output_tokens += finished->usage.completion_tokens;
        break;
      }
    }
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.load = (*loop)->GetLoad();
  (*loop)->Stop();
  return result;
}

int Run(const Flags& flags) {
  auto model = BenchModel::Create(flags.preset, "loop_bench");
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  const std::filesystem::path& dir = (*model)->dir();
  std::printf("loop_bench: preset %s (f32), %d threads, %d requests x (prompt %d, output %d)\n",
              flags.preset.c_str(), flags.threads, flags.requests, flags.prompt, flags.output);
  std::printf("load average at start: %s\n", LoadAverage().c_str());
  // "scheduler %": everything but Forward, of the step time; "sampling %"
  // is the SampleToken part of it, "plan+out %" the rest (planning, KV
  // bookkeeping, detokenizing, stop checks, deltas).
  std::printf("%8s %8s %10s %7s %9s %12s %11s %10s\n", "max_seqs", "seconds", "out tok/s", "steps",
              "ms/step", "scheduler %", "sampling %", "plan+out %");
  int rc = 0;
  for (int32_t seqs : flags.seqs) {
    absl::StatusOr<Result> result = RunOnce(dir, flags, seqs, (*model)->tokenizer());
    if (!result.ok()) {
      std::fprintf(stderr, "max_num_seqs %d: %s\n", seqs, result.status().ToString().c_str());
      rc = 1;
      break;
    }
    const LoadSnapshot& load = result->load;
    auto percent = [&](int64_t ns) {
      return load.step_time_ns > 0
                 ? 100.0 * static_cast<double>(ns) / static_cast<double>(load.step_time_ns)
                 : 0.0;
    };
    const int64_t overhead = load.step_time_ns - load.forward_time_ns;
    std::printf(
        "%8d %8.2f %10.1f %7lld %9.3f %11.2f%% %10.2f%% %9.2f%%\n", seqs, result->seconds,
        static_cast<double>(result->output_tokens) / result->seconds,
        static_cast<long long>(load.num_steps),
        load.num_steps > 0
            ? 1e-6 * static_cast<double>(load.step_time_ns) / static_cast<double>(load.num_steps)
            : 0.0,
        percent(overhead), percent(load.sample_time_ns), percent(overhead - load.sample_time_ns));
    std::fflush(stdout);
  }
  std::printf("load average at end: %s\n", LoadAverage().c_str());
  return rc;
}

}  // namespace
}  // namespace muserve::bench

int main(int argc, char** argv) {
  muserve::bench::Flags flags;
  if (!muserve::bench::ParseFlags(argc, argv, flags)) return 2;
  return muserve::bench::Run(flags);
}
